"""Import arrows point from plugins to the harness: the harness never imports a plugin, a
plugin never imports another plugin's module, ``plugins/`` holds registered plugins only,
tokenizers never import evaluation code, and no harness module imports inside a function
to dodge an import cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from benchmark.plugins import DEFAULT_PLUGINS

REPO = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> list[str]:
    """Absolute module names that ``path`` imports (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


@pytest.mark.parametrize("path", sources("benchmark"), ids=lambda p: str(p.relative_to(REPO)))
def test_harness_imports_no_plugin(path: Path) -> None:
    wrong = [name for name in imported_modules(path) if name == "plugins" or name.startswith("plugins.")]
    assert not wrong, f"{path.relative_to(REPO)} imports {wrong}: move the shared code into benchmark/"


def plugin_of(module: str) -> str | None:
    """The registered plugin a module belongs to (itself, or the package plugin holding it)."""
    return next((p for p in DEFAULT_PLUGINS if module == p or module.startswith(p + ".")), None)


@pytest.mark.parametrize("path", sources("plugins"), ids=lambda p: str(p.relative_to(REPO)))
def test_plugin_imports_no_other_plugins_module(path: Path) -> None:
    own = plugin_of(module_name(path))
    wrong = [name for name in imported_modules(path)
             if name.startswith("plugins.") and plugin_of(name) != own and name.rpartition(".")[0] != own]
    assert not wrong, (
        f"{path.relative_to(REPO)} imports {wrong}: move what they share into the model library "
        "(benchmark/nn/) or another harness module"
    )


@pytest.mark.parametrize("path", [p for p in sources("plugins") if p.name != "__init__.py"],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_plugins_folder_holds_registered_plugins_only(path: Path) -> None:
    assert plugin_of(module_name(path)) is not None, (
        f"{path.relative_to(REPO)} registers no plugin: shared code belongs in benchmark/ (benchmark/nn/ for "
        "models), plugins/ holds one file per registered plugin"
    )


# Imports a command makes when it runs (torch, Optuna, matplotlib), so --help answers at once.
DEFERRED = {"benchmark/cli.py", "benchmark/leaderboard.py"}


@pytest.mark.parametrize("path", [p for p in sources("benchmark") if str(p.relative_to(REPO)) not in DEFERRED],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_harness_modules_import_at_the_top(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = [f for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))]
    nested = [node.lineno for function in functions for node in ast.walk(function)
              if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "benchmark"]
    assert not nested, (
        f"{path.relative_to(REPO)} imports harness modules inside functions (lines {nested}): import at the top; "
        "a cycle that forces it is a layering fault to fix, not to dodge"
    )


@pytest.mark.parametrize("path", sources("plugins/tokenizers"), ids=lambda p: str(p.relative_to(REPO)))
def test_tokenizers_import_no_evaluation_code(path: Path) -> None:
    wrong = [name for name in imported_modules(path) if name.startswith("benchmark.evaluation")]
    assert not wrong, f"{path.relative_to(REPO)} imports {wrong}: shared statistics belong in benchmark/code_trie.py"
