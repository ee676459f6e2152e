"""The conventional baselines: popularity, SASRec (CE and BCE), LightGCN, any RecBole model."""

from __future__ import annotations

from benchmark import hookimpl
from benchmark.components import MethodSpec

SEQUENTIAL_SPACE = (
    "recommender.learning_rate",
    "recommender.embedding_size",
    "recommender.n_layers",
    "recommender.dropout",
    "recommender.weight_decay",
)


@hookimpl
def register_methods(register) -> None:
    register(
        MethodSpec(
            name="pop", version="e3e2e8759bad",
            tokenizer="atomic",
            recommender="pop",
            description="most popular training items",
            baseline=True,
        )
    )
    for loss in ("CE", "BCE"):
        register(
            MethodSpec(
                name=f"sasrec-{loss.lower()}", version="e3e2e8759bad",
                tokenizer="atomic",
                recommender="recbole",
                description=f"SASRec (Kang & McAuley, ICDM'18) via RecBole, {loss} loss",
                defaults={"recommender.model": "SASRec", "recommender.loss_type": loss},
                search_space=SEQUENTIAL_SPACE,
                paper="Self-Attentive Sequential Recommendation, ICDM 2018",
                baseline=True,
            )
        )
    register(
        MethodSpec(
            name="lightgcn", version="e3e2e8759bad",
            tokenizer="atomic",
            recommender="recbole",
            description="LightGCN (He et al., SIGIR'20) via RecBole, BPR loss",
            defaults={
                "recommender.model": "LightGCN",
                "recommender.loss_type": "BPR",
                # One LightGCN epoch is ~1.5 s on ml-100k, so it can afford many.
                "recommender.batch_size": 2048,
                "recommender.epochs": 100,
                "recommender.patience": 5,
                "recommender.learning_rate": 5e-3,
            },
            search_space=(
                "recommender.learning_rate",
                "recommender.embedding_size",
                "recommender.n_layers",
                "recommender.reg_weight",
            ),
            # cpu: the boards' LightGCN stops by patience, never at a cap (it ran 22-73
            # epochs at patience 5 under tiny's cap of 100).
            profiles={"cpu": {"recommender.epochs": 1000, "recommender.patience": 10}},
            paper="LightGCN, SIGIR 2020",
            baseline=True,
        )
    )
    register(
        MethodSpec(
            name="recbole", version="e3e2e8759bad",
            tokenizer="atomic",
            recommender="recbole",
            description="any RecBole model: recbole:<ModelName>, e.g. recbole:GRU4Rec",
            argument_param="recommender.model",
            search_space=("recommender.learning_rate", "recommender.embedding_size"),
            baseline=True,
        )
    )
