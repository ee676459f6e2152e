"""Item text encoders (plugins/encoders/text.py) and the text-embedding service: template, MiniLM, cache, errors.

MiniLM is loaded once for the whole module (module-scoped fixture); later tests replace
the encoder class with a stub, so they never load a model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from benchmark.components import TrainingData
from benchmark.data.dataset import item_text
from benchmark.errors import PluginError
from benchmark.runner import load_split
from benchmark.services import text_embeddings
from plugins.encoders import text


@pytest.fixture(scope="module")
def dataset() -> TrainingData:
    return TrainingData.from_split(load_split("synthetic", "loo"))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("encoder-cache")


@pytest.fixture(scope="module")
def embeddings(dataset: TrainingData, cache_dir: Path) -> np.ndarray:
    return text_embeddings(dataset, cache_dir, progress=False)


class StubEncoder:
    """Stands in for MeanPoolingEncoder and counts how often it is built."""

    built = 0

    def __init__(self, params: dict):
        StubEncoder.built += 1
        self.dim = 384

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        return np.ones((len(texts), self.dim), np.float32) / np.sqrt(self.dim)


def test_item_text_follows_the_template() -> None:
    fields = {"title": " Toy Story ", "year": "1995", "genres": "Animation Children's", "empty": "  "}
    assert item_text(fields) == "title: Toy Story; year: 1995; genres: Animation Children's"
    assert item_text(fields, ("genres", "title")) == "genres: Animation Children's; title: Toy Story"
    assert item_text({"title": ""}) == ""


def test_minilm_embeds_every_item_as_a_unit_vector(embeddings: np.ndarray, dataset: TrainingData) -> None:
    assert embeddings.shape == (dataset.n_items, 384)
    assert np.isfinite(embeddings).all()
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    # Item text names the topic: items of one topic are closer than items of different topics.
    topic = np.array([fields["category"] for fields in dataset.catalog.item_text])
    similarity = embeddings @ embeddings.T
    same = topic[:, None] == topic[None, :]
    off_diagonal = ~np.eye(len(topic), dtype=bool)
    assert similarity[same & off_diagonal].mean() > similarity[~same].mean()


def test_second_call_reads_the_cache(embeddings, dataset, cache_dir: Path, monkeypatch) -> None:
    def fail(params: dict):
        raise AssertionError("the encoder was built although the embeddings are cached")

    monkeypatch.setattr(text, "MeanPoolingEncoder", fail)
    np.testing.assert_array_equal(text_embeddings(dataset, cache_dir, progress=False), embeddings)


def test_changed_text_changes_the_cache_key(embeddings, dataset, cache_dir: Path, monkeypatch) -> None:
    monkeypatch.setattr(text, "MeanPoolingEncoder", StubEncoder)
    StubEncoder.built = 0
    texts = [dict(fields) for fields in dataset.catalog.item_text]
    texts[0]["title"] = "a title no item had before"
    changed = dataclasses.replace(dataset, catalog=dataclasses.replace(dataset.catalog, item_text=texts))
    stub_embeddings = text_embeddings(changed, cache_dir, progress=False)
    assert StubEncoder.built == 1
    assert not np.array_equal(stub_embeddings, embeddings)
    assert len(list((cache_dir / "text").glob("*.npy"))) == 2


def test_bad_model_path_names_the_path(dataset, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(PluginError, match="no-such-model"):
        text_embeddings(dataset, tmp_path, params={"model": str(missing)}, progress=False)
