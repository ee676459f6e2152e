"""P5 identifier variants: title (TID), category path (SemID) and collaborative clusters (CID).

Hua et al., "How to Index Item IDs for Recommendation Foundation Models" (SIGIR-AP'23),
for the P5 backbone (Geng et al., RecSys'22):

- ``tid``   the item's title is its identifier (title indexing);
- ``semid`` the item's category path plus a final number that separates items sharing the
            path (semantic indexing);
- ``cid``   recursive spectral clustering of the item co-occurrence graph, N clusters per
            level until a cluster holds at most k items, plus a final number (collaborative
            indexing; paper N=20, k=500).

Every tokenizer reads only training sequences and item text, never validation or test
cases, and gives an identifier to every catalog item, cold items included. Final numbers
follow item-index order; item indices are a seeded random permutation (see
``benchmark.data.dataset.prepare``), so they leak no time order (P5 PR #3). Results are
cached under ``<cache>/identifiers/`` by a hash of exactly the inputs each tokenizer reads.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import eigsh

from benchmark import hookimpl
from benchmark.cache import array_digest, artifact_path, content_hash, load_identifiers, save_identifiers
from benchmark.code_trie import collision_rate, disambiguate
from benchmark.components import FitContext, ItemIdentifiers, TokenizerSpec, TrainingData
from benchmark.errors import ParameterError, PluginError
from benchmark.nn.clustering import kmeans
from benchmark.params import Param

PATH_SEPARATOR = " > "
GENRES_FIELD = "genres"
NO_DEEPER_LEVEL = 0  # semid/cid code for "the path ends above this level"
DENSE_EIGEN_LIMIT = 2000  # below this many items a dense eigendecomposition is fast and exact
# TID identifiers: longer titles are cut (see TitleTokenizer); every title of ml-100k and
# the synthetic data is far shorter, so their identifiers are unchanged.
MAX_TITLE_WORDS = 64
MAX_TITLE_CHARS = 512

TID_PARAMS = (Param("field", str, "title", "item text field whose value is the identifier"),)
SEMID_PARAMS = (
    Param("field", str, "category",
          "category-path field ('A > B > C'); without it the dataset's 'genres' field is used, "
          "its first genre being the only path level"),
)
CID_PARAMS = (
    Param("window", int, 5, "co-occurrence window: items within this many consecutive training positions",
          minimum=1),
    Param("clusters", int, 8, "clusters per level (N)", profiles={"paper": 20, "cpu": 20}, minimum=2),
    Param("max_cluster_size", int, 20, "split a cluster until it holds at most this many items (k)",
          profiles={"paper": 500}, minimum=1),
)


# --------------------------------------------------------------------------- cache


def _text_fingerprint(data: TrainingData) -> str:
    return content_hash([str(item) for item in data.catalog.item_ids], data.catalog.item_text)


def _train_fingerprint(data: TrainingData) -> str:
    # Training sequences only: validation cases and the split digest must not matter.
    lengths = np.array([len(seq) for seq in data.train], np.int64)
    items = np.concatenate([np.asarray(seq, np.int64) for seq in data.train]) if data.train else lengths
    return content_hash(data.n_items, array_digest(lengths), array_digest(items))


def _cached(path: Path, build: Callable[[], ItemIdentifiers]) -> ItemIdentifiers:
    """Identifiers from the cache file ``path``, built and saved when absent or unreadable."""
    identifiers = load_identifiers(path)
    if identifiers is None:
        identifiers = build()
        save_identifiers(path, identifiers)
    return identifiers


def _codes_identifiers(paths: np.ndarray, info: dict[str, Any]) -> ItemIdentifiers:
    """``codes`` identifiers from path codes (n_items, depth): disambiguate, count, size vocabularies."""
    codes, collisions = disambiguate(paths)
    vocab_sizes = tuple(int(v) + 1 for v in codes.max(axis=0)) if len(codes) else (0,) * codes.shape[1]
    info = {
        "collisions_before": collisions,
        "collision_rate_before": collision_rate(paths),
        "levels": int(codes.shape[1]),
        # The appended index level separates items; diagnostics measure the path levels.
        "semantic_levels": int(paths.shape[1]),
        **info,
    }
    return ItemIdentifiers(kind="codes", n_items=len(codes), codes=codes, vocab_sizes=vocab_sizes, info=info)


def _check_field(data: TrainingData, field: str, tokenizer: str) -> None:
    if field not in data.catalog.text_fields:
        known = ", ".join(data.catalog.text_fields) or "none"
        raise PluginError(
            f"tokenizer {tokenizer!r}: dataset {data.catalog.name!r} has no text field {field!r} "
            f"(its fields: {known}); set --param tokenizer.field=NAME"
        )


# --------------------------------------------------------------------------- TID


def unique_titles(titles: list[str], fallbacks: list[str]) -> tuple[list[str], int]:
    """Titles made unique, and how many items shared a title before.

    Empty titles become their fallback. The first item (by index) keeps a shared title;
    later ones get ``"Title (2)"``, ``"Title (3)"``..., skipping names already in use.
    """
    names = [t.strip() or f for t, f in zip(titles, fallbacks)]
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    taken = set(names)
    seen: set[str] = set()
    result = []
    for name in names:
        if name not in seen:
            seen.add(name)
            result.append(name)
            continue
        number = 2
        while f"{name} ({number})" in taken:
            number += 1
        taken.add(f"{name} ({number})")
        result.append(f"{name} ({number})")
    collisions = sum(c for c in counts.values() if c > 1)
    return result, collisions


def short_title(title: str, max_words: int = MAX_TITLE_WORDS, max_chars: int = MAX_TITLE_CHARS) -> str:
    """``title`` cut to its first ``max_words`` whitespace-separated words, then to at most
    ``max_chars`` characters at a word boundary (a first word longer than that is cut
    inside). A title within both limits is returned unchanged, spaces and all."""
    if len(title) <= max_chars and len(title.split(None, max_words)) <= max_words:
        return title
    words = title.split(None, max_words)[:max_words]
    kept: list[str] = []
    length = -1
    for word in words:
        if length + 1 + len(word) > max_chars:
            break
        kept.append(word)
        length += 1 + len(word)
    return " ".join(kept) if kept else words[0][:max_chars]


class TitleTokenizer:
    """P5-TID: the title is the identifier.

    An identifier is written word by word and decoded under a trie, so its length bounds
    the decoding steps and the trie's size: a title longer than :data:`MAX_TITLE_WORDS`
    words or :data:`MAX_TITLE_CHARS` characters is cut to that (:func:`short_title`; a
    10 MB title otherwise kept the trie build busy for minutes). Titles within the limits,
    all of ml-100k's and the synthetic data's, are kept as they are; ``info`` counts the
    titles cut (``titles_shortened``).
    """

    kind = "text"

    def __init__(self, params: dict[str, Any]):
        self.field = params["field"]

    def fit(self, data: TrainingData, context: FitContext) -> ItemIdentifiers:
        _check_field(data, self.field, "tid")
        limits = f"words{MAX_TITLE_WORDS}-chars{MAX_TITLE_CHARS}"
        path = artifact_path(context.cache_dir, "identifiers", "tid", self.field, limits, _text_fingerprint(data),
                             suffix=".json")
        return _cached(path, lambda: self._build(data))

    def _build(self, data: TrainingData) -> ItemIdentifiers:
        dataset = data.catalog
        full = [fields.get(self.field, "") for fields in dataset.item_text]
        titles = [short_title(title) for title in full]
        texts, collisions = unique_titles(titles, [f"item {raw}" for raw in dataset.item_ids])
        info = {"collisions_before": collisions, "collision_rate_before": collisions / max(1, len(texts)),
                "levels": 1, "titles_shortened": sum(a != b for a, b in zip(full, titles))}
        return ItemIdentifiers(kind="text", n_items=len(texts), texts=texts, info=info)


# --------------------------------------------------------------------------- SemID


def category_paths(values: list[str], genres: bool = False) -> list[tuple[str, ...]]:
    """Split each item's category text into path parts.

    A ``genres`` value (``"Animation Children's Comedy"``) lists unordered genres, not a
    hierarchy, so only its first genre forms a one-level path; reading the list as a path
    would put the same genre at different depths.
    """
    if genres:
        return [tuple(v.split()[:1]) for v in values]
    return [tuple(p.strip() for p in v.split(PATH_SEPARATOR) if p.strip()) for v in values]


def path_codes(paths: list[tuple[str, ...]]) -> np.ndarray:
    """Per-level codes (n_items, max depth): 1 + the part's rank among that level's sorted
    distinct parts; :data:`NO_DEEPER_LEVEL` pads shorter paths."""
    depth = max((len(p) for p in paths), default=0)
    codes = np.full((len(paths), depth), NO_DEEPER_LEVEL, np.int64)
    for level in range(depth):
        parts = sorted({p[level] for p in paths if len(p) > level})
        index = {part: code for code, part in enumerate(parts, start=NO_DEEPER_LEVEL + 1)}
        for i, path in enumerate(paths):
            if len(path) > level:
                codes[i, level] = index[path[level]]
    return codes


class SemanticTokenizer:
    """P5-SemID: category path plus a final number.

    The path comes from ``field`` (default ``category``, parts split on ``" > "``). When
    the dataset has no ``category`` field but has ``genres`` (MovieLens), the first genre
    is the only path level: genres are an unordered list, not a hierarchy. Items without
    a path share the all-:data:`NO_DEEPER_LEVEL` path and differ by their final number.
    """

    kind = "codes"

    def __init__(self, params: dict[str, Any]):
        self.field = params["field"]

    def _field(self, data: TrainingData) -> str:
        fields = data.catalog.text_fields
        if self.field not in fields and self.field == "category" and GENRES_FIELD in fields:
            return GENRES_FIELD
        _check_field(data, self.field, "semid")
        return self.field

    def fit(self, data: TrainingData, context: FitContext) -> ItemIdentifiers:
        field = self._field(data)
        path = artifact_path(context.cache_dir, "identifiers", "semid", field, _text_fingerprint(data),
                             suffix=".json")
        return _cached(path, lambda: self._build(data, field))

    def _build(self, data: TrainingData, field: str) -> ItemIdentifiers:
        values = [fields.get(field, "") for fields in data.catalog.item_text]
        paths = category_paths(values, genres=field == GENRES_FIELD)
        return _codes_identifiers(path_codes(paths), {"field": field})


# --------------------------------------------------------------------------- CID


def cooccurrence_graph(sequences: list[np.ndarray], n_items: int, window: int) -> sp.csr_matrix:
    """Symmetric item graph: weight = how often two items fall within ``window`` consecutive positions."""
    sequences = [np.asarray(s, np.int64) for s in sequences if len(s) > 1]
    if not sequences or window < 2:
        return sp.csr_matrix((n_items, n_items))
    flat = np.concatenate(sequences)
    owner = np.repeat(np.arange(len(sequences)), [len(s) for s in sequences])
    rows, cols = [], []
    for offset in range(1, window):
        same_user = owner[:-offset] == owner[offset:]
        rows.append(flat[:-offset][same_user])
        cols.append(flat[offset:][same_user])
    rows_all, cols_all = np.concatenate(rows), np.concatenate(cols)
    keep = rows_all != cols_all
    graph = sp.coo_matrix((np.ones(keep.sum()), (rows_all[keep], cols_all[keep])), shape=(n_items, n_items))
    graph = graph.tocsr()
    return (graph + graph.T).tocsr()


def spectral_clusters(graph: sp.csr_matrix, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
    """Normalised spectral clustering (Ng, Jordan & Weiss): top eigenvectors of
    D^-1/2 A D^-1/2, rows normalised, then k-means. Returns a label per node."""
    n = graph.shape[0]
    degree = np.asarray(graph.sum(1)).ravel()
    # Nodes without edges get a zero embedding row and end up clustered together.
    scale = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1e-12)), 0.0)
    normalised = sp.diags(scale) @ graph @ sp.diags(scale)
    dims = min(n_clusters, n - 1)
    if n <= DENSE_EIGEN_LIMIT or dims < 1:
        _, vectors = np.linalg.eigh(normalised.toarray())
        vectors = vectors[:, n - max(dims, 1):]
    else:
        _, vectors = eigsh(normalised.tocsc(), k=dims, which="LA", v0=rng.uniform(-1, 1, n))
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    embedding = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    return kmeans(embedding, n_clusters, rng).labels


def _chunks(items: np.ndarray, n_parts: int) -> list[np.ndarray]:
    # Item indices are a random permutation, so index order gives a random, balanced split.
    return [c for c in np.array_split(items, min(n_parts, len(items))) if len(c)]


class CollaborativeTokenizer:
    """P5-CID: recursive spectral clustering of the training co-occurrence graph.

    Cold items (no co-occurrence edge in training) carry no collaborative signal, so they
    are not placed in the graph's clusters: they share a dedicated top-level code
    ``clusters + 1`` and are split into balanced chunks (item-index order, which is random)
    until each holds at most ``max_cluster_size``. This is simpler and more honest than
    placing them by text similarity, which would turn CID into a hybrid of CID and SemID.
    Paths are padded with :data:`NO_DEEPER_LEVEL`; cluster codes start at 1.
    """

    kind = "codes"

    def __init__(self, params: dict[str, Any], seed: int):
        if params["clusters"] < 2:
            raise ParameterError(f"tokenizer 'cid': clusters={params['clusters']} must be at least 2")
        if params["max_cluster_size"] < 1:
            raise ParameterError(
                f"tokenizer 'cid': max_cluster_size={params['max_cluster_size']} must be at least 1"
            )
        self.window = params["window"]
        self.n_clusters = params["clusters"]
        self.max_size = params["max_cluster_size"]
        self.seed = seed

    def fit(self, data: TrainingData, context: FitContext) -> ItemIdentifiers:
        params = [self.window, self.n_clusters, self.max_size, self.seed]
        path = artifact_path(context.cache_dir, "identifiers", "cid", params, _train_fingerprint(data),
                             suffix=".json")
        return _cached(path, lambda: self._build(data))

    def _build(self, data: TrainingData) -> ItemIdentifiers:
        graph = cooccurrence_graph(data.train, data.n_items, self.window)
        degree = np.asarray(graph.sum(1)).ravel()
        warm, cold = np.flatnonzero(degree > 0), np.flatnonzero(degree == 0)
        paths: dict[int, tuple[int, ...]] = {}
        if len(cold) == 0:
            self._assign(warm, (), graph, paths)
        else:
            top = self._spectral_groups(warm, (), graph) if len(warm) > self.max_size else [warm]
            for label, group in enumerate((g for g in top if len(g)), start=1):
                self._assign(group, (label,), graph, paths)
            self._assign(cold, (self.n_clusters + 1,), None, paths)
        depth = max((len(p) for p in paths.values()), default=0)
        codes = np.full((data.n_items, depth), NO_DEEPER_LEVEL, np.int64)
        for item, item_path in paths.items():
            codes[item, : len(item_path)] = item_path
        return _codes_identifiers(codes, {"cold_items": int(len(cold)), "depth": depth})

    def _assign(self, items: np.ndarray, path: tuple[int, ...], graph: sp.csr_matrix | None,
                paths: dict[int, tuple[int, ...]]) -> None:
        """Split ``items`` until each group holds at most k, recording each item's path."""
        if len(items) <= self.max_size:
            paths.update((int(i), path) for i in items)
            return
        groups = self._spectral_groups(items, path, graph) if graph is not None else _chunks(items, self.n_clusters)
        for label, group in enumerate(groups, start=1):
            self._assign(group, path + (label,), graph, paths)

    def _spectral_groups(self, items: np.ndarray, path: tuple[int, ...], graph: sp.csr_matrix) -> list[np.ndarray]:
        # Seeded per node, so a subtree's result does not depend on traversal order.
        rng = np.random.default_rng([self.seed, len(path), *path])
        labels = spectral_clusters(graph[items][:, items], self.n_clusters, rng)
        groups = [items[labels == c] for c in np.unique(labels)]
        # Relabel by smallest member so codes do not depend on k-means label order.
        groups.sort(key=lambda g: g.min())
        if len(groups) < 2:
            # k-means found no structure (e.g. identical embeddings): split evenly so recursion ends.
            return _chunks(items, self.n_clusters)
        return groups


# --------------------------------------------------------------------------- registration


@hookimpl
def register_tokenizers(register) -> None:
    register(
        TokenizerSpec(
            name="tid", version="6c362fd4453e",
            factory=lambda params, seed: TitleTokenizer(params),
            kind="text",
            description="P5-TID: the item's title is its identifier (duplicates numbered)",
            params=TID_PARAMS,
        )
    )
    register(
        TokenizerSpec(
            name="semid", version="6c362fd4453e",
            factory=lambda params, seed: SemanticTokenizer(params),
            kind="codes",
            description="P5-SemID: category path codes plus a final number per item",
            params=SEMID_PARAMS,
        )
    )
    register(
        TokenizerSpec(
            name="cid", version="6c362fd4453e",
            factory=CollaborativeTokenizer,
            kind="codes",
            description="P5-CID: recursive spectral clustering of training co-occurrence plus a final number",
            params=CID_PARAMS,
        )
    )
