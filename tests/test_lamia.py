"""LAMIA's palette tokenizer: the hierarchical block mask, the dual forward pass, the palette
hinge losses, per-position quantisation with an index token, and parameter faults."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from benchmark.components import FitContext, RunInfo, TrainingData
from benchmark.errors import ParameterError
from benchmark.nn.engine import release
from benchmark.params import resolve
from benchmark.runner import load_split
from plugins.tokenizers.lamia import (
    CONTENT,
    LAP,
    LDP,
    PAD,
    PARAMS,
    TASK,
    LamiaTokenizer,
    Palette,
    block_mask,
    hinge_losses,
    pca,
)

SMALL_LM = {"d_model": 32, "heads": 2, "head_dim": 16, "d_ff": 64, "layers": 2, "dropout": 0.0}
NAMES = {CONTENT: "content", LAP: "LaP", LDP: "LdP", TASK: "task"}


def _params(**overrides):
    return resolve(PARAMS, "tiny", {**SMALL_LM, **overrides}, "lamia")


def _context(tmp_path) -> FitContext:
    return FitContext(run=RunInfo("synthetic", "loo", "lamia", {}, 0, "tiny"), seed=0, profile="tiny",
                      cache_dir=str(tmp_path), validate=lambda *a, **k: {}, epoch_end=lambda *a: None,
                      progress=False)


def test_block_mask_blocks_exactly_the_block_pairs_the_paper_blocks():
    layout = [CONTENT] * 3 + [LAP] * 2 + [LDP] * 2 + [TASK] * 3 + [PAD] * 2
    mask = block_mask(torch.tensor([layout]))[0]
    # Paper §4.2.1: causal inside each block; the content block is read by the palette block,
    # the placeholder block by the task block; every other pair of blocks is disabled.
    reads = {(LAP, CONTENT), (TASK, LDP)}
    for a, b in itertools.product(NAMES, NAMES):
        q = [i for i, x in enumerate(layout) if x == a]
        k = [i for i, x in enumerate(layout) if x == b]
        block = mask[q][:, k]
        if a == b:
            assert torch.equal(block, torch.ones(len(q), len(q), dtype=torch.bool).tril()), (NAMES[a], NAMES[b])
        elif (a, b) in reads:
            assert block.all(), f"{NAMES[a]} must read all of {NAMES[b]}"
        else:
            assert not block.any(), f"{NAMES[a]} must not read {NAMES[b]}"
    pads = [i for i, x in enumerate(layout) if x == PAD]
    assert not mask[:, pads][:pads[0]].any()  # no real token reads padding
    assert torch.equal(mask[pads][:, pads], torch.eye(len(pads), dtype=torch.bool))


def test_the_task_block_sees_the_content_only_through_the_palette():
    data = TrainingData.from_split(load_split("synthetic", "loo"))
    torch.manual_seed(0)
    palette = Palette(_params(), data, torch.device("cpu"))
    palette.model.eval()
    items = [0, 1]
    with torch.no_grad():
        vectors = palette.palettes(items)
        ids, blocks = palette.rows(items, [0, 0])
        hidden = palette.forward(ids, blocks, vectors)
        changed = ids.clone()
        changed[blocks == CONTENT] = 1000  # other content, same palette given
        again = palette.forward(changed, blocks, vectors)
        task = blocks == TASK
        assert torch.allclose(hidden[task], again[task], atol=1e-5)
        assert not torch.allclose(hidden[blocks == LAP], again[blocks == LAP], atol=1e-3)
        # The first pass's palette is the LaP states of the full sequence: the later blocks
        # do not reach back into it.
        assert torch.allclose(hidden[blocks == LAP].view(2, -1, 32), vectors, atol=1e-5)
        other = ids.clone()
        other[blocks == LDP] = 1001  # the placeholders' own embeddings are replaced, never read
        assert torch.allclose(palette.forward(other, blocks, vectors), hidden, atol=1e-5)
    losses = palette.losses(items)
    losses["gen"].backward()
    grads = palette.model.get_input_embeddings().weight.grad
    assert grads[palette.lap].abs().sum() > 0  # the answer loss trains the palette tokens (dual pass)


def test_palette_hinge_losses_match_eq_7_and_8():
    eye = torch.eye(3)
    orthogonal = torch.stack([eye, -eye])  # 2 items x 3 orthogonal vectors; items opposite
    intra, inter = hinge_losses(orthogonal, 0.1, 0.25)
    assert float(intra) == 0.0 and float(inter) == 0.0
    same = torch.ones(2, 3, 4)  # every vector identical: cosine 1 everywhere
    intra, inter = hinge_losses(same, 0.1, 0.25)
    assert float(intra) == pytest.approx(0.9 ** 2) and float(inter) == pytest.approx(0.75 ** 2)


def test_codes_come_per_position_with_an_index_token_for_collisions(tmp_path):
    data = TrainingData.from_split(load_split("synthetic", "loo"))
    tokenizer = LamiaTokenizer(_params(epochs=1, codebook_size=16, palette_size=3, pca_dims=8), seed=0)
    ids = tokenizer.fit(data, _context(tmp_path))
    assert ids.codes.shape == (data.n_items, 4)  # 3 palette codes + the index token
    assert len({tuple(row) for row in ids.codes.tolist()}) == data.n_items  # every item its own identifier
    assert all(ids.codes[:, level].max() < 16 for level in range(3))
    assert (ids.codes[:, 3].max() > 0) == (ids.info["collisions_before"] > 0)
    assert ids.info["gen_loss"]["last"] > 0 and "palette_mean_intra_cosine" in ids.info
    again = LamiaTokenizer(_params(epochs=1, codebook_size=16, palette_size=3, pca_dims=8), seed=0)
    assert np.array_equal(again.fit(data, _context(tmp_path)).codes, ids.codes)  # cached by content


def test_a_palette_checkpoint_left_by_a_dead_run_goes_with_the_row_that_reads_its_cached_codes(tmp_path):
    # The palette fit finishes and its codes are cached, then the process dies before the
    # row is stored (its run state, the only record of the checkpoint, dies with it).
    data = TrainingData.from_split(load_split("synthetic", "loo"))
    params = _params(epochs=1, codebook_size=16, palette_size=3, pca_dims=8)
    dead = _context(tmp_path)
    first = LamiaTokenizer(params, seed=0).fit(data, dead)
    (left,) = (tmp_path / "checkpoints").glob("*.pt")
    assert torch.load(left, weights_only=False)["finished"]["epochs"] == 1
    # The run made again reads the cached codes, trains nothing, and releases the file with its row.
    again = _context(tmp_path)
    assert np.array_equal(LamiaTokenizer(params, seed=0).fit(data, again).codes, first.codes)
    assert again.run.state["checkpoints"] == [str(left)]
    assert release(again.run) == 1 and not left.exists()
    # Nothing left: nothing registered.
    clean = _context(tmp_path)
    LamiaTokenizer(params, seed=0).fit(data, clean)
    assert clean.run.state.get("checkpoints", []) == []


def test_pca_keeps_the_directions_of_largest_variance():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(200, 5)) * np.array([10.0, 5.0, 1.0, 0.1, 0.01])
    reduced = pca(points, 2)
    assert reduced.shape == (200, 2)
    assert reduced[:, 0].var() > reduced[:, 1].var() > 20


def test_unknown_fields_are_named_with_the_datasets_fields():
    data = TrainingData.from_split(load_split("synthetic", "loo"))
    with pytest.raises(ParameterError, match="content_fields.*plot.*fields are: title"):
        Palette(_params(content_fields="title,plot"), data, torch.device("cpu"))
