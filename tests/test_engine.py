"""The training engine: schedules, caps, validation cadence, precision and exact resumption
after a kill (in process, and with a real SIGKILL of a ``run`` mid-fit for seq2seq and setrec)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.components import FitContext, RunInfo
from benchmark.nn.engine import ENGINE_PARAMS, EarlyStopping, checkpoint_path, release, schedule, train
from benchmark.nn.sequences import batches
from benchmark.params import resolve
from benchmark.runner import RunRequest, execute
from benchmark.store import Store

REPO = Path(__file__).resolve().parents[1]
SMOKE = "synthetic:0,100,48"


class Toy(torch.nn.Module):
    """A regression with dropout, so the RNG state matters to the weights."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Dropout(0.3), torch.nn.Linear(16, 1))


X = torch.randn(96, 4, generator=torch.Generator().manual_seed(1))
Y = X @ torch.tensor([1.0, -2.0, 0.5, 3.0])


def toy_context(tmp_path: Path, stop_at: int | None = None) -> FitContext:
    """A fit context whose ``epoch_end`` records epochs and, at ``stop_at``, dies like a killed process."""
    run = RunInfo(dataset="toy", split="loo", method="toy", params={}, seed=0, profile="tiny")

    def epoch_end(epoch: int, metrics: dict[str, float]) -> None:
        run.state.setdefault("epochs", []).append({"epoch": epoch, **metrics})
        if epoch == stop_at:
            raise KeyboardInterrupt("killed")

    return FitContext(run=run, seed=0, profile="tiny", cache_dir=str(tmp_path), validate=None,
                      epoch_end=epoch_end, progress=False)


def fit_toy(context: FitContext, **overrides) -> tuple[Toy, object]:
    params = resolve(ENGINE_PARAMS, "tiny", {"epochs": 6, "patience": 6, "batch_size": 16, **overrides})
    model = Toy()

    def loss_of(rows: np.ndarray) -> torch.Tensor:
        index = torch.as_tensor(rows)
        return torch.nn.functional.mse_loss(model.net(X[index]).squeeze(1), Y[index])

    def epoch_batches(epoch: int):
        return batches(np.random.default_rng([0, epoch]).permutation(len(X)), params["batch_size"])

    def validate() -> dict[str, float]:
        with torch.no_grad():
            return {"ndcg@10": -float(torch.nn.functional.mse_loss(model.net(X).squeeze(1), Y))}

    return model, train(model, params, context, "toy", len(X), epoch_batches, loss_of, validate)


