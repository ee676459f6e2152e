"""Command-line, store, tuning and plugin-loading faults fail with one line, or work.

Every case here was silently accepted or ended in a traceback before: an empty ``--methods``
ran nothing and exited 0, a misspelt profile was stored as a profile, a bad ``--store`` URL
printed up to 115 lines, ``epochs=0`` failed after 11 s of training, a misspelt RecBole model
failed after earlier methods had trained. The command line must exit 2 with one ``error:``
line, store nothing and fit nothing.
"""

from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path

import optuna
import pytest
from conftest import make_plugin, one_error_line

from benchmark import hookimpl, plugins
from benchmark.cli import build_parser, main
from benchmark.components import MethodSpec, RecommenderSpec
from benchmark.data.splits import SPLITS
from benchmark.errors import ParameterError
from benchmark.params import Param
from benchmark.store import Store
from benchmark.tuning import storage_for
from plugins.recommenders.popularity import Popularity


def run_args(tmp_path: Path, *extra: str, methods: str = "pop", seeds: str = "0") -> list[str]:
    return ["run", "--dataset", "synthetic", "--methods", methods, "--seeds", seeds,
            "--store", f"sqlite:///{tmp_path}/r.db", "--leaderboards", str(tmp_path / "b"),
            "--cache", str(tmp_path / "cache"), "--no-progress", *extra]


def stored_rows(tmp_path: Path) -> int:
    path = tmp_path / "r.db"
    return len(Store(f"sqlite:///{path}").rows()) if path.exists() else 0


# --------------------------------------------------------------------------- run options


@pytest.mark.parametrize(
    ("extra", "options", "expected"),
    [
        ([], {"methods": ""}, "--methods '' names nothing; give at least one, e.g. --methods pop"),
        ([], {"seeds": ""}, "--seeds '' names nothing; give at least one, e.g. --seeds 0,1,2"),
        ([], {"seeds": "-1"}, "--seeds '-1': seed -1 is out of range; give an integer from 0 to 4294967295"),
        (["--split", ""], {}, "--split '' names nothing"),
        (["--param", "popp:recommender.epochs=3"], {}, "--param popp:recommender.epochs: method 'popp' is not "
         "selected in this run (--methods pop); write one of them before the colon"),
        (["--profile", "nonsense"], {}, "--profile 'nonsense': no parameter or method declares this profile; "
         "known profiles: cpu, paper, small, tiny"),
        (["--cache", "FILE"], {}, "is a file, not a folder; pick a writable folder"),
        (["--leaderboards", "FILE/boards"], {}, "is a file, not a folder; pick a writable folder"),
        (["--save-rankings", "TMP/missing/top.jsonl"], {}, "the folder TMP/missing does not exist; give a file "
         "in an existing, writable folder"),
        (["--tuned", "--storage", "sqlite:///TMP/optuna.db"], {}, "--tuned: method 'pop' declares no search "
         "space, so it has nothing to tune and no study; run it without --tuned (tunable methods: bigrec, "
         "lamia, lcrec, letter-lcrec, letter-tiger, lightgcn, "),
    ],
    ids=["empty-methods", "empty-seeds", "negative-seed", "empty-split", "misspelt-method-in-param",
         "unknown-profile", "cache-is-a-file", "boards-under-a-file", "rankings-in-missing-folder",
         "tuned-untunable-method"],
)
def test_bad_run_option_fails_before_anything_is_stored(tmp_path, capsys, extra, options, expected):
    (tmp_path / "FILE").write_text("not a folder")
    extra = [e.replace("FILE", str(tmp_path / "FILE")).replace("TMP", str(tmp_path)) for e in extra]
    code = main(run_args(tmp_path, *extra, **options))
    err = one_error_line(capsys)
    assert code == 2
    assert expected.replace("TMP", str(tmp_path)) in err
    assert "done " not in capsys.readouterr().out
    assert stored_rows(tmp_path) == 0


def test_profile_declared_by_a_plugin_is_accepted(register_plugin, tmp_path, capsys):
    register_plugin(make_plugin(register_recommenders=hookimpl(lambda register: register(RecommenderSpec(
        name="gpu-pop", factory=lambda params, seed: Popularity(), accepts=Popularity.accepts,
        description="test", params=(Param("width", int, 1, "unused", profiles={"gpu": 2}),)))),
        register_methods=hookimpl(lambda register: register(MethodSpec(
            name="gpu-pop", tokenizer="atomic", recommender="gpu-pop", description="test")))))
    assert plugins.known_profiles() == ["cpu", "gpu", "paper", "small", "tiny"]
    assert main(run_args(tmp_path, "--profile", "gpu", methods="gpu-pop")) == 0
    assert Store(f"sqlite:///{tmp_path}/r.db").rows()[0]["params"]["recommender.width"] == 2


