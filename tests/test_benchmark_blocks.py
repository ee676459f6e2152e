"""Benchmark scripts sharing one results page: each replaces only its own marked block."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _blocks import blocks, write_block  # noqa: E402


def test_a_block_is_appended_then_replaced_and_the_page_around_it_kept(tmp_path):
    page = tmp_path / "speed.md"
    page.write_text("# Title\n\n| fp32 | bf16 |\n|---|---|\n| 1 | 2 |\n", encoding="utf-8")
    write_block(page, "family_throughput", "## Families\n\nold numbers\n")
    first = page.read_text(encoding="utf-8")
    assert first.startswith("# Title\n\n| fp32 | bf16 |\n|---|---|\n| 1 | 2 |\n\n<!-- family_throughput -->\n")
    write_block(page, "family_throughput", "## Families\n\nnew numbers")
    second = page.read_text(encoding="utf-8")
    assert "old numbers" not in second and second.count("<!-- family_throughput -->") == 1
    assert second == first.replace("old numbers", "new numbers")
    write_block(page, "other", "## Other")
    assert blocks(page, skip="other") == ("<!-- family_throughput -->\n## Families\n\nnew numbers\n"
                                          "<!-- /family_throughput -->\n")
    assert blocks(page).count("<!-- /") == 2 and blocks(tmp_path / "missing.md") == ""


def test_a_new_page_is_the_block_alone(tmp_path):
    page = tmp_path / "new.md"
    write_block(page, "x", "text")
    assert page.read_text(encoding="utf-8") == "<!-- x -->\ntext\n<!-- /x -->\n"
