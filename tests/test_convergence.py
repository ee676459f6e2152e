"""The ``cpu`` profile (methods trained until validation stops improving) and the boards'
convergence reporting: one profile per board, epochs run and chosen, why each fit stopped,
the not-converged mark in every table, and the learning-curve plot."""

from __future__ import annotations

import csv

import pytest

from benchmark import plugins
from benchmark.cli import main
from benchmark.errors import MissingExtraError
from benchmark.leaderboard import NOT_CONVERGED, board_profile
from benchmark.methods import resolve_method

ENGINE_TRAINED = ("tiger", "letter-tiger", "p5-tid", "p5-semid", "p5-cid", "setrec", "setrec-decoder", "lcrec",
                  "letter-lcrec", "lamia", "bigrec")


def _value(resolved, dotted: str):
    part, name = dotted.split(".", 1)
    return (resolved.tokenizer_params if part == "tokenizer" else resolved.recommender_params)[name]


@pytest.mark.parametrize("method", sorted(f"{m}:GRU4Rec" if spec.argument_param else m
                                          for m, spec in plugins.get_methods().items()))
def test_every_method_resolves_under_cpu_with_a_budget_above_tiny(method):
    try:
        cpu, tiny = resolve_method(method, "cpu"), resolve_method(method, "tiny")
    except MissingExtraError as error:  # a method of an optional extra that is not installed (cornac)
        pytest.skip(str(error))
    if "epochs" in cpu.recommender_params:
        assert cpu.recommender_params["epochs"] > tiny.recommender_params["epochs"]
        assert cpu.recommender_params["patience"] >= tiny.recommender_params["patience"]


@pytest.mark.parametrize("method", ENGINE_TRAINED)
def test_cpu_trains_engine_methods_like_the_papers_but_smaller(method):
    resolved = resolve_method(method, "cpu")
    p = resolved.recommender_params
    # A constant rate after a short warm-up: no epoch cap decides where training ends.
    assert (p["schedule"], p["epochs"], p["patience"], p["max_train_seconds"]) == ("constant", 200, 10, 28800.0)
    # Early stopping reads every validation case under cpu (a 500-case sample's noise stopped fits early).
    assert p["valid_cases"] == 0
    assert p["warmup"] * p["schedule_steps"] == 50
    assert p["prefixes_per_user"] == 20
    if "codebook_size" in resolved.tokenizer_params:  # RQ-VAE, LETTER, LC-Rec, LAMIA codes
        assert resolved.tokenizer_params["codebook_size"] == 256


def test_recbole_baselines_get_caps_no_fit_reaches_under_cpu():
    assert _value(resolve_method("sasrec-ce", "cpu"), "recommender.epochs") == 300
    lightgcn = resolve_method("lightgcn", "cpu")
    assert (_value(lightgcn, "recommender.epochs"), _value(lightgcn, "recommender.patience")) == (1000, 10)


def test_a_board_shows_cpu_rows_when_it_has_them():
    rows = [{"profile": "tiny", "created_at": "2026-12-02"}, {"profile": "cpu", "created_at": "2026-12-01"},
            {"profile": "paper", "created_at": "2026-12-03"}]
    assert board_profile(rows) == "cpu"
    assert board_profile([r for r in rows if r["profile"] != "cpu"]) == "paper"


