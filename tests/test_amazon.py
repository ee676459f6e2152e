"""Amazon 2014/2018 readers, download cache and dataset plugin, on tiny fixture files.

Fixtures are written here in the real schemas (gzip'd JSON lines; 2014 metadata as Python
dict literals). The network is never used: an autouse fixture makes every URL unreachable
and download tests install a fake opener serving local bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
from pathlib import Path
from urllib.error import HTTPError, URLError

import pytest

from benchmark.data.dataset import prepare
from benchmark.errors import DatasetError
from plugins.datasets import amazon as amazon_plugin
from plugins.datasets.amazon import download as amazon_files
from plugins.datasets.amazon.download import default_directory, ensure_files, file_names
from plugins.datasets.amazon.reader import read_amazon, read_meta, read_reviews

REVIEWS_2014 = [
    {"reviewerID": "U1", "asin": "B001", "reviewerName": "Ann", "helpful": [0, 0],
     "reviewText": "nice", "overall": 5.0, "summary": "ok", "unixReviewTime": 1390003200,
     "reviewTime": "01 18, 2014"},
    {"reviewerID": "U1", "asin": "B002", "reviewerName": "Ann", "helpful": [1, 2],
     "reviewText": "meh", "overall": 3.0, "summary": "hm", "unixReviewTime": 1390089600,
     "reviewTime": "01 19, 2014"},
    {"reviewerID": "U2", "asin": "B001", "helpful": [0, 0], "reviewText": "good",
     "overall": 4.0, "summary": "fine", "unixReviewTime": 1388534400,
     "reviewTime": "01 1, 2014"},
    {"reviewerID": "U2", "asin": "B003", "helpful": [0, 0], "reviewText": "?",
     "overall": 2.0, "summary": "no meta", "unixReviewTime": 1388620800,
     "reviewTime": "01 2, 2014"},
]
META_2014 = [
    {"asin": "B001", "title": "Tom's Red Lipstick", "price": 12.5, "imUrl": "http://x/1.jpg",
     "related": {"also_bought": ["B002"]}, "salesRank": {"Beauty": 123},
     "categories": [["Beauty", "Makeup", "Lips"], ["Luxury Beauty"]], "brand": "Acme",
     "description": "A lipstick."},
    {"asin": "B009", "title": "Never reviewed", "categories": [["Beauty"]]},
]
# The 2014 dump also has JSON-style lines (null); they need the json.loads fallback.
META_2014_JSON_LINE = '{"asin": "B002", "title": "Comb", "brand": null, "categories": [["Beauty", "Tools"]]}'

REVIEWS_2018 = [
    {"overall": 5.0, "verified": True, "reviewTime": "09 1, 2016", "reviewerID": "R1",
     "asin": "A100", "style": {"Size:": " 4 oz"}, "reviewerName": "Bo", "reviewText": "x",
     "summary": "y", "unixReviewTime": 1472688000},
    {"overall": 4.0, "verified": False, "reviewTime": "09 2, 2016", "reviewerID": "R2",
     "asin": "A100", "reviewText": "z", "summary": "w", "unixReviewTime": 1472774400},
    {"overall": 1.0, "verified": True, "reviewTime": "09 3, 2016", "reviewerID": "R2",
     "asin": "A200", "reviewText": "z", "summary": "w", "unixReviewTime": 1472860800},
]
META_2018 = [
    {"category": ["Beauty & Personal Care", "Skin Care", "Face"], "tech1": "",
     "description": ["A cream."], "fit": "", "title": "Foo &amp; Bar  Cream", "also_buy": [],
     "brand": "Foo", "feature": [], "rank": "1 in Beauty", "also_view": [], "details": {},
     "main_cat": "All Beauty", "similar_item": "", "date": "", "price": "$14.99",
     "asin": "A100", "imageURL": [], "imageURLHigh": []},
    # The 2018 meta files repeat items; the first line wins.
    {"category": ["Other"], "title": "Duplicate", "asin": "A100", "price": "$1.00"},
    {"category": [], "title": '<span class="a-size-medium">Serum</span>', "brand": "", "description": "plain string",
     "main_cat": "All Beauty", "price": ".a-box-inner{background-color:#fff}", "asin": "A200"},
    {"category": ["Beauty & Personal Care"], "title": "Not in 5-core", "asin": "A999"},
]


def write_gz(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("".join(line + "\n" for line in lines))
    return path


def write_2014(directory: Path, category: str = "Beauty") -> tuple[Path, Path]:
    reviews = write_gz(
        directory / f"reviews_{category}_5.json.gz", [json.dumps(r) for r in REVIEWS_2014]
    )
    meta = write_gz(
        directory / f"meta_{category}.json.gz",
        [repr(META_2014[0]), META_2014_JSON_LINE, repr(META_2014[1])],
    )
    return reviews, meta


def write_2018(directory: Path, category: str = "All_Beauty") -> tuple[Path, Path]:
    reviews = write_gz(directory / f"{category}_5.json.gz", [json.dumps(r) for r in REVIEWS_2018])
    meta = write_gz(directory / f"meta_{category}.json.gz", [json.dumps(m) for m in META_2018])
    return reviews, meta


class FakeResponse(io.BytesIO):
    """What ``urlopen`` returns: a readable body with headers."""

    def __init__(self, data: bytes, length: int | None = None) -> None:
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data) if length is None else length)}


class FakeOpener:
    """Serves files of a local directory by URL base name and records what was asked."""

    def __init__(self, source: Path, length_bonus: int = 0) -> None:
        self.source = source
        self.length_bonus = length_bonus
        self.calls: list[str] = []

    def __call__(self, request, timeout: float) -> FakeResponse:
        url = request.full_url
        self.calls.append(url)
        assert timeout <= 30, "downloads must try the server with a short timeout"
        data = (self.source / url.rsplit("/", 1)[-1]).read_bytes()
        return FakeResponse(data, len(data) + self.length_bonus)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every URL is unreachable unless a test installs its own opener."""
    calls: list[str] = []

    def unreachable(request, timeout: float):
        calls.append(request.full_url)
        raise URLError("network disabled in tests")

    monkeypatch.setattr(amazon_files, "urlopen", unreachable)
    monkeypatch.setattr(amazon_files, "KNOWN_SHA256", {})
    return calls