def test_a_fit_killed_after_a_validation_resumes_to_the_same_weights_and_curve(tmp_path):
    whole_model, whole = fit_toy(toy_context(tmp_path / "a"))
    killed = toy_context(tmp_path / "b", stop_at=3)
    with pytest.raises(KeyboardInterrupt):
        fit_toy(killed)
    assert checkpoint_path(killed, "toy").exists()  # written after epoch 2's validation
    resumed_context = toy_context(tmp_path / "b")
    resumed_model, resumed = fit_toy(resumed_context)
    assert resumed.resumed_from == 3
    assert [r["ndcg@10"] for r in resumed.records] == [r["ndcg@10"] for r in whole.records]
    # The resumed process's hooks see every epoch, the replayed ones included.
    assert [r["epoch"] for r in resumed_context.run.state["epochs"]] == list(range(6))
    for a, b in zip(whole_model.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(a, b)
    # The finished fit's checkpoint stays, marked finished, until its run is stored.
    assert torch.load(checkpoint_path(resumed_context, "toy"), weights_only=False)["finished"]["epochs"] == 6


def test_a_finished_fit_is_reused_without_training_until_its_run_releases_it(tmp_path, capsys):
    first = toy_context(tmp_path)
    first_model, whole = fit_toy(first)
    after_first = torch.rand(3)  # what the uninterrupted process draws next
    assert first.run.state["checkpoints"] == [str(checkpoint_path(first, "toy"))]
    again = toy_context(tmp_path)
    params = resolve(ENGINE_PARAMS, "tiny", {"epochs": 6, "patience": 6, "batch_size": 16})
    model = Toy()
    steps = []

    def loss_of(rows):
        steps.append(len(rows))
        return model.net(X[torch.as_tensor(rows)]).pow(2).mean()

    reused = train(model, params, again, "toy", len(X), lambda epoch: batches(np.arange(len(X)), 16), loss_of,
                   lambda: {"ndcg@10": 0.0})
    assert steps == []  # nothing trained
    assert "finished in an earlier process" in capsys.readouterr().err
    for a, b in zip(first_model.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(torch.rand(3), after_first)  # the rest of the run draws what it would have
    assert [r["ndcg@10"] for r in reused.records] == [r["ndcg@10"] for r in whole.records]
    assert [r["epoch"] for r in again.run.state["epochs"]] == list(range(6))  # replayed to the hooks
    assert (reused.epochs, reused.best_epoch, reused.stop_reason) == (whole.epochs, whole.best_epoch,
                                                                       whole.stop_reason)
    assert reused.seconds == pytest.approx(whole.seconds) and reused.seconds_before_resume == reused.seconds
    assert release(again.run) == 1 and not checkpoint_path(again, "toy").exists()
    assert release(again.run) == 0


def test_an_unreadable_checkpoint_is_discarded_and_the_fit_starts_over(tmp_path, capsys):
    context = toy_context(tmp_path)
    path = checkpoint_path(context, "toy")
    path.write_bytes(b"half a file")
    _, result = fit_toy(context)
    assert result.resumed_from is None and result.epochs == 6
    assert str(path) in capsys.readouterr().err


def test_patience_counts_validations_and_restores_the_best_weights():
    model = torch.nn.Linear(1, 1)
    stopper = EarlyStopping(patience=2)
    assert not stopper.step(0.5, 0, model)
    best = {k: v.clone() for k, v in model.state_dict().items()}
    torch.nn.init.constant_(model.weight, 7.0)
    assert not stopper.step(0.4, 1, model)
    assert stopper.step(0.5, 2, model)  # equal is no gain
    stopper.restore(model)
    assert stopper.best_epoch == 0 and torch.equal(model.weight, best["weight"])


def test_validate_every_and_the_epoch_cap(tmp_path):
    context = toy_context(tmp_path)
    _, result = fit_toy(context, epochs=5, validate_every=2)
    # Epochs 1 and 3 by the cadence, 4 because it is the last.
    assert [r["epoch"] for r in result.records] == [1, 3, 4]
    assert result.stop_reason == "epoch cap" and result.epochs == 5
    assert context.run.state["training"]["toy"]["stop_reason"] == "epoch cap"
    samples = [r["samples"] for r in result.records]
    assert samples == [2 * len(X), 4 * len(X), 5 * len(X)]


def test_records_split_validation_time_from_training_time(tmp_path, monkeypatch):
    # A slow validation (0.05 s each) shows up in valid_seconds, not as training time.
    real = time.perf_counter
    clock = {"extra": 0.0}
    monkeypatch.setattr(time, "perf_counter", lambda: real() + clock["extra"])
    model = Toy()
    params = resolve(ENGINE_PARAMS, "tiny", {"epochs": 3, "patience": 3, "batch_size": 16})

    def validate() -> dict[str, float]:
        clock["extra"] += 5.0  # five "seconds" of validation
        return {"ndcg@10": 0.0}

    result = train(model, params, toy_context(tmp_path), "toy", len(X),
                   lambda epoch: batches(np.arange(len(X)), 16),
                   lambda rows: model.net(X[torch.as_tensor(rows)]).pow(2).mean(), validate)
    assert [r["valid_seconds"] for r in result.records] == pytest.approx([5.0, 10.0, 15.0], abs=0.5)
    assert all(r["seconds"] - r["valid_seconds"] < 5.0 for r in result.records)


def test_time_cap_stops_after_validating_the_running_epoch(tmp_path):
    _, result = fit_toy(toy_context(tmp_path), epochs=50, max_train_seconds=1e-9)
    assert result.stop_reason == "time cap"
    assert result.epochs == 1 and len(result.records) == 1
    assert result.records[0]["samples"] == 16  # one step, then the cap


def test_cosine_ends_at_its_step_budget_and_constant_holds_the_peak():
    def rates(kind: str, total: int, steps: int) -> list[float]:
        optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        scheduler = schedule(optimizer, kind, total, 0.1)
        out = []
        for _ in range(steps):
            out.append(scheduler.get_last_lr()[0])
            optimizer.step()
            scheduler.step()
        return out

    cosine = rates("cosine", 100, 150)
    assert cosine[0] == pytest.approx(0.1) and cosine[9] == pytest.approx(1.0)
    assert cosine[55] == pytest.approx(0.5, abs=0.02)
    assert max(cosine[100:]) == pytest.approx(0.0, abs=1e-12)
    constant = rates("constant", 100, 150)
    assert constant[9:] == [1.0] * 141


def test_schedule_steps_decouples_the_decay_from_the_epoch_cap(tmp_path):
    _, short = fit_toy(toy_context(tmp_path / "a"), epochs=3, schedule_steps=60)
    _, long = fit_toy(toy_context(tmp_path / "b"), epochs=6, schedule_steps=60)
    assert [r["lr"] for r in short.records] == [r["lr"] for r in long.records[:3]]
    assert [r["ndcg@10"] for r in short.records] == [r["ndcg@10"] for r in long.records[:3]]


def test_bf16_autocast_trains(tmp_path):
    _, fp32 = fit_toy(toy_context(tmp_path / "a"), epochs=3)
    _, bf16 = fit_toy(toy_context(tmp_path / "b"), epochs=3, precision="bf16")
    assert all(np.isfinite(r["loss"]) for r in bf16.records)
    assert bf16.records[-1]["loss"] < bf16.records[0]["loss"] * 1.5
    assert [r["loss"] for r in bf16.records] != [r["loss"] for r in fp32.records]


# --------------------------------------------------------------------------- a real SIGKILL


@pytest.mark.parametrize("method", ["tiger", "setrec"])
def test_run_killed_with_sigkill_mid_fit_resumes_to_the_uninterrupted_curve(method, tmp_path, shared_cache):
    params = {"recommender.epochs": 2, "recommender.patience": 2}
    whole, _, _ = execute(RunRequest(SMOKE, "loo", method, params=params), shared_cache, progress=False)
    # The killed run's cache starts with the embeddings and identifiers (not the checkpoints).
    cache, url = tmp_path / "cache", f"sqlite:///{tmp_path}/results.db"
    shutil.copytree(shared_cache, cache, ignore=shutil.ignore_patterns("checkpoints"))
    command = [sys.executable, "-m", "benchmark.cli", "run", "--dataset", SMOKE, "--split", "loo",
               "--methods", method, "--store", url, "--cache", str(cache), "--leaderboards", str(tmp_path / "b"),
               "--seeds", "0", "--no-progress"] + [f"--param={k}={v}" for k, v in params.items()]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not list((cache / "checkpoints").glob("*.pt")) and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the fit ended before a checkpoint was seen: nothing was killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not Store(url).rows()
    resumed = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from the checkpoint after epoch" in resumed.stderr
    (row,) = Store(url).rows()
    assert [e["ndcg@10"] for e in row["info"]["epochs"]] == [e["ndcg@10"] for e in whole["info"]["epochs"]]
    assert row["ranks"] == whole["ranks"]
    training = row["info"]["training"][f"train {'seq2seq' if method == 'tiger' else 'setrec'}"]
    assert training["resumed_from"] >= 1
    # The fitting time counts the killed process's epochs too (from the checkpoint).
    assert training["seconds_before_resume"] > 0
    assert row["train_seconds"] >= training["seconds"] > training["seconds_before_resume"]
    assert json.dumps(row["metrics"], sort_keys=True) == json.dumps(whole["metrics"], sort_keys=True)


def test_a_run_that_dies_after_its_fit_ranks_with_the_kept_weights_when_run_again(tmp_path, shared_cache, capsys):
    # Storing the row fails (as a kill while ranking or storing would end it): the fitted
    # weights stay, and the run made again trains nothing and gives the same row.
    params = {"recommender.epochs": 2, "recommender.patience": 2}
    cache = tmp_path / "cache"
    shutil.copytree(shared_cache, cache, ignore=shutil.ignore_patterns("checkpoints"))
    request = RunRequest(SMOKE, "loo", "tiger", params=params)

    def die(row):
        raise KeyboardInterrupt("killed before the row was stored")

    with pytest.raises(KeyboardInterrupt):
        execute(request, cache, progress=False, store_row=die)
    (kept,) = (cache / "checkpoints").glob("*.pt")
    assert torch.load(kept, weights_only=False)["finished"]["stop_reason"] in ("patience", "epoch cap")
    capsys.readouterr()
    stored = []
    again, _, _ = execute(request, cache, progress=False, store_row=stored.append)
    assert "finished in an earlier process" in capsys.readouterr().err
    assert stored == [again] and not list((cache / "checkpoints").glob("*.pt"))
    whole, _, _ = execute(request, tmp_path / "fresh", progress=False)
    assert again["ranks"] == whole["ranks"]
    assert [e["ndcg@10"] for e in again["info"]["epochs"]] == [e["ndcg@10"] for e in whole["info"]["epochs"]]
    # Its fitting time is the earlier process's.
    assert again["info"]["training"]["train seq2seq"]["seconds_before_resume"] > 0


# --------------------------------------------------------------------------- fits moved between machines


def test_a_fit_killed_on_one_machine_resumes_on_another_from_its_exported_checkpoint(tmp_path, capsys):
    # Machine A's cache holds a killed fit's checkpoint and an artifact its run reads; the
    # export folder carries both; machine B imports it and resumes to the uninterrupted fit.
    from benchmark.cli import main

    whole_model, whole = fit_toy(toy_context(tmp_path / "whole"))
    first = toy_context(tmp_path / "a", stop_at=3)
    with pytest.raises(KeyboardInterrupt):
        fit_toy(first)
    (tmp_path / "a" / "identifiers").mkdir()
    (tmp_path / "a" / "identifiers" / "codes.json").write_text("[1, 2]", encoding="utf-8")
    assert main(["checkpoints", "--cache", str(tmp_path / "a"), "--export", str(tmp_path / "carry")]) == 0
    listed = capsys.readouterr().out
    assert "1 fit(s) in flight exported" in listed
    row = [line for line in listed.splitlines() if line.startswith("toy ")][0].split()
    assert row[:7] == ["toy", "toy", "loo", "0", "tiny", "toy", "3"]  # method, dataset, split, seed, ..., epoch
    readme = (tmp_path / "carry" / "README.md").read_text(encoding="utf-8")
    assert "checkpoints --import" in readme and checkpoint_path(first, "toy").name in readme

    assert main(["checkpoints", "--cache", str(tmp_path / "b"), "--import", str(tmp_path / "carry")]) == 0
    assert "1 checkpoint(s) copied" in capsys.readouterr().out
    assert (tmp_path / "b" / "identifiers" / "codes.json").read_text(encoding="utf-8") == "[1, 2]"
    resumed_context = toy_context(tmp_path / "b")
    resumed_model, resumed = fit_toy(resumed_context)
    assert resumed.resumed_from == 3
    assert [r["ndcg@10"] for r in resumed.records] == [r["ndcg@10"] for r in whole.records]
    for a, b in zip(whole_model.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(a, b)


def test_importing_keeps_a_checkpoint_that_is_already_further(tmp_path, capsys):
    from benchmark.cli import main

    early = toy_context(tmp_path / "early", stop_at=2)
    with pytest.raises(KeyboardInterrupt):
        fit_toy(early)
    late = toy_context(tmp_path / "late", stop_at=4)
    with pytest.raises(KeyboardInterrupt):
        fit_toy(late)
    assert main(["checkpoints", "--cache", str(tmp_path / "early"), "--export", str(tmp_path / "carry")]) == 0
    capsys.readouterr()
    assert main(["checkpoints", "--cache", str(tmp_path / "late"), "--import", str(tmp_path / "carry")]) == 0
    out = capsys.readouterr().out
    assert "0 checkpoint(s) copied" in out and "1 kept as they were" in out
    assert torch.load(checkpoint_path(late, "toy"), weights_only=False)["epoch"] == 3


@pytest.mark.parametrize(("args", "message"), [
    (["--export", "{tmp}/carry"], "no checkpoint of a fit in flight"),
    (["--import", "{tmp}"], "no checkpoints/ folder in it"),
    (["--export", "{tmp}/x", "--import", "{tmp}/y"], "give --export or --import, not both"),
])
def test_checkpoints_command_faults_fail_in_one_line(args, message, tmp_path, capsys):
    from conftest import one_error_line

    from benchmark.cli import main

    code = main(["checkpoints", "--cache", str(tmp_path / "empty"), *[a.format(tmp=tmp_path) for a in args]])
    assert code == 2
    assert message in one_error_line(capsys)


def test_export_never_replaces_a_folder_it_did_not_write(tmp_path, capsys):
    from conftest import one_error_line

    from benchmark.cli import main

    killed = toy_context(tmp_path / "cache", stop_at=2)
    with pytest.raises(KeyboardInterrupt):
        fit_toy(killed)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me", encoding="utf-8")
    assert main(["checkpoints", "--cache", str(tmp_path / "cache"), "--export", str(mine)]) == 2
    assert "holds files this command did not write" in one_error_line(capsys)
    assert (mine / "notes.txt").read_text(encoding="utf-8") == "keep me"
    # An earlier export is replaced.
    carry = tmp_path / "carry"
    assert main(["checkpoints", "--cache", str(tmp_path / "cache"), "--export", str(carry)]) == 0
    (carry / "checkpoints" / "stale.pt").write_bytes(b"old")
    assert main(["checkpoints", "--cache", str(tmp_path / "cache"), "--export", str(carry)]) == 0
    assert not (carry / "checkpoints" / "stale.pt").exists()
