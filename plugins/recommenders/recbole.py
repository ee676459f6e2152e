"""RecBole models (SASRec, LightGCN, any ``recbole:<ModelName>``) on *our* split.

RecBole trains the model on our training interactions only, written out as atomic
files (timestamps replaced by positions, since RecBole stores times as float32). We
drive its trainer one epoch at a time, select the epoch on our validation cases with our
evaluator, and score our cases through the model's ``full_sort_predict`` with RecBole's
internal ids mapped back to ours. RecBole's own split and metrics decide nothing.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark import hookimpl
from benchmark.cache import artifact_path, load_array, save_array
from benchmark.components import (
    CaseBatch,
    FitContext,
    ItemIdentifiers,
    Recommender,
    RecommenderSpec,
    TrainingData,
)
from benchmark.errors import ParameterError, PluginError
from benchmark.params import Param, resolve
from benchmark.training import EarlyStopping
from plugins.recommenders.recbole_compat import import_recbole

PARAMS = (
    Param("model", str, "SASRec", "RecBole model class name (SASRec, LightGCN, GRU4Rec, ...)"),
    # tiny: a 2-core CPU budget; one SASRec epoch over ml-100k's ~97k training prefixes
    # costs about 40 s there, so fewer, larger-step epochs.
    Param("epochs", int, 6, "maximum training epochs", profiles={"paper": 200}),
    Param("patience", int, 2, "epochs without validation NDCG@10 gain before stopping",
          profiles={"paper": 10}),
    Param("batch_size", int, 1024, "training batch size", low=128, high=4096, log=True,
          profiles={"paper": 256}),
    Param("learning_rate", float, 2e-3, "Adam learning rate", low=1e-4, high=1e-2, log=True,
          profiles={"paper": 1e-3}),
    Param("weight_decay", float, 0.0, "L2 weight decay", low=0.0, high=1e-3),
    Param("embedding_size", int, 64, "hidden / embedding size", choices=(32, 64, 128)),
    Param("n_layers", int, 2, "transformer or propagation layers", low=1, high=4),
    Param("dropout", float, 0.2, "hidden and attention dropout (sequential models)",
          low=0.0, high=0.5),
    Param("hidden_act", str, "relu",
          "feed-forward activation of transformer models (SASRec paper: ReLU; RecBole: gelu, "
          "about 25% slower on CPU)", choices=("relu", "gelu")),
    Param("loss_type", str, "CE",
          "CE (full softmax) or BCE (one sampled negative) for sequential models; BPR otherwise"),
    Param("reg_weight", float, 1e-4, "embedding L2 weight (LightGCN)", low=1e-6, high=1e-2,
          log=True),
    Param("extra", str, "{}", "JSON object of further RecBole config keys"),
)


class RecBoleRecommender(Recommender):
    accepts = frozenset({"atomic"})

    def __init__(self, params: dict, seed: int):
        self.params = params
        self.seed = seed
        try:
            self.extra = json.loads(params["extra"] or "{}")
        except json.JSONDecodeError as exc:
            raise ParameterError(f"recbole: parameter 'extra' is not a JSON object: {exc}") from None

    # ------------------------------------------------------------------ setup

    def _config(self, data_dir: Path, name: str):
        from recbole.config import Config
        from recbole.utils import ModelType, get_model

        p = self.params
        sequential_keys = {
            "MAX_ITEM_LIST_LENGTH": 20,
            "hidden_dropout_prob": p["dropout"],
            "hidden_act": p["hidden_act"],
            "attn_dropout_prob": p["dropout"],
        }
        config = {
            "data_path": str(data_dir),
            "checkpoint_dir": str(data_dir / "saved"),
            "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id"]},
            "USER_ID_FIELD": "user_id",
            "ITEM_ID_FIELD": "item_id",
            "TIME_FIELD": "timestamp",
            "seed": self.seed,
            "reproducibility": True,
            "use_gpu": torch.cuda.is_available(),
            "epochs": p["epochs"],
            "train_batch_size": p["batch_size"],
            "learning_rate": p["learning_rate"],
            "weight_decay": p["weight_decay"],
            "embedding_size": p["embedding_size"],
            "hidden_size": p["embedding_size"],
            "inner_size": 4 * p["embedding_size"],
            "n_layers": p["n_layers"],
            "reg_weight": p["reg_weight"],
            "loss_type": p["loss_type"],
            "eval_args": {"split": {"RS": [1.0, 0.0, 0.0]}, "order": "TO", "group_by": "user",
                          "mode": "full"},
            "show_progress": False,
            "state": "ERROR",
        }
        try:
            model_class = get_model(p["model"])
        except ValueError:
            raise PluginError(
                f"recbole: {p['model']!r} is not a RecBole model; see recbole.model for names "
                "(SASRec, GRU4Rec, BERT4Rec, LightGCN, BPR, ...)"
            ) from None
        if model_class.type == ModelType.SEQUENTIAL:
            config.update(sequential_keys)
        if model_class.type == ModelType.SEQUENTIAL and p["loss_type"] == "CE":
            config["train_neg_sample_args"] = None
        else:
            config["train_neg_sample_args"] = {"distribution": "uniform", "sample_num": 1}
        if p["loss_type"] == "BCE":
            # RecBole's sequential models know CE and BPR only; BCE (the SASRec paper's loss)
            # reuses BPR's negative sampling with our own loss function (see _bce_loss).
            config["loss_type"] = "BPR"
        config.update(self.extra)
        # Config parses sys.argv for overrides; ours are not meant for it.
        argv, sys.argv = sys.argv, sys.argv[:1]
        try:
            return Config(model=p["model"], dataset=name, config_dict=config)
        finally:
            sys.argv = argv

    def _write_atomic(self, data: TrainingData, directory: Path, name: str) -> None:
        """Training interactions only; the item file lists the whole catalog."""
        folder = directory / name
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"{name}.inter", "w") as f:
            f.write("user_id:token\titem_id:token\ttimestamp:float\n")
            for user, seq in enumerate(data.train):
                for position, item in enumerate(seq):
                    f.write(f"{user}\t{item}\t{position}\n")
        with open(folder / f"{name}.item", "w") as f:
            f.write("item_id:token\n")
            f.writelines(f"{item}\n" for item in range(data.n_items))

    # ------------------------------------------------------------------ training

    def fit(self, data: TrainingData, identifiers: ItemIdentifiers, context: FitContext) -> None:
        import_recbole()
        from recbole.data import create_dataset
        from recbole.data.utils import create_samplers, get_dataloader
        from recbole.utils import get_model, get_trainer, init_seed

        with tempfile.TemporaryDirectory(dir=context.cache_dir) as tmp:
            name = "genrec"
            self._write_atomic(data, Path(tmp), name)
            config = self._config(Path(tmp), name)
            init_seed(self.seed, True)
            dataset = create_dataset(config)
            built = dataset.build()
            train_sampler, _, _ = create_samplers(config, dataset, built)
            train_loader = get_dataloader(config, "train")(
                config, built[0], train_sampler, shuffle=True
            )
            init_seed(self.seed, True)
            self.model = get_model(config["model"])(config, train_loader.dataset).to(config["device"])
            torch.autograd.set_detect_anomaly(False)
            self.config = config
            self._index_maps(dataset, data.n_items, data.n_users)
            trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, self.model)
            stopper = EarlyStopping(self.params["patience"])
            epochs = tqdm(range(self.params["epochs"]), desc=f"train {config['model']}",
                          unit="epoch", disable=not context.progress, leave=False)
            loss_func = self._bce_loss if self.params["loss_type"] == "BCE" else None
            for epoch in epochs:
                loss = trainer._train_epoch(train_loader, epoch, loss_func=loss_func,
                                            show_progress=False)
                loss = float(sum(loss)) if isinstance(loss, tuple) else float(loss)
                metrics = context.validate(self)
                metrics["loss"] = loss
                epochs.set_postfix(loss=f"{loss:.3f}", ndcg10=f"{metrics['ndcg@10']:.4f}")
                context.epoch_end(epoch, metrics)
                if stopper.step(metrics["ndcg@10"], self.model):
                    break
            stopper.restore(self.model)
            self.epochs_trained = epoch + 1
            self.best_epoch = stopper.best_epoch + 1
        embeddings = self.item_embeddings()
        if embeddings is not None:
            save_array(cf_cache_path(context.cache_dir, data, self.params, self.seed), embeddings)

    def _bce_loss(self, interaction) -> torch.Tensor:
        """Binary cross-entropy with one sampled negative per target (SASRec paper, eq. 6)."""
        model = self.model
        if not hasattr(model, "item_embedding") or not hasattr(model, "ITEM_SEQ"):
            raise PluginError(
                f"recbole: loss_type BCE needs a sequential model with item_embedding; "
                f"{self.params['model']} has none, use CE or BPR"
            )
        sequence = model.forward(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
        positive = (sequence * model.item_embedding(interaction[model.POS_ITEM_ID])).sum(-1)
        negative = (sequence * model.item_embedding(interaction[model.NEG_ITEM_ID])).sum(-1)
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        return bce(positive, torch.ones_like(positive)) + bce(negative, torch.zeros_like(negative))

    def _index_maps(self, dataset, n_items: int, n_users: int) -> None:
        """Our item index -> RecBole internal id, and the same for users (0 = unknown)."""
        item_tokens = dataset.field2id_token["item_id"]
        self.recbole_item_of = np.zeros(n_items, np.int64)
        for internal, token in enumerate(item_tokens):
            if internal:
                self.recbole_item_of[int(token)] = internal
        user_tokens = dataset.field2id_token["user_id"]
        self.recbole_user_of = np.zeros(n_users, np.int64)
        for internal, token in enumerate(user_tokens):
            if internal:
                self.recbole_user_of[int(token)] = internal

    # ------------------------------------------------------------------ scoring

    def score(self, batch: CaseBatch) -> np.ndarray:
        from recbole.data.interaction import Interaction

        max_len = self.config["MAX_ITEM_LIST_LENGTH"]
        seq = np.zeros((len(batch), max_len), np.int64)
        lengths = np.zeros(len(batch), np.int64)
        for row, history in enumerate(batch.histories):
            history = self.recbole_item_of[history[-max_len:]]
            seq[row, : len(history)] = history
            lengths[row] = max(1, len(history))
        interaction = Interaction(
            {
                "user_id": torch.as_tensor(self.recbole_user_of[batch.users]),
                "item_id_list": torch.as_tensor(seq),
                "item_length": torch.as_tensor(lengths),
            }
        ).to(self.config["device"])
        self.model.eval()
        with torch.no_grad():
            scores = self.model.full_sort_predict(interaction).view(len(batch), -1).cpu()
        return scores[:, torch.as_tensor(self.recbole_item_of)].numpy()

    def item_embeddings(self) -> np.ndarray | None:
        """Trained item embeddings in our item order (the CF embeddings later methods use)."""
        weight = getattr(self.model, "item_embedding", None)
        if weight is None:
            return None
        return weight.weight.detach().cpu().numpy()[self.recbole_item_of]

    def backbone(self) -> str:
        p = self.params
        return f"{p['model']} d{p['embedding_size']} L{p['n_layers']}"


def cf_cache_path(cache_dir: str, data: TrainingData, params: dict, seed: int) -> Path:
    """Cache path of the item embeddings a RecBole model learnt on ``data``'s training part."""
    return artifact_path(cache_dir, "cf", data.digest, params, seed)


def cf_embeddings(data: TrainingData, context: FitContext, seed: int = 0) -> np.ndarray:
    """SASRec (CE loss) item embeddings fitted on training interactions only, shape
    (n_items, d): the CF embeddings LETTER and SETRec consume. Trained once and cached."""
    params = resolve(PARAMS, context.profile, {"model": "SASRec", "loss_type": "CE"}, "recbole")
    path = cf_cache_path(context.cache_dir, data, params, seed)
    cached = load_array(path)
    if cached is not None:
        return cached
    model = RecBoleRecommender(params, seed)
    model.fit(data, ItemIdentifiers(kind="atomic", n_items=data.n_items), context)
    return load_array(path)


@hookimpl
def register_recommenders(register) -> None:
    register(
        RecommenderSpec(
            name="recbole",
            factory=lambda params, seed: RecBoleRecommender(params, seed),
            accepts=RecBoleRecommender.accepts,
            description="any RecBole 1.2.1 model trained on our split and scored by our evaluator",
            params=PARAMS,
        )
    )