# --------------------------------------------------------------------------- parsing


def test_2014_reviews_and_literal_meta(tmp_path: Path) -> None:
    reviews, _ = write_2014(tmp_path)
    raw = read_amazon(tmp_path, "Beauty", "2014")
    raw.validate()
    assert raw.name == "amazon2014-Beauty"
    assert raw.source == str(reviews)
    assert raw.text_fields == ("title", "brand", "category", "price")
    inter = raw.interactions
    assert list(inter.columns) == ["user", "item", "timestamp"]
    assert inter["user"].tolist() == ["U1", "U1", "U2", "U2"]
    assert inter["item"].tolist() == ["B001", "B002", "B001", "B003"]
    assert inter["timestamp"].dtype == "float64"
    assert inter["timestamp"].tolist() == [1390003200.0, 1390089600.0, 1388534400.0, 1388620800.0]
    items = raw.items
    assert sorted(items.index) == ["B001", "B002", "B003"]  # B009 has no review
    assert items.loc["B001"].to_dict() == {
        "title": "Tom's Red Lipstick",
        "brand": "Acme",
        "category": "Beauty > Makeup > Lips",  # first path only
        "price": "$12.50",
    }
    assert items.loc["B002"].to_dict() == {
        "title": "Comb", "brand": "", "category": "Beauty > Tools", "price": "",
    }


