"""Several benchmark scripts writing one results page: each owns a marked block of it.

``write_block(path, name, text)`` replaces the text between ``<!-- NAME -->`` and
``<!-- /NAME -->`` (or appends the block), leaving the rest of the page as it was;
``blocks(path, skip)`` returns the page's blocks other than ``skip`` so a script that
rewrites the whole page can keep the other scripts' results.
"""

from __future__ import annotations

import re
from pathlib import Path


def _pattern(name: str) -> re.Pattern:
    return re.compile(rf"<!-- {re.escape(name)} -->\n.*?<!-- /{re.escape(name)} -->\n?", re.S)


def write_block(path: Path, name: str, text: str) -> None:
    block = f"<!-- {name} -->\n{text.rstrip()}\n<!-- /{name} -->\n"
    page = path.read_text(encoding="utf-8") if path.exists() else ""
    if _pattern(name).search(page):
        page = _pattern(name).sub(lambda _: block, page, count=1)
    else:
        page = (page.rstrip() + "\n\n" if page.strip() else "") + block
    path.write_text(page, encoding="utf-8")


def blocks(path: Path, skip: str = "") -> str:
    """Every marked block of ``path`` except ``skip``'s, as they stand, joined."""
    if not path.exists():
        return ""
    page = path.read_text(encoding="utf-8")
    found = re.finditer(r"<!-- ([\w.-]+) -->\n.*?<!-- /\1 -->\n?", page, re.S)
    return "".join(m.group(0) for m in found if m.group(1) != skip)
