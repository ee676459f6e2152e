"""Bad data, preprocessing options and splits fail with one line naming culprit and mend.

Every case here was silently wrong or misleading before: a run stored None metrics on an
empty test set, ``cold-items`` ignored ``share`` on small catalogs, ``temporal`` trained on
nothing when all timestamps were equal, and malformed atomic files were accepted or blamed
the wrong thing. The command line must exit 2 with one ``error:`` line and store nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import one_error_line, prepared

from benchmark.cli import main
from benchmark.data.dataset import RawDataset, prepare
from benchmark.data.splits import make_split, temporal
from benchmark.errors import DatasetError
from benchmark.store import Store

HEADER = b"user_id:token\titem_id:token\ttimestamp:float\n"


def atomic_folder(root: Path, rows: list[tuple[str, str, float]], name: str = "shop") -> Path:
    """``root/name/name.inter`` holding ``rows`` (user, item, timestamp)."""
    folder = root / name
    folder.mkdir()
    lines = [f"{u}\t{i}\t{t:g}\n".encode() for u, i, t in rows]
    (folder / f"{name}.inter").write_bytes(HEADER + b"".join(lines))
    return folder


def run_command(tmp_path: Path, dataset: str, split: str, *extra: str) -> list[str]:
    return ["run", "--dataset", dataset, "--split", split, "--methods", "pop", "--seeds", "0",
            "--store", f"sqlite:///{tmp_path / 'results.db'}", "--leaderboards", str(tmp_path / "boards"),
            "--cache", str(tmp_path / "cache"), "--no-progress", *extra]


# --------------------------------------------------------------------------- empty parts of a split

SHORT_USERS = [(f"u{u}", f"i{u + j}", 10 * u + j) for u in range(4) for j in range(2)]
SAME_TIME = [(f"u{u}", f"i{(u + j) % 6}", 100) for u in range(5) for j in range(4)]
# 10 interactions, the last three at t=50: the 80% and 90% cuts both fall on t=50.
TIED_CUTS = [("u1", "a", 1), ("u1", "b", 2), ("u1", "c", 3), ("u1", "d", 4), ("u2", "a", 5), ("u2", "b", 6),
             ("u2", "c", 7), ("u1", "e", 50), ("u2", "e", 50), ("u3", "e", 50)]
# The one test interaction (t=10) is its user's first: no input, so no test case at all.
NEW_USER_TEST = [("u1", "a", 1), ("u1", "b", 2), ("u1", "c", 3), ("u1", "d", 4), ("u2", "a", 5), ("u2", "b", 6),
                 ("u2", "c", 7), ("u3", "a", 8), ("u1", "e", 9), ("u4", "e", 10)]


@pytest.mark.parametrize(
    ("rows", "split", "expected"),
    [
        (SHORT_USERS, "loo", "no test case: all 4 users have fewer than 3 interactions (longest: 2); loo needs "
         "users with at least 3 (one to train, one to validate, one to test), and a lower --k-core cannot add any"),
        (SAME_TIME, "temporal", "no training interaction: the 80% time cut falls on the earliest timestamp 100, "
         "which 20 of 20 interactions carry (1 distinct timestamp(s)); temporal needs timestamps spread over time"),
        (TIED_CUTS, "temporal", "no validation interaction: the 80% and 90% time cuts fall on the same timestamp "
         "50, which 3 of 10 interactions carry"),
        (NEW_USER_TEST, "temporal", "no test case: none of the 1 candidate test interaction(s) has an earlier item "
         "of its user to read as input"),
    ],
    ids=["loo-users-under-3", "temporal-equal-timestamps", "temporal-tied-cuts", "temporal-test-only-new-users"],
)
def test_split_without_training_validation_or_test_cases_fails_and_stores_nothing(
    tmp_path, capsys, rows, split, expected
):
    folder = atomic_folder(tmp_path, rows)
    code = main(run_command(tmp_path, f"atomic:{folder}", split, "--k-core", "1"))
    err = one_error_line(capsys)
    assert code == 2
    assert f"split {split} of atomic:{folder}: {expected}" in err
    assert Store(f"sqlite:///{tmp_path / 'results.db'}").rows() == []


# --------------------------------------------------------------------------- cold-items share


@pytest.fixture(scope="module")
def twenty_items():
    rng = np.random.default_rng(0)
    return prepared([rng.choice(20, size=10, replace=False).tolist() for _ in range(40)], n_items=20)


@pytest.mark.parametrize(("share", "cold"), [(0.1, 2), (0.15, 3), (0.2, 4), (0.25, 5), (0.3, 6)])
def test_cold_items_realise_the_nearest_share_on_a_small_catalog(twenty_items, share, cold):
    split = make_split(f"cold-items:share={share}", twenty_items)
    assert len(split.info["cold_items"]) == cold == len(split.cold_items)
    # spread over the ten popularity strata of two items each: at most one cold item per stratum
    loo_counts = np.bincount(np.concatenate([s[:-2] for s in twenty_items.sequences]), minlength=20)
    order = np.lexsort((np.arange(20), -loo_counts))
    stratum = np.empty(20, np.int64)
    stratum[order] = np.arange(20) // 2
    assert len(set(stratum[split.cold_items])) == cold


@pytest.mark.parametrize(
    ("share", "expected"),
    [(0.01, "share=0.01 of 20 items makes 0 cold item(s); choose share between 0.05 (one cold item) and 0.95"),
     (0.99, "share=0.99 of 20 items makes 20 cold item(s); choose share between 0.05 (one cold item) and 0.95")],
)
def test_cold_items_share_that_makes_no_or_only_cold_items_fails(tmp_path, capsys, share, expected):
    rows = [(f"u{u}", f"i{(3 * u + j) % 20}", 10 * u + j) for u in range(40) for j in range(8)]
    folder = atomic_folder(tmp_path, rows)
    code = main(["datasets", f"atomic:{folder}", "--split", f"cold-items:share={share}", "--k-core", "1"])
    assert code == 2
    assert expected in one_error_line(capsys)


# --------------------------------------------------------------------------- malformed atomic files

GOOD = HEADER + b"u1\ta\t10\nu1\tb\t20\nu1\tc\t30\n"


@pytest.mark.parametrize(
    ("inter", "item", "args", "expected"),
    [
        (HEADER + b"u1\ta\t10\nu1\tb\tinf\nu1\tc\t30\n", None, [],
         "shop.inter: line 3: field 'timestamp' is 'inf', not a finite number; write Unix seconds"),
        (GOOD, b"item_id:token\ttitle:token_seq\na\tCaf\xe9 Noir\nb\tB\nc\tC\n", [],
         "shop.item: line 2: byte 0xe9 at column 6 is not UTF-8; save the file as UTF-8, e.g. iconv -f latin1"),
        (HEADER + b"u1\ta\t10\n\tb\t20\nu1\tc\t30\n", None, [],
         "shop.inter: line 3: field 'user_id' is empty; every interaction needs a user_id and an item_id"),
        (GOOD, None, ["--k-core", "-3"],
         "--k-core -3: the k-core must be at least 1 (1 keeps every interaction; the default is 5)"),
        (b"user_id:token,item_id:token,timestamp:float\nu1,a,10\nu1,b,20\n", None, [],
         "shop.inter: line 1: the header holds no tab but ','; atomic files are tab-separated"),
        (HEADER + b"u1\ta\t10\nu1\tb\nu1\tc\t30\n", None, [],
         "shop.inter: line 3: 2 field(s), expected 3 as in the header (user_id, item_id, timestamp)"),
        (HEADER + b"u1\ta\t10\nu1\tb\t20\t5\nu1\tc\t30\n", None, [],
         "shop.inter: line 3: 4 field(s), expected 3 as in the header"),
    ],
    ids=["inf-timestamp", "non-utf8-item-text", "empty-user-id", "negative-k-core", "comma-separated",
         "short-row", "long-row"],
)
def test_malformed_input_fails_with_file_line_field_and_mend(tmp_path, capsys, inter, item, args, expected):
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "shop.inter").write_bytes(inter)
    if item is not None:
        (folder / "shop.item").write_bytes(item)
    code = main(["datasets", f"atomic:{folder}", "--split", "loo", "--k-core", "1", *args])
    assert code == 2
    assert expected in one_error_line(capsys)


def test_atomic_folder_without_its_inter_file_names_the_files_found(tmp_path, capsys):
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "beauty.inter").write_bytes(GOOD)
    (folder / "beauty.item").write_bytes(b"item_id:token\ttitle:token_seq\na\tA\n")
    code = main(["datasets", f"atomic:{folder}"])
    assert code == 2
    assert (f"{folder}: no shop.inter; the file must be named after the folder, and the folder holds "
            "beauty.inter, beauty.item: rename beauty.inter to shop.inter (and beauty.item to shop.item), "
            "or the folder to beauty") in one_error_line(capsys)


def test_negative_k_core_stores_nothing(tmp_path, capsys):
    folder = atomic_folder(tmp_path, [(f"u{u}", f"i{j}", 10 * u + j) for u in range(5) for j in range(5)])
    code = main(run_command(tmp_path, f"atomic:{folder}", "loo", "--k-core", "-3"))
    assert code == 2
    assert "--k-core -3: the k-core must be at least 1" in one_error_line(capsys)
    assert Store(f"sqlite:///{tmp_path / 'results.db'}").rows() == []


def test_infinite_timestamp_from_any_reader_is_refused():
    interactions = pd.DataFrame({"user": ["u1", "u1"], "item": ["a", "b"], "timestamp": [1.0, float("-inf")]})
    raw = RawDataset("toy", interactions=interactions, items=pd.DataFrame())
    with pytest.raises(DatasetError, match=r"toy: row 1: timestamp -inf is not a finite number of seconds"):
        prepare(raw, k=1)


# --------------------------------------------------------------------------- temporal: dropped cases

# Cuts at t=25 and t=30: u2's t=26 and u3's t=31 are their users' first interactions.
DROPPED_SEQUENCES = [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9], [10], [11], [12, 13]]
DROPPED_TIMES = [[1, 2, 3, 4, 5, 30], [6, 7, 8, 25], [26], [31], [9, 32]]


def test_temporal_counts_the_cases_it_drops_for_lack_of_input():
    split = temporal(prepared(DROPPED_SEQUENCES, DROPPED_TIMES), valid_start=0.65, test_start=0.8)
    assert split.valid.targets.tolist() == [9]
    assert split.test.targets.tolist() == [5, 13]
    assert split.info["dropped_cases"] == {"valid": 1, "test": 1}
    assert split.summary()["test"]["dropped"] == 1


def test_datasets_command_shows_dropped_cases(tmp_path, capsys):
    rows = [(f"u{u}", f"i{i}", t) for u, (items, times) in enumerate(zip(DROPPED_SEQUENCES, DROPPED_TIMES))
            for i, t in zip(items, times)]
    folder = atomic_folder(tmp_path, rows)
    # split options hold commas, as the --split list does: both are read
    code = main(["datasets", f"atomic:{folder}", "--split", "loo,temporal:valid_start=0.65,test_start=0.8",
                 "--k-core", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "Dropped (no input)" in out
    test_row = next(line for line in out.splitlines() if line.startswith("temporal") and " test " in line)
    # cases, warm, cold, cold share, dropped
    assert test_row.split()[2:7] == ["2", "0", "2", "100.00%", "1"]