def test_item_missing_from_meta_gets_empty_text(tmp_path: Path) -> None:
    write_2014(tmp_path)
    raw = read_amazon(tmp_path, "Beauty", "2014")
    assert raw.items.loc["B003"].to_dict() == {"title": "", "brand": "", "category": "", "price": ""}
    prepared = prepare(raw, k=1)
    text = {item: t for item, t in zip(prepared.item_ids, prepared.item_text)}
    assert text["B003"] == {"title": "", "brand": "", "category": "", "price": ""}
    assert text["B001"]["category"] == "Beauty > Makeup > Lips"


def test_2018_reviews_and_json_meta(tmp_path: Path) -> None:
    reviews, _ = write_2018(tmp_path)
    raw = read_amazon(tmp_path, "All_Beauty", "2018")
    raw.validate()
    assert raw.name == "amazon2018-All_Beauty"
    assert raw.source == str(reviews)
    assert raw.interactions["user"].tolist() == ["R1", "R2", "R2"]
    assert raw.interactions["item"].tolist() == ["A100", "A100", "A200"]
    assert raw.interactions["timestamp"].tolist() == [1472688000.0, 1472774400.0, 1472860800.0]
    assert sorted(raw.items.index) == ["A100", "A200"]
    assert raw.items.loc["A100"].to_dict() == {
        "title": "Foo & Bar Cream",
        "brand": "Foo",
        "category": "Beauty & Personal Care > Skin Care > Face",
        "price": "$14.99",
    }
    # Page markup in the price field is not a price.
    assert raw.items.loc["A200"].to_dict() == {
        "title": "Serum", "brand": "", "category": "", "price": "",
    }


@pytest.mark.parametrize("version", ["2014", "2018"])
def test_titles_lose_markup_and_entities_and_the_plugin_counts_them(tmp_path: Path, capsys, version: str) -> None:
    category = "Beauty" if version == "2014" else "All_Beauty"
    reviews_name, meta_name = file_names(category, version)
    asins = ["X1", "X2", "X3", "X4"]
    write_gz(tmp_path / reviews_name,
             [json.dumps({"reviewerID": "U1", "asin": a, "unixReviewTime": 1000 + i}) for i, a in enumerate(asins)])
    meta = [
        {"asin": "X1", "title": '<style>.a-box{color:#fff}</style><span class="a-size-medium">Serum 0</span>'},
        {"asin": "X2", "title": "Tom &amp; Jerry&#39;s <b>Comb</b>"},
        {"asin": "X3", "title": "  Plain   Brush ", "brand": "A &amp; B"},
        # X4 has no meta line: its title is missing
    ]
    write_gz(tmp_path / meta_name, [repr(m) if version == "2014" else json.dumps(m) for m in meta])
    raw = registered()[f"amazon{version}"].load(f"{category}@{tmp_path}")
    assert raw.items.loc[asins, "title"].tolist() == ["Serum 0", "Tom & Jerry's Comb", "Plain Brush", ""]
    assert raw.items.loc["X3", "brand"] == "A & B"
    assert (raw.info["items"], raw.info["titles_cleaned"], raw.info["titles_missing"]) == (4, 2, 1)
    assert capsys.readouterr().err.strip() == (
        f"amazon{version}-{category}: 4 item titles, 2 cleaned of HTML markup or entities, 1 missing "
        f"(absent from or empty in {meta_name})"
    )


def test_harness_does_not_import_the_amazon_reader() -> None:
    # The reader lives in its plugin, like MovieLens; the harness only lists the plugin.
    harness = Path(__file__).resolve().parents[1] / "benchmark"
    assert not (harness / "data" / "amazon.py").exists()
    imports = re.compile(r"^\s*(from|import)\s+\S*amazon", re.MULTILINE)
    assert [p.name for p in harness.rglob("*.py") if imports.search(p.read_text())] == []


def test_read_meta_without_filter_keeps_every_item(tmp_path: Path) -> None:
    _, meta = write_2018(tmp_path)
    items = read_meta(meta, "2018")
    assert list(items.index) == ["A100", "A200", "A999"]
    assert items.loc["A100", "title"] == "Foo & Bar Cream"


