"""The plugin system: registration, discovery, clear errors, lifecycle hooks."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_plugin

from benchmark import hookimpl, plugins
from benchmark.cli import main
from benchmark.components import EncoderSpec, EvaluatorSpec, MethodSpec, TokenizerSpec
from benchmark.errors import CompatibilityError, PluginError
from benchmark.runner import RunRequest, execute, resolve_method
from plugins.tokenizers.atomic import AtomicTokenizer


def test_builtins_are_ordinary_plugins_with_versions():
    names = {row["name"]: row for row in plugins.describe_plugins()}
    for module in plugins.DEFAULT_PLUGINS:
        assert module in names
        assert names[module]["version"].startswith("genrec-bench ")
    assert names["plugins.methods.baselines"]["hooks"] == ["register_methods"]
    assert {"pop", "sasrec-ce", "sasrec-bce", "lightgcn", "recbole"} <= set(plugins.get_methods())


def test_unknown_method_lists_known_ones():
    with pytest.raises(PluginError, match="unknown method 'sasrek'.*known methods: .*sasrec-ce"):
        plugins.get_method("sasrek")


def test_unknown_method_is_one_line_on_the_command_line(capsys):
    assert main(["run", "--dataset", "synthetic", "--methods", "pop,nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown method 'nope'" in err[0]


def test_unknown_dataset_and_plugin_file(capsys, tmp_path):
    with pytest.raises(PluginError, match="unknown dataset 'ml-5m'"):
        plugins.get_dataset("ml-5m")
    assert main(["--plugin", str(tmp_path / "missing.py"), "plugins"]) == 2
    assert "missing.py: no such file" in capsys.readouterr().err


def test_misspelt_hook_fails_at_load(register_plugin):
    bad = make_plugin(register_method=hookimpl(lambda register: None))
    with pytest.raises(Exception, match="register_method"):
        register_plugin(bad, name="typo-plugin")
    plugins.pm.unregister(name="typo-plugin")


def test_misspelt_hook_in_plugin_file_names_the_file(tmp_path, capsys):
    path = tmp_path / "typo_plugin.py"
    path.write_text("from benchmark import hookimpl\n\n@hookimpl\ndef register_method(register):\n    pass\n")
    assert main(["--plugin", str(path), "plugins"]) == 2
    err = capsys.readouterr().err
    assert "typo_plugin.py" in err and "register_method" in err and "known hooks" in err


def test_plugin_file_registers_a_method_usable_by_run(tmp_path, capsys):
    path = tmp_path / "my_method.py"
    path.write_text(
        "from benchmark import hookimpl\n"
        "from benchmark.components import MethodSpec\n\n"
        "@hookimpl\n"
        "def register_methods(register):\n"
        "    register(MethodSpec(name='file-pop', tokenizer='atomic', recommender='pop',"
        " description='pop from a file'))\n"
    )
    board = tmp_path / "boards"
    code = main(["--plugin", str(path), "run", "--dataset", "synthetic", "--methods", "file-pop",
                 "--seeds", "0", "--store", f"sqlite:///{tmp_path}/r.db", "--leaderboards", str(board),
                 "--no-progress"])
    assert code == 0
    assert "file-pop" in (board / "synthetic-loo.md").read_text()
    listed = {row["name"]: row for row in plugins.describe_plugins()}
    assert listed[f"file:{path.resolve()}"]["version"].startswith("file sha256:")
    plugins.pm.unregister(name=f"file:{path.resolve()}")


def test_incompatible_pair_names_both_sides(register_plugin):
    class CodesTokenizer:
        kind = "codes"

    plugin = make_plugin(
        register_tokenizers=hookimpl(lambda register: register(TokenizerSpec(
            name="fake-codes", factory=lambda p, s: CodesTokenizer(), kind="codes",
            description="test"))),
        register_methods=hookimpl(lambda register: register(MethodSpec(
            name="codes-sasrec", tokenizer="fake-codes", recommender="recbole", description="bad"))),
    )
    register_plugin(plugin)
    with pytest.raises(CompatibilityError, match="'fake-codes' makes 'codes'.*'recbole' accepts only atomic"):
        plugins.get_methods()


def test_duplicate_names_name_both_plugins(register_plugin):
    plugin = make_plugin(register_methods=hookimpl(lambda register: register(MethodSpec(
        name="pop", tokenizer="atomic", recommender="pop", description="again"))))
    register_plugin(plugin, name="second-pop")
    with pytest.raises(PluginError, match="'pop' is registered by both .*second-pop"):
        plugins.get_methods()


def test_method_argument_goes_to_its_parameter():
    method = resolve_method("recbole:GRU4Rec", "tiny")
    assert method.recommender_params["model"] == "GRU4Rec"
    with pytest.raises(PluginError, match="needs an argument"):
        plugins.get_method("recbole")
    with pytest.raises(PluginError, match="takes no ':ARGUMENT'"):
        plugins.get_method("pop:x")


def test_unknown_parameter_is_rejected():
    from benchmark.errors import ParameterError

    with pytest.raises(ParameterError, match="unknown parameter 'epochz'.*known parameters: .*epochs"):
        resolve_method("sasrec-ce", "tiny", {"recommender.epochz": 3})
    with pytest.raises(ParameterError, match="expects int"):
        resolve_method("sasrec-ce", "tiny", {"recommender.epochs": "many"})


def test_profiles_change_defaults():
    assert resolve_method("sasrec-ce", "paper").recommender_params["epochs"] == 200
    assert resolve_method("sasrec-ce", "tiny").recommender_params["epochs"] < 200


class RecordingPlugin:
    """Implements every non-registration hook and records the calls."""

    def __init__(self):
        self.calls: list[tuple] = []

    @hookimpl
    def on_run_start(self, run):
        self.calls.append(("start", run.method, run.seed))

    @hookimpl
    def on_epoch_end(self, run, epoch, valid_metrics):
        self.calls.append(("epoch", epoch, valid_metrics["ndcg@10"]))

    @hookimpl
    def on_run_end(self, run, result):
        self.calls.append(("end", result["method"], result["metrics"]["all"]["ndcg@10"]))

    @hookimpl
    def register_encoders(self, register):
        register(EncoderSpec(name="ones", factory=lambda params: None, description="test encoder"))

    @hookimpl
    def register_tokenizers(self, register):
        register(TokenizerSpec(name="atomic-copy", factory=lambda p, s: AtomicTokenizer(),
                               kind="atomic", description="test"))

    @hookimpl
    def register_evaluators(self, register):
        register(EvaluatorSpec(name="first-item", description="test",
                               evaluate=lambda data: {"mean": float(np.mean(data.rankings[:, 0]))}))

    @hookimpl
    def register_methods(self, register):
        register(MethodSpec(name="copy-sasrec", tokenizer="atomic-copy", recommender="recbole",
                            description="test", defaults={"recommender.epochs": 2,
                                                          "recommender.patience": 5}))


def test_lifecycle_and_registration_hooks_are_called(register_plugin, tmp_path):
    recorder = RecordingPlugin()
    register_plugin(recorder)
    assert "ones" in plugins.get_encoders()
    row, _, _ = execute(RunRequest("synthetic", "loo", "copy-sasrec"), cache_dir=tmp_path, progress=False)
    kinds = [c[0] for c in recorder.calls]
    assert kinds == ["start", "epoch", "epoch", "end"]
    assert recorder.calls[0] == ("start", "copy-sasrec", 0)
    assert recorder.calls[-1][2] == row["metrics"]["all"]["ndcg@10"]
    assert "first-item/mean" in row["extra_metrics"]
    assert "coverage/catalog@10" in row["extra_metrics"]


def test_on_epoch_end_can_stop_a_run(register_plugin, tmp_path):
    class Stop(Exception):
        pass

    def stop(run, epoch, valid_metrics):
        raise Stop(f"pruned at {epoch}")

    register_plugin(make_plugin(on_epoch_end=hookimpl(stop)))
    with pytest.raises(Stop, match="pruned at 0"):
        execute(RunRequest("synthetic", "loo", "sasrec-ce", params={"recommender.epochs": 3}),
                cache_dir=tmp_path, progress=False)
