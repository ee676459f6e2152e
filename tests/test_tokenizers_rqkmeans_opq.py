"""The ``rqkmeans`` (GRID's RQ-KMeans) and ``opq`` (RPG's parallel digits) tokenizers.

Item text is encoded by ``WordHash`` (a model-free encoder registered for the test), so
no fit waits for a language model; the algorithms' own properties are checked on planted
arrays. ``tiger-rqkmeans`` runs end to end in tests/test_runner.py (golden rankings).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import WordHash, make_plugin

from benchmark import hookimpl, plugins
from benchmark.code_trie import collision_rate
from benchmark.components import EncoderSpec, EvaluationInput, ItemIdentifiers, RunInfo, TrainingData
from benchmark.errors import ParameterError
from benchmark.nn.clustering import kmeans
from benchmark.params import resolve
from benchmark.runner import load_split, make_context
from plugins.evaluators.tokenizer_diagnostics import tokenizer_diagnostics
from plugins.tokenizers.opq import optimised_product_quantisation, whitened_pca
from plugins.tokenizers.rqkmeans import residual_kmeans

ENCODER = {"text_encoder": "word-hash"}


@hookimpl
def register_encoders(register) -> None:
    register(EncoderSpec(name="word-hash", factory=lambda params: WordHash(), description="hashed words"))


@pytest.fixture(autouse=True)
def word_hash(register_plugin) -> None:
    register_plugin(make_plugin(register_encoders=register_encoders))


def split(name: str = "loo", dataset: str = "synthetic") -> TrainingData:
    return TrainingData.from_split(load_split(dataset, name))


def fit(name: str, data: TrainingData, cache_dir: Path, seed: int = 0, **overrides) -> ItemIdentifiers:
    """Resolve (and validate) ``name``'s tiny parameters with ``overrides``, then fit it."""
    spec = plugins.get_tokenizers()[name]
    params = resolve(spec.params, "tiny", {**ENCODER, **overrides}, name)
    if spec.validate is not None:
        spec.validate(params)
    run = RunInfo(dataset="synthetic", split="loo", method="test", params={}, seed=seed, profile="tiny")
    return spec.factory(params, seed).fit(data, make_context(run, data, cache_dir, progress=False, hooks=False))


def one_line_error(excinfo: pytest.ExceptionInfo, *words: str) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and all(word in message for word in words), message
    return message


