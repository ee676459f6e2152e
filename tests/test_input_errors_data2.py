"""Data edge cases and split options, round two: one line naming culprit and mend, nothing stored.

Each case here crashed, ran on or hung before: a catalogue smaller than the ranked list
crashed every method after its fit (numpy shape mismatch), ids differing only by whitespace
silently became two users, a column named twice was read with only pandas' warning, text
methods fitted on empty text, one 10 MB title kept ``p5-tid`` busy for minutes, and split
options out of range reached numpy.
"""

from __future__ import annotations

import sqlite3
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import one_error_line, prepared
from test_input_errors_data import atomic_folder, run_command

from benchmark import plugins
from benchmark.cli import main
from benchmark.components import TrainingData
from benchmark.data.atomic import read_atomic
from benchmark.data.dataset import RawDataset, prepare
from benchmark.data.splits import SPLITS, cold_items, leave_one_out, make_split, temporal
from benchmark.errors import DatasetError, ParameterError
from benchmark.methods import resolve_method
from benchmark.nn.beam_search import TokenTrie
from benchmark.params import resolve
from benchmark.store import Store

FAST = ("--param", "recommender.epochs=1")


def stored(tmp_path: Path) -> list:
    return Store(f"sqlite:///{tmp_path / 'results.db'}").rows()


def claims_left(tmp_path: Path) -> list:
    path = tmp_path / "results.db"
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        return db.execute("select run_key, owner from claims").fetchall()


def items_rows(n_items: int, n_users: int = 30, per_user: int = 6) -> list[tuple[str, str, float]]:
    """Every user meets ``per_user`` consecutive items of a ring of ``n_items``: all items used."""
    return [(f"u{u}", f"i{(u + j) % n_items}", 10 * u + j) for u in range(n_users) for j in range(per_user)]


# --------------------------------------------------------------------------- catalogue vs ranked list


@pytest.mark.parametrize(
    ("n_items", "methods", "extra"),
    [
        (15, "pop", ()),
        (15, "pop", ("--keep-seen",)),
        (15, "sasrec-ce", FAST),
        (15, "pop,sasrec-ce", FAST),
        (20, "pop", ()),
    ],
    ids=["pop", "pop-keep-seen", "sasrec-ce", "pop-then-sasrec", "exactly-20-items"],
)
def test_catalogue_no_longer_than_the_ranked_list_is_refused_before_any_fit(tmp_path, capsys, n_items, methods,
                                                                            extra):
    # Before: pop and sasrec-ce crashed after their fit with "shape mismatch: value array of
    # shape (30,15) could not be broadcast to indexing result of shape (30,20)"; on 20 items pop
    # stored recall@20 = 1.0, as every method would have.
    folder = atomic_folder(tmp_path, items_rows(n_items))
    args = run_command(tmp_path, f"atomic:{folder}", "loo", "--k-core", "1", *extra)
    args[args.index("--methods") + 1] = methods
    code = main(args)
    captured = capsys.readouterr()
    assert code == 2
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    assert (f"dataset atomic:{folder}: {n_items} items after 1-core filtering, but every ranking lists the top "
            "20: with 20 items or fewer each list holds every item, so recall@20 would be 1 for every method; "
            "use a dataset with more than 20 items") in err
    assert "done" not in captured.out
    assert stored(tmp_path) == [] and not (tmp_path / "boards").exists()


def test_a_catalogue_of_21_items_still_runs(tmp_path, capsys):
    folder = atomic_folder(tmp_path, items_rows(21))
    assert main(run_command(tmp_path, f"atomic:{folder}", "loo", "--k-core", "1")) == 0
    assert len(stored(tmp_path)) == 1


def test_small_catalogue_after_k_core_says_a_lower_k_core_keeps_more(tmp_path, capsys):
    folder = atomic_folder(tmp_path, items_rows(15))
    assert main(run_command(tmp_path, f"atomic:{folder}", "loo", "--k-core", "2")) == 2
    assert "15 items after 2-core filtering" in (err := one_error_line(capsys))
    assert err.endswith("use a dataset with more than 20 items (a lower --k-core keeps more)")