def test_param_for_a_method_with_an_argument_reaches_it():
    from benchmark.cli import _method_overrides

    overrides = {"recbole:GRU4Rec:recommender.epochs": "3", "recommender.patience": "2"}
    assert _method_overrides(overrides, "recbole:GRU4Rec") == {"recommender.epochs": "3",
                                                               "recommender.patience": "2"}
    assert _method_overrides(overrides, "sasrec-ce") == {"recommender.patience": "2"}


# --------------------------------------------------------------------------- usage errors and help


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "--bogus"], "error: unrecognized arguments: --bogus; see genrec-bench --help"),
        (["run", "--k-core", "x"], "error: argument --k-core: invalid int value: 'x'; see genrec-bench run --help"),
        (["tune", "--method", "sasrec-ce", "--seed", "-3"], "error: argument --seed: seed -3 is out of range"),
        ([], "error: the following arguments are required: command"),
    ],
    ids=["unknown-option", "not-an-integer", "negative-tune-seed", "no-command"],
)
def test_usage_errors_are_one_error_line(capsys, argv, expected):
    assert main(argv) == 2
    assert one_error_line(capsys).startswith(expected)


def test_run_help_lists_every_registered_split(capsys):
    assert main(["run", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in SPLITS), text


def test_cache_default_honours_the_environment_for_every_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GENREC_BENCH_CACHE", str(tmp_path / "env-cache"))
    parser = build_parser()
    for argv in (["run"], ["tune", "--all"], ["inspect", "tokenizer", "--tokenizer", "rqvae"]):
        assert parser.parse_args(argv).cache == str(tmp_path / "env-cache")
    assert main(["run", "--dataset", "synthetic", "--methods", "pop", "--seeds", "0", "--store",
                 f"sqlite:///{tmp_path}/r.db", "--leaderboards", str(tmp_path / "b"), "--no-progress"]) == 0
    assert (tmp_path / "env-cache").is_dir()
    assert not (tmp_path / "runs" / "cache").exists()


# --------------------------------------------------------------------------- saved rankings


def test_save_rankings_still_skips_stored_runs_and_force_replaces_them(tmp_path, capsys):
    rankings = tmp_path / "top.jsonl"
    args = run_args(tmp_path, "--save-rankings", str(rankings), seeds="0,1")
    assert main(args) == 0
    written = len(rankings.read_text().splitlines())
    capsys.readouterr()

    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.count(f"already in the store; its rankings are not written to {rankings} (--force re-runs it") == 2
    assert stored_rows(tmp_path) == 2

    assert main([*args, "--force"]) == 0
    rows = Store(f"sqlite:///{tmp_path}/r.db").rows()
    assert sorted(r["seed"] for r in rows) == [0, 1]
    assert len(rankings.read_text().splitlines()) == written
    assert "replaced by a later run" not in (tmp_path / "b" / "synthetic-loo.md").read_text()


# --------------------------------------------------------------------------- results store


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("nonsense", "--store 'nonsense' is not a database URL (Could not parse SQLAlchemy URL from given URL "
         "string); write sqlite:///PATH/results.db or a SQLAlchemy URL"),
        ("foo://x", "--store foo://x: SQLAlchemy has no dialect or driver 'foo'; use sqlite:///PATH"),
        ("postgresql+nosuchdriver://u@h/db", "SQLAlchemy has no dialect or driver 'postgresql+nosuchdriver'"),
        ("mysql://user:secret@host/db", "--store mysql://user:***@host/db: the driver of 'mysql' is not installed "
         "(No module named 'MySQLdb'); install it"),
        ("sqlite:///TMP/FILE/r.db", "TMP/FILE is a file, not a folder; pick a database file in a writable folder"),
        ("sqlite:///TMP/FILE", "TMP/FILE is not a SQLite database (file is not a database); point --store at a "
         "database or at a new file"),
    ],
    ids=["not-a-url", "unknown-dialect", "unknown-driver", "missing-driver", "unwritable-path", "not-a-database"],
)
def test_store_fault_is_one_line_naming_the_url(tmp_path, capsys, url, expected):
    (tmp_path / "FILE").write_text("not a database, but long enough for SQLite to read its header. " * 4)
    url = url.replace("TMP", str(tmp_path))
    args = run_args(tmp_path)
    args[args.index("--store") + 1] = url
    assert main(args) == 2
    err = one_error_line(capsys)
    assert expected.replace("TMP", str(tmp_path)) in err
    assert "secret" not in err


