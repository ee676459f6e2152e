"""Meta-tests: the hook reference in docs/hooks/ stays in step with benchmark/hookspecs.py.

Every hook has a page carrying its exact signature and a working example plugin, the
README indexes every page, and every hook is exercised by at least one other test.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import types
from collections.abc import Callable
from pathlib import Path

import pluggy
import pytest

from benchmark import components, hookspecs

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
