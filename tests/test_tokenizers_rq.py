"""RQ-VAE tokenizers (rqvae, letter, lcrec), their cores and the identifier diagnostics.

Tiny models on the synthetic dataset: item text is encoded once per session (MiniLM) and
each test trains for a few dozen epochs. LETTER's CF embeddings are a fixed random array
(monkeypatched) so that no SASRec is trained here.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark import plugins, services
from benchmark.cache import save_array
from benchmark.code_trie import codebook_utilisation, collision_rate
from benchmark.components import EvaluationInput, FitContext, ItemIdentifiers, RunInfo, TrainingData
from benchmark.evaluation.identifier_diagnostics import cf_neighbour_overlap, code_entropy, diagnose
from benchmark.nn import rqvae as rqvae_model
from benchmark.nn.clustering import kmeans
from benchmark.params import resolve
from benchmark.runner import load_split, make_context
from benchmark.services import text_embeddings
from plugins.evaluators.tokenizer_diagnostics import tokenizer_diagnostics
from plugins.tokenizers import lcrec, letter

# Small enough for seconds per fit on 120 items.
TINY = {"epochs": 40, "batch_size": 32, "codebook_size": 8, "hidden_dims": "64", "latent_dim": 16,
        "dead_code_interval": 5, "kmeans_iterations": 5}
TOKENIZERS = ("rqvae", "letter", "lcrec")


@pytest.fixture(scope="session")
def text_cache(tmp_path_factory) -> Path:
    """A cache holding the synthetic item text embeddings (encoded once per session)."""
    root = tmp_path_factory.mktemp("text-cache")
    text_embeddings(TrainingData.from_split(load_split("synthetic", "loo")), root, progress=False)
    return root


@pytest.fixture
def cache(text_cache: Path, tmp_path: Path) -> Path:
    """A fresh cache per test (so every fit trains) that already has the text embeddings."""
    shutil.copytree(text_cache / "text", tmp_path / "cache" / "text")
    return tmp_path / "cache"


@pytest.fixture
def fake_cf(monkeypatch) -> dict:
    """LETTER reads a fixed random CF array instead of training SASRec; ``state`` can alter it."""
    state: dict = {"cold_fill": None}

    def cf_embeddings(data: TrainingData, context: FitContext, train: bool = True, **services) -> np.ndarray:
        cf = np.random.default_rng(7).normal(size=(data.n_items, 12)).astype(np.float32)
        if state["cold_fill"] is not None:
            cf[data.train_counts == 0] = state["cold_fill"]
        return cf

    monkeypatch.setattr(services, "cf_embeddings", cf_embeddings)
    return state


def context(cache_dir: Path, data: TrainingData) -> FitContext:
    """The harness's fit context (its embedding services included), without lifecycle hooks."""
    run = RunInfo(dataset="synthetic", split="loo", method="test", params={}, seed=0, profile="tiny")
    return make_context(run, data, cache_dir, progress=False, hooks=False)


def fit(name: str, data: TrainingData, cache_dir: Path, **overrides) -> ItemIdentifiers:
    spec = plugins.get_tokenizers()[name]
    params = resolve(spec.params, "tiny", {**TINY, **overrides}, name)
    return spec.factory(params, 0).fit(data, context(cache_dir, data))


