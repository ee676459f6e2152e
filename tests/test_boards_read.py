"""Boards people read: the headline table first, the HTML board (same digits as the
markdown one, checked by parsing and in headless Chromium) and ``genrec-bench compare``."""

from __future__ import annotations

import os
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import one_error_line

from benchmark.cli import main
from benchmark.compare import CompareError, Comparison, compare, seed_means, seed_pair_gaps
from benchmark.evaluation.metrics import per_case
from benchmark.evaluation.statistics import bootstrap_interval, paired_bootstrap_pvalue
from benchmark.leaderboard import NOT_CONVERGED, headline_subsets, main_subset
from benchmark.store import Store


@pytest.fixture(scope="module")
def boards(tmp_path_factory) -> tuple[Path, str]:
    """A store with loo and cold-items boards: pop (2 seeds, nothing to train: converged),
    SASRec-CE and SASRec-BCE stopped by a 1-epoch cap (not converged)."""
    root = tmp_path_factory.mktemp("boards")
    url = f"sqlite:///{root}/r.db"
    folder = root / "boards"
    base = ["run", "--dataset", "synthetic", "--split", "loo,cold-items", "--store", url,
            "--leaderboards", str(folder), "--no-progress"]
    assert main([*base, "--methods", "pop", "--seeds", "0,1"]) == 0
    assert main([*base, "--methods", "sasrec-ce,sasrec-bce", "--seeds", "0",
                 "--param", "recommender.epochs=1"]) == 0
    return folder, url


