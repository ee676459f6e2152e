"""The protocol guarantees of "numbers users can trust": leak-proof fitting data, the new-user
subset, the history cap in the digest, boards that never lose rows, the results archive,
run keys that follow plugin code, run claims and the shared CF service."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from conftest import make_plugin, prepared

from benchmark import hookimpl, plugins
from benchmark.cli import main
from benchmark.components import Cases, MethodSpec, TrainingData
from benchmark.data.dataset import ItemCatalog, PreparedDataset
from benchmark.data.splits import PROTOCOL_VERSION, make_split
from benchmark.runner import load_dataset, load_split, make_context
from benchmark.store import Store

SPLITS = ("loo", "temporal", "cold-items")


def _walk(value, path: str = "data"):
    """Every (path, value) reachable from ``value`` through dataclass fields, lists and dicts."""
    yield path, value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _walk(getattr(value, f.name), f"{path}.{f.name}")
    elif isinstance(value, (list, tuple)) and value and not isinstance(value[0], (str, int, float)):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}[{key!r}]")


@pytest.mark.parametrize("split_name", SPLITS)
def test_no_field_of_the_fitting_data_holds_a_test_interaction(split_name):
    split = load_split("synthetic", split_name)
    data = TrainingData.from_split(split)
    test_pairs = set(zip(split.test.users.tolist(), split.test.targets.tolist()))
    assert test_pairs
    kinds = set()
    for path, value in _walk(data):
        kinds.add(type(value).__name__)
        assert not isinstance(value, PreparedDataset), f"{path} is a full-sequence dataset"
        assert not (isinstance(value, Cases) and value is split.test), path
    assert "ItemCatalog" in kinds and "Cases" in kinds
    for user, items in enumerate(data.train):
        assert not test_pairs & {(user, int(i)) for i in items}, f"train[{user}]"
    valid = data.valid
    for i, user in enumerate(valid.users.tolist()):
        for field in ("histories", "seen"):
            items = getattr(valid, field)[i]
            assert not test_pairs & {(user, int(item)) for item in items}, f"valid.{field}[{i}]"
        assert (user, int(valid.targets[i])) not in test_pairs


def test_cold_items_validation_cases_skip_test_interactions_that_came_before_them():
    """A cold validation case after its user's warm test item, and a warm validation case
    after a later-half cold item: both readings of the old split leaked test targets."""
    # Items 0-7 warm for user 0; item 9 is cold (chosen below by share/seed), seen late.
    data = load_dataset("synthetic")
    split = make_split("cold-items:share=0.3,seed=2", data)
    sequences = data.sequences
    test_positions = {}
    for u, target in zip(split.test.users.tolist(), split.test.targets.tolist()):
        test_positions.setdefault(u, set()).add(int(np.flatnonzero(sequences[u] == target)[0]))
    valid_after_test = 0
    for u, target in zip(split.valid.users.tolist(), split.valid.targets.tolist()):
        p = int(np.flatnonzero(sequences[u] == target)[0])
        valid_after_test += any(q < p for q in test_positions.get(u, ()))
    # The situation exists in this data, so the check below is not vacuous.
    assert valid_after_test > 0
    test_pairs = set(zip(split.test.users.tolist(), split.test.targets.tolist()))
    for i, u in enumerate(split.valid.users.tolist()):
        assert not test_pairs & {(u, int(x)) for x in split.valid.seen[i]}
        assert not test_pairs & {(u, int(x)) for x in split.valid.histories[i]}
    # Case counts stay as they were: only inputs lose the test items.
    assert len(split.valid) > 100 and len(split.test) > 100


def test_new_user_subset_marks_users_without_training_interactions():
    # User 1 arrives at the 80% cut: all its cases are new-user cases (its first interaction,
    # with no input, is dropped; user 0's validates).
    sequences = [list(range(0, 9)), [9, 10, 11]]
    times = [[1, 2, 3, 4, 5, 6, 7, 8, 9], [9, 10, 11]]
    split = make_split("temporal", prepared(sequences, times))
    assert split.train[1].size == 0
    masks = split.test.masks()
    assert "new-user" in masks
    assert masks["new-user"].tolist() == (split.test.users == 1).tolist()
    assert split.test.labels()["new_user"] == masks["new-user"].astype(int).tolist()


def test_history_cap_is_a_split_option_in_the_digest():
    data = prepared([list(range(40))])
    default, short = make_split("loo", data), make_split("loo", data, max_history=10)
    assert len(default.test.histories[0]) == 20 and len(short.test.histories[0]) == 10
    assert len(short.test.seen[0]) == 39
    assert default.digest != short.digest
    assert TrainingData.from_split(short).max_history == 10
    assert short.info["protocol_version"] == PROTOCOL_VERSION


def _row_file(boards, stem="synthetic-loo"):
    with gzip.open(boards / "results" / f"{stem}.jsonl.gz", "rt") as f:
        return [json.loads(line) for line in f]


def test_archive_carries_runs_to_a_fresh_store_and_board(tmp_path, capsys):
    boards = tmp_path / "boards"
    first = f"sqlite:///{tmp_path}/a.db"
    args = ["run", "--dataset", "synthetic", "--methods", "pop", "--seeds", "0,1", "--leaderboards", str(boards),
            "--no-progress"]
    assert main([*args, "--store", first]) == 0
    archived = _row_file(boards)
    assert [r["seed"] for r in archived] == [0, 1] and len(archived[0]["ranks"]) > 0
    board = (boards / "synthetic-loo.md").read_text()
    # Another machine: an empty store; `run` imports the archive and fits nothing again.
    capsys.readouterr()
    second = f"sqlite:///{tmp_path}/b.db"
    assert main([*args, "--store", second]) == 0
    out = capsys.readouterr().out
    assert "imported 2 archived runs" in out and out.count("skip synthetic loo pop") == 2
    assert (boards / "synthetic-loo.md").read_text().split("## Notes")[1] == board.split("## Notes")[1]
    # `leaderboard` renders from the archive alone, and the archive is byte-stable.
    before = (boards / "results" / "synthetic-loo.jsonl.gz").read_bytes()
    assert main(["leaderboard", "--store", f"sqlite:///{tmp_path}/c.db", "--leaderboards", str(boards)]) == 0
    assert (boards / "results" / "synthetic-loo.jsonl.gz").read_bytes() == before
    assert "| pop " in (boards / "synthetic-loo.md").read_text()


def test_archive_holds_one_line_per_run_key_and_leaves_no_temporary_file(tmp_path):
    # Two workers importing the archive into one new store at once can both add a row.
    from benchmark.archive import export_archive

    boards = tmp_path / "boards"
    url = f"sqlite:///{tmp_path}/r.db"
    assert main(["run", "--dataset", "synthetic", "--methods", "pop", "--seeds", "0,1", "--store", url,
                 "--leaderboards", str(boards), "--no-progress"]) == 0
    store = Store(url)
    twin = store.rows()[0]
    store.insert_archived({k: v for k, v in twin.items() if k != "id"} | {"run_key": "placeholder"})
    with store.engine.begin() as conn:  # the state a race leaves: the same run key twice
        conn.exec_driver_sql("UPDATE runs SET run_key = ? WHERE run_key = 'placeholder'", (twin["run_key"],))
    assert len(store.rows()) == 3
    export_archive(store, boards, "synthetic", "loo")
    assert sorted(r["seed"] for r in _row_file(boards)) == [0, 1]
    assert [p.name for p in (boards / "results").iterdir()] == ["synthetic-loo.jsonl.gz"]


def test_board_lists_runs_of_an_older_protocol_instead_of_dropping_them(tmp_path):
    boards = tmp_path / "boards"
    url = f"sqlite:///{tmp_path}/r.db"
    assert main(["run", "--dataset", "synthetic", "--methods", "pop", "--seeds", "0", "--store", url,
                 "--leaderboards", str(boards), "--no-progress"]) == 0
    store = Store(url)
    old = store.rows()[0]
    old.update(run_key="old-protocol", split_digest="0123456789abcdef", method="sasrec-ce",
               created_at="2020-01-01T00:00:00+00:00")
    old["info"]["split"]["protocol_version"] = 1
    store.insert_archived({k: v for k, v in old.items() if k != "id"})
    assert main(["leaderboard", "--store", url, "--leaderboards", str(boards)]) == 0
    board = (boards / "synthetic-loo.md").read_text()
    table, left = board.split("## Runs left out of this board")
    assert "| sasrec-ce" not in table and "| pop " in table
    assert "sasrec-ce, seeds 0: split digest `0123456789abcdef` (protocol version 1)" in left
    assert "re-run: `genrec-bench run --dataset synthetic --split loo --methods sasrec-ce --seeds 0`" in left


def test_a_parameter_added_later_at_its_default_keeps_a_methods_seeds_in_one_row():
    """A run stored before a plugin declared an ``unkeyed_default`` parameter and a run stored
    after it, at its default, are one configuration (their run keys agree); a value other
    than the default is another configuration, and the older one leaves the board."""
    from benchmark.leaderboard import _entries
    from benchmark.methods import comparable_params, resolve_method

    params = resolve_method("rpg", "tiny").params
    assert params["recommender.windows"] == "disjoint"  # declared with unkeyed_default
    before = {k: v for k, v in params.items() if k != "recommender.windows"}

    def row(seed, stored, created):
        return {"method": "rpg", "info": {}, "profile": "tiny", "exclude_seen": True, "tuned_trials": 0,
                "params": stored, "seed": seed, "created_at": created, "ranks": np.array([0, 3, -1])}

    assert comparable_params("rpg", params) == comparable_params("rpg", before)
    entries, left = _entries([row(0, before, "2026-12-01"), row(1, params, "2026-12-02")])
    assert [[r["seed"] for r in e.runs] for e in entries] == [[0, 1]] and left == []
    sliding = {**params, "recommender.windows": "sliding"}
    entries, left = _entries([row(0, before, "2026-12-01"), row(1, sliding, "2026-12-02")])
    assert [[r["seed"] for r in e.runs] for e in entries] == [[1]]
    assert [(r["seed"], why) for r, why in left] == [(0, "an older configuration of the method")]
    # A method no plugin registers here keeps its stored parameters as they are.
    assert comparable_params("not-registered", before) == before


def test_a_scratch_store_never_rewrites_the_committed_boards(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "leaderboards").mkdir()
    assert main(["run", "--dataset", "synthetic", "--methods", "pop", "--seeds", "0", "--no-progress",
                 "--store", "sqlite:///scratch/elsewhere.db"]) == 0
    assert list((tmp_path / "leaderboards").iterdir()) == []
    assert (tmp_path / "scratch" / "elsewhere-leaderboards" / "synthetic-loo.md").exists()
    assert "leaderboard: scratch/elsewhere-leaderboards/synthetic-loo.md" in capsys.readouterr().out


def test_editing_a_plugin_re_runs_its_rows(tmp_path, capsys):
    plugin = tmp_path / "my_pop.py"
    source = textwrap.dedent('''
        from benchmark import hookimpl
        from benchmark.components import MethodSpec

        @hookimpl
        def register_methods(register):
            register(MethodSpec(name="my-pop", tokenizer="atomic", recommender="pop", description="{}"))
    ''')
    plugin.write_text(source.format("first"))
    args = ["--plugin", str(plugin), "run", "--dataset", "synthetic", "--methods", "my-pop", "--seeds", "0",
            "--store", f"sqlite:///{tmp_path}/r.db", "--no-progress"]
    try:
        assert main(args) == 0
        assert main(args) == 0
        assert "skip synthetic loo my-pop" in capsys.readouterr().out
        plugins.pm.unregister(name=f"file:{plugin.resolve()}")
        plugin.write_text(source.format("edited"))
        assert main(args) == 0
        out = capsys.readouterr().out
        assert "skip" not in out and "done synthetic loo my-pop" in out
    finally:
        name = f"file:{plugin.resolve()}"
        if plugins.pm.get_plugin(name) is not None:
            plugins.pm.unregister(name=name)


def test_claims_block_live_owners_and_expire_with_dead_ones(tmp_path, monkeypatch, capsys):
    store = Store(f"sqlite:///{tmp_path}/r.db")
    assert store.claim("k") is None
    assert store.claim("k") is None  # our own claim
    # Another live process on this host holds it: refused.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        monkeypatch.setattr(Store, "owner", staticmethod(lambda: f"{os.uname().nodename}:{other.pid}"))
        assert store.claim("live") is None
        monkeypatch.undo()
        assert store.claim("live") == f"{os.uname().nodename}:{other.pid}"
    finally:
        other.kill()
        other.wait()
    # Its process is gone: the claim expires at once on this host.
    assert store.claim("live") is None
    # A remote owner whose heartbeat stopped long ago expires too.
    monkeypatch.setattr(Store, "owner", staticmethod(lambda: "elsewhere:1"))
    assert store.claim("remote") is None
    monkeypatch.undo()
    assert store.claim("remote") == "elsewhere:1"
    with store.engine.begin() as conn:
        from benchmark.store import claims

        conn.execute(claims.update().values(heartbeat=0.0))
    assert store.claim("remote") is None


def test_a_failed_heartbeat_is_retried_and_the_claim_stays_fresh(tmp_path, monkeypatch):
    # A locked SQLite file once made the heartbeat thread die; the claim then went stale
    # and a second worker could take over a run still being fitted.
    import sqlalchemy as sa

    from benchmark import store as store_module
    from benchmark.store import claims

    store = Store(f"sqlite:///{tmp_path}/r.db")
    monkeypatch.setattr(store_module, "HEARTBEAT_INTERVAL", 0.05)
    real, calls = Store.heartbeat, []

    def flaky(self, key):
        calls.append(key)
        if len(calls) == 1:
            raise sa.exc.OperationalError("UPDATE claims", {}, Exception("database is locked"))
        real(self, key)

    monkeypatch.setattr(Store, "heartbeat", flaky)
    assert store.claim("k") is None
    with store.engine.begin() as conn:
        conn.execute(claims.update().values(heartbeat=0.0))
    with pytest.warns(RuntimeWarning, match="heartbeat failed.*database is locked"):
        with store.claimed("k"):
            deadline = time.time() + 10
            while len(calls) < 3 and time.time() < deadline:
                time.sleep(0.02)
            with store.engine.connect() as conn:
                beat = conn.execute(sa.select(claims.c.heartbeat)).scalar_one()
    assert len(calls) >= 3
    assert beat > time.time() - 10  # refreshed after the failure


def test_run_skips_a_run_another_process_is_fitting(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path}/r.db"
    from benchmark import cli
    from benchmark.methods import resolve_method
    from benchmark.runner import RunRequest

    key = cli.request_key(RunRequest("synthetic", "loo", "pop", seed=0), resolve_method("pop", "tiny"), 0)
    monkeypatch.setattr(Store, "owner", staticmethod(lambda: "elsewhere:1"))
    Store(url).claim(key)
    monkeypatch.undo()
    assert main(["run", "--dataset", "synthetic", "--methods", "pop", "--seeds", "0", "--store", url,
                 "--no-progress"]) == 0
    assert "skip synthetic loo pop seed=0: being run by elsewhere:1" in capsys.readouterr().out
    assert Store(url).rows() == []


def test_cf_service_fits_on_training_data_and_never_reaches_the_callers_hooks(tmp_path, monkeypatch,
                                                                            register_plugin):
    register_plugin(make_plugin(register_methods=hookimpl(lambda register: register(MethodSpec(
        name="cf-tiny", tokenizer="atomic", recommender="recbole", description="small CF model",
        defaults={"recommender.epochs": 2, "recommender.embedding_size": 32})))))
    monkeypatch.setenv("GENREC_BENCH_CF_METHOD", "cf-tiny")
    seen_epochs = []

    class Recorder:
        @hookimpl
        def on_epoch_end(self, run, epoch, valid_metrics):
            seen_epochs.append(run.method)

    register_plugin(Recorder())
    split = load_split("synthetic", "loo")
    data = TrainingData.from_split(split)
    from benchmark.components import RunInfo

    run = RunInfo("synthetic", "loo", "caller", {}, 0, "tiny")
    context = make_context(run, data, tmp_path, progress=False)
    assert context.cf_embeddings(train=False) is None
    table = context.cf_embeddings()
    assert table.shape == (data.n_items, 32) and np.isfinite(table).all()
    assert seen_epochs == []  # the CF model's epochs went to no caller hook
    np.testing.assert_array_equal(context.cf_embeddings(train=False), table)  # cached
    assert isinstance(data.catalog, ItemCatalog)