def test_tune_refuses_a_small_catalogue_before_creating_a_study(tmp_path, capsys):
    folder = atomic_folder(tmp_path, items_rows(15))
    storage = tmp_path / "optuna.db"
    code = main(["tune", "--method", "sasrec-ce", "--dataset", f"atomic:{folder}", "--k-core", "1", "--trials", "1",
                 "--storage", f"sqlite:///{storage}", "--cache", str(tmp_path / "cache"), "--leaderboards",
                 str(tmp_path / "boards"), "--no-progress"])
    assert code == 2
    assert f"dataset atomic:{folder}: 15 items after 1-core filtering" in one_error_line(capsys)
    assert not storage.exists()


# --------------------------------------------------------------------------- whitespace around ids

# u1's second and third interactions are written " u1": before, two users (u1 with 3
# interactions, " u1" with 2), and at 5-core both were dropped.
PADDED_USER = [("u1", "a", 1), (" u1", "b", 2), (" u1", "c", 3), ("u1", "d", 4), ("u1", "e", 5), ("u2", "a", 6)]
PADDED_ITEM = [("u1", "a", 1), ("u1", "b ", 2), ("u2", "b", 3), ("u2", "a", 4)]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (PADDED_USER, "shop.inter: line 3: field 'user_id' is ' u1', with whitespace around the id, and line 2 has "
         "'u1'; ids are compared exactly, so the two would be different users: write every id without spaces "
         "around it"),
        (PADDED_ITEM, "shop.inter: line 3: field 'item_id' is 'b ', with whitespace around the id, and line 4 has "
         "'b'; ids are compared exactly, so the two would be different items"),
    ],
    ids=["user", "item"],
)
def test_ids_differing_only_by_whitespace_are_refused_naming_file_and_line(tmp_path, capsys, rows, expected):
    folder = atomic_folder(tmp_path, rows)
    assert main(["datasets", f"atomic:{folder}", "--split", "loo", "--k-core", "1"]) == 2
    assert expected in one_error_line(capsys)


def test_whitespace_twins_in_a_run_store_nothing(tmp_path, capsys):
    # The 480-line file of the report: every third line of a user written with a leading space.
    rows = [((" " if n % 3 == 0 else "") + f"u{u}", f"i{(3 * u + j) % 30}", 10 * u + j)
            for n, (u, j) in enumerate((u, j) for u in range(60) for j in range(8))]
    folder = atomic_folder(tmp_path, rows)
    assert len(rows) == 480
    assert main(run_command(tmp_path, f"atomic:{folder}", "loo")) == 2
    assert "shop.inter: line 2: field 'user_id' is ' u0', with whitespace around the id, and line 3 has 'u0'" in \
        one_error_line(capsys)
    assert stored(tmp_path) == []


def test_item_file_ids_differing_only_by_whitespace_are_refused(tmp_path, capsys):
    folder = atomic_folder(tmp_path, [("u1", "a", 1), ("u1", "b", 2), ("u1", "c", 3)])
    (folder / "shop.item").write_text("item_id:token\ttitle:token_seq\na\tA\nb\tB\nc\tC\n a\tA again\n")
    assert main(["datasets", f"atomic:{folder}", "--split", "loo", "--k-core", "1"]) == 2
    assert "shop.item: line 5: field 'item_id' is ' a', with whitespace around the id, and line 2 has 'a'" in \
        one_error_line(capsys)


def test_an_interaction_item_missing_from_the_item_file_but_for_whitespace_says_so(tmp_path, capsys):
    folder = atomic_folder(tmp_path, [("u1", "a", 1), ("u1", "b", 2), ("u1", "c", 3)])
    (folder / "shop.item").write_text("item_id:token\ttitle:token_seq\na\tA\nb \tB\nc\tC\n")
    assert main(["datasets", f"atomic:{folder}", "--split", "loo", "--k-core", "1"]) == 2
    assert ("shop.inter: line 3: item_id 'b' is not in shop.item (it holds 'b ', which differs only by whitespace: "
            "remove the spaces around ids); add it there or remove the interaction") in one_error_line(capsys)


