"""The ``cornac:<Model>`` bridge: Cornac's next-item models fitted on our training data, selected on
our validation, scored over the whole catalogue and ranked by our evaluator; the optional extra's
one-line errors. The smoke runs skip (with the reason) where the ``cornac`` extra is not installed."""

from __future__ import annotations

import sys
from importlib.util import find_spec

import numpy as np
import pytest
from conftest import one_error_line

from benchmark.cli import main
from benchmark.components import CaseBatch
from benchmark.errors import MissingExtraError, ParameterError, PluginError
from benchmark.evaluation.evaluator import evaluate
from benchmark.methods import resolve_method
from benchmark.runner import RunRequest, execute, fit

needs_cornac = pytest.mark.skipif(find_spec("cornac") is None,
                                  reason="the cornac extra is not installed: pip install 'genrec-bench[cornac]'")
SMALL = "synthetic:0,100,48"
# RPG's OPQ trains 256 codes per digit on the items with training interactions: 300 of them.
RPG_DATA = "synthetic:0,300,300"


def run_args(tmp_path, methods: str, *extra: str) -> list[str]:
    return ["run", "--dataset", SMALL, "--split", "loo", "--methods", methods, "--store",
            f"sqlite:///{tmp_path}/results.db", "--leaderboards", str(tmp_path / "boards"), "--no-progress", *extra]


def validation_batch(fitted) -> CaseBatch:
    valid = fitted.data.valid
    return CaseBatch(users=valid.users, histories=list(valid.histories), seen=list(valid.seen))


def check_scores(fitted) -> np.ndarray:
    """Scores of every validation case over the whole catalogue: the right shape, finite."""
    batch = validation_batch(fitted)
    scores = fitted.recommender.score(batch)
    assert scores.shape == (len(batch), fitted.data.n_items)
    assert np.isfinite(scores).all()
    return scores


def check_run(row, evaluation, split) -> None:
    assert evaluation.rankings.shape == (len(split.test), 20)
    assert (evaluation.rankings >= 0).all()
    assert 0.0 <= row["metrics"]["all"]["ndcg@10"] <= row["metrics"]["all"]["recall@10"] <= 1.0
    assert row["info"]["family"] == "cornac"


def check_test_ranking(fitted) -> None:
    """Our evaluator ranks the fitted model's scores of the test cases, seen items left out."""
    result = evaluate(fitted.recommender, fitted.split.test, fitted.data.n_items, progress=False)
    assert result.rankings.shape == (len(fitted.split.test), 20)
    seen = fitted.split.test.seen
    assert not any(set(ranking.tolist()) & set(items.tolist()) for ranking, items in zip(result.rankings, seen))
    assert 0.0 <= result.metrics["all"]["ndcg@10"] <= result.metrics["all"]["recall@10"] <= 1.0


# ---------------------------------------------------------------------- errors (no Cornac needed)


def test_unknown_model_is_one_line_listing_the_supported_models(tmp_path, capsys):
    assert main(run_args(tmp_path, "cornac:SASRek")) == 2
    line = one_error_line(capsys)
    assert "'SASRek' is not a supported Cornac next-item model; did you mean SASRec?" in line
    assert "SASRec, BERT4Rec, GRU4Rec, TIGER, LETTER, RPG" in line


def test_without_the_extra_the_method_fails_at_resolve_with_the_install_line(tmp_path, capsys, monkeypatch):
    # A None entry in sys.modules makes Cornac not importable, as it is without the extra.
    monkeypatch.setitem(sys.modules, "cornac", None)
    with pytest.raises(MissingExtraError, match=r"install with pip install 'genrec-bench\[cornac\]'"):
        resolve_method("cornac:TIGER", "tiny")
    assert main(run_args(tmp_path, "pop,cornac:TIGER")) == 2
    line = one_error_line(capsys)
    assert line == ("error: recommender 'cornac': Cornac is not installed; install with pip install "
                    "'genrec-bench[cornac]'")
    # Refused before anything was fitted: not even the method listed before it ran.
    assert not (tmp_path / "boards").exists()


@needs_cornac
def test_a_model_package_missing_from_the_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(MissingExtraError, match=r"Cornac's RPG needs faiss, not installed; install with pip"):
        resolve_method("cornac:RPG", "tiny")
    resolve_method("cornac:TIGER", "tiny")  # TIGER does not need faiss


@needs_cornac
@pytest.mark.parametrize(("params", "message"), [
    ({"recommender.extra": '{"n_epochs": 3}'}, "'extra' sets n_epochs, which the bridge sets"),
    ({"recommender.extra": '{"no_such_keyword": 1}'}, "Cornac's SASRec refused its keywords: .*no_such_keyword"),
    ({"recommender.extra": "[1]"}, "'extra' is \\[1\\]; write a JSON object"),
    ({"recommender.loss": "hinge"}, "Cornac's SASRec refused its keywords: loss='hinge' not supported"),
    ({"recommender.scoring": "beam"}, "Cornac's SASRec takes no 'scoring'"),
    ({"recommender.recipe": "NO_SUCH_CONFIG"}, None),
])
def test_bad_keywords_fail_at_resolve_in_one_line(params, message):
    if message is None:  # a recipe name is looked up in the model's Cornac package
        with pytest.raises(ParameterError, match="not a recipe of Cornac's TIGER; use defaults, paper, .*GRID_CONFIG"):
            resolve_method("cornac:TIGER", "tiny", params)
        return
    with pytest.raises(ParameterError, match=message) as error:
        resolve_method("cornac:SASRec", "tiny", params)
    assert "\n" not in str(error.value)