def test_board_reports_stops_marks_capped_rows_and_draws_learning_curves(tmp_path):
    boards = tmp_path / "boards"
    base = ["run", "--dataset", "synthetic", "--seeds", "0", "--store", f"sqlite:///{tmp_path}/r.db",
            "--leaderboards", str(boards), "--no-progress"]
    assert main([*base, "--methods", "pop"]) == 0  # a tiny row: left out once cpu rows exist
    # Under cpu: one SASRec fit ends at a 2-epoch cap, the other by patience after one flat epoch.
    assert main([*base, "--profile", "cpu", "--methods", "pop,sasrec-ce,sasrec-bce",
                 "--param", "sasrec-ce:recommender.epochs=2",
                 "--param", "sasrec-bce:recommender.patience=1", "--param", "sasrec-bce:recommender.epochs=40"]) == 0
    board = (boards / "synthetic-loo.md").read_text()
    table = board.split("## Every metric")[1].split("## Convergence")[0]
    header = next(line for line in table.splitlines() if line.startswith("| Method"))
    assert "Epochs run/best" in header and "Stopped by" in header
    line = {row.split("|")[1].strip(): row for row in table.splitlines() if row.startswith("| ")}
    assert f"sasrec-ce {NOT_CONVERGED}" in line and "| 2/" in line[f"sasrec-ce {NOT_CONVERGED}"]
    assert "epoch cap x1" in line[f"sasrec-ce {NOT_CONVERGED}"]
    assert "sasrec-bce" in line and "patience x1" in line["sasrec-bce"]
    assert "| pop " in table and "| cpu " in line["pop"]
    # The mark follows the row into the popularity-group table too.
    groups = board.split("## Recall@10 and NDCG@10 by item popularity group")[1].split("##")[0]
    assert f"sasrec-ce {NOT_CONVERGED}" in groups
    convergence = board.split("## Convergence")[1].split("\n## ")[0]
    assert f"- sasrec-ce {NOT_CONVERGED}: seed 0: epoch cap after 2 epochs" in convergence
    assert "sasrec-bce" not in convergence.split("Not converged:")[1]
    assert "(synthetic-loo-curves.png)" in convergence and (boards / "synthetic-loo-curves.png").stat().st_size
    left = board.split("## Runs left out of this board")[1]
    assert "pop, seeds 0: profile `tiny`; this board shows `cpu` rows" in left
    assert "## Not run under `cpu` yet" not in board  # pop has cpu rows too
    with open(boards / "synthetic-loo.csv") as f:
        records = {r["method"]: r for r in csv.DictReader(f)}
    assert records["sasrec-ce"]["converged"] == "False" and records["sasrec-bce"]["converged"] == "True"


def test_a_board_says_which_methods_have_no_rows_of_its_profile_yet(tmp_path):
    boards = tmp_path / "boards"
    base = ["run", "--dataset", "synthetic", "--seeds", "0", "--store", f"sqlite:///{tmp_path}/r.db",
            "--leaderboards", str(boards), "--no-progress"]
    assert main([*base, "--methods", "pop,sasrec-ce", "--param", "sasrec-ce:recommender.epochs=1"]) == 0
    assert main([*base, "--profile", "cpu", "--methods", "pop"]) == 0
    board = (boards / "synthetic-loo.md").read_text()
    pending = board.split("## Not run under `cpu` yet")[1].split("\n## ")[0]
    assert "under another profile only: sasrec-ce." in pending
    assert ("`genrec-bench run --dataset synthetic --split loo --profile cpu --methods sasrec-ce --seeds 0,1,2`"
            in pending)
    # Every registered method without any run here is named too, with the command that adds it.
    never = board.split("## Registered methods with no run on this board")[1].split("\n## ")[0]
    listed = never.split("have no run here yet: ")[1].split(" (methods written")[0].split(", ")
    from benchmark import plugins
    registered = {name for name, spec in plugins.get_methods().items() if not spec.argument_param}
    assert set(listed) == registered - {"pop", "sasrec-ce"} and "tiger" in listed and "recbole" not in listed
    assert f"--profile cpu --methods {','.join(listed)} --seeds 0,1,2`" in never


def test_fit_time_counts_the_processes_before_a_resume():
    from benchmark.leaderboard import fit_seconds

    # Stored before train_seconds counted them: the training record holds the total.
    resumed = {"train_seconds": 100.0, "tokenizer_seconds": 5.0,
               "info": {"training": {"train seq2seq": {"seconds": 300.0, "resumed_from": 10}}}}
    assert fit_seconds(resumed) == 305.0
    # Stored since: train_seconds already holds it, and waiting for the ranking is not in the record.
    whole = {"train_seconds": 320.0, "tokenizer_seconds": 5.0,
             "info": {"training": {"train seq2seq": {"seconds": 300.0, "seconds_before_resume": 200.0}}}}
    assert fit_seconds(whole) == 320.0
    assert fit_seconds({"train_seconds": 7.0, "info": None}) == 7.0
    assert fit_seconds({"train_seconds": None, "info": {}}) is None
