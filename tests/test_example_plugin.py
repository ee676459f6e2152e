"""The example third-party plugin package ``examples/genrec-bench-markov``.

The package is installed (offline, without touching the shared virtual environment)
into a private target directory; subprocesses with that directory on ``PYTHONPATH``
see its ``genrec_bench`` entry point exactly as after ``pip install``. The Markov
recommender itself is unit-tested in-process from the module file.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pluggy
import pytest

from benchmark import hookspecs
from benchmark.components import (
    CaseBatch,
    FitContext,
    ItemIdentifiers,
    MethodSpec,
    Recommender,
    RecommenderSpec,
    RunInfo,
    TrainingData,
)
from benchmark.data.dataset import ItemCatalog
from benchmark.data.splits import Cases, popularity_groups
from benchmark.params import resolve

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "genrec-bench-markov"
MODULE_FILE = EXAMPLE / "genrec_bench_markov.py"

# Run in a fresh interpreter: loads the plugins and prints what the registries hold.
LOAD_SCRIPT = """
import json, sys
from benchmark import plugins
for path in sys.argv[1:]:
    plugins.load_plugin_file(path)
plugins.load_plugins()
methods = sorted(plugins.get_methods())
rows = {row["name"]: row for row in plugins.describe_plugins()}
print(json.dumps({"methods": methods, "plugins": rows}))
"""


# --------------------------------------------------------------------------- installed


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``pip install`` a copy of the example into a private directory; removed afterwards.

    Building from a copy keeps ``build/`` and ``*.egg-info`` out of the source tree;
    ``--target`` keeps the shared virtual environment untouched; ``--no-index`` with
    ``--no-build-isolation`` (setuptools comes from the running environment) keeps it
    offline.
    """
    root = tmp_path_factory.mktemp("markov-plugin")
    source, target = root / "src", root / "site"
    try:
        shutil.copytree(
            EXAMPLE,
            source,
            ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
        )
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            "--target",
            str(target),
            str(source),
        ]
        done = subprocess.run(
            command, check=False, capture_output=True, text=True, timeout=300, cwd=root
        )
        assert done.returncode == 0, f"pip install failed:\n{done.stdout}\n{done.stderr}"
        assert list(target.glob("genrec_bench_markov-0.1.0.dist-info")), sorted(target.iterdir())
        yield target
    finally:
        shutil.rmtree(root, ignore_errors=True)


def load_in_subprocess(
    allow: str, site: Path | None = None, files: Sequence[Path] = ()
) -> dict[str, Any]:
    """Load plugins in a fresh interpreter with ``GENREC_BENCH_LOAD_PLUGINS=allow``."""
    env = dict(os.environ)
    paths = [str(site)] if site is not None else []
    paths.append(str(REPO))
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["GENREC_BENCH_LOAD_PLUGINS"] = allow
    done = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, *map(str, files)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
    )
    assert done.returncode == 0, f"loading plugins failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_allow_listed_entry_point_is_loaded(site_dir: Path) -> None:
    loaded = load_in_subprocess("markov", site_dir)
    assert "markov" in loaded["methods"]
    assert "markov" in loaded["plugins"], sorted(loaded["plugins"])
    row = loaded["plugins"]["markov"]
    assert row["version"] == "genrec-bench-markov 0.1.0"
    assert {"register_recommenders", "register_methods"} <= set(row["hooks"])


def test_empty_allow_list_loads_no_entry_point(site_dir: Path) -> None:
    loaded = load_in_subprocess("", site_dir)
    assert "markov" not in loaded["methods"]
    assert "markov" not in loaded["plugins"]


def test_module_works_as_single_file_plugin() -> None:
    loaded = load_in_subprocess("", files=[MODULE_FILE])
    assert "markov" in loaded["methods"]
    name = f"file:{MODULE_FILE.resolve()}"
    assert loaded["plugins"][name]["version"].startswith("file sha256:")


# --------------------------------------------------------------------------- the model