def test_plain_text_file_under_gz_name_is_read(tmp_path: Path) -> None:
    path = tmp_path / "reviews_Beauty_5.json.gz"
    path.write_text(json.dumps(REVIEWS_2014[0]) + "\n")
    assert read_reviews(path)["item"].tolist() == ["B001"]


# --------------------------------------------------------------------------- errors


def test_missing_field_names_file_line_and_field(tmp_path: Path) -> None:
    write_2014(tmp_path)
    lines = [json.dumps(r) for r in REVIEWS_2014]
    broken = dict(REVIEWS_2014[2])
    del broken["unixReviewTime"]
    lines[2] = json.dumps(broken)
    write_gz(tmp_path / "reviews_Beauty_5.json.gz", lines)
    with pytest.raises(DatasetError) as info:
        read_amazon(tmp_path, "Beauty", "2014")
    message = str(info.value)
    assert "reviews_Beauty_5.json.gz: line 3: field 'unixReviewTime' is missing" in message
    assert "reviewerID, asin and unixReviewTime" in message


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"reviewerID": "U9", "asin": "B1", "unixReviewTime": 12', "line 2: cannot parse"),
        ('["U9", "B1"]', "line 2: the line holds a list"),
        ('{"reviewerID": "U9", "asin": "B1", "unixReviewTime": "soon"}',
         "line 2: field 'unixReviewTime' is 'soon', not a finite number"),
        ('{"reviewerID": "U9", "asin": "B1", "unixReviewTime": Infinity}',
         "line 2: field 'unixReviewTime' is inf, not a finite number"),
        ('{"reviewerID": "", "asin": "B1", "unixReviewTime": 1}', "line 2: field 'reviewerID'"),
        ('{"reviewerID": "U9", "unixReviewTime": 1}', "line 2: field 'asin' is missing"),
    ],
)
def test_malformed_review_lines(tmp_path: Path, line: str, expected: str) -> None:
    path = write_gz(tmp_path / "All_Beauty_5.json.gz", [json.dumps(REVIEWS_2018[0]), "", line])
    # The blank line still counts: numbers are file lines, not records.
    expected = expected.replace("line 2", "line 3")
    with pytest.raises(DatasetError, match="All_Beauty_5.json.gz") as info:
        read_reviews(path)
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("version", "line", "expected"),
    [
        ("2014", "{'title': 'no asin'}", "line 2: field 'asin' is missing"),
        ("2014", "{'asin': 'B001', 'categories': 'Beauty'}", "line 2: field 'categories'"),
        ("2018", '{"asin": "B001", "category": "Beauty"}', "line 2: field 'category'"),
        ("2018", '{"asin": "B001", "title": ["a", "b"]}', "line 2: field 'title'"),
        ("2014", "{'asin': 'B001', 'title': }", "line 2: cannot parse"),
    ],
)
def test_malformed_meta_lines(tmp_path: Path, version: str, line: str, expected: str) -> None:
    path = write_gz(tmp_path / "meta_X.json.gz", ["{'asin': 'B000'}", line])
    with pytest.raises(DatasetError, match="meta_X.json.gz") as info:
        read_meta(path, version)
    assert expected in str(info.value)


@pytest.mark.parametrize("which", [0, 1])
def test_empty_file_is_named(tmp_path: Path, which: int) -> None:
    paths = write_2014(tmp_path)
    write_gz(paths[which], [])
    with pytest.raises(DatasetError, match="is empty") as info:
        read_amazon(tmp_path, "Beauty", "2014")
    assert str(paths[which]) in str(info.value)


def test_truncated_gzip_is_named(tmp_path: Path) -> None:
    reviews, _ = write_2014(tmp_path)
    data = reviews.read_bytes()
    reviews.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="truncated or corrupt") as info:
        read_amazon(tmp_path, "Beauty", "2014")
    assert str(reviews) in str(info.value)


def test_bad_version_and_category() -> None:
    with pytest.raises(DatasetError, match="2014"):
        file_names("Beauty", "2020")
    with pytest.raises(DatasetError, match="category"):
        file_names("../Beauty", "2014")