def test_whitespace_twins_from_any_reader_are_refused():
    interactions = pd.DataFrame({"user": ["u1", "u1 ", "u2"], "item": ["a", "b", "a"], "timestamp": [1.0, 2.0, 3.0]})
    raw = RawDataset("toy", interactions=interactions, items=pd.DataFrame())
    with pytest.raises(DatasetError, match=r"toy: row 1: user 'u1 ' has whitespace around it, and row 0 has 'u1'"):
        prepare(raw, k=1)


def test_an_id_padded_the_same_way_everywhere_is_kept():
    # No twin, so nothing is ambiguous: " u9" is read as written, as RecBole reads it.
    interactions = pd.DataFrame({"user": [" u9", " u9", "u2"], "item": ["a", "b", "a"], "timestamp": [1.0, 2.0, 3.0]})
    data = prepare(RawDataset("toy", interactions=interactions, items=pd.DataFrame()), k=1)
    assert sorted(data.user_ids) == [" u9", "u2"]


# --------------------------------------------------------------------------- a column named twice


@pytest.mark.parametrize(
    ("file", "content", "expected"),
    [
        ("shop.item", "item_id:token\ttitle:token_seq\ttitle:token_seq\n" + "".join(f"i{i}\tT{i}\tX{i}\n"
                                                                                 for i in range(25)),
         "shop.item: line 1: column 'title' appears twice in the header (columns 2 and 3); give each column once: "
         "rename or delete one of them"),
        ("shop.inter", "user_id:token\titem_id:token\ttimestamp:float\ttimestamp:float\n" + "".join(
            f"{u}\t{i}\t{t:g}\t{t:g}\n" for u, i, t in items_rows(25)),
         "shop.inter: line 1: column 'timestamp' appears twice in the header (columns 3 and 4)"),
    ],
    ids=["item-file", "inter-file"],
)
def test_a_column_named_twice_fails_naming_file_and_column(tmp_path, capsys, file, content, expected):
    folder = atomic_folder(tmp_path, items_rows(25))
    (folder / file).write_text(content)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # before: pandas' "DataFrame columns are not unique" naming no file
        code = main(["datasets", f"atomic:{folder}", "--split", "loo", "--k-core", "1"])
    assert code == 2
    assert expected in one_error_line(capsys)


def test_a_rename_onto_an_existing_column_fails(tmp_path):
    folder = atomic_folder(tmp_path, items_rows(25))
    (folder / "shop.item").write_text("item_id:token\tmovie_title:token_seq\ttitle:token_seq\n"
                                      + "".join(f"i{i}\tM{i}\tT{i}\n" for i in range(25)))
    with pytest.raises(DatasetError, match=r"shop.item: line 1: columns 'movie_title' and 'title' both become text "
                       r"field 'title'; keep one of them"):
        read_atomic(folder, rename={"movie_title": "title"})


# --------------------------------------------------------------------------- methods that read item text

TITLES = "".join(f"i{i}\tTitle {i}\n" for i in range(25))


