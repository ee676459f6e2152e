"""Optuna tuning: validation-only selection, resumable studies, shared PostgreSQL workers."""

from __future__ import annotations

import dataclasses
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from benchmark import plugins, runner
from benchmark.cli import main
from benchmark.errors import BenchmarkError
from benchmark.store import Store
from benchmark.tuning import TuneRequest, best_params, search_space, tunable_methods, tune

REPO = Path(__file__).resolve().parents[1]
TINY_METHOD = '''
from benchmark import hookimpl
from benchmark.components import MethodSpec

@hookimpl
def register_methods(register):
    register(MethodSpec(name="tiny-sasrec", tokenizer="atomic", recommender="recbole",
                        description="two-epoch SASRec for tuning tests",
                        defaults={"recommender.epochs": 2, "recommender.patience": 2,
                                  "recommender.embedding_size": 32},
                        search_space=("recommender.learning_rate",)))
'''


class TestCasesGuard:
    """Stands in for the test cases: any use during tuning fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"tuning read the test cases ({name})")

    def __len__(self):
        raise AssertionError("tuning read the test cases (len)")


@pytest.fixture
def guarded_split(monkeypatch):
    original = runner.load_split

    def load_split(dataset, split, k_core=5, max_history=20):
        return dataclasses.replace(original(dataset, split, k_core, max_history), test=TestCasesGuard())

    monkeypatch.setattr(runner, "load_split", load_split)


def test_search_spaces_come_from_declared_parameters():
    space = search_space("sasrec-ce")
    assert set(space) >= {"recommender.learning_rate", "recommender.embedding_size"}
    assert space["recommender.learning_rate"].log
    assert "sasrec-ce" in tunable_methods() and "pop" not in tunable_methods()
    with pytest.raises(BenchmarkError, match="declares no search space"):
        tune(TuneRequest(method="pop", dataset="synthetic"))


@pytest.fixture
def tiny_method(tmp_path):
    path = tmp_path / "tiny_method.py"
    path.write_text(TINY_METHOD)
    name = plugins.load_plugin_file(path)
    try:
        yield path
    finally:
        plugins.pm.unregister(name=name)


def test_tuning_never_reads_test_and_beats_or_equals_defaults(guarded_split, tiny_method, tmp_path):
    request = TuneRequest(method="tiny-sasrec", dataset="synthetic", trials=3,
                          storage=f"sqlite:///{tmp_path}/optuna.db", cache_dir=str(tmp_path), progress=False)
    study = tune(request)
    finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(finished) == 3
    default = runner.fit(runner.RunRequest("synthetic", "loo", "tiny-sasrec"), tmp_path, False).validate()
    assert study.trials[0].value == pytest.approx(default["ndcg@10"])
    assert study.best_value >= default["ndcg@10"]

    # A re-run resumes: the finished trials stay and only the missing ones run.
    study = tune(dataclasses.replace(request, trials=4))
    assert len(study.trials) == 4
    assert [t.number for t in study.trials[:3]] == [t.number for t in finished]
    assert study.trials[3].params != study.trials[1].params


def test_run_tuned_uses_best_trial_and_marks_the_row(tiny_method, tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    store = f"sqlite:///{tmp_path}/results.db"
    with pytest.raises(BenchmarkError, match="tune first"):
        best_params("sasrec-ce", "synthetic", "loo", "tiny", storage)
    plugin = tiny_method
    assert main(["--plugin", str(plugin), "tune", "--method", "tiny-sasrec", "--dataset", "synthetic",
                 "--trials", "2", "--storage", storage, "--leaderboards", str(tmp_path), "--no-progress",
                 "--cache", str(tmp_path / "cache")]) == 0
    assert (tmp_path / "tuning" / "synthetic-loo-tiny-sasrec-tiny-ndcg10-history.png").exists()
    report = (tmp_path / "tuning" / "synthetic-loo-tiny-sasrec-tiny-ndcg10.md").read_text()
    assert "Produced by: `genrec-bench" in report and "Machine:" in report and "learning_rate=" in report
    params, trials = best_params("tiny-sasrec", "synthetic", "loo", "tiny", storage)
    assert trials == 2 and set(params) == {"recommender.learning_rate"}
    assert main(["--plugin", str(plugin), "run", "--dataset", "synthetic", "--methods", "tiny-sasrec",
                 "--seeds", "0", "--tuned", "--storage", storage, "--store", store, "--leaderboards",
                 str(tmp_path), "--no-progress", "--cache", str(tmp_path / "cache")]) == 0
    row = Store(store).rows()[0]
    assert row["tuned_trials"] == 2
    assert row["params"]["recommender.learning_rate"] == pytest.approx(params["recommender.learning_rate"])
    assert "tiny-sasrec (tuned, 2 trials)" in (tmp_path / "synthetic-loo.md").read_text()


# --------------------------------------------------------------------------- PostgreSQL


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres():
    """A PostgreSQL server on loopback in a temp dir, run as a non-root user."""
    initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb")]
    if not initdb[-1]:
        pytest.skip("PostgreSQL server binaries not installed (Debian: apt-get install postgresql)")
    pytest.importorskip("psycopg2", reason="psycopg2-binary is in the dev extras")
    bin_dir = Path(initdb[-1]).parent
    # Not under pytest's tmp_path: its parents are private to root, and the server
    # must run as another user.
    top = Path(tempfile.mkdtemp(prefix="genrec-pg-"))
    root = top / "pg"
    root.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as a non-root user")
        user = "postgres" if subprocess.run(["id", "postgres"], capture_output=True).returncode == 0 else "nobody"
        as_user = ["runuser", "-u", user, "--"]
        os.chmod(top, 0o755)
        shutil.chown(root, user)
    port = _free_port()
    data = root / "data"
    subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
                   check=True, capture_output=True)
    subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
    try:
        subprocess.run([*as_user, str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                        "optuna"], check=True, capture_output=True)
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(top, ignore_errors=True)


def _worker(url: str, plugin: Path, cache: Path, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "benchmark.cli", "--plugin", str(plugin), "tune", "--method", "tiny-sasrec",
               "--dataset", "synthetic", "--trials", "6", "--storage", url, "--no-progress",
               "--cache", str(cache), "--leaderboards", str(cache / "boards")]
    return subprocess.Popen(command, cwd=REPO, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def test_two_workers_share_a_postgres_study_and_survive_a_kill(postgres, tmp_path):
    plugin = tmp_path / "tiny_method.py"
    plugin.write_text(TINY_METHOD)
    name = "synthetic|loo|tiny-sasrec|tiny|ndcg@10"
    first = _worker(postgres, plugin, tmp_path / "a", tmp_path / "a.log")
    second = _worker(postgres, plugin, tmp_path / "b", tmp_path / "b.log")
    killed_running: set[int] = set()
    complete_before: set[int] = set()
    deadline = time.time() + 300
    while time.time() < deadline and first.poll() is None:
        try:
            study = optuna.load_study(study_name=name, storage=postgres)
        except KeyError:
            time.sleep(1)
            continue
        complete = {t.number for t in study.trials if t.state == TrialState.COMPLETE}
        running = {t.number for t in study.trials if t.state == TrialState.RUNNING}
        if complete and running:
            complete_before = complete
            first.send_signal(signal.SIGKILL)
            first.wait()
            killed_running = running
            break
        time.sleep(0.5)
    assert killed_running, "worker A never ran a trial while another was finished"
    assert second.wait(timeout=600) == 0, (tmp_path / "b.log").read_text()[-2000:]
    study = optuna.load_study(study_name=name, storage=postgres)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) >= 6
    still = {t.number for t in study.trials if t.state == TrialState.COMPLETE}
    assert complete_before <= still
    workers = {t.number: t.state for t in study.trials}
    # The trial that died with worker A was not counted as finished.
    assert any(workers[n] != TrialState.COMPLETE for n in killed_running) or len(finished) >= 6
