"""Import arrows point from plugins to the harness: the harness never imports a plugin,
a plugin never imports another registered plugin, and tokenizers never import evaluation code."""

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


@pytest.mark.parametrize("path", sources("plugins"), ids=lambda p: str(p.relative_to(REPO)))
def test_plugin_imports_no_other_plugin(path: Path) -> None:
    own = module_name(path)
    wrong = [name for name in imported_modules(path)
             if name in DEFAULT_PLUGINS and not own.startswith(name)]
    assert not wrong, (
        f"{path.relative_to(REPO)} imports plugin {wrong}: move what they share into benchmark/ "
        "or into a module that registers nothing"
    )


@pytest.mark.parametrize("path", sources("plugins/tokenizers"), ids=lambda p: str(p.relative_to(REPO)))
def test_tokenizers_import_no_evaluation_code(path: Path) -> None:
    wrong = [name for name in imported_modules(path) if name.startswith("benchmark.evaluation")]
    assert not wrong, f"{path.relative_to(REPO)} imports {wrong}: shared statistics belong in benchmark/code_trie.py"
