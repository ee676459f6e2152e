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


def test_the_converged_fits_table_reads_each_archived_cpu_fit(tmp_path):
    # `family_throughput --cost-only` lists every archived `cpu` fit of the loo board with its
    # epochs, chosen epoch, samples, stop and minutes; tiny rows and untrained methods stay out.
    import gzip
    import json

    from family_throughput import converged_lines

    def row(method, profile, epochs, samples=True, stop="patience"):
        records = [{"epoch": e, "ndcg@10": 0.1 - abs(e - 2) / 100, **({"samples": 100.0 * (e + 1)} if samples else {})}
                   for e in range(epochs)]
        training = {"train": {"epochs": epochs, "best_epoch": 2, "stop_reason": stop, "seconds": 600.0}}
        return {"method": method, "seed": 0, "profile": profile, "train_seconds": 600.0, "tokenizer_seconds": 0.0,
                "info": {"epochs": records, "training": training} if epochs else {}}

    (tmp_path / "results").mkdir()
    with gzip.open(tmp_path / "results" / "ml-100k-loo.jsonl.gz", "wt", encoding="utf-8") as f:
        for r in (row("tiger", "cpu", 5), row("sasrec-ce", "cpu", 4, samples=False),
                  row("tiger", "tiny", 3), row("pop", "cpu", 0)):
            f.write(json.dumps(r) + "\n")
    text = "\n".join(converged_lines(tmp_path))
    table = [line for line in text.splitlines() if line.startswith("| ") and "method" not in line]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table]
    assert cells == [["sasrec-ce", "0", "4", "3", "n/a", "patience", "10.0"],
                     ["tiger", "0", "5", "3", "500", "patience", "10.0"]]
    assert converged_lines(tmp_path / "nothing") == []


def test_training_speed_keeps_one_block_per_kind_of_cpu_kernels(tmp_path, monkeypatch):
    # bf16 is slower than fp32 on a CPU without bf16 arithmetic and faster on one with it, so
    # a run writes the block of its own kernels and keeps the other machines' and scripts' blocks.
    import torch
    import training_speed

    monkeypatch.setattr(training_speed, "load_split", lambda *a: None)
    monkeypatch.setattr(training_speed.TrainingData, "from_split", staticmethod(lambda split: None))
    monkeypatch.setattr(training_speed, "throughput", lambda *a: {"fp32": 10.0, "bf16": 17.0})
    monkeypatch.setattr(training_speed, "short_fit", lambda method, o, precision, e, c: {"best": 0.5, "seconds": 3.0})
    page = tmp_path / "speed.md"
    page.write_text("<!-- training_speed-avx2 -->\nold machine\n<!-- /training_speed-avx2 -->\n\n"
                    "<!-- family_throughput -->\nfamilies\n<!-- /family_throughput -->\n", encoding="utf-8")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(sys, "argv", ["training_speed.py", "--steps", "1", "--out", str(page)])
    for _ in range(2):  # the second run replaces its own block only
        training_speed.main()
    text = page.read_text(encoding="utf-8")
    assert text.startswith("# Training throughput: fp32 against bf16 autocast\n")
    assert text.count("<!-- training_speed-avx512 -->") == 1 and "## AVX512 kernels\n" in text
    assert "old machine" in text and "families" in text
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| T5 tiny (2+2, d128)")]
    assert [float(c) for c in rows[0][1:]] == [256, 10.0, 17.0, 1.7]  # model, batch, fp32, bf16, ratio