@pytest.mark.parametrize(
    ("item", "method", "expected"),
    [
        ("item_id:token\n" + "".join(f"i{i}\n" for i in range(25)), "p5-tid",
         "method 'p5-tid': tokenizer 'tid' reads item text (its 'field' parameter), but {folder}/shop.item has no "
         "text column, only item_id; add a tab-separated text column such as title (header "
         "item_id:token<TAB>title:token_seq), or leave out the methods that read text (sasrec-ce, for one, reads "
         "none)"),
        ("item_id:token\n" + "".join(f"i{i}\n" for i in range(25)), "tiger",
         "method 'tiger': tokenizer 'rqvae' reads item text (its 'text_encoder' parameter), but {folder}/shop.item "
         "has no text column, only item_id"),
        ("item_id:token\ttitle:token_seq\n" + "".join(f"i{i}\t \n" for i in range(25)), "p5-tid",
         "method 'p5-tid': tokenizer 'tid' reads item text (its 'field' parameter), but every item's title is "
         "empty in {folder}/shop.item; fill in the items' text"),
        (None, "setrec", "method 'setrec': tokenizer 'setrec' reads item text (its 'text_encoder' parameter), but "
         "dataset atomic:{folder} has no item text: there is no {folder}/shop.item; write it, with item_id and a "
         "tab-separated text column such as title"),
        (None, "lamia", "method 'lamia': tokenizer 'lamia' reads item text (its 'content_fields' parameter)"),
        (None, "p5-semid", "method 'p5-semid': tokenizer 'semid' reads item text (its 'field' parameter)"),
    ],
    ids=["tid-no-text-column", "tiger-no-text-column", "tid-empty-titles", "setrec-no-item-file", "lamia",
         "semid"],
)
def test_methods_that_read_item_text_are_refused_without_any_before_any_fit(tmp_path, capsys, item, method,
                                                                           expected):
    # Before: pop was fitted and stored, then tiger fitted its RQ-VAE on empty strings (every
    # item on one code, no word said), p5-tid failed after pop's fit or numbered "item i3" ids.
    folder = atomic_folder(tmp_path, items_rows(25))
    if item is not None:
        (folder / "shop.item").write_text(item)
    args = run_command(tmp_path, f"atomic:{folder}", "loo", "--k-core", "1", "--param",
                       f"{method}:recommender.epochs=1")
    args[args.index("--methods") + 1] = f"pop,{method}"
    code = main(args)
    captured = capsys.readouterr()
    assert code == 2
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    assert expected.format(folder=folder) in err
    assert "done" not in captured.out
    assert stored(tmp_path) == []


def test_methods_that_read_no_text_pass_the_text_check():
    from benchmark.preflight import check_methods

    data = prepared([list(range(i, i + 5)) for i in range(30)], n_items=40)
    data.item_text = [{} for _ in range(40)]
    data.text_fields = ()
    names = ["pop", "sasrec-ce", "p5-cid"]
    check_methods(data, {name: resolve_method(name, "tiny") for name in names})
    # SETRec without semantic tokens reads no text either.
    check_methods(data, {"setrec": resolve_method("setrec", "tiny", {"tokenizer.semantic_tokens": 0})})
    with pytest.raises(DatasetError, match="method 'setrec': tokenizer 'setrec' reads item text"):
        check_methods(data, {"setrec": resolve_method("setrec", "tiny")})


# --------------------------------------------------------------------------- a 10 MB title

def big_title() -> str:
    """10 MB of words: "w0 w1 ... w996 w0 ..."."""
    return " ".join(f"w{k % 997}" for k in range(2_100_000))[:10_000_000]