def _open_store(url: str, start) -> str:
    start.wait()
    try:
        Store(url)
        return "ok"
    except Exception as error:  # reported to the test, which names it
        return f"{type(error).__name__}: {error}"


def test_commands_started_together_on_a_new_store_both_open_it(tmp_path):
    # Two board queues started at once on a new store: one failed with "table runs already
    # exists" (both saw no table, both issued CREATE TABLE).
    import multiprocessing

    url = f"sqlite:///{tmp_path / 'results.db'}"
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(6) as pool:
        start = manager.Barrier(6)
        outcomes = pool.starmap(_open_store, [(url, start)] * 6)
    assert outcomes == ["ok"] * 6
    assert Store(url).rows() == []


def test_leaderboard_on_a_misspelt_store_creates_nothing(tmp_path, capsys):
    missing = tmp_path / "reslts.db"
    assert main(["leaderboard", "--store", f"sqlite:///{missing}", "--leaderboards", str(tmp_path / "b")]) == 2
    assert f"there is no database file {missing}; check the path" in one_error_line(capsys)
    assert not missing.exists()


# --------------------------------------------------------------------------- parameter bounds and validation


def bounded_plugin(**param_options) -> object:
    params = (Param("epochs", int, 2, "training epochs", **param_options),)
    return make_plugin(
        register_recommenders=hookimpl(lambda register: register(RecommenderSpec(
            name="bounded", factory=lambda params, seed: Popularity(), accepts=Popularity.accepts,
            description="test", params=params))),
        register_methods=hookimpl(lambda register: register(MethodSpec(
            name="bounded-pop", tokenizer="atomic", recommender="bounded", description="test"))),
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", "recommender 'bounded': parameter 'epochs' is 0, outside its allowed range (1 to 100); give a value "
         "in that range"),
        ("-1", "parameter 'epochs' is -1, outside its allowed range (1 to 100)"),
        ("101", "parameter 'epochs' is 101, outside its allowed range (1 to 100)"),
    ],
    ids=["zero", "negative", "above-maximum"],
)
def test_parameter_outside_its_declared_bounds_fails_before_training(register_plugin, tmp_path, capsys, value,
                                                                     expected):
    register_plugin(bounded_plugin(minimum=1, maximum=100))
    code = main(run_args(tmp_path, "--param", f"recommender.epochs={value}", methods="pop,bounded-pop"))
    assert code == 2
    assert expected in one_error_line(capsys)
    assert stored_rows(tmp_path) == 0


def test_search_range_and_defaults_must_lie_within_the_bounds():
    assert Param("epochs", int, 2, "epochs", minimum=1).coerce("1", "owner") == 1
    with pytest.raises(ValueError, match="Param 'epochs': low 0 lies outside 1 or more"):
        Param("epochs", int, 2, "epochs", low=0, high=5, minimum=1)
    with pytest.raises(ValueError, match="Param 'epochs': paper default 0 lies outside 1 or more"):
        Param("epochs", int, 2, "epochs", minimum=1, profiles={"paper": 0})
    with pytest.raises(ParameterError, match=r"'rate' is nan; give a finite number \(0.0 to 1.0\)"):
        Param("rate", float, 0.5, "rate", minimum=0.0, maximum=1.0).coerce("nan", "owner")
    assert Param("cap", float, 1.0, "cap", nonfinite=True).coerce("inf", "owner") == float("inf")


def test_a_string_parameter_accepts_only_its_declared_options():
    precision = Param("precision", str, "fp32", "precision", options=("fp32", "bf16"))
    assert precision.coerce("bf16", "owner") == "bf16"
    assert precision.allowed == "fp32 or bf16" and precision.bounded
    with pytest.raises(ParameterError, match=r"^owner: parameter 'precision' is 'bf61'; give fp32 or bf16 "
                                             r"\(did you mean bf16\?\)$"):
        precision.coerce("bf61", "owner")
    with pytest.raises(ParameterError, match=r"parameter 'precision' is 'half'; give fp32 or bf16$"):
        precision.coerce("half", "owner")
    assert Param("scoring", str, "beam", "", options=("beam", "exact", "graph")).allowed == "beam, exact or graph"
    # Declaration faults of the plugin's author fail at import.
    with pytest.raises(ValueError, match="Param 'precision': default 'fp16' is not one of fp32 or bf16"):
        Param("precision", str, "fp16", "precision", options=("fp32", "bf16"))
    with pytest.raises(ValueError, match="Param 'precision': cpu default 'fp16' is not one of fp32 or bf16"):
        Param("precision", str, "fp32", "precision", options=("fp32", "bf16"), profiles={"cpu": "fp16"})
    with pytest.raises(ValueError, match="Param 'precision': search choice 'fp16' is not one of fp32 or bf16"):
        Param("precision", str, "fp32", "precision", options=("fp32", "bf16"), choices=("fp32", "fp16"))


