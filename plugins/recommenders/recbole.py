"""RecBole models (SASRec, LightGCN, any ``recbole:<ModelName>``) on *our* split.

RecBole trains the model on our training interactions only, written out as atomic
files (timestamps replaced by positions, since RecBole stores times as float32). We
train one epoch at a time, select the epoch on our validation cases with our evaluator,
and score our cases through the model's ``full_sort_predict`` with RecBole's internal ids
mapped back to ours. RecBole's own split and metrics decide nothing. Model input is
capped at ``TrainingData.max_history`` items, in training and in scoring.

**SASRec's training objective** (parameter ``objective``):

- ``window`` (default): the SASRec paper's objective (Kang & McAuley, ICDM'18, sec. III-E
  "Network Training"). Each user's training sequence is cut into windows of
  ``max_history`` items and every position of a window predicts its next item, all in one
  forward pass: CE over the whole catalog (as Klenitskiy & Vasilev, RecSys'23, train it),
  or BCE with one sampled negative per position, the paper's loss. Padding positions add
  nothing to the loss. ``batch_size`` counts predicted positions here, so a batch holds
  ``batch_size // max_history`` windows and one update sees about as many targets as a
  ``prefix`` batch does. RecBole's network is used as is (embeddings, layers, dropout,
  LayerNorm), only its last-position gather is left out, so scoring is unchanged.
- ``prefix``: RecBole's trainer, one forward pass per training prefix of which only the
  last position is trained: about ``max_history`` times the compute per epoch.

Every other model trains through RecBole's trainer whatever ``objective`` says.

**Users without training interactions** (``train[u]`` empty: most temporal-split test
users) are RecBole's padding user 0, so a general (non-sequential) model would give all
of them one identical ranking. We fold them in instead: the mean of their history items'
final item embeddings (LightGCN: the propagated ones; MF-style models: ``item_embedding``)
dotted with every item's final embedding. A general model with no item table cannot serve
them and raises :class:`PluginError`. Sequential models read the case's history anyway.

**Propagation caches.** LightGCN, NGCF, SGL, DGCF, NCL, SpectralCF and KGAT keep their
propagated embeddings in ``restore_*`` attributes (DMF its item tower in
``i_embedding``) and recompute them only when they are ``None``. ``load_state_dict``
leaves them alone, so after the best epoch's weights are restored they are cleared, or the
model would score with the last epoch's propagation.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark import hookimpl
from benchmark.components import (
    CaseBatch,
    FitContext,
    ItemIdentifiers,
    Recommender,
    RecommenderSpec,
    TrainingData,
)
from benchmark.errors import ParameterError, PluginError
from benchmark.nn.engine import EarlyStopping
from benchmark.params import Param
from benchmark.recbole_compat import import_recbole

OBJECTIVES = ("window", "prefix")
# Besides the restore_* convention, the one cache in RecBole's other_parameter_name lists
# that is recomputed when None (DMF). The rest (EASE's interaction_matrix, ItemKNN's w,
# FDSA's feature_embed_layer, ...) is model state and must stay.
RECOMPUTED_WHEN_NONE = frozenset({"i_embedding"})

PARAMS = (
    Param("model", str, "SASRec", "RecBole model class name (SASRec, LightGCN, GRU4Rec, ...)"),
    Param("objective", str, "window",
          "SASRec training: 'window' (every position of a max_history window predicts its next "
          "item, one pass per window; the SASRec paper's) or 'prefix' (RecBole's trainer, one pass "
          "per training prefix); other models always use RecBole's trainer", choices=OBJECTIVES,
          options=OBJECTIVES),
    # tiny: a 2-core CPU budget. A windowed SASRec epoch over ml-100k loo costs about 2 s
    # there (plus 3 s set-up), and validation NDCG@10 levels off after about 4 epochs
    # (leaderboards/sasrec-objective.md), so 12 epochs keep a fit near 30 s.
    # cpu (the boards): caps no fit reaches, stopping by patience.
    Param("epochs", int, 12, "maximum training epochs", profiles={"paper": 200, "cpu": 300}, minimum=1),
    Param("patience", int, 4, "epochs without validation NDCG@10 gain before stopping", minimum=1,
          profiles={"paper": 10, "cpu": 10}),
    Param("batch_size", int, 1024,
          "training batch size (objective 'window': predicted positions per batch)",
          low=128, high=4096, log=True, profiles={"paper": 256}, minimum=1),
    Param("learning_rate", float, 2e-3, "Adam learning rate", low=1e-4, high=1e-2, log=True,
          profiles={"paper": 1e-3}, minimum=0.0),
    Param("weight_decay", float, 0.0, "L2 weight decay", low=0.0, high=1e-3, minimum=0.0),
    Param("embedding_size", int, 64, "hidden / embedding size", choices=(32, 64, 128), minimum=1),
    Param("n_layers", int, 2, "transformer or propagation layers", low=1, high=4, minimum=1),
    Param("dropout", float, 0.2, "hidden and attention dropout (sequential models)",
          low=0.0, high=0.5, minimum=0.0, maximum=0.9),
    Param("hidden_act", str, "relu",
          "feed-forward activation of transformer models (SASRec paper: ReLU; RecBole: gelu, "
          "about 25% slower on CPU)", choices=("relu", "gelu")),
    Param("loss_type", str, "CE",
          "CE (full softmax) or BCE (one sampled negative) for sequential models; BPR otherwise"),
    Param("reg_weight", float, 1e-4, "embedding L2 weight (LightGCN)", low=1e-6, high=1e-2,
          log=True, minimum=0.0),
    Param("extra", str, "{}", "JSON object of further RecBole config keys"),
)


class RecBoleRecommender(Recommender):
    accepts = frozenset({"atomic"})

    def __init__(self, params: dict, seed: int):
        check_params(params)
        self.params = params
        self.seed = seed
        self.extra = json.loads(params["extra"] or "{}")

    # ------------------------------------------------------------------ setup

    def _config(self, data_dir: Path, name: str, max_history: int):
        from recbole.config import Config
        from recbole.utils import ModelType, get_model

        p = self.params
        sequential_keys = {
            "MAX_ITEM_LIST_LENGTH": max_history,
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
        from recbole.utils import ModelType, get_model, init_seed

        self.max_history = data.max_history
        with tempfile.TemporaryDirectory(dir=context.cache_dir) as tmp:
            name = "genrec"
            self._write_atomic(data, Path(tmp), name)
            config = self._config(Path(tmp), name, data.max_history)
            self.config = config
            init_seed(self.seed, True)
            dataset = create_dataset(config)
            self._index_maps(dataset, data.n_items, data.n_users)
            model_class = get_model(config["model"])
            if self.params["objective"] == "window" and trains_on_windows(model_class):
                init_seed(self.seed, True)
                self.model = model_class(config, dataset).to(config["device"])
                train_epoch = self._window_trainer(data)
            else:
                train_epoch = self._recbole_trainer(config, dataset, model_class)
            self.sequential = self.model.type == ModelType.SEQUENTIAL
            torch.autograd.set_detect_anomaly(False)
            self._train(train_epoch, context)

    def _train(self, train_epoch: Callable[[int], float], context: FitContext) -> None:
        """One training epoch, one validation, until early stopping; keep the best epoch."""
        stopper = EarlyStopping(self.params["patience"])
        epochs = tqdm(range(self.params["epochs"]), desc=f"train {self.params['model']}",
                      unit="epoch", disable=not context.progress, leave=False)
        started, reason = time.perf_counter(), "epoch cap"
        for epoch in epochs:
            loss = train_epoch(epoch)
            metrics = context.validate(self)
            metrics["loss"] = loss
            metrics["seconds"] = time.perf_counter() - started
            epochs.set_postfix(loss=f"{loss:.3f}", ndcg10=f"{metrics['ndcg@10']:.4f}")
            context.epoch_end(epoch, metrics)
            if stopper.step(metrics["ndcg@10"], epoch, self.model):
                reason = "patience"
                break
        stopper.restore(self.model)
        # The same summary as the training engine's, for the boards' convergence columns.
        context.run.state.setdefault("training", {})[f"train {self.params['model']}"] = {
            "epochs": epoch + 1, "best_epoch": stopper.best_epoch, "stop_reason": reason,
            "seconds": round(time.perf_counter() - started, 3), "resumed_from": None}
        clear_propagation_caches(self.model)
        self.epochs_trained = epoch + 1
        self.best_epoch = stopper.best_epoch + 1

    def _recbole_trainer(self, config, dataset, model_class) -> Callable[[int], float]:
        """RecBole's own dataloader and trainer (prefix objective for sequential models)."""
        from recbole.data.utils import create_samplers, get_dataloader
        from recbole.utils import get_trainer, init_seed

        built = dataset.build()
        train_sampler, _, _ = create_samplers(config, dataset, built)
        train_loader = get_dataloader(config, "train")(config, built[0], train_sampler, shuffle=True)
        init_seed(self.seed, True)
        self.model = model_class(config, train_loader.dataset).to(config["device"])
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, self.model)
        loss_func = self._bce_loss if self.params["loss_type"] == "BCE" else None

        def train_epoch(epoch: int) -> float:
            loss = trainer._train_epoch(train_loader, epoch, loss_func=loss_func, show_progress=False)
            return float(sum(loss)) if isinstance(loss, tuple) else float(loss)

        return train_epoch

    def _window_trainer(self, data: TrainingData) -> Callable[[int], float]:
        """The SASRec paper's objective: every position of every window predicts its next item."""
        model, device = self.model, self.config["device"]
        sequences = [self.recbole_item_of[seq] for seq in data.train]
        inputs, targets, owners = training_windows(sequences, data.max_history)
        if not len(inputs):
            raise PluginError(
                f"recbole: no user has two training interactions, so {self.params['model']} has "
                "nothing to learn from; check the dataset's k-core filter and the split"
            )
        negatives = NegativeSampler(sequences, model.n_items) if self.params["loss_type"] == "BCE" else None
        optimizer = torch.optim.Adam(model.parameters(), lr=self.params["learning_rate"],
                                     weight_decay=self.params["weight_decay"])
        windows_per_batch = max(1, self.params["batch_size"] // data.max_history)
        rng = np.random.default_rng(self.seed)

        def train_epoch(epoch: int) -> float:
            model.train()
            total = 0.0
            order = rng.permutation(len(inputs))
            for start in range(0, len(order), windows_per_batch):
                index = order[start: start + windows_per_batch]
                target = torch.as_tensor(targets[index], device=device)
                hidden = transformer_outputs(model, torch.as_tensor(inputs[index], device=device))
                real = target > 0
                hidden, target = hidden[real], target[real]
                if negatives is None:
                    loss = torch.nn.functional.cross_entropy(hidden @ model.item_embedding.weight.T, target)
                else:
                    users = np.broadcast_to(owners[index, None], real.shape)[real.cpu().numpy()]
                    negative = torch.as_tensor(negatives.sample(users, rng), device=device)
                    loss = binary_cross_entropy(hidden, model.item_embedding(target), model.item_embedding(negative))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                # Summed over batches, as RecBole's trainer reports it.
                total += loss.item()
            return total

        return train_epoch

    def _bce_loss(self, interaction) -> torch.Tensor:
        """The SASRec paper's binary cross-entropy with one sampled negative per target,
        on RecBole's prefix batches."""
        model = self.model
        if not hasattr(model, "item_embedding") or not hasattr(model, "ITEM_SEQ"):
            raise PluginError(
                f"recbole: loss_type BCE needs a sequential model with item_embedding; "
                f"{self.params['model']} has none, use CE or BPR"
            )
        sequence = model.forward(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
        return binary_cross_entropy(sequence, model.item_embedding(interaction[model.POS_ITEM_ID]),
                                    model.item_embedding(interaction[model.NEG_ITEM_ID]))

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

        seq = np.zeros((len(batch), self.max_history), np.int64)
        lengths = np.zeros(len(batch), np.int64)
        for row, history in enumerate(batch.histories):
            history = self.recbole_item_of[history[-self.max_history:]]
            seq[row, : len(history)] = history
            lengths[row] = max(1, len(history))
        users = self.recbole_user_of[batch.users]
        interaction = Interaction(
            {
                "user_id": torch.as_tensor(users),
                "item_id_list": torch.as_tensor(seq),
                "item_length": torch.as_tensor(lengths),
            }
        ).to(self.config["device"])
        self.model.eval()
        with torch.no_grad():
            scores = self.model.full_sort_predict(interaction).view(len(batch), -1)
            new_users = np.flatnonzero(users == 0)
            if len(new_users) and not self.sequential:
                scores[torch.as_tensor(new_users)] = self._fold_in([batch.histories[r] for r in new_users])
        return scores.cpu()[:, torch.as_tensor(self.recbole_item_of)].numpy()

    def _fold_in(self, histories: list[np.ndarray]) -> torch.Tensor:
        """Scores over RecBole's items for users it never trained on: the mean of their
        history items' final embeddings dotted with every item's."""
        items = self._final_item_table()
        profiles = torch.zeros(len(histories), items.shape[1], device=items.device)
        for row, history in enumerate(histories):
            if len(history):
                profiles[row] = items[torch.as_tensor(self.recbole_item_of[history])].mean(0)
        return profiles @ items.T

    def _final_item_table(self) -> torch.Tensor:
        """The item vectors the model scores with: graph models' propagated ones (cached by
        the ``full_sort_predict`` call just before), else the ``item_embedding`` table."""
        propagated = getattr(self.model, "restore_item_e", None)
        if propagated is not None:
            return propagated
        table = getattr(self.model, "item_embedding", None)
        if isinstance(table, torch.nn.Embedding):
            return table.weight
        raise PluginError(
            f"recbole: {self.params['model']} cannot serve users without training interactions: "
            "it has no item embedding table (restore_item_e or item_embedding) to fold their "
            "history into; use LightGCN, BPR or a sequential model (SASRec, GRU4Rec), or the loo "
            "split, where every user has training interactions"
        )

    def item_embeddings(self) -> np.ndarray | None:
        """Trained item embeddings in our item order (the CF embeddings later methods use)."""
        weight = getattr(self.model, "item_embedding", None)
        if weight is None:
            return None
        return weight.weight.detach().cpu().numpy()[self.recbole_item_of]

    def backbone(self) -> str:
        p = self.params
        return f"{p['model']} d{p['embedding_size']} L{p['n_layers']}"


# ---------------------------------------------------------------------- helpers


def clear_propagation_caches(model: torch.nn.Module) -> None:
    """Set to None every cache the model declares and RecBole recomputes when None."""
    for name in getattr(model, "other_parameter_name", ()):
        if name.startswith("restore_") or name in RECOMPUTED_WHEN_NONE:
            setattr(model, name, None)


def trains_on_windows(model_class: type) -> bool:
    """SASRec and its subclasses: RecBole's causal transformer layout (trm_encoder,
    item_embedding, position_embedding, get_attention_mask). BERT4Rec has the same layout
    but attends both ways, so next-item windows would train a different model."""
    from recbole.model.sequential_recommender import SASRec

    return issubclass(model_class, SASRec)


def transformer_outputs(model: torch.nn.Module, item_seq: torch.Tensor) -> torch.Tensor:
    """SASRec's forward without its last-position gather: the output at every position,
    shape (batch, length, hidden). Same modules in the same order as RecBole's forward."""
    positions = torch.arange(item_seq.size(1), device=item_seq.device).unsqueeze(0).expand_as(item_seq)
    hidden = model.item_embedding(item_seq) + model.position_embedding(positions)
    hidden = model.dropout(model.LayerNorm(hidden))
    return model.trm_encoder(hidden, model.get_attention_mask(item_seq), output_all_encoded_layers=True)[-1]


def training_windows(sequences: list[np.ndarray], length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs and targets (n_windows, length), right-padded with 0 as RecBole pads, and each
    window's user. Windows are cut from the end, so the latest is full and every transition
    (item t -> item t+1) of a sequence is a target exactly once."""
    inputs, targets, owners = [], [], []
    for user, seq in enumerate(sequences):
        for end in range(len(seq), 1, -length):
            chunk = seq[max(0, end - length - 1): end]
            row_in, row_out = np.zeros(length, np.int64), np.zeros(length, np.int64)
            row_in[: len(chunk) - 1], row_out[: len(chunk) - 1] = chunk[:-1], chunk[1:]
            inputs.append(row_in)
            targets.append(row_out)
            owners.append(user)
    if not inputs:
        empty = np.zeros((0, length), np.int64)
        return empty, empty, np.zeros(0, np.int64)
    return np.stack(inputs), np.stack(targets), np.array(owners, np.int64)


class NegativeSampler:
    """Negatives drawn uniformly from the items outside the user's training items (SASRec
    paper: j not in S^u), exactly and without rejection rounds."""

    def __init__(self, sequences: list[np.ndarray], n_items: int):
        self.n_items = n_items
        seen = [np.unique(np.asarray(seq, np.int64)) for seq in sequences]
        self.seen_count = np.array([len(items) for items in seen], np.int64)
        self.start = np.cumsum(self.seen_count) - self.seen_count
        # The j-th smallest seen item s of user u has s - j - 1 unseen items below it; keyed
        # by user these counts sort globally, so one searchsorted serves every user.
        self.unseen_below = np.concatenate(
            [user * n_items + items - np.arange(len(items)) - 1 for user, items in enumerate(seen)] or [[]]
        ).astype(np.int64)

    def sample(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One negative per entry of ``users``, in RecBole's item ids (1..n_items-1)."""
        free = self.n_items - 1 - self.seen_count[users]
        if (free < 1).any():
            raise PluginError(
                f"recbole: user {int(users[free < 1][0])} (RecBole order) has interacted with every item, "
                "so BCE has no negative to sample; use loss_type CE"
            )
        rank = rng.integers(0, free)  # the rank-th unseen item of each user
        skipped = np.searchsorted(self.unseen_below, users * self.n_items + rank, side="right") - self.start[users]
        return rank + 1 + skipped


def binary_cross_entropy(hidden: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """The SASRec paper's loss: -log sigmoid(h.e+) - log(1 - sigmoid(h.e-)), averaged over targets."""
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    positive, negative = (hidden * positive).sum(-1), (hidden * negative).sum(-1)
    return bce(positive, torch.ones_like(positive)) + bce(negative, torch.zeros_like(negative))


MODEL_FOLDERS = ("general", "sequential", "context_aware", "knowledge_aware", "exlib")
# Models whose module imports an optional package at import time.
OPTIONAL_PACKAGES = {"lightgbm": "lightgbm", "xgboost": "xgboost"}


@functools.lru_cache(maxsize=1)
def recbole_models() -> dict[str, str]:
    """``{model class name: folder}`` of every RecBole model, found by reading the sources
    (importing them would import optional packages such as lightgbm)."""
    root = Path(importlib.util.find_spec("recbole").origin).parent / "model"
    found = {}
    for folder in MODEL_FOLDERS:
        for path in (root / f"{folder}_recommender").glob("*.py"):
            for name in re.findall(r"^class (\w+)\(", path.read_text(), flags=re.MULTILINE):
                if name.lower() == path.stem:
                    found[name] = folder
    return found


def check_params(params: dict) -> None:
    """Checked before any method trains: the model name, the objective, the extra JSON."""
    models = recbole_models()
    model = params["model"]
    if model not in models:
        close = difflib.get_close_matches(model, models, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ParameterError(
            f"recbole: {model!r} is not a RecBole 1.2.1 model; {hint}e.g. SASRec, GRU4Rec, BERT4Rec, LightGCN, BPR"
        )
    package = OPTIONAL_PACKAGES.get(model.lower())
    if package and importlib.util.find_spec(package) is None:
        raise ParameterError(f"recbole: model {model} needs the {package} package: pip install {package}")
    try:
        extra = json.loads(params["extra"] or "{}")
    except json.JSONDecodeError as exc:
        raise ParameterError(f"recbole: parameter 'extra' is not JSON: {exc}; write a JSON object") from None
    if not isinstance(extra, dict):
        raise ParameterError(f"recbole: parameter 'extra' is {extra!r}; write a JSON object, e.g. '{{\"key\": 1}}'")


@hookimpl
def register_recommenders(register) -> None:
    register(
        RecommenderSpec(
            name="recbole", version="e37e7348fad7", family="baseline",
            factory=lambda params, seed: RecBoleRecommender(params, seed),
            accepts=RecBoleRecommender.accepts,
            description="any RecBole 1.2.1 model trained on our split and scored by our evaluator",
            params=PARAMS,
            validate=check_params,
        )
    )
