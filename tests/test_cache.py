"""The artifact cache: atomic writes, and unreadable files are reported, deleted and rebuilt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import WordHash, make_plugin

from benchmark import hookimpl, services
from benchmark.cache import (
    load_array,
    load_identifiers,
    load_json,
    save_array,
    save_identifiers,
    save_json,
)
from benchmark.components import (
    EncoderSpec,
    ItemIdentifiers,
    MethodSpec,
    Recommender,
    RecommenderSpec,
)
from benchmark.runner import RunRequest, fit

# A few seconds per LETTER fit on the synthetic dataset.
TINY_LETTER = {"epochs": 10, "batch_size": 32, "codebook_size": 8, "hidden_dims": "64", "latent_dim": 16,
               "dead_code_interval": 5, "kmeans_iterations": 5, "text_encoder": "word-hash"}


class FixedItemTable(Recommender):
    """A CF method in no time: its item table is a seeded random array."""

    def fit(self, data, identifiers, context) -> None:
        self.table = np.random.default_rng(3).normal(size=(data.n_items, 8)).astype(np.float32)

    def score(self, batch) -> np.ndarray:
        return np.zeros((len(batch), len(self.table)))

    def item_embeddings(self) -> np.ndarray:
        return self.table


@hookimpl
def register_encoders(register) -> None:
    register(EncoderSpec(name="word-hash", factory=lambda params: WordHash(), description="hashed words"))


@hookimpl
def register_recommenders(register) -> None:
    register(RecommenderSpec(name="fixed-item-table", factory=lambda params, seed: FixedItemTable(),
                             accepts=frozenset({"atomic"}), description="seeded random item table"))


@hookimpl
def register_methods(register) -> None:
    register(MethodSpec(name="cache-cf", tokenizer="atomic", recommender="fixed-item-table", description="CF"))
    register(MethodSpec(name="cache-tid", tokenizer="tid", recommender="pop", description="title ids"))
    register(MethodSpec(name="cache-letter", tokenizer="letter", recommender="pop", description="LETTER codes",
                        defaults={f"tokenizer.{key}": value for key, value in TINY_LETTER.items()}))


@pytest.fixture
def cheap_services(register_plugin, monkeypatch) -> None:
    """A model-free text encoder, and a CF method that trains nothing."""
    register_plugin(make_plugin(register_encoders=register_encoders, register_recommenders=register_recommenders,
                                register_methods=register_methods))
    monkeypatch.setenv(services.CF_METHOD_ENV, "cache-cf")


def identifier_rows(identifiers: ItemIdentifiers) -> list:
    return list(identifiers.texts) if identifiers.kind == "text" else identifiers.codes.tolist()


@pytest.mark.parametrize(
    "method, pattern",
    [
        ("cache-tid", "identifiers/*.json"),
        ("cache-letter", "text/*.npy"),
        ("cache-letter", "cf/*.npy"),
        ("cache-letter", "letter/*.npy"),
        ("cache-letter", "letter/*.json"),
    ],
)
def test_truncated_cache_file_warns_naming_it_and_is_rebuilt(
    method: str, pattern: str, cheap_services, tmp_path: Path, capsys
) -> None:
    cache = tmp_path / "cache"
    request = RunRequest(dataset="synthetic", split="loo", method=method)
    first = fit(request, cache, progress=False)
    [path] = cache.glob(pattern)
    original = path.read_bytes()
    path.write_bytes(original[: len(original) // 2])
    capsys.readouterr()

    second = fit(request, cache, progress=False)

    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: cache file {path} is unreadable")
    assert path.read_bytes() == original
    assert identifier_rows(second.identifiers) == identifier_rows(first.identifiers)
    assert not list(cache.rglob("*.tmp")), "a temporary file was left behind"


def test_readers_return_none_for_absent_files_without_a_warning(tmp_path: Path, capsys) -> None:
    assert load_array(tmp_path / "a.npy") is None
    assert load_json(tmp_path / "a.json") is None
    assert load_identifiers(tmp_path / "b.json") is None
    assert capsys.readouterr().err == ""


def test_arrays_and_json_round_trip(tmp_path: Path) -> None:
    save_array(tmp_path / "a.npy", np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(load_array(tmp_path / "a.npy"), np.arange(6).reshape(2, 3))
    save_json(tmp_path / "a.json", {"x": [1, 2]})
    assert load_json(tmp_path / "a.json") == {"x": [1, 2]}
    identifiers = ItemIdentifiers(kind="codes", n_items=2, codes=np.array([[0, 1], [1, 0]]), vocab_sizes=(2, 2),
                                  info={"levels": 2})
    save_identifiers(tmp_path / "ids.json", identifiers)
    loaded = load_identifiers(tmp_path / "ids.json")
    np.testing.assert_array_equal(loaded.codes, identifiers.codes)
    assert (loaded.kind, loaded.vocab_sizes, loaded.info) == ("codes", (2, 2), {"levels": 2})


@pytest.mark.parametrize(
    "name, content, reader",
    [
        ("garbage.npy", b"not an array at all", load_array),
        ("garbage.json", b'{"kind": "codes", "n_it', load_json),
        ("wrong-shape.json", b'{"kind": "codes", "n_items": 3, "codes": [[1], [2]], "vocab_sizes": [3],'
                             b' "texts": null, "info": {}}', load_identifiers),
        ("unknown-kind.json", b'{"kind": "bits", "n_items": 1, "codes": null, "vocab_sizes": [],'
                              b' "texts": null, "info": {}}', load_identifiers),
    ],
)
def test_unreadable_file_is_deleted_with_one_warning_line(name: str, content: bytes, reader, tmp_path: Path,
                                                          capsys) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert reader(path) is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"warning: cache file {path} is unreadable" in err
    assert "deleted it, rebuilding" in err
    assert not path.exists()