@needs_cornac
def test_cpu_profile_is_our_tiger_size_and_paper_leaves_cornac_its_recipe():
    cpu = resolve_method("cornac:TIGER", "cpu").recommender_params
    assert (cpu["d_model"], cpu["layers"], cpu["heads"], cpu["head_dim"], cpu["d_ff"]) == (64, 2, 4, 16, 256)
    assert (cpu["codebook_size"], cpu["levels"], cpu["tokenizer_epochs"]) == (256, 3, 1500)
    assert (cpu["epochs"], cpu["patience"], cpu["valid_cases"]) == (200, 10, 0)
    assert cpu["beams"] == 50  # room for the seen items Cornac's beam cannot prune
    paper = resolve_method("cornac:TIGER", "paper").recommender_params
    assert paper["recipe"] == "paper" and paper["d_model"] == 0 and paper["codebook_size"] == 0


# ---------------------------------------------------------------------- smoke runs


@needs_cornac
def test_sasrec_fits_our_training_data_selects_on_our_validation_and_ranks(shared_cache):
    row, evaluation, split = execute(RunRequest(SMALL, "loo", "cornac:SASRec", params={"recommender.epochs": 3}),
                                     shared_cache, progress=False)
    check_run(row, evaluation, split)
    # One record of our validation per Cornac epoch; the epoch kept is the best of them.
    records = row["info"]["epochs"]
    assert [r["epoch"] for r in records] == [0, 1, 2]
    training = row["info"]["training"]["train cornac:SASRec"]
    assert training["best_epoch"] == int(np.argmax([r["ndcg@10"] for r in records]))
    assert training["stop_reason"] == "epoch cap"
    assert row["valid_metrics"]["ndcg@10"] == pytest.approx(records[training["best_epoch"]]["ndcg@10"])
    assert row["backbone"] == "cornac SASRec d32 L1"


@needs_cornac
def test_patience_ends_a_cornac_loop_without_early_exit(shared_cache):
    # A learning rate too small to move the ranking: validation never gains after the first epoch.
    fitted = fit(RunRequest(SMALL, "loo", "cornac:SASRec", params={
        "recommender.epochs": 10, "recommender.patience": 2, "recommender.learning_rate": 1e-12}),
        shared_cache, progress=False)
    training = fitted.run.state["training"]["train cornac:SASRec"]
    assert (training["epochs"], training["best_epoch"], training["stop_reason"]) == (3, 0, "patience")
    check_scores(fitted)


@needs_cornac
def test_tiger_reads_text_embeddings_and_scores_its_beam(shared_cache):
    fitted = fit(RunRequest(SMALL, "loo", "cornac:TIGER", params={"recommender.epochs": 1, "recommender.beams": 12}),
                 shared_cache, progress=False)
    model = fitted.recommender.model
    assert model.train_set.item_feature.features.shape == (fitted.data.n_items, 384)  # MiniLM, every item
    assert (model.d_model, model.num_enc_layers, model.num_heads, model.rqvae_codebook_size) == (32, 1, 2, 32)
    scores = check_scores(fitted)
    # Constrained beam search: the beam's items get their log-likelihood, the rest -1e10.
    found = (scores > -1e9).sum(1)
    assert (found >= 1).all() and (found <= 12).all()
    check_test_ranking(fitted)
    assert fitted.run.state["training"]["train cornac:TIGER"]["epochs"] == 1
    # The beam cannot prune seen items: the diagnostics count the found items the protocol keeps.
    recommender = fitted.recommender
    recommender._found = []
    batch = validation_batch(fitted)
    batch.exclude = batch.seen
    scores = recommender.score(batch)
    kept = [int(((row > -1e9) & ~np.isin(np.arange(len(row)), seen)).sum()) for row, seen in zip(scores, batch.seen)]
    diagnostics = recommender.diagnostics()
    assert diagnostics["search/found_mean"] == pytest.approx(np.mean(kept))
    assert diagnostics["search/short_of_20_share"] == 1.0  # 12 beams can never leave 20


@needs_cornac
def test_rpg_reads_text_embeddings_and_decodes_on_its_graph(shared_cache):
    fitted = fit(RunRequest(RPG_DATA, "loo", "cornac:RPG", params={"recommender.epochs": 1}), shared_cache,
                 progress=False)
    model = fitted.recommender.model
    assert model.sid_table.shape == (fitted.data.n_items, 4)  # tiny: 4 OPQ digits per item
    assert model.scoring == "graph"  # validation scored exactly; the test ranking decodes on the graph
    scores = check_scores(fitted)
    assert ((scores > -1e9).sum(1) <= model.n_beams).all()
    check_test_ranking(fitted)


