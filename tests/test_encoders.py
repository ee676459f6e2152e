"""Item text encoders (plugins/encoders/text.py): template, embedded MiniLM, cache, errors.

MiniLM is loaded once for the whole module (module-scoped fixture); later tests replace
the encoder class with a stub, so they never load a model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from benchmark.data.dataset import PreparedDataset
from benchmark.errors import PluginError
from benchmark.runner import load_dataset
from plugins.encoders import text


@pytest.fixture(scope="module")
def dataset() -> PreparedDataset:
    return load_dataset("synthetic")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("encoder-cache")


@pytest.fixture(scope="module")
def embeddings(dataset: PreparedDataset, cache_dir: Path) -> np.ndarray:
    return text.encode_items(dataset, cache_dir, progress=False)


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
    assert text.item_text(fields) == "title: Toy Story; year: 1995; genres: Animation Children's"
    assert text.item_text(fields, ("genres", "title")) == "genres: Animation Children's; title: Toy Story"
    assert text.item_text({"title": ""}) == ""


def test_minilm_embeds_every_item_as_a_unit_vector(embeddings: np.ndarray, dataset: PreparedDataset) -> None:
    assert embeddings.shape == (dataset.n_items, 384)
    assert np.isfinite(embeddings).all()
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    # Item text names the topic: items of one topic are closer than items of different topics.
    topic = np.array([fields["category"] for fields in dataset.item_text])
    similarity = embeddings @ embeddings.T
    same = topic[:, None] == topic[None, :]
    off_diagonal = ~np.eye(len(topic), dtype=bool)
    assert similarity[same & off_diagonal].mean() > similarity[~same].mean()


def test_second_call_reads_the_cache(embeddings, dataset, cache_dir: Path, monkeypatch) -> None:
    def fail(params: dict):
        raise AssertionError("the encoder was built although the embeddings are cached")

    monkeypatch.setattr(text, "MeanPoolingEncoder", fail)
    np.testing.assert_array_equal(text.encode_items(dataset, cache_dir, progress=False), embeddings)


def test_changed_text_changes_the_cache_key(embeddings, dataset, cache_dir: Path, monkeypatch) -> None:
    monkeypatch.setattr(text, "MeanPoolingEncoder", StubEncoder)
    StubEncoder.built = 0
    item_text = [dict(fields) for fields in dataset.item_text]
    item_text[0]["title"] = "a title no item had before"
    changed = dataclasses.replace(dataset, item_text=item_text)
    stub_embeddings = text.encode_items(changed, cache_dir, progress=False)
    assert StubEncoder.built == 1
    assert not np.array_equal(stub_embeddings, embeddings)
    assert len(list((cache_dir / "text").glob("*.npy"))) == 2


def test_bad_model_path_names_the_path(dataset, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(PluginError, match="no-such-model"):
        text.encode_items(dataset, tmp_path, params={"model": str(missing)}, progress=False)