def test_tid_cuts_a_10mb_title_and_its_trie_builds_in_seconds(tmp_path):
    from plugins.recommenders.seq2seq import PARAMS as SEQ2SEQ_PARAMS
    from plugins.recommenders.seq2seq import Layout
    from plugins.tokenizers import p5

    title = big_title()
    assert len(title) == 10_000_000
    data = prepared([[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [1, 2, 3, 4, 5]], n_items=6)
    data.item_text[3] = {"title": title}
    data.item_text[5] = {"title": title[:40] + " and more"}
    spec = plugins.get_tokenizers()["tid"]
    from test_tokenizers_p5 import context

    training = TrainingData.from_split(leave_one_out(data))
    start = time.perf_counter()
    identifiers = spec.factory(resolve(spec.params, "tiny", {}, "tid"), 0).fit(training, context(tmp_path))
    # Before: the identifier was the whole 10 MB title, and the trie build ran for minutes.
    assert len(identifiers.texts[3]) <= p5.MAX_TITLE_CHARS and len(identifiers.texts[3].split()) <= 64
    assert identifiers.texts[3] == " ".join(title.split()[:64])
    assert identifiers.texts[0] == "item 0" and identifiers.texts[5] == title[:40] + " and more"
    assert identifiers.info["titles_shortened"] == 1
    layout = Layout(identifiers, resolve(SEQ2SEQ_PARAMS, "tiny", {}, "seq2seq"))
    trie = TokenTrie(layout.outputs, layout.vocab_size)
    assert len(trie) == 6 and trie.max_length <= p5.MAX_TITLE_CHARS + 1
    assert time.perf_counter() - start < 20


def test_short_title_keeps_titles_within_the_limits_unchanged():
    from plugins.tokenizers.p5 import short_title

    assert short_title("Toy  Story (1995)") == "Toy  Story (1995)"
    assert short_title(" ".join(["w"] * 64)) == " ".join(["w"] * 64)
    assert short_title(" ".join(["w"] * 65)) == " ".join(["w"] * 64)
    assert short_title("abcd " * 200) == " ".join(["abcd"] * 64)
    assert short_title("x" * 600) == "x" * 512
    assert short_title(("long" * 30 + " ") * 10).count(" ") == 3  # 121-character words: four fit in 512


def test_a_failure_inside_a_claimed_run_leaves_no_claim(tmp_path, capsys):
    # p5-tid on a text field the items lack fails in its tokenizer's fit, inside the run's
    # claim: the claim is released, nothing is stored.
    folder = atomic_folder(tmp_path, items_rows(25))
    (folder / "shop.item").write_text("item_id:token\ttitle:token_seq\n" + TITLES)
    args = run_command(tmp_path, f"atomic:{folder}", "loo", "--k-core", "1", "--param", "tokenizer.field=name")
    args[args.index("--methods") + 1] = "p5-tid"
    assert main(args) == 2
    assert "has no text field 'name'" in one_error_line(capsys)
    assert stored(tmp_path) == [] and claims_left(tmp_path) == []


# --------------------------------------------------------------------------- split options

SPLIT_PROBES = [
    ("cold-items:strata=0", "split cold-items: option strata=0 is out of range: strata must be an integer from 1 to "
     "the number of items, e.g. cold-items:strata=10"),
    ("cold-items:strata=-2", "option strata=-2 is out of range: strata must be an integer from 1 to the number of "
     "items"),
    ("cold-items:strata=21", "option strata=21 is out of range: strata must be an integer from 1 to the number of "
     "items (20), e.g. cold-items:strata=10"),
    ("cold-items:strata=2.5", "option strata needs an integer, got '2.5': strata must be an integer from 1 to the "
     "number of items"),
    ("cold-items:seed=-1", "split cold-items: option seed=-1 is out of range: seed must be an integer of 0 or more, "
     "e.g. cold-items:seed=0"),
    ("cold-items:seed=1.5", "option seed needs an integer, got '1.5': seed must be an integer of 0 or more"),
    ("cold-items:share=nan", "option share=nan is out of range: share must be a number between 0 and 1 "
     "(exclusive), e.g. cold-items:share=0.1"),
    ("cold-items:share=x", "option share needs a number, got 'x': share must be a number between 0 and 1"),
    ("cold-items:share=0.1,share=0.2", "option share is given twice; give each option once"),
    ("cold-items:share", "option share has no value; write share=VALUE, e.g. cold-items:share=0.1"),
    ("cold-items:size=3", "unknown option 'size'; cold-items takes share, seed, strata"),
    ("temporal:valid_start=-0.5", "split temporal: option valid_start=-0.5 is out of range: valid_start must be a "
     "number between 0 and 1 (exclusive), below test_start, e.g. temporal:valid_start=0.8"),
    ("temporal:valid_start=nan", "option valid_start=nan is out of range"),
    ("temporal:test_start=inf", "option test_start=inf is out of range: test_start must be a number between 0 and "
     "1 (exclusive), above valid_start"),
    ("temporal:test_start=1", "option test_start=1.0 is out of range"),
    ("temporal:test_start=1.5", "option test_start=1.5 is out of range"),
    ("temporal:valid_start=0.95", "split temporal: valid_start=0.95 must lie before test_start=0.9 (validation runs "
     "from valid_start to test_start); write e.g. temporal:valid_start=0.8,test_start=0.9"),
    ("temporal:valid_start=0", "option valid_start=0.0 is out of range"),
    ("loo:share=0.1", "unknown option 'share'; loo takes no options"),
]


@pytest.mark.parametrize(("split", "expected"), SPLIT_PROBES, ids=[s for s, _ in SPLIT_PROBES])
def test_split_options_out_of_range_or_of_wrong_type_fail_naming_option_and_range(tmp_path, capsys, split,
                                                                                  expected):
    # Before: strata=0/-2, seed=-1, valid_start=nan and test_start=inf were numpy tracebacks;
    # valid_start=-0.5, test_start=1 or 1.5, strata=21 and a repeated share ran on.
    rows = [(f"u{u}", f"i{(3 * u + j) % 20}", 10 * u + j) for u in range(40) for j in range(8)]
    folder = atomic_folder(tmp_path, rows)
    assert main(["datasets", f"atomic:{folder}", "--split", split, "--k-core", "1"]) == 2
    assert expected in one_error_line(capsys)


def test_a_bad_split_option_in_a_run_stores_nothing(tmp_path, capsys):
    folder = atomic_folder(tmp_path, items_rows(25))
    assert main(run_command(tmp_path, f"atomic:{folder}", "loo,cold-items:strata=0", "--k-core", "1")) == 2
    assert "option strata=0 is out of range" in one_error_line(capsys)
    assert stored(tmp_path) == []


def test_every_option_of_every_split_is_declared_with_its_range():
    import inspect

    from benchmark.data.splits import SPLIT_OPTIONS

    for name, function in SPLITS.items():
        parameters = [p for p in inspect.signature(function).parameters if p not in ("data", "max_history")]
        assert list(SPLIT_OPTIONS[name]) == parameters, name


def test_split_functions_called_directly_check_their_options():
    data = prepared([list(range(i, i + 6)) for i in range(30)], n_items=40)
    with pytest.raises(ParameterError, match="option strata=0 is out of range"):
        cold_items(data, strata=0)
    with pytest.raises(ParameterError, match="option seed=True is not an integer"):
        cold_items(data, seed=True)
    with pytest.raises(ParameterError, match="option valid_start=-1 is out of range"):
        temporal(data, valid_start=-1)
    assert len(make_split("cold-items:share=0.2, seed=1,strata=40", data).info["cold_items"]) == 8


def test_datasets_help_lists_every_split_option_with_its_default(capsys):
    assert main(["datasets", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "loo, temporal (valid_start=0.8, test_start=0.9), cold-items (share=0.1, seed=0, strata=10)" in out


def test_out_of_range_split_options_never_reach_numpy():
    data = prepared([list(range(i, i + 6)) for i in range(30)], n_items=40)
    for option, values in {"strata": ["0", "-1", "41"], "seed": ["-1"], "share": ["0", "1", "-0.5", "inf"]}.items():
        for value in values:
            with pytest.raises(ParameterError):
                make_split(f"cold-items:{option}={value}", data)
    for value in ["0", "1", "-0.1", "nan", "2"]:
        for option in ("valid_start", "test_start"):
            with pytest.raises(ParameterError):
                make_split(f"temporal:{option}={value}", data)
    assert np.isfinite(make_split("temporal:valid_start=0.5,test_start=0.75", data).info["valid_from"])


def test_the_python_api_refuses_a_small_catalogue_like_the_command_line(tmp_path):
    # `runner.fit` / `execute` called directly reached the evaluator's shape mismatch.
    from benchmark.runner import RunRequest, execute

    folder = atomic_folder(tmp_path, [(f"u{u}", f"i{(u + j) % 15}", j) for u in range(30) for j in range(6)])
    with pytest.raises(DatasetError, match="15 items after 1-core filtering, but every ranking lists the top 20"):
        execute(RunRequest(dataset=f"atomic:{folder}", split="loo", method="pop", k_core=1), tmp_path / "cache",
                progress=False)