def markdown_table(text: str, heading: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the first table under ``heading``."""
    section = text.split(heading, 1)[1]
    lines = [line for line in section.split("\n## ")[0].splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return cells[0], cells[2:]


class BoardParser(HTMLParser):
    """Each view's table of the HTML board: method -> the metric cells' texts, in order."""

    def __init__(self):
        super().__init__()
        self.views: dict[str, dict[str, list[str]]] = {}
        self.hidden: dict[str, bool] = {}
        self.view = self.method = None
        self.in_num = False
        self.cell_class = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and "data-view" in attrs:
            self.view = attrs["data-view"]
            self.views[self.view] = {}
            self.hidden[self.view] = "hidden" in attrs
        elif tag == "tr" and self.view and "data-method" in attrs:
            self.method = attrs["data-method"]
            self.views[self.view][self.method] = []
        elif tag == "td":
            self.cell_class = attrs.get("class")
        elif tag == "span" and attrs.get("class") == "num" and self.cell_class == "metric":
            self.in_num = True

    def handle_endtag(self, tag):
        if tag == "table":
            self.view = None
        elif tag == "span":
            self.in_num = False

    def handle_data(self, data):
        if self.in_num and self.method:
            self.views[self.view][self.method].append(data.strip())


def test_headline_table_comes_first_is_narrow_sorted_and_marks_families(boards):
    folder, _ = boards
    text = (folder / "synthetic-loo.md").read_text()
    assert text.index("## Headline") < text.index("## Every metric") < text.index("## Convergence")
    header, rows = markdown_table(text, "## Headline")
    assert header[:2] == ["Method", "Family"] and header[-2:] == ["Fit min", "Conv."]
    # loo has no cold or new-user case and its warm cases are all cases: only "All" columns.
    assert [h.split(" (")[0] for h in header[2:-2]] == ["All N@10", "All R@10"]
    section = text.split("## Headline", 1)[1].split("## Every metric")[0]
    assert max(len(line) for line in section.splitlines() if line.startswith("|")) <= 100
    names = [r[0] for r in rows]
    assert set(names) == {"pop", f"sasrec-ce {NOT_CONVERGED}", f"sasrec-bce {NOT_CONVERGED}"}
    assert {r[0]: r[1] for r in rows}["pop"] == "baseline"
    assert {r[0]: r[-1] for r in rows} == {"pop": "yes", f"sasrec-ce {NOT_CONVERGED}": "no",
                                           f"sasrec-bce {NOT_CONVERGED}": "no"}
    means = [float(r[2].split(" ")[0].rstrip("*†")) for r in rows]
    assert means == sorted(means, reverse=True)
    # The same numbers as the full table, rounded: N@10 mean and interval at three decimals.
    full_header, full_rows = markdown_table(text, "## Every metric")
    column = next(i for i, h in enumerate(full_header) if h.startswith("All N@10"))
    for row in rows:
        full = next(r for r in full_rows if r[0] == row[0])[column]
        mean = float(full.split(" ")[0].rstrip("*†"))
        low, high = (float(x) for x in full.split("[")[1].rstrip("]").split(", "))
        assert row[2].split(" ")[0].rstrip("*†") == f"{mean:.3f}"
        assert row[2].split("[")[1] == f"{low:.3f}, {high:.3f}]".replace("0.", ".")


def test_the_committed_loo_headline_fits_in_100_columns():
    root = Path(__file__).resolve().parents[1]
    text = (root / "leaderboards" / "ml-100k-loo.md").read_text(encoding="utf-8")
    section = text.split("## Headline", 1)[1].split("## Every metric")[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert len(rows) > 2 and max(len(line) for line in rows) <= 100


def test_cold_items_headline_sorted_by_cold_cases(boards):
    folder, _ = boards
    text = (folder / "synthetic-cold-items.md").read_text()
    header, rows = markdown_table(text, "## Headline")
    assert "Sorted by Cold N@10" in text
    cold = next(i for i, h in enumerate(header) if h.startswith("Cold N@10"))
    values = [float(r[cold].split(" ")[0].rstrip("*†")) for r in rows]
    assert values == sorted(values, reverse=True)
    assert main_subset("cold-items:share=0.2", {"cold": 5}) == "cold"
    assert main_subset("loo", {"cold": 5}) == "all" and main_subset("cold-items", {"cold": 0}) == "all"
    assert headline_subsets({"all": 9, "warm": 9, "cold": 0, "new-user": 0}) == ["all"]
    assert headline_subsets({"all": 9, "warm": 5, "cold": 4, "new-user": 2}) == ["all", "warm", "cold", "new-user"]


@pytest.mark.parametrize("board", ["synthetic-loo", "synthetic-cold-items"])
def test_html_board_shows_the_markdown_boards_digits(boards, board):
    folder, _ = boards
    text = (folder / f"{board}.md").read_text()
    html = (folder / f"{board}.html").read_text()
    assert "http://" not in html and "https://" not in html and "<script src" not in html  # self-contained
    parser = BoardParser()
    parser.feed(html)
    header, rows = markdown_table(text, "## Every metric")
    subsets = {"all": "All", "warm": "Warm", "cold": "Cold", "new-user": "New-user"}
    for key, label in subsets.items():
        columns = [i for i, h in enumerate(header) if h.startswith(f"{label} ")]
        if "n/a" in {rows[0][i] for i in columns}:
            assert key not in parser.views  # an empty subset has no view
            continue
        assert {r[0]: [r[i] for i in columns] for r in rows} == parser.views[key]
    group_header, group_rows = markdown_table(text, "## Recall@10 and NDCG@10 by item popularity group")
    for group in ("G1", "G2", "G3", "G4"):
        columns = [i for i, h in enumerate(group_header) if h.startswith(f"{group} ")]
        assert {r[0]: [r[i] for i in columns] for r in group_rows} == parser.views[group]
    main = "cold" if board.endswith("cold-items") else "all"
    assert [v for v, hidden in parser.hidden.items() if not hidden] == [main]
    assert "Re-run: <code>genrec-bench run --dataset synthetic" in html and "<svg class=\"curve\"" in html
    assert f"[{board}.html]({board}.html)" in text


def _seed_averaged(store: Store, split: str, method: str) -> tuple[np.ndarray, np.ndarray]:
    rows = [r for r in store.rows(dataset="synthetic", split=split) if r["method"] == method]
    values = np.mean([per_case(np.asarray(r["ranks"]))["ndcg@10"] for r in rows], axis=0)
    return values, np.asarray(rows[0]["case_labels"]["cold"], bool)


def test_compare_is_the_paired_bootstrap_of_seed_averaged_cases(boards, capsys):
    _, url = boards
    store = Store(url)
    comparisons, profile = compare(store, "synthetic", "cold-items", ["sasrec-ce", "pop", "sasrec-bce"],
                                   subset="cold")
    assert profile == "tiny" and [(c.a, c.b) for c in comparisons] == [
        ("sasrec-ce", "pop"), ("sasrec-ce", "sasrec-bce"), ("pop", "sasrec-bce")]
    sasrec, cold = _seed_averaged(store, "cold-items", "sasrec-ce")
    pop, _ = _seed_averaged(store, "cold-items", "pop")
    first = comparisons[0]
    assert first.cases == int(cold.sum()) and first.seeds_a == 1 and first.seeds_b == 2
    assert first.mean_a == pytest.approx(sasrec[cold].mean()) and first.mean_b == pytest.approx(pop[cold].mean())
    assert first.p_value == pytest.approx(paired_bootstrap_pvalue(sasrec[cold], pop[cold]))
    assert first.interval == pytest.approx(bootstrap_interval(sasrec[cold] - pop[cold]))
    pop_seeds = [per_case(np.asarray(r["ranks"]))["ndcg@10"][cold].mean()
                 for r in store.rows(dataset="synthetic", split="cold-items") if r["method"] == "pop"]
    assert len(pop_seeds) == 2
    low, high = sasrec[cold].mean() - max(pop_seeds), sasrec[cold].mean() - min(pop_seeds)
    assert first.seed_gaps == pytest.approx((low, high))
    assert main(["compare", "sasrec-ce", "pop", "--dataset", "synthetic", "--split", "cold-items",
                 "--subset", "cold", "--store", url, "--leaderboards", str(boards[0])]) == 0
    out = capsys.readouterr().out
    assert "profile tiny" in out and f"{first.p_value:.3f}" in out and f"{first.difference:+.4f}" in out


def _run(ranks: list[int]) -> dict:
    return {"ranks": ranks}


def test_seed_pair_gaps_pair_every_seed_of_a_with_every_seed_of_b_on_the_subset():
    # ndcg@10 per case is 1 at rank 0 and 0 outside the top-20 (rank -1)
    a = [_run([0, 0, -1, -1]), _run([-1, -1, -1, -1])]   # seed means 0.5 and 0.0
    b = [_run([0, -1, -1, -1])]                          # 0.25
    def gaps(runs_a, runs_b, mask):
        def means(runs):
            return seed_means([per_case(np.asarray(r["ranks"])) for r in runs], "ndcg@10", mask)
        return seed_pair_gaps(means(runs_a), means(runs_b))

    everything = np.ones(4, bool)
    assert gaps(a, b, everything) == pytest.approx([-0.25, 0.25])
    assert gaps(b, a, everything) == pytest.approx([-0.25, 0.25])
    first_two = np.array([True, True, False, False])  # A's seeds 1.0 and 0.0, B 0.5
    assert gaps(a, b, first_two) == pytest.approx([-0.5, 0.5])
    assert gaps(a[:1], b, ~first_two) == pytest.approx([0.0])


def _comparison(p_value: float, gaps: tuple[float, float], a: str = "a") -> Comparison:
    return Comparison(a, "b", "all", "ndcg@10", 100, 0.3, 0.2, 0.1, (0.05, 0.15), p_value, 2, 2, gaps)


def test_a_significant_gap_that_a_single_seed_pairing_erases_is_flagged_within_the_seed_spread(boards, capsys,
                                                                                             monkeypatch):
    assert _comparison(0.01, (-0.02, 0.2)).within_seed_spread
    assert not _comparison(0.01, (0.02, 0.2)).within_seed_spread     # every pairing keeps the sign
    assert not _comparison(0.30, (-0.02, 0.2)).within_seed_spread    # not significant to begin with
    assert _comparison(0.01, (-0.02, 0.2)).row()[-1] == "[-0.0200, +0.2000] ~"
    import benchmark.compare

    monkeypatch.setattr(benchmark.compare, "compare", lambda *args: ([
        _comparison(0.01, (-0.02, 0.2)), _comparison(0.01, (0.02, 0.2), a="c")], "tiny"))
    assert main(["compare", "a", "b", "--dataset", "synthetic", "--store", boards[1],
                 "--leaderboards", str(boards[0])]) == 0
    out = capsys.readouterr().out
    assert "Seed-pair A - B" in out
    assert out.strip().splitlines()[-1].startswith("~ p < 0.05 over cases, but some pairing of single seeds")
    assert "(a vs b)" in out and "c vs b" not in out  # only the flagged pair is named


@pytest.mark.parametrize("args, message", [
    (["tiger", "pop"], "no 'tiny' run of 'tiger' on the synthetic loo board; its methods: pop, sasrec-bce"),
    (["pop", "sasrec-ce", "--subset", "cold"], "--subset 'cold': the synthetic loo board has no cold test case"),
    (["pop", "sasrec-ce", "--subset", "hot"], "--subset 'hot': give one of all, warm, cold, new-user"),
    (["pop"], "compare needs at least two methods"),
    (["pop", "sasrec-ce", "--metric", "mrr"], "--metric 'mrr': give one of"),
    (["pop", "sasrec-ce", "--split", "temporal"], "the store holds no run of dataset 'synthetic' with split"),
    (["pop", "sasrec-ce", "--profile", "cpu"], "--profile 'cpu': the synthetic loo board has runs of"),
])
def test_compare_refuses_what_it_cannot_compare_in_one_line(boards, capsys, args, message):
    _, url = boards
    assert main(["compare", *args, "--dataset", "synthetic", "--store", url, "--leaderboards", str(boards[0])]) == 2
    assert message in one_error_line(capsys)


def test_compare_raises_a_benchmark_error_not_a_traceback(boards):
    with pytest.raises(CompareError, match="a tuned row is METHOD@tuned"):
        compare(Store(boards[1]), "synthetic", "loo", ["pop", "sasrec-ce@tuned"])


def test_a_variant_is_a_row_of_its_own_beside_the_method_with_a_rerun_command_that_finds_it(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/r.db"
    folder = tmp_path / "boards"
    base = ["run", "--dataset", "synthetic", "--split", "loo", "--store", url, "--leaderboards", str(folder),
            "--no-progress", "--methods", "sasrec-ce"]
    assert main([*base, "--seeds", "0,1", "--param", "recommender.epochs=1"]) == 0
    assert main([*base, "--seeds", "0", "--param", "recommender.epochs=2", "--variant", "two-epochs"]) == 0
    board = (folder / "synthetic-loo.md").read_text()
    _, rows = markdown_table(board, "## Every metric")
    seeds = {row[0].removesuffix(f" {NOT_CONVERGED}"): row[3] for row in rows}
    # The variant did not replace the method's two seeds: both rows stand, each with its own runs.
    assert seeds == {"sasrec-ce": "0,1", "sasrec-ce[two-epochs]": "0"}
    assert "## Runs left out of this board" not in board
    (comparison,), _ = compare(Store(url), "synthetic", "loo", ["sasrec-ce[two-epochs]", "sasrec-ce"])
    assert (comparison.seeds_a, comparison.seeds_b) == (1, 2)
    # The variant's re-run command names its parameter and variant: run again, it finds the stored run.
    rerun = next(line for line in (folder / "synthetic-loo.html").read_text().splitlines()
                 if "--variant two-epochs" in line)
    assert "--param recommender.epochs=2" in rerun
    capsys.readouterr()
    assert main([*base, "--seeds", "0", "--param", "recommender.epochs=2", "--variant", "two-epochs"]) == 0
    assert "skip synthetic loo sasrec-ce seed=0: already in the store" in capsys.readouterr().out
    # Without --variant a --param run is the method's latest configuration, as before: it replaces the row.
    assert main([*base, "--seeds", "0", "--param", "recommender.epochs=3"]) == 0
    _, rows = markdown_table((folder / "synthetic-loo.md").read_text(), "## Every metric")
    assert sorted(row[0].removesuffix(f" {NOT_CONVERGED}") for row in rows) == ["sasrec-ce", "sasrec-ce[two-epochs]"]
    assert {row[3] for row in rows} == {"0"}


@pytest.mark.parametrize("args, message", [
    (["--variant", "two"], "--variant two: it names the runs of a --param change, and no --param applies"),
    (["--variant", "two epochs", "--param", "recommender.epochs=2"], "--variant 'two epochs': use 1-40 letters"),
])
def test_a_variant_needs_a_param_and_a_plain_name(tmp_path, capsys, args, message):
    assert main(["run", "--dataset", "synthetic", "--methods", "sasrec-ce", "--store", f"sqlite:///{tmp_path}/r.db",
                 "--leaderboards", str(tmp_path), "--no-progress", *args]) == 2
    assert message in one_error_line(capsys)
    assert not (tmp_path / "r.db").exists()


def _browser():
    """A headless Chromium driven by Selenium, or the reason there is none."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None, "selenium is not installed (pip install -e '.[dev]')"
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        return None, "no Chromium/chromedriver on PATH (Debian: apt-get install chromium chromium-driver)"
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000"):
        options.add_argument(argument)
    options.binary_location = browser
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options), ""