def load_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("genrec_bench_markov_under_test", MODULE_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MARKOV = load_module()


def training_data(sequences: list[list[int]], n_items: int) -> TrainingData:
    """A tiny TrainingData: every sequence is training data, no validation cases."""
    train = [np.asarray(s, np.int64) for s in sequences]
    times = [np.arange(len(s), dtype=np.float64) for s in train]
    catalog = ItemCatalog(
        name="tiny",
        item_ids=np.array([f"i{i}" for i in range(n_items)], dtype=object),
        item_text=[{} for _ in range(n_items)],
        text_fields=(),
    )
    no_cases = Cases(
        users=np.zeros(0, np.int64),
        histories=[],
        seen=[],
        targets=np.zeros(0, np.int64),
        timestamps=np.zeros(0, np.float64),
    )
    counts = np.bincount(np.concatenate(train), minlength=n_items)
    return TrainingData(
        catalog=catalog,
        split_name="tiny",
        train=train,
        train_timestamps=times,
        valid=no_cases,
        train_counts=counts,
        group_of_item=popularity_groups(counts),
    )


def fit_context(tmp_path: Path) -> FitContext:
    run = RunInfo(
        dataset="tiny", split="tiny", method="markov", params={}, seed=0, profile="default"
    )
    return FitContext(
        run=run,
        seed=0,
        profile="default",
        cache_dir=str(tmp_path),
        validate=lambda recommender: {},
        epoch_end=lambda epoch, metrics: None,
        progress=False,
    )


def registered(hook: str) -> list[Any]:
    specs: list[Any] = []
    getattr(MARKOV, hook)(register=specs.append)
    return specs


def fitted(
    sequences: list[list[int]], n_items: int, tmp_path: Path, **overrides: Any
) -> Recommender:
    (spec,) = registered("register_recommenders")
    params = resolve(spec.params, "default", overrides, owner="recommender markov")
    model = spec.factory(params, 0)
    data = training_data(sequences, n_items)
    model.fit(data, ItemIdentifiers(kind="atomic", n_items=n_items), fit_context(tmp_path))
    return model


def scores(model: Recommender, *histories: list[int]) -> np.ndarray:
    batch = CaseBatch(
        users=np.arange(len(histories)),
        histories=[np.asarray(h, np.int64) for h in histories],
        seen=[np.asarray(h, np.int64) for h in histories],
    )
    return model.score(batch)


def test_plugin_registers_valid_hooks() -> None:
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.register(MARKOV, name="markov")
    manager.check_pending()
    (recommender,) = registered("register_recommenders")
    assert isinstance(recommender, RecommenderSpec)
    assert recommender.name == "markov"
    assert recommender.accepts == frozenset({"atomic"})
    (smoothing,) = recommender.params
    assert (smoothing.name, smoothing.type, smoothing.default) == ("smoothing", float, 0.1)
    assert (smoothing.low, smoothing.high) == (0.0, 1.0)
    (method,) = registered("register_methods")
    assert isinstance(method, MethodSpec)
    assert (method.name, method.tokenizer, method.recommender) == ("markov", "atomic", "markov")


def test_next_item_follows_the_last_history_item(tmp_path: Path) -> None:
    model = fitted([[0, 1, 2], [0, 1, 3]], n_items=4, tmp_path=tmp_path)
    result = scores(model, [0], [3, 0], [1])
    assert result.shape == (3, 4)
    assert int(np.argmax(result[0])) == 1
    np.testing.assert_allclose(result[1], result[0])  # only the last item counts
    assert set(np.argsort(-result[2])[:2]) == {2, 3}


def test_popularity_only_breaks_ties(tmp_path: Path) -> None:
    # Training counts: item 0 three times, 1 and 3 twice, 2 once; transition 3 -> 0.
    model = fitted([[0, 1, 2], [0, 1, 3], [3, 0]], n_items=4, tmp_path=tmp_path)
    after_one, never_followed, empty = scores(model, [1], [2], [])
    # 1 -> 2 and 1 -> 3 were seen once each: the more popular 3 wins the tie,
    # and both beat the most popular item 0, never seen after 1.
    assert list(np.argsort(-after_one)) == [3, 2, 0, 1]
    # No transition from 2 and no history at all: popularity decides.
    assert int(np.argmax(never_followed)) == 0
    assert int(np.argmax(empty)) == 0
    assert list(np.argsort(-empty, kind="stable")) == [0, 1, 3, 2]


def test_smoothing_flattens_transitions(tmp_path: Path) -> None:
    sequences = [[0, 1, 2], [0, 1, 3]]
    sharp = scores(fitted(sequences, 4, tmp_path, smoothing=0.0), [0])[0]
    smooth = scores(fitted(sequences, 4, tmp_path, smoothing=1.0), [0])[0]
    assert int(np.argmax(sharp)) == int(np.argmax(smooth)) == 1
    # Smoothed transition probabilities: (count + s) / (total + s * n_items).
    assert sharp[1] == pytest.approx(1.0, abs=0.5 / 2)
    assert smooth[1] == pytest.approx((2 + 1.0) / (2 + 4 * 1.0), abs=0.5 / 6)
    assert smooth[1] - smooth[2] < sharp[1] - sharp[2]
    assert np.all(smooth > 0)


def test_rejects_non_atomic_identifiers(tmp_path: Path) -> None:
    (spec,) = registered("register_recommenders")
    model = spec.factory(resolve(spec.params, "default"), 0)
    codes = ItemIdentifiers(kind="codes", n_items=4, codes=np.zeros((4, 1), np.int64))
    with pytest.raises(ValueError, match="atomic"):
        model.fit(training_data([[0, 1, 2, 3]], 4), codes, fit_context(tmp_path))