def test_every_option_parameter_lists_its_options_in_the_methods_table(capsys):
    assert main(["methods", "--params", "rpg"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith(
        ("recommender.", "tokenizer."))}
    assert "disjoint or sliding" in rows["recommender.windows"]
    assert "fp32 or bf16" in rows["recommender.precision"]
    assert "warm or all" in rows["tokenizer.train_items"]


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        ("recommender.learning_rate=inf", "recommender 'seq2seq': parameter 'learning_rate' is inf; give a finite "
         "number (0.0 or more)"),
        ("recommender.max_train_seconds=-inf", "parameter 'max_train_seconds' is -inf; give a finite number"),
        ("tokenizer.commitment_weight=inf", "tokenizer 'rqvae': parameter 'commitment_weight' is inf; give a "
         "finite number"),
        ("recommender.beam_size=5", "recommender 'seq2seq': parameter 'beam_size' is 5, outside its allowed range "
         "(20 or more)"),
        # Checked inside the RQ-VAE's fit before options were declared: after the text encoder ran.
        ("tokenizer.optimizer=adam", "tokenizer 'rqvae': parameter 'optimizer' is 'adam'; give adagrad or adamw "
         "(did you mean adamw?)"),
        ("recommender.schedule=linear", "recommender 'seq2seq': parameter 'schedule' is 'linear'; give cosine or "
         "constant"),
        ("recommender.device=gpu", "recommender 'seq2seq': parameter 'device' is 'gpu'; give auto, cpu or cuda"),
        ("recommender.decoding=greedy", "parameter 'decoding' is 'greedy'; give constrained or unconstrained"),
    ],
    ids=["inf-learning-rate", "minus-inf-time-cap", "inf-tokenizer-weight", "beam-narrower-than-the-list",
         "rqvae-optimizer", "schedule", "device", "decoding"],
)
def test_unusable_parameter_values_fail_before_training(tmp_path, capsys, param, expected):
    # Non-finite floats, a beam narrower than the list and misspelt options.
    code = main(run_args(tmp_path, "--param", param, methods="pop,tiger"))
    assert code == 2
    assert expected in one_error_line(capsys)
    assert stored_rows(tmp_path) == 0


def test_every_integer_parameter_of_every_plugin_declares_its_lower_bound():
    # Undeclared bounds let tokenizer.codebook_size=0 reach k-means (a ValueError inside the
    # fit) and p5-cid's clusters=1 split clusters that never shrink.
    unbounded = [f"{kind} {spec.name!r}: {p.name}"
                 for kind, registry in (("tokenizer", plugins.get_tokenizers()),
                                        ("recommender", plugins.get_recommenders()),
                                        ("encoder", plugins.get_encoders()))
                 for spec in registry.values() for p in spec.params if p.type is int and p.minimum is None]
    assert unbounded == []


@pytest.mark.parametrize(
    ("method", "param", "expected"),
    [
        ("tiger", "tokenizer.codebook_size=0", "tokenizer 'rqvae': parameter 'codebook_size' is 0, outside its "
         "allowed range (2 or more)"),
        ("tiger", "tokenizer.levels=0", "parameter 'levels' is 0, outside its allowed range (1 or more)"),
        ("tiger", "tokenizer.commitment_weight=-1", "parameter 'commitment_weight' is -1.0, outside"),
        ("p5-cid", "tokenizer.clusters=1", "tokenizer 'cid': parameter 'clusters' is 1, outside its allowed range "
         "(2 or more)"),
        ("lcrec", "tokenizer.sinkhorn_epsilon=0", "tokenizer 'lcrec': parameter 'sinkhorn_epsilon' is 0.0"),
        ("letter-tiger", "tokenizer.temperature=0", "tokenizer 'letter': parameter 'temperature' is 0.0"),
        ("sasrec-ce", "recommender.embedding_size=0", "recommender 'recbole': parameter 'embedding_size' is 0"),
        ("sasrec-ce", "recommender.dropout=1.5", "parameter 'dropout' is 1.5, outside its allowed range "
         "(0.0 to 0.9)"),
    ],
    ids=["codebook-0", "levels-0", "negative-commitment", "cid-one-cluster", "sinkhorn-eps-0", "letter-temp-0",
         "embedding-0", "dropout-1.5"],
)
def test_structural_parameters_out_of_bounds_fail_before_training(tmp_path, capsys, method, param, expected):
    assert main(run_args(tmp_path, "--param", f"{method}:{param}", methods=f"pop,{method}")) == 2
    assert expected in one_error_line(capsys)
    assert stored_rows(tmp_path) == 0


