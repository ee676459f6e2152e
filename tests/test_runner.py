"""End to end: every registered method runs; results are reproducible, stored, rendered;
every built-in method's rankings match the digest pinned with its versions."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from benchmark import plugins
from benchmark.cli import main
from benchmark.components import TrainingData
from benchmark.errors import MissingExtraError
from benchmark.evaluation.metrics import per_case
from benchmark.methods import resolve_method
from benchmark.runner import RunRequest, execute, load_split
from benchmark.store import Store

FAST = {"recommender.epochs": 1}


def _method_names() -> list[str]:
    names = []
    for name, spec in plugins.get_methods().items():
        names.append(f"{name}:GRU4Rec" if spec.argument_param else name)
    return sorted(names)


GOLDEN = Path(__file__).with_name("golden_rankings.json")
UPDATE_GOLDEN = os.environ.get("GENREC_BENCH_UPDATE_GOLDEN") == "1"


def check_golden(method: str, row: dict, rankings: np.ndarray) -> None:
    """The seed-0 rankings of a built-in method on the smoke catalogue's ``loo`` split equal a digest pinned
    with the method's versions (docs/hooks/README.md#versions-and-run-keys): one digest per CPU whose kernels
    round differently under the same code; with GENREC_BENCH_UPDATE_GOLDEN=1 this machine's digest is added
    (the list restarts when the versions changed) instead."""
    versions = row["info"]["code_hashes"]
    digest = hashlib.sha256(np.ascontiguousarray(rankings, np.int64).tobytes()).hexdigest()[:16]
    if UPDATE_GOLDEN:
        with open(GOLDEN, "r+", encoding="utf-8") as f:  # test workers may update it at once
            fcntl.flock(f, fcntl.LOCK_EX)
            pinned = json.load(f)
            known = pinned.get(method, {})
            digests = known.get("digests", []) if known.get("versions") == versions else []
            pinned[method] = {"versions": versions, "digests": sorted({*digests, digest})}
            f.seek(0)
            f.truncate()
            f.write(json.dumps(pinned, indent=1, sort_keys=True) + "\n")
        return
    pinned = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert method in pinned, f"{method}: no pinned rankings digest; add it with GENREC_BENCH_UPDATE_GOLDEN=1"
    if versions != pinned[method]["versions"]:
        pytest.fail(f"{method}: versions {versions} differ from the pinned {pinned[method]['versions']}; after "
                    "a bump, refresh the pin with GENREC_BENCH_UPDATE_GOLDEN=1 "
                    "(docs/hooks/README.md#versions-and-run-keys)")
    assert digest in pinned[method]["digests"], (
        f"{method}: its seed-0 rankings ({digest}) match none pinned for its versions; bump the version of the "
        "tokenizer, recommender or method spec whose behaviour changed, or, on a CPU whose kernels round "
        "differently with unchanged code, add its digest with GENREC_BENCH_UPDATE_GOLDEN=1 "
        "(docs/hooks/README.md#versions-and-run-keys)")


# The smoke runs use a small synthetic catalogue; the planted-structure tests use the full one.
SMOKE = "synthetic:0,100,48"
# One method per family also runs on the temporal split (the splits themselves are tested apart).
TEMPORAL = ("pop", "sasrec-ce", "p5-cid", "setrec-no-sem", "lcrec")


@pytest.mark.parametrize("method", _method_names())
def test_every_registered_method_runs_end_to_end(method, shared_cache):
    declared = plugins.get_recommenders()[plugins.get_method(method)[0].recommender].params
    params = FAST if any(p.name == "epochs" for p in declared) else {}
    try:
        resolve_method(method, "tiny", params)
    except MissingExtraError as error:  # a method of an optional extra that is not installed (cornac)
        pytest.skip(str(error))
    for split in ("loo", "temporal") if method in TEMPORAL else ("loo",):
        row, evaluation, split_obj = execute(
            RunRequest(SMOKE, split, method, params=params), cache_dir=shared_cache, progress=False
        )
        assert evaluation.rankings.shape == (len(split_obj.test), 20)
        assert (evaluation.rankings >= 0).all()
        assert 0.0 <= row["metrics"]["all"]["ndcg@10"] <= row["metrics"]["all"]["recall@10"] <= 1.0
        assert row["metrics"]["all"]["cases"] == len(split_obj.test)
        if split == "loo":
            check_golden(method, row, evaluation.rankings)


def test_same_seed_same_metrics_and_different_seed_differs(tmp_path):
    params = {"recommender.epochs": 2}
    a, _, _ = execute(RunRequest("synthetic", "loo", "sasrec-ce", seed=0, params=params), tmp_path, False)
    b, _, _ = execute(RunRequest("synthetic", "loo", "sasrec-ce", seed=0, params=params), tmp_path, False)
    c, _, _ = execute(RunRequest("synthetic", "loo", "sasrec-ce", seed=1, params=params), tmp_path, False)
    assert a["metrics"] == b["metrics"]
    assert a["ranks"] == b["ranks"]
    assert a["ranks"] != c["ranks"]


def test_sequential_model_beats_popularity_on_planted_structure(tmp_path, shared_cache):
    pop, _, _ = execute(RunRequest("synthetic", "loo", "pop"), shared_cache, False)
    sasrec, _, _ = execute(
        RunRequest("synthetic", "loo", "sasrec-ce", params={"recommender.epochs": 15,
                                                             "recommender.learning_rate": 0.005,
                                                             "recommender.patience": 15}),
        tmp_path, False,
    )
    assert sasrec["metrics"]["all"]["ndcg@10"] > 2 * pop["metrics"]["all"]["ndcg@10"]


def test_fitting_never_sees_test_cases():
    split = load_split("synthetic", "loo")
    data = TrainingData.from_split(split)
    exposed = {name: getattr(data, name) for name in vars(data)}
    assert "test" not in exposed
    test_pairs = set(zip(split.test.users.tolist(), split.test.targets.tolist()))
    for user, seq in enumerate(data.train):
        assert not test_pairs & {(user, int(item)) for item in seq[-1:]}


def test_run_stores_resumes_saves_rankings_and_renders(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/results.db"
    boards = tmp_path / "boards"
    rankings = tmp_path / "rankings.jsonl"
    args = ["run", "--dataset", "synthetic", "--split", "loo", "--methods", "pop", "--seeds", "0,1",
            "--store", url, "--leaderboards", str(boards), "--no-progress"]
    assert main([*args, "--save-rankings", str(rankings)]) == 0
    rows = Store(url).rows(dataset="synthetic")
    assert [r["seed"] for r in rows] == [0, 1]
    assert rows[0]["package_versions"]["torch"].startswith("2.")
    assert "plugins.recommenders.popularity" in rows[0]["plugin_versions"]

    # Recompute Recall@10 from the saved rankings, in the dataset's own ids.
    records = [json.loads(line) for line in rankings.read_text().splitlines()]
    seed0 = [r for r in records if r["seed"] == 0]
    assert len(seed0) == rows[0]["metrics"]["all"]["cases"]
    assert seed0[0]["user"].startswith("u") and seed0[0]["target"].startswith("i")
    assert {"warm"} <= set(seed0[0]["subsets"])
    hits = np.mean([r["target"] in r["top20"][:10] for r in seed0])
    assert hits == pytest.approx(rows[0]["metrics"]["all"]["recall@10"])
    assert np.mean(per_case(np.array(rows[0]["ranks"]))["recall@10"]) == pytest.approx(hits)

    # A second identical run resumes: nothing is recomputed.
    capsys.readouterr()
    assert main(args) == 0
    assert capsys.readouterr().out.count("skip synthetic loo pop") == 2
    assert len(Store(url).rows()) == 2

    board = (boards / "synthetic-loo.md").read_text()
    assert "Produced by: `genrec-bench run" in board
    assert "Machine:" in board and "torch" in board
    assert "| pop " in board
    assert "n/a" in board  # the loo split of synthetic data has no cold test case
    assert (boards / "synthetic-loo.csv").read_text().startswith("method,")

    # Runs from two machines: the board names both, each with its count of runs.
    import sqlalchemy as sa

    from benchmark.leaderboard import render
    from benchmark.store import runs as runs_table
    store = Store(url)
    with store.engine.begin() as connection:
        connection.execute(sa.update(runs_table).where(runs_table.c.seed == 1).values(machine="other box"))
    machine_line = next(line for line in render(store, "synthetic", "loo", boards).read_text().splitlines()
                        if line.startswith("- Machine: "))
    assert machine_line.endswith("; other box (1 run)") and machine_line.count("(1 run)") == 2


def test_leaderboard_command_renders_from_store_only(tmp_path):
    url = f"sqlite:///{tmp_path}/results.db"
    assert main(["leaderboard", "--store", url, "--leaderboards", str(tmp_path)]) == 2
    main(["run", "--dataset", "synthetic", "--methods", "pop", "--seeds", "0", "--store", url,
          "--leaderboards", str(tmp_path / "a"), "--no-progress"])
    assert main(["leaderboard", "--store", url, "--leaderboards", str(tmp_path / "b")]) == 0
    first = (tmp_path / "a" / "synthetic-loo.md").read_text()
    assert first == (tmp_path / "b" / "synthetic-loo.md").read_text()


def test_cli_lists_datasets_methods_and_plugins(capsys):
    assert main(["datasets"]) == 0
    assert "ml-100k" in capsys.readouterr().out
    assert main(["datasets", "synthetic", "--split", "loo,temporal"]) == 0
    out = capsys.readouterr().out
    assert "users" in out and "density" in out and "temporal" in out and "Cold share" in out
    assert main(["methods", "--params", "sasrec-ce"]) == 0
    out = capsys.readouterr().out
    assert "recommender.learning_rate" in out and "SASRec" in out
    assert main(["plugins"]) == 0
    assert "plugins.methods.baselines" in capsys.readouterr().out