@needs_cornac
def test_rpg_refuses_a_catalogue_too_small_for_its_codebooks(shared_cache):
    with pytest.raises(PluginError, match="Cornac's RPG trains 256 OPQ codes per digit .* this split has 48"):
        fit(RunRequest(SMALL, "loo", "cornac:RPG", params={"recommender.epochs": 1}), shared_cache, progress=False)


@needs_cornac
def test_letter_selects_by_minus_our_ndcg_and_reads_the_cf_embeddings(shared_cache):
    # 48 items: 16 codes per level (LETTER's constrained k-means wants two items per code) in
    # 4 diversity groups; exact scoring ranks the whole catalogue.
    fitted = fit(RunRequest(SMALL, "loo", "cornac:LETTER", params={
        "recommender.epochs": 2, "recommender.tokenizer_epochs": 2, "recommender.codebook_size": 16,
        "recommender.scoring": "exact", "recommender.extra": '{"n_clusters": 4}'}), shared_cache, progress=False)
    model = fitted.recommender.model
    assert model.cf_embeddings.shape == (fitted.data.n_items, model.rqvae_latent_dim)
    records = fitted.run.state["epochs"]
    assert model.best_val_loss == pytest.approx(-max(r["ndcg@10"] for r in records))
    scores = check_scores(fitted)
    assert (scores > -1e9).all()
    check_test_ranking(fitted)


class Killed(Exception):
    """Stands for the process dying after a checkpoint was written."""


@needs_cornac
@pytest.mark.parametrize(("model", "dataset"), [("TIGER", SMALL), ("RPG", RPG_DATA)])
def test_a_killed_fit_resumes_to_the_uninterrupted_curve_and_ranking(tmp_path, shared_cache, capsys, model, dataset):
    import shutil

    import torch

    from benchmark import hookimpl, plugins

    request = RunRequest(dataset, "loo", f"cornac:{model}", params={"recommender.epochs": 4, "recommender.patience": 4})
    whole, _, _ = execute(request, shared_cache, progress=False)
    cache = tmp_path / "cache"
    shutil.copytree(shared_cache, cache, ignore=shutil.ignore_patterns("checkpoints"))

    class KillAtEpoch2:
        @hookimpl
        def on_epoch_end(self, run, epoch, valid_metrics):
            if epoch == 2:
                raise Killed

    plugins.pm.register(KillAtEpoch2(), name="kill-at-epoch-2")
    try:
        with pytest.raises(Killed):
            execute(request, cache, progress=False)
    finally:
        plugins.pm.unregister(name="kill-at-epoch-2")
    assert len(list((cache / "checkpoints").glob("*.pt"))) == 1  # written after epochs 0 and 1

    def die(row):
        raise Killed

    with pytest.raises(Killed):  # the resumed fit ends; its run dies before its row is stored
        execute(request, cache, progress=False, store_row=die)
    (kept,) = (cache / "checkpoints").glob("*.pt")
    assert torch.load(kept, weights_only=False)["finished"]["epochs"] == 4
    capsys.readouterr()
    resumed, _, _ = execute(request, cache, progress=False)  # trains nothing: the finished fit's weights
    assert "finished in an earlier process" in capsys.readouterr().err
    assert not list((cache / "checkpoints").glob("*.pt"))  # gone once the row is made
    training = resumed["info"]["training"][f"train cornac:{model}"]
    assert training["resumed_from"] == 2 and training["seconds_before_resume"] > 0
    assert training["epochs"] == whole["info"]["training"][f"train cornac:{model}"]["epochs"] == 4
    assert [e["ndcg@10"] for e in resumed["info"]["epochs"]] == [e["ndcg@10"] for e in whole["info"]["epochs"]]
    assert resumed["ranks"] == whole["ranks"]


@needs_cornac
def test_rpg_stopped_by_our_patience_ranks_as_when_cornac_stopped_itself(shared_cache, monkeypatch):
    # Until RPG fits could resume, Cornac's loop stopped itself (its early_stopping_patience
    # set to ours) and built its item graph from the weights it restored; the committed
    # cornac:RPG rows were made so. Now our validation ends the loop and the bridge builds
    # the graph: the same epochs, the same chosen weights, the same graph-decoded ranking.
    from dataclasses import replace

    import plugins.recommenders.cornac_bridge as bridge

    request = RunRequest(RPG_DATA, "loo", "cornac:RPG", params={"recommender.epochs": 20, "recommender.patience": 1})
    ours, _, _ = execute(request, shared_cache, progress=False)
    monkeypatch.setitem(bridge.MODELS, "RPG", replace(bridge.MODELS["RPG"], stops_itself=True, resumes=False))
    itself, _, _ = execute(request, shared_cache, progress=False)
    training = ours["info"]["training"]["train cornac:RPG"]
    assert training["stop_reason"] == "patience" and training["epochs"] < 20  # patience bound, not the cap
    assert training == {**itself["info"]["training"]["train cornac:RPG"], "seconds": training["seconds"]}
    assert ours["ranks"] == itself["ranks"]