def test_validate_rejects_a_bad_argument_before_any_method_trains(register_plugin, tmp_path, capsys):
    models = {"Known"}

    def validate(params: dict) -> None:
        if params["model"] not in models:
            raise ParameterError(f"recommender 'checked': unknown model {params['model']!r}; known: Known")

    register_plugin(make_plugin(
        register_recommenders=hookimpl(lambda register: register(RecommenderSpec(
            name="checked", factory=lambda params, seed: Popularity(), accepts=Popularity.accepts,
            description="test", params=(Param("model", str, "Known", "model name"),), validate=validate))),
        register_methods=hookimpl(lambda register: register(MethodSpec(
            name="checked", tokenizer="atomic", recommender="checked", description="test",
            argument_param="recommender.model"))),
    ))
    assert main(run_args(tmp_path, methods="pop,checked:NoSuchModel")) == 2
    assert "unknown model 'NoSuchModel'; known: Known" in one_error_line(capsys)
    assert "done " not in capsys.readouterr().out
    assert stored_rows(tmp_path) == 0
    assert main(run_args(tmp_path, methods="checked:Known")) == 0


# --------------------------------------------------------------------------- plugin loading


def test_allow_list_naming_no_installed_entry_point_fails(monkeypatch, capsys):
    monkeypatch.setenv("GENREC_BENCH_LOAD_PLUGINS", "nosuchplugin")
    monkeypatch.setattr(plugins, "_loaded", False)
    assert main(["plugins"]) == 2
    assert ("GENREC_BENCH_LOAD_PLUGINS=nosuchplugin: 'nosuchplugin' is not an installed entry point of group "
            "'genrec_bench' (installed: ") in one_error_line(capsys)


def test_hook_with_wrong_argument_names_names_file_hook_and_expected_arguments(tmp_path, capsys):
    path = tmp_path / "wrong_args.py"
    path.write_text("from benchmark import hookimpl\n\n@hookimpl\ndef register_methods(registry):\n    pass\n")
    assert main(["--plugin", str(path), "plugins"]) == 2
    assert (f"--plugin {path}: hook register_methods(registry) takes unknown argument(s) registry; write "
            "register_methods(register)") in one_error_line(capsys)
    assert plugins.pm.get_plugin(f"file:{path.resolve()}") is None


# --------------------------------------------------------------------------- tuning


def tune_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["tune", "--dataset", "synthetic", "--storage", f"sqlite:///{tmp_path}/optuna.db", "--leaderboards",
            str(tmp_path / "b"), "--cache", str(tmp_path / "cache"), "--no-progress", *extra]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--method", "sasrec-ce", "--trials", "0"], "--trials 0: a study needs at least one trial; give --trials 1 "
         "or more"),
        (["--method", "sasrec-ce", "--trials", "1", "--metric", "ndcg"],
         "--metric 'ndcg': not a validation metric; use one of"),
        (["--method", "sasrec-ce,pop", "--trials", "1"],
         "method 'pop' declares no search space: nothing to tune; tunable methods: bigrec, lamia, lcrec, letter-lcrec, "
         "letter-tiger, lightgcn, p5-cid, p5-semid, p5-tid, "),
    ],
    ids=["zero-trials", "unknown-metric", "untunable-method"],
)
def test_bad_tune_option_fails_before_a_study_is_created(tmp_path, capsys, extra, expected):
    assert main(tune_args(tmp_path, *extra)) == 2
    assert expected in one_error_line(capsys)
    if (tmp_path / "optuna.db").exists():
        with sqlite3.connect(tmp_path / "optuna.db") as db:
            assert db.execute("select count(*) from studies").fetchone() == (0,)


def test_run_tuned_without_a_study_suggests_the_tune_command(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    assert main(run_args(tmp_path, "--tuned", "--storage", storage, "--profile", "paper", methods="sasrec-ce")) == 2
    assert (f"tune first: genrec-bench tune --method sasrec-ce --dataset synthetic --split loo --profile paper "
            f"--storage {storage}") in one_error_line(capsys)


def test_storage_prints_no_optuna_warning(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        storage_for(f"sqlite:///{tmp_path}/optuna.db")
    assert [w for w in caught if issubclass(w.category, (FutureWarning, optuna.exceptions.ExperimentalWarning))] == []
