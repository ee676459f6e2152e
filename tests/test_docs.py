"""Meta-tests: the hook reference in docs/hooks/ stays in step with benchmark/hookspecs.py.

Every hook has a page carrying its exact signature and a working example plugin, the
README indexes every page, and every hook is exercised by at least one other test.
Every example plugin of the docs (docs/hooks/*.md, README.md, the example package's
README) is run end to end through ``genrec-bench run``.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pluggy
import pytest
from conftest import make_plugin

from benchmark import cli, components, hookimpl, hookspecs, plugins
from benchmark.components import MethodSpec, Recommender, RecommenderSpec
from benchmark.store import Store

REPO = Path(__file__).resolve().parents[1]
HOOK_DOCS = REPO / "docs" / "hooks"
TESTS = Path(__file__).resolve().parent
SPEC_MARKER = f"{hookspecs.PROJECT}_spec"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def hook_functions() -> dict[str, Callable]:
    """Every function in benchmark.hookspecs carrying the pluggy hookspec marker."""
    return {
        name: obj
        for name, obj in vars(hookspecs).items()
        if inspect.isfunction(obj) and hasattr(obj, SPEC_MARKER)
    }


HOOKS = hook_functions()


def _annotation(value: object) -> str:
    # hookspecs.py uses ``from __future__ import annotations``: annotations are strings.
    return value if isinstance(value, str) else inspect.formatannotation(value)


def signature_line(function: Callable) -> str:
    """``def name(arg: Annotation, ...) -> Return:`` with annotations as written."""
    signature = inspect.signature(function)
    parts = []
    for parameter in signature.parameters.values():
        prefix = {
            inspect.Parameter.VAR_POSITIONAL: "*",
            inspect.Parameter.VAR_KEYWORD: "**",
        }.get(parameter.kind, "")
        text = prefix + parameter.name
        if parameter.annotation is not inspect.Parameter.empty:
            text += f": {_annotation(parameter.annotation)}"
            if parameter.default is not inspect.Parameter.empty:
                text += f" = {parameter.default!r}"
        elif parameter.default is not inspect.Parameter.empty:
            text += f"={parameter.default!r}"
        parts.append(text)
    line = f"def {function.__name__}({', '.join(parts)})"
    if signature.return_annotation is not inspect.Signature.empty:
        line += f" -> {_annotation(signature.return_annotation)}"
    return line + ":"


def python_blocks(text: str) -> list[str]:
    return PYTHON_BLOCK.findall(text)


def page(hook: str) -> str:
    path = HOOK_DOCS / f"{hook}.md"
    assert path.is_file(), f"hook {hook!r} has no page: write docs/hooks/{hook}.md"
    return path.read_text(encoding="utf-8")


def load_example(code: str, label: str, directory: Path) -> types.ModuleType:
    """Import an example plugin (as a file) and register it with a fresh plugin manager."""
    path = directory / f"docs_example_{label}.py"
    path.write_text(code, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.register(module, name=label)
    manager.check_pending()
    module.manager = manager
    return module


def test_hooks_are_found() -> None:
    assert {"register_datasets", "on_run_end"} <= set(HOOKS), sorted(HOOKS)


def test_signature_line_format() -> None:
    def sample(register: Callable[[int], None], epoch: int = 1) -> None: ...

    assert signature_line(hookspecs.on_run_start) == "def on_run_start(run: RunInfo) -> None:"
    assert signature_line(sample) == (
        "def sample(register: Callable[[int], None], epoch: int = 1) -> None:"
    )


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_page_has_title_and_exact_signature(hook: str) -> None:
    text = page(hook)
    assert text.splitlines()[0] == f"# {hook}", f"docs/hooks/{hook}.md must start with '# {hook}'"
    expected = signature_line(HOOKS[hook])
    blocks = python_blocks(text)
    assert blocks, f"docs/hooks/{hook}.md has no python code block"
    assert blocks[0].strip() == expected, (
        f"docs/hooks/{hook}.md: the first python block must be exactly {expected!r} "
        f"(hookspecs.py changed?), found {blocks[0].strip()!r}"
    )


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_page_example_is_a_working_plugin(hook: str, tmp_path: Path) -> None:
    examples = [block for block in python_blocks(page(hook)) if "@hookimpl" in block]
    assert examples, f"docs/hooks/{hook}.md has no example using @hookimpl"
    for number, code in enumerate(examples):
        assert "from benchmark import hookimpl" in code
        module = load_example(code, f"{hook}_{number}", tmp_path)
        caller = getattr(module.manager.hook, hook)
        assert [impl.plugin for impl in caller.get_hookimpls()] == [module], (
            f"the example in docs/hooks/{hook}.md does not implement {hook}"
        )
        annotation = (
            _annotation(inspect.signature(HOOKS[hook]).parameters["register"].annotation)
            if hook.startswith("register_")
            else ""
        )
        spec_name = re.fullmatch(r"Callable\[\[(\w+)\], None\]", annotation)
        if spec_name:
            registered: list[object] = []
            caller(register=registered.append)
            spec_type = getattr(components, spec_name.group(1))
            assert registered and all(isinstance(s, spec_type) for s in registered)


def test_readme_example_is_a_working_plugin(tmp_path: Path) -> None:
    text = (HOOK_DOCS / "README.md").read_text(encoding="utf-8")
    examples = [block for block in python_blocks(text) if "@hookimpl" in block]
    assert examples, "docs/hooks/README.md has no example plugin"
    for number, code in enumerate(examples):
        load_example(code, f"README_{number}", tmp_path)


def test_readme_indexes_every_page() -> None:
    readme = (HOOK_DOCS / "README.md").read_text(encoding="utf-8")
    pages = sorted(p.stem for p in HOOK_DOCS.glob("*.md") if p.name != "README.md")
    missing = [name for name in pages if f"({name}.md)" not in readme]
    assert not missing, f"docs/hooks/README.md does not link to: {', '.join(missing)}"
    stale = sorted(set(pages) - set(HOOKS))
    assert not stale, f"docs/hooks/ has pages for hooks that do not exist: {', '.join(stale)}"
    for section in (
        "## Writing a plugin",
        "--plugin",
        "[project.entry-points.genrec_bench]",
        "GENREC_BENCH_LOAD_PLUGINS",
    ):
        assert section in readme, f"docs/hooks/README.md lacks {section!r}"


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_every_hook_is_exercised_by_a_test(hook: str) -> None:
    this = Path(__file__).resolve()
    sources = [
        path.read_text(encoding="utf-8")
        for path in sorted(TESTS.rglob("*.py"))
        if path.resolve() != this
    ]
    pattern = re.compile(rf"\b{re.escape(hook)}\b")
    assert any(pattern.search(text) for text in sources), (
        f"no test under tests/ mentions hook {hook!r}; add one that exercises it"
    )


# --------------------------------------------------------------------------- every example runs

DOC_PAGES = (
    *sorted(HOOK_DOCS.glob("*.md")),
    REPO / "README.md",
    REPO / "examples" / "genrec-bench-markov" / "README.md",
)
# register_methods.md pairs the built-in tokenizer with this package's recommender.
MARKOV_EXAMPLE = REPO / "examples" / "genrec-bench-markov" / "genrec_bench_markov.py"
# A few seconds of RQ-VAE training: enough to run a text encoder through a tokenizer.
TINY_RQVAE = {"tokenizer.epochs": 5, "tokenizer.batch_size": 64, "tokenizer.codebook_size": 8,
              "tokenizer.hidden_dims": "32", "tokenizer.latent_dim": 8, "tokenizer.kmeans_iterations": 5}


def doc_python_blocks() -> dict[str, str]:
    """Every python block of the docs, labelled ``page:number``."""
    return {
        f"{path.relative_to(REPO)}:{number}": code
        for path in DOC_PAGES
        for number, code in enumerate(python_blocks(path.read_text(encoding="utf-8")))
    }


DOC_BLOCKS = doc_python_blocks()
DOC_PLUGINS = {label: code for label, code in DOC_BLOCKS.items() if "@hookimpl" in code}


class EpochReporter(Recommender):
    """Popularity fitted in two reported epochs, so that ``on_epoch_end`` examples fire."""

    accepts = frozenset({"atomic"})

    def fit(self, data, identifiers, context) -> None:
        self.counts = data.train_counts.astype(np.float64)
        for epoch in range(2):
            context.epoch_end(epoch, context.validate(self))

    def score(self, batch) -> np.ndarray:
        return np.tile(self.counts, (len(batch), 1))


def import_file(path: Path, module_name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def registrations(module: types.ModuleType) -> dict[str, list]:
    """What each registration hook of ``module`` registers."""
    found: dict[str, list] = {}
    for hook in HOOKS:
        if hook.startswith("register_") and hasattr(module, hook):
            specs: list = []
            getattr(module, hook)(specs.append)
            found[hook] = specs
    return found


def exercising_methods(registered: dict[str, list], lifecycle: set[str]) -> tuple[list[MethodSpec], list[str]]:
    """Methods pairing each registered component with built-ins, and every method to run."""
    added = [MethodSpec(name=f"docs-tokenizer-{spec.name}", tokenizer=spec.name, recommender="pop",
                        description="docs: the tokenizer with popularity")
             for spec in registered.get("register_tokenizers", [])]
    for spec in registered.get("register_recommenders", []):
        assert "atomic" in spec.accepts, f"recommender {spec.name!r}: pair it with a tokenizer it accepts here"
        added.append(MethodSpec(name=f"docs-recommender-{spec.name}", tokenizer="atomic", recommender=spec.name,
                                description="docs: the recommender on atomic ids"))
    added += [MethodSpec(name=f"docs-encoder-{spec.name}", tokenizer="rqvae", recommender="pop",
                         description="docs: RQ-VAE codes of the encoder's embeddings",
                         defaults={"tokenizer.text_encoder": spec.name, **TINY_RQVAE})
              for spec in registered.get("register_encoders", [])]
    if "on_epoch_end" in lifecycle:
        added.append(MethodSpec(name="docs-epochs", tokenizer="atomic", recommender="docs-epochs",
                                description="docs: reports epochs"))
    methods = [spec.name for spec in registered.get("register_methods", [])] + [m.name for m in added]
    return added, methods or ["pop"]


def dataset_argument(spec: components.DatasetSpec, directory: Path) -> str:
    """``--dataset`` for a documented dataset: argument datasets read the synthetic data as a file."""
    if not spec.takes_argument:
        return spec.name
    assert spec.name == "tsv", f"dataset {spec.name!r} takes an argument: teach dataset_argument to write one"
    raw = plugins.get_datasets()["synthetic"].load(None)
    path = directory / "interactions.tsv"
    raw.interactions[["user", "item", "timestamp"]].to_csv(path, sep="\t", header=False, index=False)
    return f"tsv:{path}"


def test_every_python_block_is_a_plugin_or_a_hook_signature() -> None:
    signatures = {signature_line(function) for function in HOOKS.values()}
    stray = [label for label, code in DOC_BLOCKS.items() if label not in DOC_PLUGINS and code.strip() not in signatures]
    assert not stray, f"python blocks that are neither a hook signature nor a plugin (mark shell as bash): {stray}"
    assert any(label.startswith("README.md") for label in DOC_PLUGINS), "README.md lost its plugin example"


@pytest.mark.parametrize("label", sorted(DOC_PLUGINS))
def test_doc_example_runs_end_to_end(label: str, register_plugin, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RESULTS_JSONL", str(tmp_path / "results.jsonl"))  # on_run_end.md writes there
    block_file = tmp_path / "docs_block.py"
    block_file.write_text(DOC_PLUGINS[label], encoding="utf-8")
    module = import_file(block_file, "docs_block")
    register_plugin(import_file(MARKOV_EXAMPLE, "docs_markov_example"), name="docs-markov-example")
    register_plugin(module, name=f"docs:{label}")
    registered = registrations(module)
    lifecycle = {hook for hook in HOOKS if hook.startswith("on_") and hasattr(module, hook)}
    added, methods = exercising_methods(registered, lifecycle)

    @hookimpl
    def register_recommenders(register) -> None:
        register(RecommenderSpec(name="docs-epochs", factory=lambda params, seed: EpochReporter(),
                                 accepts=EpochReporter.accepts, description="reports two epochs"))

    @hookimpl
    def register_methods(register) -> None:
        for method in added:
            register(method)

    register_plugin(make_plugin(register_recommenders=register_recommenders, register_methods=register_methods),
                    name="docs-pairings")
    runs = [("synthetic", methods)] + [(dataset_argument(spec, tmp_path), ["pop"])
                                       for spec in registered.get("register_datasets", [])]
    called: set[str] = set()

    def before(hook_name: str, hook_impls: list, kwargs: dict) -> None:
        if any(impl.plugin is module for impl in hook_impls):
            called.add(hook_name)

    undo = plugins.pm.add_hookcall_monitoring(before, lambda *args: None)
    store = f"sqlite:///{tmp_path}/r.db"
    try:
        for dataset, names in runs:
            argv = ["run", "--dataset", dataset, "--methods", ",".join(names), "--seeds", "0", "--store", store,
                    "--leaderboards", str(tmp_path / "b"), "--cache", str(tmp_path / "cache"), "--no-progress"]
            assert cli.main(argv) == 0, f"{label}: genrec-bench {' '.join(argv)} failed"
    finally:
        undo()

    rows = Store(store).rows()
    assert {(row["dataset"], row["method"]) for row in rows} >= {(d, m) for d, names in runs for m in names}
    for spec in registered.get("register_evaluators", []):
        assert all(any(key.startswith(f"{spec.name}/") for key in row["extra_metrics"]) for row in rows), (
            f"{label}: evaluator {spec.name!r} stored no metric"
        )
    assert lifecycle <= called, f"{label}: hooks never called during the runs: {sorted(lifecycle - called)}"