def _visible_rows(driver):
    from selenium.webdriver.common.by import By

    table = driver.find_element(By.CSS_SELECTOR, "table.board:not([hidden])")
    return table, table.find_elements(By.CSS_SELECTOR, "tbody tr")


def test_html_board_in_headless_chromium_sorts_switches_subsets_and_logs_no_error(boards):
    from_board = boards[0] / "synthetic-cold-items.html"
    driver, reason = _browser()
    if driver is None:
        pytest.skip(reason)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    try:
        driver.get(from_board.as_uri())
        assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
        table, rows = _visible_rows(driver)
        assert table.get_attribute("data-view") == "cold"
        # Sort by method name, then by a metric column (descending on the first click, ascending on the next).
        headers = table.find_elements(By.TAG_NAME, "th")
        headers[0].click()
        names = [r.get_attribute("data-method") for r in _visible_rows(driver)[1]]
        assert names == sorted(names)
        column = next(i for i, h in enumerate(headers) if h.text.startswith("Cold R@10"))
        for direction in ("descending", "ascending"):
            headers[column].click()
            assert headers[column].get_attribute("aria-sort") == direction
            rows = _visible_rows(driver)[1]
            values = [float(r.find_elements(By.TAG_NAME, "td")[column].get_attribute("data-value")) for r in rows]
            assert values == sorted(values, reverse=direction == "descending")
        # The subset selector shows the warm view, whose cells are the markdown board's warm cells.
        Select(driver.find_element(By.ID, "subset")).select_by_value("warm")
        table, rows = _visible_rows(driver)
        assert table.get_attribute("data-view") == "warm"
        header, md_rows = markdown_table((boards[0] / "synthetic-cold-items.md").read_text(), "## Every metric")
        columns = [i for i, h in enumerate(header) if h.startswith("Warm ")]
        expected = {r[0]: [r[i] for i in columns] for r in md_rows}
        shown = {r.get_attribute("data-method"): [c.text for c in r.find_elements(By.CSS_SELECTOR, "td.metric .num")]
                 for r in rows}
        assert shown == expected
        assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
        artifacts = Path(os.environ.get("GENREC_BENCH_ARTIFACTS", "test-artifacts"))
        artifacts.mkdir(parents=True, exist_ok=True)
        shot = artifacts / "synthetic-cold-items-board.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    finally:
        driver.quit()


