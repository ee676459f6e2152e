"""Checks of a run's dataset against its methods, made before anything is fitted or stored.

``run`` and ``tune`` call :func:`check_methods` for every split they load, so a dataset that
cannot serve a method fails in a second with one line, not after other methods' training:

- **The catalogue must be longer than a ranked list.** Every case ranks the top
  :data:`~benchmark.evaluation.metrics.MAX_K` (20) items. With 20 items or fewer, every list
  holds every item the case may rank, so recall@20 is 1 for every method and the board
  compares nothing (and score-based rankings cannot fill the list). Padding the lists
  with ``-1`` would store those numbers as if they were results, so such a dataset is refused.
- **Every recommender can serve**: it implements ``fit`` and one of ``score`` or
  ``recommend`` (an instance is built for the check, before anything is seeded or fitted).
- **A method that reads item text needs some.** A tokenizer reads item text when it
  declares one of :data:`TEXT_PARAMETERS` (``text_encoder``: it embeds the text through an
  encoder plugin, as TIGER's RQ-VAE, LETTER, LC-Rec and SETRec do; ``field``: P5-TID's
  title and P5-SemID's category path; ``content_fields``: LAMIA), unless it declares
  ``semantic_tokens`` and sets it to 0 (SETRec's ablation without semantic tokens). When no
  item has any text (no item file, one with only ``item_id``, or empty text columns), such
  a method would fit on empty strings: identical embeddings, every item on one code, or
  titles replaced by ids, without a word. It is refused, naming the item file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from benchmark.components import Recommender
from benchmark.data.dataset import PreparedDataset
from benchmark.errors import DatasetError
from benchmark.evaluation.evaluator import ScoreError, ranking_method
from benchmark.evaluation.metrics import MAX_K
from benchmark.methods import ResolvedMethod

TEXT_PARAMETERS = ("text_encoder", "field", "content_fields")


def check_catalogue(data: PreparedDataset, list_length: int = MAX_K) -> None:
    """A :class:`DatasetError` when ``data`` has no more items than a ranked list holds."""
    if data.n_items > list_length:
        return
    k = data.options.get("k_core")
    after = f" after {k}-core filtering" if k else ""
    lower = " (a lower --k-core keeps more)" if k and k > 1 else ""
    raise DatasetError(
        f"dataset {data.name}: {data.n_items} items{after}, but every ranking lists the top {list_length}: "
        f"with {list_length} items or fewer each list holds every item, so recall@{list_length} would be 1 for "
        f"every method; use a dataset with more than {list_length} items{lower}"
    )


def text_parameter(method: ResolvedMethod) -> str | None:
    """The parameter by which ``method``'s tokenizer says it reads item text, or ``None``."""
    params = method.tokenizer_params
    if params.get("semantic_tokens", 1) == 0:
        return None
    return next((name for name in TEXT_PARAMETERS if name in params), None)


def missing_text(data: PreparedDataset) -> tuple[str, str] | None:
    """Why ``data`` has no item text at all, naming the item file, and the mend; ``None``
    when some item has text."""
    if any(value.strip() for fields in data.item_text for value in fields.values()):
        return None
    file = data.item_file
    column = "a tab-separated text column such as title (header item_id:token<TAB>title:token_seq)"
    if data.text_fields:
        where = f" in {file}" if file else f" of dataset {data.name}"
        return f"every item's {', '.join(data.text_fields)} is empty{where}", "fill in the items' text"
    if not file:
        return f"dataset {data.name} has no item text", "give the items text"
    if not Path(file).exists():
        return f"dataset {data.name} has no item text: there is no {file}", f"write it, with item_id and {column}"
    return f"{file} has no text column, only item_id", f"add {column}"


def check_recommender(recommender: Recommender, label: str) -> None:
    """A :class:`ScoreError` naming ``label`` when ``recommender`` does not implement ``fit``,
    or implements neither ``score`` nor ``recommend``."""
    if getattr(type(recommender), "fit", Recommender.fit) is Recommender.fit:
        raise ScoreError(f"{label}: {type(recommender).__name__} does not implement fit(data, identifiers, "
                         "context); implement it (it may do nothing)")
    ranking_method(recommender, label)


def check_methods(data: PreparedDataset, methods: Mapping[str, ResolvedMethod]) -> None:
    """:func:`check_catalogue`; every method's recommender can serve (:func:`check_recommender`,
    on an instance built for the check and dropped); and for each method that reads item
    text, that ``data`` has some."""
    check_catalogue(data)
    for name, method in methods.items():
        check_recommender(method.recommender.factory(method.recommender_params, 0),
                          f"method {name!r} (recommender {method.spec.recommender!r})")
    missing = missing_text(data)
    if missing is None:
        return
    problem, mend = missing
    for name, method in methods.items():
        parameter = text_parameter(method)
        if parameter is not None:
            raise DatasetError(
                f"method {name!r}: tokenizer {method.spec.tokenizer!r} reads item text (its {parameter!r} "
                f"parameter), but {problem}; {mend}, or leave out the methods that read text (sasrec-ce, "
                "for one, reads none)"
            )