def planted_hierarchy(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points = coarse centre + a ten times smaller fine offset + noise; returns them and both labels.

    Every (coarse, fine) pair has 6 points, so once level 1 has found the coarse centres,
    the residuals of every coarse group are the same fine offsets (shifted by their mean).
    """
    rng = np.random.default_rng(seed)
    coarse, fine = np.repeat(np.arange(8), 48), np.tile(np.repeat(np.arange(8), 6), 8)
    x = 10 * rng.normal(size=(8, 16))[coarse] + rng.normal(size=(8, 16))[fine] + 0.05 * rng.normal(size=(384, 16))
    return x, coarse, fine


def correlated(seed: int = 0) -> np.ndarray:
    """Anisotropic Gaussian points seen in a random rotation: every coordinate mixes every factor."""
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    return (rng.normal(size=(400, 16)) * np.linspace(3, 0.2, 16)) @ rotation


def pure(codes: np.ndarray, labels: np.ndarray) -> bool:
    """Whether every code holds one planted label only."""
    return all(len(np.unique(labels[codes == code])) == 1 for code in np.unique(codes))


# --------------------------------------------------------------------------- the harness's k-means


def test_kmeans_warm_start_keeps_converged_centroids_and_checks_their_shape() -> None:
    x, _, _ = planted_hierarchy()
    first = kmeans(x, 8, np.random.default_rng(0), iterations=100)
    again = kmeans(x, 8, np.random.default_rng(5), iterations=3, initial=first.centroids)
    np.testing.assert_allclose(again.centroids, first.centroids)
    np.testing.assert_array_equal(again.labels, first.labels)
    with pytest.raises(ValueError, match="initial centroids"):
        kmeans(x, 8, np.random.default_rng(0), initial=first.centroids[:4])


# --------------------------------------------------------------------------- rqkmeans


def test_each_level_clusters_the_residuals_of_the_levels_before() -> None:
    x, coarse, fine = planted_hierarchy()
    result = residual_kmeans(x, levels=3, codebook_size=8, rng=np.random.default_rng(0), iterations=100)
    errors = result.residual_error
    assert len(errors) == 4 and all(b < 0.5 * a for a, b in zip(errors[:3], errors[1:3]))
    assert errors[3] < errors[2]
    # Level 1 finds the coarse centres; level 2, clustering what they leave, the fine offsets.
    assert pure(result.codes[:, 0], coarse) and pure(result.codes[:, 1], fine)
    residual = x - result.codebooks[0][result.codes[:, 0]]
    for code in np.unique(result.codes[:, 1]):
        np.testing.assert_allclose(result.codebooks[1][code], residual[result.codes[:, 1] == code].mean(0))


def test_rqkmeans_is_deterministic_per_seed_and_cached(tmp_path: Path) -> None:
    data = split()
    first = fit("rqkmeans", data, tmp_path / "a")
    assert len(list((tmp_path / "a" / "rqkmeans").glob("*.npy"))) == 1
    np.testing.assert_array_equal(first.codes, fit("rqkmeans", data, tmp_path / "b").codes)
    assert not np.array_equal(first.codes, fit("rqkmeans", data, tmp_path / "b", seed=1).codes)
    assert first.info["residual_error"] == sorted(first.info["residual_error"], reverse=True)


def test_rqkmeans_collision_level_makes_every_identifier_unique(tmp_path: Path) -> None:
    data = split()
    ids = fit("rqkmeans", data, tmp_path, levels=2, codebook_size=2)
    assert ids.kind == "codes" and ids.codes.shape == (data.n_items, 3)
    assert ids.info["semantic_levels"] == 2 and ids.info["collisions_before"] > 0
    assert collision_rate(ids.codes[:, :2]) > 0 and collision_rate(ids.codes) == 0.0
    assert ids.vocab_sizes[:2] == (2, 2) and ids.vocab_sizes[2] == ids.codes[:, 2].max() + 1
    assert (ids.codes < np.array(ids.vocab_sizes)).all()


# --------------------------------------------------------------------------- OPQ


def test_opq_beats_plain_pq_on_correlated_data_with_an_orthogonal_rotation() -> None:
    x = correlated()
    pq = optimised_product_quantisation(x, 4, 16, np.random.default_rng(0), iterations=0)
    opq = optimised_product_quantisation(x, 4, 16, np.random.default_rng(0), iterations=20)
    np.testing.assert_array_equal(pq.rotation, np.eye(16))
    assert opq.errors[0] == pq.errors[0]  # its first pass is plain PQ
    assert all(b <= a + 1e-9 for a, b in zip(opq.errors, opq.errors[1:]))
    assert opq.errors[-1] < 0.8 * pq.errors[-1]
    np.testing.assert_allclose(opq.rotation @ opq.rotation.T, np.eye(16), atol=1e-10)
    codes = opq.encode(x)
    assert codes.shape == (400, 4) and codes.min() >= 0 and codes.max() < 16
    rebuilt = ((x @ opq.rotation - opq.decode(codes)) ** 2).sum(1).mean()
    assert rebuilt == pytest.approx(opq.errors[-1])


def test_whitened_pca_gives_unit_variance_components() -> None:
    projected = whitened_pca(correlated(), 6)
    assert projected.shape == (400, 6)
    np.testing.assert_allclose(projected.std(0, ddof=1), 1.0)
    np.testing.assert_allclose(np.corrcoef(projected.T), np.eye(6), atol=1e-10)


def test_opq_digits_are_parallel_deterministic_and_diagnosed(tmp_path: Path) -> None:
    data = split()
    ids = fit("opq", data, tmp_path / "a")
    assert ids.kind == "codes" and ids.codes.shape == (data.n_items, 4)  # tiny: 4 digits of 16 codes
    assert ids.vocab_sizes == (16,) * 4 and (ids.codes < 16).all()
    assert ids.info["parallel_digits"] is True and ids.info["digits"] == ids.info["semantic_levels"] == 4
    assert ids.info["collision_rate"] == collision_rate(ids.codes)
    assert ids.info["quantisation_error"]["opq"] <= ids.info["quantisation_error"]["pq"]
    np.testing.assert_array_equal(ids.codes, fit("opq", data, tmp_path / "b").codes)
    assert not np.array_equal(ids.codes, fit("opq", data, tmp_path / "b", seed=1).codes)
    diagnostics = tokenizer_diagnostics(EvaluationInput(data=data, test=None, identifiers=ids, rankings=None,
                                                        ranks=None))
    assert {f"utilisation_l{m}" for m in range(1, 5)} <= set(diagnostics)
    assert diagnostics["collision_rate_before"] == diagnostics["collision_rate_after"] == ids.info["collision_rate"]


def test_opq_collision_level_is_appended_only_when_asked(tmp_path: Path) -> None:
    data = split()
    # Two digits of two codes: at most four distinct identifiers for 120 items.
    ids = fit("opq", data, tmp_path, digits=2, codebook_size=2, pca_dims=4, collision_level=True)
    assert ids.codes.shape == (data.n_items, 3) and collision_rate(ids.codes) == 0.0
    assert collision_rate(ids.codes[:, :2]) > 0 and ids.info["digits"] == 2
    plain = fit("opq", data, tmp_path, digits=2, codebook_size=2, pca_dims=4)
    np.testing.assert_array_equal(plain.codes, ids.codes[:, :2])
    assert plain.info["collision_rate"] > 0 and plain.vocab_sizes == (2, 2)


def test_opq_trains_on_warm_items_and_encodes_every_item(tmp_path: Path) -> None:
    data = split("cold-items")
    cold = data.train_counts == 0
    assert cold.any()
    ids = fit("opq", data, tmp_path)
    assert ids.codes.shape[0] == data.n_items and ids.info["train_items"] == int((~cold).sum())
    assert fit("opq", data, tmp_path, train_items="all").info["train_items"] == data.n_items


def test_opq_pads_to_a_multiple_of_the_digits_when_asked(tmp_path: Path) -> None:
    data = split()
    assert fit("opq", data, tmp_path, digits=4, pca_dims=10, pad=True).info["width"] == 12
    # pca_dims=0 quantises WordHash's 32 dimensions themselves.
    assert fit("opq", data, tmp_path, digits=5, pca_dims=0, pad=True).info["width"] == 35


# --------------------------------------------------------------------------- parameter errors


@pytest.mark.parametrize(("name", "overrides", "words"), [
    ("opq", {"digits": 3}, ("'digits'", "pca_dims=16", "pad=true")),
    ("opq", {"digits": 5, "pca_dims": 0}, ("'digits'", "32-wide", "pad=true")),
    ("opq", {"codebook_size": 1}, ("'codebook_size'",)),
    ("rqkmeans", {"codebook_size": 1}, ("'codebook_size'",)),
    ("opq", {"codebook_size": 64}, ("'codebook_size'", "48 warm items")),
    ("rqkmeans", {"codebook_size": 64}, ("'codebook_size'", "48 items")),
    ("opq", {"pca_dims": 48}, ("'pca_dims'", "47 dimensions")),
    ("opq", {"pca_dims": 40, "digits": 8}, ("'pca_dims'", "32-wide")),
    ("opq", {"train_items": "cold"}, ("'train_items'", "warm or all")),
])
def test_bad_parameters_are_one_line_parameter_errors(name: str, overrides: dict, words: tuple,
                                                      tmp_path: Path) -> None:
    data = split(dataset="synthetic:0,100,48")
    with pytest.raises(ParameterError) as excinfo:
        fit(name, data, tmp_path, **overrides)
    one_line_error(excinfo, *words)