# --------------------------------------------------------------------------- files


def test_default_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GENREC_BENCH_DATA", str(tmp_path))
    assert default_directory("2018") == tmp_path / "amazon" / "2018"
    monkeypatch.delenv("GENREC_BENCH_DATA")
    assert default_directory("2014") == (
        Path("~/.cache/genrec-bench/data").expanduser() / "amazon" / "2014"
    )


def test_missing_files_without_network(tmp_path: Path, no_network: list[str]) -> None:
    with pytest.raises(DatasetError) as info:
        ensure_files(tmp_path / "amazon", "Beauty", "2014")
    message = str(info.value)
    assert str(tmp_path / "amazon" / "reviews_Beauty_5.json.gz") in message
    assert str(tmp_path / "amazon" / "meta_Beauty.json.gz") in message
    base = "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/"
    assert base + "reviews_Beauty_5.json.gz" in message
    assert base + "meta_Beauty.json.gz" in message
    assert "cannot be reached" in message
    assert no_network == [base + "reviews_Beauty_5.json.gz"]  # tried once, short timeout
    assert not any(tmp_path.rglob("*.part"))


def test_missing_files_with_download_off(tmp_path: Path, no_network: list[str]) -> None:
    with pytest.raises(DatasetError) as info:
        read_amazon(tmp_path, "All_Beauty", "2018")
    message = str(info.value)
    assert "downloading is switched off" in message
    assert str(tmp_path / "All_Beauty_5.json.gz") in message
    assert "https://jmcauley.ucsd.edu/data/amazon_v2/categoryFilesSmall/All_Beauty_5.json.gz" in message
    assert "https://jmcauley.ucsd.edu/data/amazon_v2/metaFiles2/meta_All_Beauty.json.gz" in message
    assert no_network == []


def test_download_progress_part_rename_and_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    no_network: list[str],
) -> None:
    source, cache = tmp_path / "server", tmp_path / "cache"
    write_2018(source)
    opener = FakeOpener(source)
    monkeypatch.setattr(amazon_files, "urlopen", opener)
    monkeypatch.setattr(amazon_files, "CHUNK_BYTES", 64)  # several progress updates

    reviews, meta = ensure_files(cache, "All_Beauty", "2018")

    assert opener.calls == [
        "https://jmcauley.ucsd.edu/data/amazon_v2/categoryFilesSmall/All_Beauty_5.json.gz",
        "https://jmcauley.ucsd.edu/data/amazon_v2/metaFiles2/meta_All_Beauty.json.gz",
    ]
    assert reviews.read_bytes() == (source / "All_Beauty_5.json.gz").read_bytes()
    assert meta.read_bytes() == (source / "meta_All_Beauty.json.gz").read_bytes()
    assert not list(cache.glob("*.part"))
    # No published checksum: the digest is recorded for later runs.
    recorded = (cache / "All_Beauty_5.json.gz.sha256").read_text().split()[0]
    assert recorded == hashlib.sha256(reviews.read_bytes()).hexdigest()
    err = capsys.readouterr().err
    assert "downloading All_Beauty_5.json.gz" in err
    assert "100%" in err

    # Second use: the cache answers and the network is not touched.
    monkeypatch.setattr(amazon_files, "urlopen", FakeOpener(source))
    second = amazon_files.urlopen
    raw = read_amazon(cache, "All_Beauty", "2018", allow_download=True)
    assert second.calls == []
    assert raw.interactions["item"].tolist() == ["A100", "A100", "A200"]


def test_checksum_mismatch_keeps_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source, cache = tmp_path / "server", tmp_path / "cache"
    write_2014(source)
    monkeypatch.setattr(amazon_files, "urlopen", FakeOpener(source))
    monkeypatch.setitem(amazon_files.KNOWN_SHA256, "reviews_Beauty_5.json.gz", "0" * 64)
    with pytest.raises(DatasetError, match="does not match the published") as info:
        ensure_files(cache, "Beauty", "2014")
    assert str(cache / "reviews_Beauty_5.json.gz") in str(info.value)
    assert not (cache / "reviews_Beauty_5.json.gz").exists()
    assert not list(cache.glob("*.part"))
    assert not list(cache.glob("*.sha256"))