def synthetic_embeddings() -> np.ndarray:
    """Eight noisy clusters of unit vectors, like topic-structured item text."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(8, 32))
    x = centres[rng.integers(8, size=200)] + 0.4 * rng.normal(size=(200, 32))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


# --------------------------------------------------------------------------- smoke


@pytest.mark.parametrize("split", ["loo", "cold-items"])
@pytest.mark.parametrize("name", TOKENIZERS)
def test_every_item_gets_a_unique_identifier(name: str, split: str, cache: Path, fake_cf: dict) -> None:
    data = TrainingData.from_split(load_split("synthetic", split))
    ids = fit(name, data, cache)
    assert ids.kind == "codes" and ids.codes.shape[0] == data.n_items
    assert (ids.codes >= 0).all() and (ids.codes < np.array(ids.vocab_sizes)).all()
    assert collision_rate(ids.codes) == 0.0
    if split == "cold-items":
        assert (data.train_counts == 0).any()  # cold items have identifiers too (every row above)
    assert {"semantic_levels", "collisions_before", "collisions_after", "utilisation"} <= set(ids.info)
    assert ids.info["collisions_after"] == 0
    assert ids.info["reconstruction_loss"]["last"] < ids.info["reconstruction_loss"]["first"]


def test_lcrec_last_level_is_collision_free_without_an_extra_level(cache: Path) -> None:
    data = TrainingData.from_split(load_split("synthetic", "loo"))
    ids = fit("lcrec", data, cache, codebook_size=16)
    assert ids.codes.shape[1] == 4 and len(ids.vocab_sizes) == 4
    assert collision_rate(ids.codes) == 0.0
    assert ids.info["overflowing_groups"] == 0


def test_fits_are_cached_and_deterministic(cache: Path, tmp_path: Path, text_cache: Path) -> None:
    data = TrainingData.from_split(load_split("synthetic", "loo"))
    first = fit("rqvae", data, cache)
    assert len(list((cache / "rqvae").glob("*.npy"))) == 1
    other = tmp_path / "other"
    shutil.copytree(text_cache / "text", other / "text")
    np.testing.assert_array_equal(first.codes, fit("rqvae", data, other).codes)


# --------------------------------------------------------------------------- RQ-VAE core


def test_reconstruction_loss_falls_and_codebooks_stay_used() -> None:
    params = resolve(rqvae_model.PARAMS, "tiny", {**TINY, "epochs": 60, "dead_code_interval": 5, "batch_size": 64})
    trained = rqvae_model.train_rqvae(synthetic_embeddings(), params, seed=0)
    recon = trained.history["reconstruction"]
    assert recon[-1] < 0.5 * recon[0]
    codes, residuals = trained.model.encode(torch.as_tensor(synthetic_embeddings()))
    assert codes.shape == (200, 3) and len(residuals) == 3
    assert codebook_utilisation(codes.numpy(), (8, 8, 8))[0] >= 0.5


def test_dead_codes_are_reseeded_from_residuals() -> None:
    model = rqvae_model.RQVAE(4, [8], 2, levels=1, codebook_size=4)
    residual = torch.tensor([[5.0, 5.0], [6.0, 6.0]])
    used = torch.tensor([[True, False, True, False]])
    before = model.codebooks[0].detach().clone()
    rqvae_model.reseed_dead_codes(model, [residual], used, torch.Generator().manual_seed(0))
    after = model.codebooks[0].detach()
    torch.testing.assert_close(after[[0, 2]], before[[0, 2]])
    for code in (1, 3):
        assert any(torch.equal(after[code], r) for r in residual)


# --------------------------------------------------------------------------- LC-Rec core


def test_sinkhorn_balances_codes_that_nearest_assignment_piles_up() -> None:
    generator = torch.Generator().manual_seed(0)
    codebook = torch.randn(8, 4, generator=generator)
    # Every point is nearest to code 0: plain assignment uses one code.
    points = codebook[0] + 0.3 * torch.randn(64, 4, generator=generator)
    distances = (torch.cdist(points, codebook) ** 2).numpy()
    assert len(np.unique(distances.argmin(1))) < 4
    log_plan = lcrec.sinkhorn(distances, epsilon=0.05, iterations=300)
    np.testing.assert_allclose(np.exp(log_plan).sum(0), np.full(8, 1 / 8), atol=1e-6)
    counts = np.bincount(log_plan.argmax(1), minlength=8)
    assert counts.max() <= 2 * 64 / 8 and (counts > 0).all()


def test_last_level_assignment_separates_every_prefix_group() -> None:
    rng = np.random.default_rng(0)
    prefixes = rng.integers(0, 5, size=(60, 2))
    log_plan = np.log(rng.dirichlet(np.ones(8), size=60))
    log_plan[:, 0] += 5  # everyone prefers code 0
    last, overflow = lcrec.assign_last_level(prefixes, log_plan)
    assert overflow == 0
    assert collision_rate(np.column_stack([prefixes, last])) == 0.0


# --------------------------------------------------------------------------- LETTER core


def test_letter_ignores_cold_cf_rows(cache: Path, tmp_path: Path, text_cache: Path, fake_cf: dict) -> None:
    data = TrainingData.from_split(load_split("synthetic", "cold-items"))
    assert (data.train_counts == 0).any()
    fake_cf["cold_fill"] = np.nan
    with_nan = fit("letter", data, cache, alpha=1.0)
    fake_cf["cold_fill"] = 1e6
    other = tmp_path / "other"
    shutil.copytree(text_cache / "text", other / "text")
    with_garbage = fit("letter", data, other, alpha=1.0)
    np.testing.assert_array_equal(with_nan.codes, with_garbage.codes)
    assert math.isfinite(with_nan.info["collaborative_loss"]["last"])


def test_collaborative_loss_reads_warm_rows_only() -> None:
    params = resolve(letter.PARAMS, "tiny", {**TINY, "alpha": 1.0})
    cf = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    warm = np.array([True, True, False, True, False, True])
    cf[~warm] = np.nan
    regulariser = letter.LetterRegulariser(cf, warm, params, seed=0)
    model = rqvae_model.RQVAE(4, [8], params["latent_dim"], levels=2, codebook_size=4)
    output = model(torch.randn(6, 4))
    loss = regulariser.collaborative_loss(torch.arange(6), output)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert torch.isfinite(regulariser.projection.weight.grad).all()
    only_cold = regulariser.collaborative_loss(torch.tensor([2, 4]), model(torch.randn(2, 4)))
    assert float(only_cold) == 0.0


def test_diversity_clusters_every_code_with_balanced_sizes() -> None:
    codes = torch.randn(32, 6, generator=torch.Generator().manual_seed(0))
    labels = kmeans(codes.numpy(), 10, np.random.default_rng(0), 20, balanced=True).labels
    assert labels.shape == (32,) and set(labels.tolist()) <= set(range(10))
    assert np.bincount(labels).max() <= math.ceil(32 / 10)


def test_diversity_loss_is_finite_and_reaches_the_codebooks() -> None:
    params = resolve(letter.PARAMS, "tiny", {**TINY, "beta": 1.0, "clusters": 3})
    warm = np.ones(10, bool)
    regulariser = letter.LetterRegulariser(np.ones((10, 3), np.float32), warm, params, seed=0)
    model = rqvae_model.RQVAE(4, [8], params["latent_dim"], levels=2, codebook_size=8)
    regulariser.start_epoch(model, 0)
    assert [len(labels) for labels in regulariser.labels] == [8, 8]
    loss = regulariser.diversity_loss(model(torch.randn(10, 4)), model)
    loss.backward()
    assert torch.isfinite(loss) and model.codebooks[0].grad.abs().sum() > 0


# --------------------------------------------------------------------------- leakage


def test_codes_depend_on_training_data_and_text_only(cache: Path, tmp_path: Path, text_cache: Path,
                                                     fake_cf: dict) -> None:
    split = load_split("synthetic", "loo")
    data = TrainingData.from_split(split)
    fewer_cases = dataclasses.replace(data, valid=split.valid.subset(np.arange(5)), digest="other-validation")
    other = tmp_path / "other"
    shutil.copytree(text_cache / "text", other / "text")
    for name in ("rqvae", "letter"):
        np.testing.assert_array_equal(fit(name, data, cache).codes, fit(name, fewer_cases, other).codes)

    texts = [dict(fields) for fields in data.catalog.item_text]
    texts[0] = {"title": "a completely different deep sea submarine documentary", "category": "Film > Ocean"}
    changed = dataclasses.replace(data, catalog=dataclasses.replace(data.catalog, item_text=texts))
    assert not np.array_equal(fit("rqvae", data, cache).codes, fit("rqvae", changed, cache).codes)


# --------------------------------------------------------------------------- diagnostics


def test_diagnostics_on_hand_built_codes() -> None:
    codes = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    assert codebook_utilisation(codes, (4, 4)) == [0.5, 0.5]
    assert code_entropy(codes) == [1.0, 1.0]
    assert code_entropy(np.array([[3], [3]])) == [0.0]
    # CF neighbours: 0 <-> 1 (shared prefix 1 of 2), 2 <-> 3 (1 of 2).
    cf = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    assert cf_neighbour_overlap(codes, cf, np.ones(4, bool)) == 0.5
    # Cold items are neither queries nor neighbours: with item 1 cold, 0 and 2 are each
    # other's neighbours (no shared prefix) and 3's is 2 (prefix 1 of 2): (0 + 0 + 0.5) / 3.
    cf_same = np.array([[1.0, 0.0], [1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    assert cf_neighbour_overlap(codes, cf_same, np.array([True, False, True, True])) == pytest.approx(1 / 6)
    assert cf_neighbour_overlap(np.array([[5, 6], [5, 6]]), cf[:2], np.ones(2, bool)) == 1.0


def test_diagnose_reports_semantic_levels_and_collisions() -> None:
    codes = np.array([[0, 0, 0], [0, 0, 1], [1, 1, 0], [1, 2, 0]])
    ids = ItemIdentifiers(kind="codes", n_items=4, codes=codes, vocab_sizes=(2, 4, 2),
                          info={"semantic_levels": 2})
    cf = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    result = diagnose(ids, cf, np.ones(4, bool))
    assert result["utilisation_l1"] == 1.0 and result["utilisation_l2"] == 0.75
    assert "utilisation_l3" not in result and "entropy_l3" not in result
    assert result["collision_rate_before"] == 0.5 and result["collision_rate_after"] == 0.0
    assert result["cf_overlap"] == pytest.approx((1.0 + 1.0 + 0.5 + 0.5) / 4)
    assert "cf_overlap" not in diagnose(ids)


def test_evaluator_uses_only_cached_cf_embeddings(tmp_path: Path) -> None:
    data = TrainingData.from_split(load_split("synthetic", "loo"))
    codes = np.arange(data.n_items)[:, None] % 7
    ids = ItemIdentifiers(kind="codes", n_items=data.n_items, codes=codes, vocab_sizes=(7,))
    evaluation = EvaluationInput(data, data.valid, ids, np.zeros((0, 10), np.int64), np.zeros(0),
                                 context(tmp_path, data))
    assert "cf_overlap" not in tokenizer_diagnostics(evaluation)
    cf = np.random.default_rng(0).normal(size=(data.n_items, 4))
    save_array(services.cf_cache_path(data, evaluation.context), cf)
    assert "cf_overlap" in tokenizer_diagnostics(evaluation)
    atomic = dataclasses.replace(evaluation, identifiers=ItemIdentifiers(kind="atomic", n_items=data.n_items))
    assert tokenizer_diagnostics(atomic) == {}


def test_inspect_command_prints_diagnostics(monkeypatch, cache: Path, capsys) -> None:
    from benchmark import cli
    monkeypatch.setattr(services, "cf_embeddings",
                        lambda data, context, train=True, **_: np.random.default_rng(0).normal(size=(data.n_items, 4)))
    argv = ["inspect", "tokenizer", "--dataset", "synthetic", "--tokenizer", "rqvae", "--cache", str(cache),
            "--no-progress"] + [arg for key, value in TINY.items() for arg in ("--param", f"{key}={value}")]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    for name in ("utilisation_l1", "entropy_l3", "collision_rate_before", "cf_overlap", "fit_seconds"):
        assert name in out
