"""What plugins return, caches and stores that are not ours, and noise under --no-progress.

Every case here ended in a traceback, was silently wrong or wrote where it should not
before: a recommender's list one row short was broadcast into the other rows or failed in
numpy, ids beyond the catalog ended in the coverage evaluator's IndexError, float ids were
truncated, ids below -1 dropped; a recommender with neither ``score`` nor ``recommend`` was a
bare NotImplementedError; a text-embedding cache entry of the wrong shape was trained on; a
``--store`` whose ``runs`` table belongs to another program failed in SQL after a ``claims``
table had been added to it; "Loading weights" bars printed under ``--no-progress``. Faults
of a plugin are one ``error:`` line naming the method, the plugin and the rule broken, and
nothing is stored; a cache entry of the wrong shape is rebuilt with one warning line.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from conftest import WordHash, make_plugin, one_error_line

from benchmark import hookimpl
from benchmark.cache import save_array
from benchmark.cli import main
from benchmark.components import (
    EncoderSpec,
    EvaluatorSpec,
    ItemIdentifiers,
    MethodSpec,
    Recommender,
    RecommenderSpec,
    TokenizerSpec,
)
from benchmark.nn.rqvae import cached_codes
from benchmark.runner import RunRequest, fit
from benchmark.store import Store


def run_args(tmp_path: Path, *extra: str, methods: str = "pop", dataset: str = "synthetic") -> list[str]:
    return ["run", "--dataset", dataset, "--methods", methods, "--seeds", "0",
            "--store", f"sqlite:///{tmp_path}/r.db", "--leaderboards", str(tmp_path / "b"),
            "--cache", str(tmp_path / "cache"), "--no-progress", *extra]


def stored_rows(tmp_path: Path) -> int:
    path = tmp_path / "r.db"
    return len(Store(f"sqlite:///{path}").rows()) if path.exists() else 0


def recommender_plugin(recommender: type[Recommender] | object, name: str = "broken") -> object:
    """A plugin registering recommender ``name`` (built by ``recommender()``) and method ``name``."""
    return make_plugin(
        register_recommenders=hookimpl(lambda register: register(RecommenderSpec(
            name=name, factory=lambda params, seed: recommender(), accepts=frozenset({"atomic"}),
            description="test"))),
        register_methods=hookimpl(lambda register: register(MethodSpec(
            name=name, tokenizer="atomic", recommender=name, description="test"))),
    )


def lists_returning(make) -> type[Recommender]:
    """A list-based recommender whose ``recommend`` returns ``make(cases, k, n_items)``."""

    class Lists(Recommender):
        def fit(self, data, identifiers, context) -> None:
            self.n_items = data.n_items

        def recommend(self, batch, k):
            return make(len(batch), k, self.n_items)

    return Lists


def scores_returning(make) -> type[Recommender]:
    """A score-based recommender whose ``score`` returns ``make(cases, n_items)``."""

    class Scores(Recommender):
        def fit(self, data, identifiers, context) -> None:
            self.n_items = data.n_items

        def score(self, batch):
            return make(len(batch), self.n_items)

    return Scores


def top(cases: int, k: int, n_items: int, dtype=np.int64) -> np.ndarray:
    """Items 1..k for every case: a valid list."""
    return np.tile(np.arange(1, k + 1, dtype=dtype), (cases, 1))


def with_item(value):
    def make(cases, k, n_items):
        lists = top(cases, k, n_items)
        lists[:, 3] = n_items if value == "n_items" else value
        return lists

    return make


NAMED = "method 'broken' (recommender 'broken'): "


# --------------------------------------------------------------------------- (6) what recommend() and score() return


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda cases, k, n: top(cases - 1, k, n), NAMED + "recommend(batch, k=20) returned 255 rows for a batch "
         "of 256 cases; return one row of item indices per case, shape (len(batch), k)"),
        (with_item("n_items"), NAMED + "recommend() returned item index 120, outside the catalog's 0..119 (-1 pads "
         "short lists); return item indices of the catalog"),
        (with_item(-2), NAMED + "recommend() returned item index -2, outside the catalog's 0..119 (-1 pads"),
        (lambda cases, k, n: top(cases, k, n, np.float64) + 0.5, NAMED + "recommend() returned float64 values; "
         "return integer item indices (e.g. an np.int64 array)"),
        (lambda cases, k, n: np.arange(1, k + 1), NAMED + "recommend(batch, k=20) returned an array of shape (20,) "
         "for a batch of 256 cases; return one row of item indices per case, shape (len(batch), k)"),
        (lambda cases, k, n: [list(range(1, 1 + (i % 3) + 1)) for i in range(cases)],
         NAMED + "recommend() returned rows of different lengths (setting an array element with a sequence"),
        (lambda cases, k, n: None, NAMED + "recommend() returned None; return one row of item indices per case"),
    ],
    ids=["one-row-short", "id-beyond-catalog", "negative-id", "float-ids", "one-dimensional", "ragged", "none"],
)
def test_bad_recommended_lists_stop_the_run_naming_the_plugin(register_plugin, tmp_path, capsys, make, expected):
    register_plugin(recommender_plugin(lists_returning(make)))
    assert main(run_args(tmp_path, methods="broken")) == 2
    assert expected in one_error_line(capsys)
    assert stored_rows(tmp_path) == 0


def test_short_lists_padded_with_minus_one_are_accepted(register_plugin, tmp_path, capsys):
    def make(cases, k, n_items):
        lists = top(cases, k, n_items)
        lists[:, 10:] = -1
        return lists.astype(np.int32)

    register_plugin(recommender_plugin(lists_returning(make)))
    assert main(run_args(tmp_path, methods="broken")) == 0
    [row] = Store(f"sqlite:///{tmp_path}/r.db").rows()
    assert row["extra_metrics"]["coverage/catalog@10"] == pytest.approx(10 / 120)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda cases, n: np.zeros((cases, n - 1)), NAMED + "score() returned shape (256, 119) for a batch of 256 "
         "cases and 120 items; return one score per case and catalog item, shape (len(batch), n_items) in "
         "item-index order"),
        (lambda cases, n: np.zeros(n), NAMED + "score() returned shape (120,) for a batch of 256 cases"),
        (lambda cases, n: np.full((cases, n), "high"), NAMED + "score() returned <U4 values; return real numbers "
         "(floats)"),
        (lambda cases, n: [[0.0] * (1 + i % 2) for i in range(cases)], NAMED + "score() returned rows of "
         "different lengths"),
    ],
    ids=["one-column-short", "one-dimensional", "strings", "ragged"],
)
def test_bad_scores_stop_the_run_naming_the_plugin(register_plugin, tmp_path, capsys, make, expected):
    register_plugin(recommender_plugin(scores_returning(make)))
    assert main(run_args(tmp_path, methods="broken")) == 2
    assert expected in one_error_line(capsys)
    assert stored_rows(tmp_path) == 0


def test_a_recommender_with_neither_score_nor_recommend_fails_before_it_is_fitted(register_plugin, tmp_path,
                                                                                  capsys):
    fitted = []

    class Neither(Recommender):
        def fit(self, data, identifiers, context) -> None:
            fitted.append(True)

    register_plugin(recommender_plugin(Neither))
    assert main(run_args(tmp_path, methods="pop,broken")) == 2
    assert (NAMED + "Neither implements neither score() nor recommend(); implement score(batch) (one score per "
            "catalog item) or recommend(batch, k) (its own top-k lists)") in one_error_line(capsys)
    assert fitted == []
    assert stored_rows(tmp_path) == 0  # refused before pop, the run's first method, was fitted


def test_score_returning_none_without_recommend_names_the_plugin(register_plugin, tmp_path, capsys):
    register_plugin(recommender_plugin(scores_returning(lambda cases, n: None)))
    assert main(run_args(tmp_path, methods="broken")) == 2
    assert (NAMED + "score() returned None (a list-based recommender's answer) but it does not implement "
            "recommend(batch, k); return scores, or implement recommend") in one_error_line(capsys)
    assert stored_rows(tmp_path) == 0


def test_validation_during_the_fit_checks_the_same_contract(register_plugin, tmp_path, capsys):
    class ValidatingLists(lists_returning(with_item("n_items"))):
        def fit(self, data, identifiers, context) -> None:
            super().fit(data, identifiers, context)
            context.validate(self)

    register_plugin(recommender_plugin(ValidatingLists))
    assert main(run_args(tmp_path, methods="broken")) == 2
    assert NAMED + "recommend() returned item index 120, outside the catalog's 0..119" in one_error_line(capsys)
    assert stored_rows(tmp_path) == 0


def test_an_evaluator_returning_a_non_number_names_it(register_plugin, tmp_path, capsys):
    register_plugin(make_plugin(register_evaluators=hookimpl(lambda register: register(EvaluatorSpec(
        name="wordy", evaluate=lambda data: {"verdict": "good"}, description="test")))))
    assert main(run_args(tmp_path)) == 2
    assert ("evaluator 'wordy': evaluate() returned 'good' for 'verdict', not a number; return a dict of "
            "metric names to numbers") in one_error_line(capsys)
    assert stored_rows(tmp_path) == 0


# --------------------------------------------------------------------------- (6) what a tokenizer returns


class FixedCodes:
    kind = "codes"

    def __init__(self, drop: int = 0, vocab: int = 4):
        self.drop, self.vocab = drop, vocab

    def fit(self, data, context) -> ItemIdentifiers:
        n = data.n_items - self.drop
        codes = np.stack([np.arange(n) % 4, np.arange(n)], axis=1)
        return ItemIdentifiers(kind="codes", n_items=n, codes=codes, vocab_sizes=(self.vocab, data.n_items))


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"drop": 1}, "method 'bad-codes': tokenizer 'bad-codes' returned identifiers for 119 items, but the catalog "
         "has 120; return one identifier per catalog item, cold items included"),
        ({"vocab": 3}, "method 'bad-codes': tokenizer 'bad-codes' returned code 3 at level 0, outside its "
         "vocabulary 0..2 (vocab_sizes[0] = 3); make vocab_sizes cover every code"),
    ],
    ids=["one-item-short", "code-beyond-vocabulary"],
)
def test_bad_identifiers_stop_the_run_naming_the_tokenizer(register_plugin, tmp_path, capsys, options, expected):
    register_plugin(make_plugin(
        register_tokenizers=hookimpl(lambda register: register(TokenizerSpec(
            name="bad-codes", factory=lambda params, seed: FixedCodes(**options), kind="codes",
            description="test"))),
        register_methods=hookimpl(lambda register: register(MethodSpec(
            name="bad-codes", tokenizer="bad-codes", recommender="pop", description="test"))),
    ))
    assert main(run_args(tmp_path, methods="bad-codes")) == 2
    assert expected in one_error_line(capsys)
    assert stored_rows(tmp_path) == 0


# --------------------------------------------------------------------------- (7a) caches of the wrong shape

# An RQ-VAE fit of a second or two on the synthetic dataset's 120 items.
TINY_RQVAE = {"epochs": 10, "batch_size": 64, "codebook_size": 8, "hidden_dims": "128", "latent_dim": 16,
              "levels": 2, "dead_code_interval": 5, "kmeans_iterations": 5, "text_encoder": "word-hash"}


def word_hash_rqvae(register_plugin, width: bool = False) -> str:
    """Method ``hash-rqvae``: a tiny RQ-VAE on the word-hash encoder (``width``: it declares its width)."""
    declared = {"width": lambda params: WordHash.dim} if width else {}
    register_plugin(make_plugin(
        register_encoders=hookimpl(lambda register: register(EncoderSpec(
            name="word-hash", factory=lambda params: WordHash(), description="hashed words", **declared))),
        register_methods=hookimpl(lambda register: register(MethodSpec(
            name="hash-rqvae", tokenizer="rqvae", recommender="pop", description="test",
            defaults={f"tokenizer.{key}": value for key, value in TINY_RQVAE.items()}))),
    ))
    return "hash-rqvae"


@pytest.mark.parametrize(
    ("shape", "dtype", "width"),
    [((119, 32), np.float32, False), ((120, 16), np.float32, True), ((120,), np.float32, False),
     ((120, 32), np.int64, False)],
    ids=["one-row-short", "wrong-width", "one-dimensional", "integers"],
)
def test_text_embedding_cache_of_the_wrong_shape_is_rebuilt_with_one_warning(register_plugin, tmp_path, capsys,
                                                                            shape, dtype, width):
    cache = tmp_path / "cache"
    request = RunRequest(dataset="synthetic", split="loo", method=word_hash_rqvae(register_plugin, width))
    first = fit(request, cache, progress=False)
    [path] = (cache / "text").glob("*.npy")
    original = path.read_bytes()
    save_array(path, np.ones(shape, dtype))
    capsys.readouterr()

    second = fit(request, cache, progress=False)

    warnings = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    expected = "(120, 32)" if width else "(120, width)"  # the width is checked where the encoder declares it
    assert warnings == [f"warning: cache file {path} holds shape {shape} {np.dtype(dtype)}, expected {expected} "
                        "finite floats; deleted it, rebuilding"]
    assert path.read_bytes() == original
    np.testing.assert_array_equal(second.identifiers.codes, first.identifiers.codes)


def test_text_cache_of_the_wrong_shape_is_rebuilt_and_the_run_succeeds(register_plugin, tmp_path, capsys):
    method = word_hash_rqvae(register_plugin)
    assert main(run_args(tmp_path, methods=method)) == 0
    [path] = (tmp_path / "cache" / "text").glob("*.npy")
    save_array(path, np.ones((119, 32), np.float32))
    capsys.readouterr()
    assert main(run_args(tmp_path, "--force", methods=method)) == 0
    err = capsys.readouterr().err
    assert err.count("warning: ") == 1 and f"warning: cache file {path} holds shape (119, 32)" in err
    [row] = Store(f"sqlite:///{tmp_path}/r.db").rows()
    assert row["info"]["identifiers"]["semantic_levels"] == 2


def test_an_encoder_returning_the_wrong_shape_names_it(register_plugin, tmp_path, capsys):
    class Short(WordHash):
        def encode(self, texts, progress=False):
            return super().encode(texts[1:])

    register_plugin(make_plugin(
        register_encoders=hookimpl(lambda register: register(EncoderSpec(
            name="short", factory=lambda params: Short(), description="one row short"))),
        register_methods=hookimpl(lambda register: register(MethodSpec(
            name="short-rqvae", tokenizer="rqvae", recommender="pop", description="test",
            defaults={**{f"tokenizer.{key}": value for key, value in TINY_RQVAE.items()},
                      "tokenizer.text_encoder": "short"}))),
    ))
    assert main(run_args(tmp_path, methods="short-rqvae")) == 2
    assert ("encoder 'short': encode() returned shape (119, 32) for 120 texts; return one row of dim = 32 "
            "floats per text") in one_error_line(capsys)
    assert stored_rows(tmp_path) == 0
    assert not list((tmp_path / "cache").glob("text/*.npy"))


@pytest.mark.parametrize(
    ("codes", "rows"),
    [(np.arange(10), None), (np.ones((10, 3), np.float32), None), (-np.ones((10, 3), np.int64), None),
     (np.ones((9, 3), np.int64), 10)],
    ids=["one-dimensional", "floats", "negative", "rows"],
)
def test_codes_cache_of_the_wrong_shape_is_recomputed_with_one_warning(tmp_path, capsys, codes, rows):
    good = np.arange(30).reshape(10, 3) % 4
    known = {"rows": rows} if rows else {}  # a caller that knows the catalog's size passes it

    def compute():
        return good, {"levels": 3}

    cached_codes(tmp_path, "codes", ["key"], compute, **known)
    [path] = (tmp_path / "codes").glob("*.npy")
    save_array(path, codes)
    capsys.readouterr()
    loaded, info = cached_codes(tmp_path, "codes", ["key"], compute, **known)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"warning: cache file {path} holds ")
    assert f"expected ({rows or 'n_items'}, levels) non-negative integer codes" in err
    np.testing.assert_array_equal(loaded, good)
    assert info == {"levels": 3}


@pytest.mark.parametrize("tokenizer", ["rqvae", "letter", "lcrec"])
def test_the_code_tokenizers_rebuild_a_codes_cache_with_the_wrong_number_of_items(register_plugin, tmp_path, capsys,
                                                                                  tokenizer):
    # The tokenizers pass the catalogue's size, so a cached entry for another catalogue is
    # rebuilt (it stopped the run with an identifiers error before).
    from benchmark.inspection import inspect_tokenizer

    word_hash_rqvae(register_plugin)
    params = dict(TINY_RQVAE)
    if tokenizer == "lcrec":
        params["levels"] = 3
    first = inspect_tokenizer("synthetic:0,100,48", tokenizer, params=params, cache_dir=str(tmp_path), progress=False)
    [path] = (tmp_path / tokenizer).glob("*.npy")
    codes = np.load(path)
    save_array(path, codes[:-1])
    capsys.readouterr()
    again = inspect_tokenizer("synthetic:0,100,48", tokenizer, params=params, cache_dir=str(tmp_path),
                              progress=False)
    err = capsys.readouterr().err
    assert f"warning: cache file {path} holds " in err and f"expected ({len(codes)}, levels)" in err
    assert {k: v for k, v in again.items() if k != "fit_seconds"} == {
        k: v for k, v in first.items() if k != "fit_seconds"}
    np.testing.assert_array_equal(np.load(path), codes)


# --------------------------------------------------------------------------- (7b) a store that is not ours


def test_a_store_whose_runs_table_belongs_to_another_program_is_refused_untouched(tmp_path, capsys):
    path = tmp_path / "r.db"
    with sqlite3.connect(path) as db:
        db.execute("create table runs (id integer primary key, athlete text, km real)")
        db.execute("insert into runs (athlete, km) values ('ann', 10.5)")
    before = path.read_bytes()
    assert main(run_args(tmp_path)) == 2
    assert (f"--store sqlite:///{path}: its table 'runs' is not a genrec-bench results table (columns athlete, id, "
            "km; unknown athlete, km; lacks backbone, case_labels, command, created_at, dataset and 20 more)"
            ) in (err := one_error_line(capsys))
    assert err.endswith("; point --store at a genrec-bench results database or at a new file")
    assert path.read_bytes() == before
    with sqlite3.connect(path) as db:
        assert [r[0] for r in db.execute("select name from sqlite_master where type = 'table'")] == ["runs"]
    assert main(["leaderboard", "--store", f"sqlite:///{path}", "--leaderboards", str(tmp_path / "b")]) == 2
    assert "its table 'runs' is not a genrec-bench results table" in one_error_line(capsys)


def test_a_store_with_a_foreign_claims_table_is_refused(tmp_path, capsys):
    path = tmp_path / "r.db"
    with sqlite3.connect(path) as db:
        db.execute("create table claims (id integer primary key, amount real)")
    assert main(run_args(tmp_path)) == 2
    assert "its table 'claims' is not a genrec-bench claims table" in one_error_line(capsys)
    with sqlite3.connect(path) as db:
        assert [r[0] for r in db.execute("select name from sqlite_master where type = 'table'")] == ["claims"]


def test_a_store_of_ours_opens_again(tmp_path):
    Store(f"sqlite:///{tmp_path}/r.db")
    assert Store(f"sqlite:///{tmp_path}/r.db").rows() == []
    assert Store(f"sqlite:///{tmp_path}/r.db", create=False).rows() == []


# --------------------------------------------------------------------------- (8) noise


@pytest.mark.parametrize("progress", [True, False], ids=["progress", "no-progress"])
def test_no_progress_silences_the_loading_weights_bar_of_the_text_encoder(register_plugin, tmp_path, capsys,
                                                                          progress):
    # TIGER's tokenizer with the embedded MiniLM encoder (loaded from scratch: a fresh cache),
    # and pop instead of the seq2seq model: the encoder's load is what printed the bar.
    from transformers.utils import logging as transformers_logging

    register_plugin(make_plugin(register_methods=hookimpl(lambda register: register(MethodSpec(
        name="minilm-rqvae", tokenizer="rqvae", recommender="pop", description="test",
        defaults={**{f"tokenizer.{key}": value for key, value in TINY_RQVAE.items()},
                  "tokenizer.text_encoder": "minilm"})))))
    enabled = transformers_logging.is_progress_bar_enabled()
    args = run_args(tmp_path, methods="minilm-rqvae", dataset="synthetic:0,100,48")
    code = main(args if not progress else [a for a in args if a != "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "done synthetic:0,100,48 loo minilm-rqvae seed=0" in captured.out
    if progress:
        assert "Loading weights" in captured.err  # what --no-progress must silence
    else:
        assert captured.err == ""
    assert transformers_logging.is_progress_bar_enabled() == enabled  # restored after the run