# ---------------------------------------------------------------- the README's headline


def test_readme_blocks_take_the_boards_headline_and_keep_the_rest(boards, tmp_path, capsys):
    folder, url = boards
    readme = tmp_path / "README.md"
    board = os.path.relpath(folder / "synthetic-loo.md", tmp_path)
    readme.write_text(f"# Intro\n\ntext before\n\n<!-- headline: {board} -->\nstale | numbers\n<!-- /headline -->\n\n"
                      "## After\nkept\n", encoding="utf-8")
    assert main(["leaderboard", "--dataset", "synthetic", "--split", "loo", "--store", url,
                 "--leaderboards", str(folder), "--readme", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# Intro\n\ntext before\n\n") and text.endswith("<!-- /headline -->\n\n## After\nkept\n")
    assert "stale" not in text
    block = text.split(f"<!-- headline: {board} -->\n", 1)[1].split("<!-- /headline -->", 1)[0]
    header, rows = markdown_table((folder / "synthetic-loo.md").read_text(encoding="utf-8"), "## Headline")
    table = [line for line in block.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table]
    assert cells[0] == header and cells[2:] == rows  # the board's table, cell for cell
    assert f"]({board})" in block and "profile `tiny`" in block
    # Filling again changes nothing.
    before = readme.read_text(encoding="utf-8")
    assert main(["leaderboard", "--dataset", "synthetic", "--split", "loo", "--store", url,
                 "--leaderboards", str(folder), "--readme", str(readme)]) == 0
    assert readme.read_text(encoding="utf-8") == before


@pytest.mark.parametrize("content, message", [
    ("no block here\n", "no '<!-- headline: BOARD.md -->'"),
    ("<!-- headline: boards/synthetic-loo.md -->\nnever closed\n", "line 1: .* has no '<!-- /headline -->'"),
    ("x\n<!-- headline: nowhere.md -->\n<!-- /headline -->\n", "line 2: no board nowhere.md"),
])
def test_readme_block_faults_are_one_line_and_touch_nothing(tmp_path, content, message):
    from benchmark.errors import BenchmarkError
    from benchmark.readme_headline import fill_headlines

    readme = tmp_path / "README.md"
    readme.write_text(content, encoding="utf-8")
    with pytest.raises(BenchmarkError, match=message) as info:
        fill_headlines(readme)
    assert "\n" not in str(info.value) and str(readme) in str(info.value)
    assert readme.read_text(encoding="utf-8") == content


def test_leaderboard_refuses_a_missing_readme_before_rendering(boards, tmp_path, capsys):
    folder, url = boards
    before = {p: p.stat().st_mtime_ns for p in folder.glob("*.md")}
    assert main(["leaderboard", "--store", url, "--leaderboards", str(folder),
                 "--readme", str(tmp_path / "nope.md")]) == 2
    error = one_error_line(capsys)
    assert "--readme" in error and "no such file" in error
    assert {p: p.stat().st_mtime_ns for p in folder.glob("*.md")} == before


def test_the_committed_readme_shows_the_committed_loo_headline():
    # `genrec-bench leaderboard --readme README.md` keeps them equal; a board re-rendered
    # without it leaves the README's first screen behind, and this fails.
    from benchmark.readme_headline import headline_of

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- headline: leaderboards/ml-100k-loo.md -->\n", 1)[1].split("<!-- /headline -->")[0]
    expected = headline_of(root / "leaderboards" / "ml-100k-loo.md", "leaderboards/ml-100k-loo.md")
    assert block.strip() == expected.strip()


def _make_run_commands(root: Path) -> list[list[str]]:
    """The argument lists of the `genrec-bench run` steps of the Makefile's `run` target."""
    text = (root / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ")
    recipe = text.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    return [line.split("genrec-bench run", 1)[1].split() for line in recipe.splitlines()
            if "genrec-bench run" in line]


def _option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_make_run_shows_every_generative_family_from_the_archive_alone():
    # The default job must show the point of the benchmark (one method of every generative
    # family beside the baselines) and, from a fresh clone, fit nothing: every row it asks
    # for is in the committed results archive under the profile it names.
    import gzip
    import json

    from benchmark import plugins

    root = Path(__file__).resolve().parents[1]
    commands = _make_run_commands(root)
    assert commands, "the Makefile's run target has no `genrec-bench run` step"
    asked = {(split, method, int(seed), _option(args, "--profile"))
             for args in commands for split in _option(args, "--split").split(",")
             for method in _option(args, "--methods").split(",") for seed in _option(args, "--seeds").split(",")}
    families = {plugins.method_family(name) for name in plugins.get_methods()} - {"baseline", "other"}
    shown = {plugins.method_family(method) for _, method, _, _ in asked}
    assert families <= shown, f"make run shows no method of {sorted(families - shown)}"
    assert "baseline" in shown
    archived = set()
    for path in (root / "leaderboards" / "results").glob("ml-100k-*.jsonl.gz"):
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            for line in lines:
                row = json.loads(line)
                archived.add((row["split"], row["method"], row["seed"], row["profile"]))
    missing = sorted(asked - archived)
    assert not missing, f"make run would fit these rows from a fresh clone: {missing}"


class DiagnosticsParser(HTMLParser):
    """The HTML board's evaluator tables (evaluator -> rows of cell texts, header first) and
    its reading notes' texts."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.reading: list[str] = []
        self.evaluator = None
        self.in_reading = self.in_item = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and "data-evaluator" in attrs:
            self.evaluator = attrs["data-evaluator"]
            self.tables[self.evaluator] = []
        elif tag == "tr" and self.evaluator:
            self.tables[self.evaluator].append([])
        elif tag in ("td", "th") and self.evaluator:
            self.tables[self.evaluator][-1].append("")
        elif tag == "ul" and "reading" in (attrs.get("class") or ""):
            self.in_reading = True
        elif tag == "li" and self.in_reading:
            self.reading.append("")
            self.in_item = True

    def handle_endtag(self, tag):
        if tag == "table":
            self.evaluator = None
        elif tag == "ul":
            self.in_reading = False
        elif tag == "li":
            self.in_item = False

    def handle_data(self, data):
        if self.evaluator and self.tables[self.evaluator] and self.tables[self.evaluator][-1]:
            self.tables[self.evaluator][-1][-1] += data.strip()
        elif self.in_item:
            self.reading[-1] += data


def test_html_board_shows_the_evaluator_tables_and_reading_notes_of_the_markdown_board(boards, tmp_path):
    # The web page is the same board: every evaluator's diagnostics with the markdown's
    # digits, and the people-written reading notes with their code and bold spans.
    folder, url = boards
    out = tmp_path / "boards"
    (out / "notes").mkdir(parents=True)
    (out / "notes" / "synthetic-loo.md").write_text(
        "- **Bold claim**: `pop` ranks by counts,\n  continued on a second line.\n- Second <note> & more.\n"
        "- **`pop` in bold** too.\n")
    assert main(["leaderboard", "--dataset", "synthetic", "--split", "loo", "--store", url,
                 "--leaderboards", str(out)]) == 0
    text = (out / "synthetic-loo.md").read_text()
    html = (out / "synthetic-loo.html").read_text()
    parser = DiagnosticsParser()
    parser.feed(html)
    evaluators = [line.split("`")[1] for line in text.splitlines() if line.startswith("## Evaluator `")]
    assert evaluators and sorted(parser.tables) == sorted(evaluators)
    for evaluator in evaluators:
        header, rows = markdown_table(text, f"## Evaluator `{evaluator}`")
        assert parser.tables[evaluator] == [header, *rows]
    assert parser.reading == ["Bold claim: pop ranks by counts, continued on a second line.",
                              "Second <note> & more.", "pop in bold too."]
    assert "<strong>Bold claim</strong>: <code>pop</code>" in html and "Second &lt;note&gt; &amp; more." in html
    assert "<strong><code>pop</code> in bold</strong> too." in html