def test_known_checksum_accepts_good_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, cache = tmp_path / "server", tmp_path / "cache"
    reviews, _ = write_2014(source)
    monkeypatch.setattr(amazon_files, "urlopen", FakeOpener(source))
    good = hashlib.sha256(reviews.read_bytes()).hexdigest()
    monkeypatch.setitem(amazon_files.KNOWN_SHA256, "reviews_Beauty_5.json.gz", good)
    ensure_files(cache, "Beauty", "2014")
    assert not (cache / "reviews_Beauty_5.json.gz.sha256").exists()  # published one suffices
    assert (cache / "meta_Beauty.json.gz.sha256").exists()


def test_recorded_checksum_catches_later_corruption(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, cache = tmp_path / "server", tmp_path / "cache"
    write_2014(source)
    monkeypatch.setattr(amazon_files, "urlopen", FakeOpener(source))
    ensure_files(cache, "Beauty", "2014")
    (cache / "meta_Beauty.json.gz").write_bytes(b"tampered")
    with pytest.raises(DatasetError, match="delete meta_Beauty.json.gz") as info:
        read_amazon(cache, "Beauty", "2014")
    assert str(cache / "meta_Beauty.json.gz.sha256") in str(info.value)


def test_short_download_keeps_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source, cache = tmp_path / "server", tmp_path / "cache"
    write_2014(source)
    monkeypatch.setattr(amazon_files, "urlopen", FakeOpener(source, length_bonus=100))
    with pytest.raises(DatasetError, match="download stopped after"):
        ensure_files(cache, "Beauty", "2014")
    assert list(cache.iterdir()) == []


def test_http_404_suggests_categories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def not_found(request, timeout: float):
        raise HTTPError(request.full_url, 404, "Not Found", {}, None)

    monkeypatch.setattr(amazon_files, "urlopen", not_found)
    with pytest.raises(DatasetError, match="HTTP 404") as info:
        ensure_files(tmp_path, "Beauty", "2018")
    assert "All_Beauty" in str(info.value)
    assert str(tmp_path / "Beauty_5.json.gz") in str(info.value)


# --------------------------------------------------------------------------- plugin


def registered() -> dict[str, object]:
    specs: list = []
    amazon_plugin.register_datasets(register=specs.append)
    return {spec.name: spec for spec in specs}


def test_plugin_registers_both_versions() -> None:
    specs = registered()
    assert set(specs) == {"amazon2014", "amazon2018"}
    for spec in specs.values():
        assert spec.takes_argument
        assert "@" in spec.argument_help
        assert spec.description


def test_plugin_loads_category_at_directory(tmp_path: Path) -> None:
    write_2014(tmp_path / "mine")
    raw = registered()["amazon2014"].load(f"Beauty@{tmp_path / 'mine'}")
    assert raw.name == "amazon2014-Beauty"
    assert len(raw.interactions) == 4


def test_plugin_reads_default_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENREC_BENCH_DATA", str(tmp_path))
    write_2018(tmp_path / "amazon" / "2018")
    raw = registered()["amazon2018"].load("All_Beauty")
    assert raw.name == "amazon2018-All_Beauty"
    assert raw.source == str(tmp_path / "amazon" / "2018" / "All_Beauty_5.json.gz")


def test_plugin_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    specs = registered()
    with pytest.raises(DatasetError, match="needs a category"):
        specs["amazon2014"].load(None)
    monkeypatch.setenv("GENREC_BENCH_DATA", str(tmp_path))
    with pytest.raises(DatasetError) as info:
        specs["amazon2014"].load("Beauty")
    assert str(tmp_path / "amazon" / "2014" / "reviews_Beauty_5.json.gz") in str(info.value)
