"""P5 identifier variants (tid, semid, cid): smoke tests, cores, caching and leakage."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from conftest import prepared

from benchmark import plugins
from benchmark.code_trie import CodeTrie
from benchmark.components import FitContext, ItemIdentifiers, RunInfo, TrainingData
from benchmark.data.splits import Split, leave_one_out
from benchmark.errors import ParameterError, PluginError
from benchmark.params import resolve
from benchmark.runner import load_split
from plugins.tokenizers import p5

TOKENIZERS = ("tid", "semid", "cid")


def context(cache_dir: Path, data: TrainingData | None = None) -> FitContext:
    return FitContext(
        run=RunInfo(dataset="synthetic", split="loo", method="p5", params={}, seed=0, profile="tiny"),
        seed=0,
        profile="tiny",
        cache_dir=str(cache_dir),
        validate=lambda recommender: {},
        epoch_end=lambda epoch, metrics: None,
        data=data,
        progress=False,
    )


def fit(name: str, data: TrainingData, cache_dir: Path, seed: int = 0, **overrides) -> ItemIdentifiers:
    spec = plugins.get_tokenizers()[name]
    params = resolve(spec.params, "tiny", overrides, f"tokenizer {name!r}")
    return spec.factory(params, seed).fit(data, context(cache_dir, data))


def identifier_rows(identifiers: ItemIdentifiers) -> list:
    if identifiers.kind == "text":
        return list(identifiers.texts)
    return [tuple(row) for row in identifiers.codes.tolist()]


@pytest.fixture(scope="module")
def splits() -> dict[str, Split]:
    return {name: load_split("synthetic", name) for name in ("loo", "cold-items")}


# --------------------------------------------------------------------------- smoke


@pytest.mark.parametrize("split_name", ["loo", "cold-items"])
@pytest.mark.parametrize("name", TOKENIZERS)
def test_every_item_gets_a_unique_identifier(name: str, split_name: str, splits, tmp_path: Path) -> None:
    split = splits[split_name]
    data = TrainingData.from_split(split)
    identifiers = fit(name, data, tmp_path)
    assert identifiers.kind == plugins.get_tokenizers()[name].kind
    assert identifiers.n_items == data.n_items
    rows = identifier_rows(identifiers)
    assert len(rows) == data.n_items
    assert len(set(rows)) == data.n_items, "identifiers must be unique after disambiguation"
    assert {"collisions_before", "collision_rate_before", "levels"} <= set(identifiers.info)
    if split_name == "cold-items":
        assert len(split.cold_items) > 0
    if identifiers.kind == "codes":
        assert identifiers.codes.shape == (data.n_items, identifiers.info["levels"])
        assert len(identifiers.vocab_sizes) == identifiers.codes.shape[1]
        assert len(CodeTrie(identifiers.codes, identifiers.vocab_sizes)) == data.n_items
    else:
        assert all(text.strip() for text in identifiers.texts)


@pytest.mark.parametrize("name", TOKENIZERS)
def test_second_fit_reads_the_cache(name: str, splits, tmp_path: Path, monkeypatch) -> None:
    data = TrainingData.from_split(splits["loo"])
    first = fit(name, data, tmp_path)

    def fail(*args, **kwargs):
        raise AssertionError("identifiers were rebuilt instead of read from the cache")

    for cls in (p5.TitleTokenizer, p5.SemanticTokenizer, p5.CollaborativeTokenizer):
        monkeypatch.setattr(cls, "_build", fail)
    second = fit(name, data, tmp_path)
    assert identifier_rows(second) == identifier_rows(first)
    assert second.vocab_sizes == first.vocab_sizes
    assert second.info == first.info


def test_cid_is_deterministic_per_seed(splits, tmp_path: Path) -> None:
    data = TrainingData.from_split(splits["loo"])
    options = {"clusters": 3, "max_cluster_size": 6}
    a = fit("cid", data, tmp_path / "a", seed=3, **options)
    b = fit("cid", data, tmp_path / "b", seed=3, **options)
    np.testing.assert_array_equal(a.codes, b.codes)


def test_cid_paper_profile_uses_paper_values() -> None:
    spec = plugins.get_tokenizers()["cid"]
    params = resolve(spec.params, "paper")
    assert params["clusters"] == 20 and params["max_cluster_size"] == 500


def test_cid_rejects_too_few_clusters() -> None:
    with pytest.raises(ParameterError, match="clusters"):
        p5.CollaborativeTokenizer({"window": 5, "clusters": 1, "max_cluster_size": 5}, 0)


# --------------------------------------------------------------------------- TID


def test_unique_titles_numbers_duplicates_in_index_order() -> None:
    titles = ["A", "A", "", "A (2)", "B", "A"]
    names, collisions = p5.unique_titles(titles, [f"item i{i}" for i in range(6)])
    # "A (2)" is a real title, so the second "A" skips to "A (3)".
    assert names == ["A", "A (3)", "item i2", "A (2)", "B", "A (4)"]
    assert collisions == 3


def test_tid_uses_titles_and_falls_back_to_raw_id(tmp_path: Path) -> None:
    data = prepared([[0, 1, 2, 3], [3, 2, 1, 0]])
    data.item_text = [{"title": "Heat"}, {"title": "Heat"}, {"title": "  "}, {"title": "Alien"}]
    identifiers = fit("tid", TrainingData.from_split(leave_one_out(data)), tmp_path)
    assert identifiers.texts == ["Heat", "Heat (2)", "item i2", "Alien"]
    assert identifiers.info["collisions_before"] == 2


def test_tid_missing_field_names_it(tmp_path: Path) -> None:
    data = TrainingData.from_split(leave_one_out(prepared([[0, 1, 2, 3]])))
    with pytest.raises(PluginError, match="'name'.*title"):
        fit("tid", data, tmp_path, field="name")


# --------------------------------------------------------------------------- SemID


def test_category_paths_split_per_level() -> None:
    paths = p5.category_paths(["Beauty > Makeup > Lips", "Beauty > Skin", "", "Toys"])
    assert paths == [("Beauty", "Makeup", "Lips"), ("Beauty", "Skin"), (), ("Toys",)]
    assert p5.category_paths(["Animation Children's Comedy", ""], genres=True) == [("Animation",), ()]


def test_path_codes_have_a_vocabulary_per_level_and_pad_with_zero() -> None:
    paths = [("Beauty", "Makeup", "Lips"), ("Beauty", "Skin"), (), ("Toys",), ("Beauty", "Makeup", "Eyes")]
    codes = p5.path_codes(paths)
    # Level 0: Beauty=1, Toys=2; level 1: Makeup=1, Skin=2; level 2: Eyes=1, Lips=2.
    np.testing.assert_array_equal(codes, [[1, 1, 2], [1, 2, 0], [0, 0, 0], [2, 0, 0], [1, 1, 1]])


def test_semid_separates_items_on_the_same_path(tmp_path: Path) -> None:
    data = prepared([[0, 1, 2, 3], [3, 2, 1, 0]])
    data.item_text = [{"title": "t", "category": c} for c in ("A > X", "B", "A > X", "A > Y")]
    data.text_fields = ("title", "category")
    identifiers = fit("semid", TrainingData.from_split(leave_one_out(data)), tmp_path)
    np.testing.assert_array_equal(identifiers.codes, [[1, 1, 0], [2, 0, 0], [1, 1, 1], [1, 2, 0]])
    assert identifiers.vocab_sizes == (3, 3, 2)
    assert identifiers.info["collisions_before"] == 2
    assert identifiers.info["field"] == "category"
    # Diagnostics measure the path levels, not the appended index level.
    from benchmark.evaluation.identifier_diagnostics import diagnose

    assert diagnose(identifiers)["collision_rate_before"] == 0.5
    assert diagnose(identifiers)["collision_rate_after"] == 0.0


def test_semid_falls_back_to_first_genre(tmp_path: Path) -> None:
    data = prepared([[0, 1, 2], [2, 1, 0]])
    data.item_text = [{"title": "t", "genres": g} for g in ("Comedy Drama", "Action", "Comedy")]
    data.text_fields = ("title", "genres")
    identifiers = fit("semid", TrainingData.from_split(leave_one_out(data)), tmp_path)
    assert identifiers.info["field"] == "genres"
    np.testing.assert_array_equal(identifiers.codes, [[2, 0], [1, 0], [2, 1]])


def test_semid_without_category_or_genres_names_the_field(tmp_path: Path) -> None:
    data = TrainingData.from_split(leave_one_out(prepared([[0, 1, 2, 3]])))
    with pytest.raises(PluginError, match="'category'"):
        fit("semid", data, tmp_path)


# --------------------------------------------------------------------------- CID


def test_cooccurrence_graph_counts_pairs_within_the_window() -> None:
    sequences = [np.array([0, 1, 2, 3]), np.array([4]), np.array([1, 0])]
    graph = p5.cooccurrence_graph(sequences, n_items=5, window=2).toarray()
    expected = np.zeros((5, 5))
    for a, b, w in ((0, 1, 2), (1, 2, 1), (2, 3, 1)):
        expected[a, b] = expected[b, a] = w
    np.testing.assert_array_equal(graph, expected)
    wider = p5.cooccurrence_graph(sequences, n_items=5, window=3).toarray()
    assert wider[0, 2] == 1 and wider[1, 3] == 1 and wider[0, 3] == 0


def planted_communities(n_per: int = 24, n_users: int = 80, seed: int = 0) -> tuple[TrainingData, np.ndarray]:
    """Two item communities, each user walks within one; item 2*n_per is never trained on."""
    rng = np.random.default_rng(seed)
    community = rng.permutation(np.repeat([0, 1], n_per))
    sequences = []
    for u in range(n_users):
        members = np.flatnonzero(community == u % 2)
        sequences.append(rng.choice(members, size=8, replace=False).tolist())
    data = prepared(sequences, n_items=2 * n_per + 1)
    training = TrainingData.from_split(leave_one_out(data))
    return training, community


def test_cid_groups_cooccurring_items_and_isolates_cold_items(tmp_path: Path) -> None:
    data, community = planted_communities()
    identifiers = fit("cid", data, tmp_path, clusters=2, max_cluster_size=8)
    top = identifiers.codes[:, 0]
    warm = np.arange(len(community))
    for c in (0, 1):
        assert len(np.unique(top[warm][community == c])) == 1
    assert top[warm][community == 0][0] != top[warm][community == 1][0]
    cold = len(community)
    assert top[cold] == 3  # the reserved cold code: clusters + 1
    assert identifiers.info["cold_items"] == 1


def test_cid_sparse_eigensolver_finds_the_same_communities(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(p5, "DENSE_EIGEN_LIMIT", 10)  # large catalogs take the scipy eigsh path
    data, community = planted_communities()
    top = fit("cid", data, tmp_path, clusters=2, max_cluster_size=8).codes[: len(community), 0]
    assert all(len(np.unique(top[community == c])) == 1 for c in (0, 1))
    assert len(np.unique(top)) == 2


def test_cid_respects_max_cluster_size(splits, tmp_path: Path) -> None:
    data = TrainingData.from_split(splits["cold-items"])
    k = 6
    identifiers = fit("cid", data, tmp_path, clusters=3, max_cluster_size=k)
    # Leaf cluster = every code but the final number; padding 0 never clashes with a cluster code.
    _, sizes = np.unique(identifiers.codes[:, :-1], axis=0, return_counts=True)
    assert sizes.max() <= k
    assert identifiers.codes[:, -1].max() < k
    assert max(identifiers.vocab_sizes[:-1]) <= 3 + 2  # codes 1..N, reserved 0 and cold N+1


# --------------------------------------------------------------------------- leakage


def with_other_heldout_items(split: Split) -> Split:
    """The same dataset, except the last two items (validation, test) of some users differ."""
    data = split.dataset
    sequences = [s.copy() for s in data.sequences]
    changed = 0
    for seq in sequences:
        if len(seq) >= 3 and changed < 20:
            unused = np.setdiff1d(np.arange(data.n_items), seq)
            seq[-2:] = unused[-2:]
            changed += 1
    return leave_one_out(dataclasses.replace(data, sequences=sequences))


@pytest.mark.parametrize("name", TOKENIZERS)
def test_validation_and_test_interactions_do_not_change_identifiers(name: str, splits, tmp_path: Path) -> None:
    original = splits["loo"]
    other = with_other_heldout_items(original)
    assert all(np.array_equal(a, b) for a, b in zip(original.train, other.train))
    assert not np.array_equal(original.valid.targets, other.valid.targets)
    assert other.digest != original.digest
    a = fit(name, TrainingData.from_split(original), tmp_path / "a")
    b = fit(name, TrainingData.from_split(other), tmp_path / "b")
    assert identifier_rows(a) == identifier_rows(b)
    # Same inputs, same cache key: a shared cache holds one artifact for both splits.
    fit(name, TrainingData.from_split(original), tmp_path / "shared")
    fit(name, TrainingData.from_split(other), tmp_path / "shared")
    assert len(list((tmp_path / "shared").rglob("*.json"))) == 1


@pytest.mark.parametrize("name", ["tid", "semid"])
def test_item_text_changes_text_based_identifiers(name: str, splits, tmp_path: Path) -> None:
    split = splits["loo"]
    before = fit(name, TrainingData.from_split(split), tmp_path)
    item_text = [dict(fields) for fields in split.dataset.item_text]
    item_text[0] = {"title": "a brand new title", "category": "Synthetic > brand new"}
    changed = dataclasses.replace(split, dataset=dataclasses.replace(split.dataset, item_text=item_text))
    after = fit(name, TrainingData.from_split(changed), tmp_path)  # same cache dir: the key must differ
    assert identifier_rows(after)[0] != identifier_rows(before)[0]


def test_cid_ignores_item_text(splits, tmp_path: Path) -> None:
    split = splits["loo"]
    before = fit("cid", TrainingData.from_split(split), tmp_path / "a")
    item_text = [{"title": "same", "category": "same"} for _ in split.dataset.item_text]
    changed = dataclasses.replace(split, dataset=dataclasses.replace(split.dataset, item_text=item_text))
    after = fit("cid", TrainingData.from_split(changed), tmp_path / "b")
    np.testing.assert_array_equal(before.codes, after.codes)
