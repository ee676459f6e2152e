"""Train / validation / test splits shared by every method.

``loo``: per user the last interaction is the test case and the one before it the
validation case (TIGER, LETTER, LC-Rec, LAMIA protocol). ``temporal``: one global time
cut at 80% and 90% of interactions (SETRec, BIGRec protocol); every interaction after a
cut is a case whose input is all of that user's earlier interactions.

``cold-items``: strict item cold-start (see :func:`cold_items`).

A case is *cold* when its target has no training interaction and *new-user* when its
user has none. Popularity groups G1 (most popular) to G4 split the warm items into
quarters by training count, each quarter holding a quarter of the items.

Validation cases never carry a test interaction: their input and ``seen`` items are the
user's earlier interactions minus every test interaction, so what fitting reads holds no
test case by construction. A case left with no input item (a ``temporal`` interaction that
is its user's first, a ``cold-items`` case without an earlier warm item) is dropped and
counted in ``Split.info["dropped_cases"]``. A split without validation or test cases, or
without training interactions, is refused with a :class:`DatasetError` saying why.

Options (``cold-items:share=0.2,seed=1``) are declared with their type and range in
:data:`SPLIT_OPTIONS`; an unknown, repeated or valueless option, a value of the wrong type
and one out of range (``strata=0``, ``valid_start=nan``) fail with a
:class:`ParameterError` naming the option and its range, before any array is built.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from benchmark.data.dataset import PreparedDataset
from benchmark.errors import BenchmarkError, DatasetError, ParameterError

DEFAULT_MAX_HISTORY = 20
POPULARITY_GROUPS = ("G1", "G2", "G3", "G4")
# Bumped whenever a change to the splitting rules changes cases: part of every digest, so
# runs of an older protocol are told apart (and listed as left out by the leaderboards).
PROTOCOL_VERSION = 2


@dataclass
class Cases:
    """Evaluation cases as parallel arrays (one entry per case).

    ``histories`` are the last ``max_history`` items before the target (model input);
    ``seen`` are all the user's earlier items (excluded from the ranking unless
    ``--keep-seen``). ``cold``: the target has no training interaction; ``new_user``: the
    user has none.
    """

    users: np.ndarray
    histories: list[np.ndarray]
    seen: list[np.ndarray]
    targets: np.ndarray
    timestamps: np.ndarray
    cold: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    groups: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    new_user: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, index: np.ndarray) -> Cases:
        index = np.asarray(index)
        return Cases(
            users=self.users[index],
            histories=[self.histories[i] for i in index],
            seen=[self.seen[i] for i in index],
            targets=self.targets[index],
            timestamps=self.timestamps[index],
            cold=self.cold[index],
            groups=self.groups[index],
            new_user=self.new_user[index],
        )

    def masks(self) -> dict[str, np.ndarray]:
        """Boolean masks of the reported subsets: all, warm, cold, new-user, G1..G4."""
        return subset_masks(self.cold, self.new_user, self.groups)

    def labels(self) -> dict[str, list[int]]:
        """Per-case subset labels as stored with every run (see :func:`subset_masks`)."""
        return {"cold": self.cold.astype(int).tolist(), "new_user": self.new_user.astype(int).tolist(),
                "group": self.groups.tolist()}


VALIDATION_SAMPLE_SEED = 0


def validation_sample(cases: Cases, limit: int | None) -> Cases:
    """A fixed sample of ``limit`` cases (all of them when ``limit`` is None or not smaller).

    The sample depends only on the cases and ``limit`` (a constant seed), so every method
    and every seed that asks for the same size validates on the same cases, in case order.
    """
    if limit is None or limit >= len(cases):
        return cases
    return cases.subset(fixed_sample(len(cases), limit))


def fixed_sample(n: int, limit: int) -> np.ndarray:
    """The sorted indices of a fixed sample of ``limit`` of ``n`` cases (all of them when
    ``limit`` is not smaller): the same for every method and seed."""
    if limit >= n:
        return np.arange(n)
    if limit < 1:
        raise ValueError(f"a validation sample needs at least one case, got limit={limit}")
    return np.sort(np.random.default_rng(VALIDATION_SAMPLE_SEED).choice(n, limit, replace=False))


def subset_masks(cold: np.ndarray, new_user: np.ndarray, groups: np.ndarray) -> dict[str, np.ndarray]:
    """Masks of the reported subsets from per-case labels."""
    cold = np.asarray(cold, bool)
    masks = {"all": np.ones(len(cold), bool), "warm": ~cold, "cold": cold.copy(),
             "new-user": np.asarray(new_user, bool)}
    for g, name in enumerate(POPULARITY_GROUPS):
        masks[name] = np.asarray(groups) == g
    return masks


@dataclass
class Split:
    """What every method sees: training sequences, validation and test cases.

    ``train[u]`` is user u's training items in time order (possibly empty).
    ``train_counts[i]`` is item i's training interaction count; items with zero are cold.
    ``group_of_item[i]`` is its popularity group 0..3, or -1 for cold items.
    ``digest`` hashes the data, every case, the history cap and the protocol version:
    equal digests mean the same split.
    """

    name: str
    dataset: PreparedDataset
    train: list[np.ndarray]
    train_timestamps: list[np.ndarray]
    valid: Cases
    test: Cases
    train_counts: np.ndarray
    group_of_item: np.ndarray
    digest: str = ""
    info: dict = field(default_factory=dict)
    max_history: int = DEFAULT_MAX_HISTORY

    @property
    def n_items(self) -> int:
        return self.dataset.n_items

    @property
    def n_users(self) -> int:
        return self.dataset.n_users

    @property
    def cold_items(self) -> np.ndarray:
        return np.flatnonzero(self.train_counts == 0)

    def summary(self) -> dict[str, object]:
        """Counts for ``genrec-bench datasets``."""
        rows = {}
        for part, cases in (("valid", self.valid), ("test", self.test)):
            n = len(cases)
            rows[part] = {
                "cases": n,
                "warm": int((~cases.cold).sum()),
                "cold": int(cases.cold.sum()),
                "new_user": int(cases.new_user.sum()),
                "cold_share": float(cases.cold.mean()) if n else float("nan"),
                "dropped": int(self.info.get("dropped_cases", {}).get(part, 0)),
            }
        rows["train_interactions"] = int(sum(len(s) for s in self.train))
        rows["cold_items"] = int((self.train_counts == 0).sum())
        return rows


def _finish(
    name: str,
    data: PreparedDataset,
    train: list[np.ndarray],
    train_ts: list[np.ndarray],
    valid_raw: list[tuple[int, int]],
    test_raw: list[tuple[int, int]],
    info: dict,
    max_history: int,
    mend: str,
    hidden: np.ndarray | None = None,
) -> Split:
    """Label cases (cold, new-user, popularity group) from training counts and build the split.

    A case at position p of user u's sequence reads u's items before p. Validation cases
    skip every test position of their user, in input and ``seen`` alike. Items marked in
    ``hidden`` never appear in model input. A case left with no input item is dropped and
    counted; when no validation or test case is left, :class:`DatasetError` says so and
    adds ``mend`` (how to get cases from this split).
    """
    if max_history < 1:
        raise BenchmarkError(f"--max-history {max_history}: the history cap must be at least 1, e.g. 20")
    counts = np.bincount(np.concatenate(train) if train else [], minlength=data.n_items)
    groups = popularity_groups(counts)
    has_training = np.array([len(t) > 0 for t in train], bool)
    test_positions: dict[int, set[int]] = {}
    for u, p in test_raw:
        test_positions.setdefault(u, set()).add(p)

    def earlier(u: int, p: int, skip_test: bool) -> np.ndarray:
        positions = np.arange(p)
        if skip_test and u in test_positions:
            positions = positions[~np.isin(positions, list(test_positions[u]))]
        return data.sequences[u][positions]

    dropped: dict[str, int] = {}

    def cases(part: str, positions: list[tuple[int, int]], skip_test: bool) -> Cases:
        seqs = [earlier(u, p, skip_test) for u, p in positions]
        inputs = seqs if hidden is None else [s[~hidden[s]] for s in seqs]
        keep = [i for i, s in enumerate(inputs) if len(s)]
        dropped[part] = len(positions) - len(keep)
        if not keep:
            kind = "validation" if part == "valid" else "test"
            why = (f": none of the {len(positions)} candidate {kind} interaction(s) has an earlier item of "
                   "its user to read as input") if positions else ""
            raise DatasetError(f"split {name} of {data.name}: no {kind} case{why}; {mend}")
        positions = [positions[i] for i in keep]
        seqs, inputs = [seqs[i] for i in keep], [inputs[i] for i in keep]
        users = np.array([u for u, _ in positions], np.int64)
        targets = np.array([data.sequences[u][p] for u, p in positions], np.int64)
        times = np.array([data.timestamps[u][p] for u, p in positions], np.float64)
        return Cases(
            users=users,
            histories=[s[-max_history:] for s in inputs],
            seen=seqs,
            targets=targets,
            timestamps=times,
            cold=counts[targets] == 0 if len(targets) else np.zeros(0, bool),
            groups=groups[targets] if len(targets) else np.zeros(0, np.int64),
            new_user=~has_training[users] if len(users) else np.zeros(0, bool),
        )

    if not any(len(t) for t in train):
        raise DatasetError(f"split {name} of {data.name}: no training interaction; {mend}")
    valid, test = cases("valid", valid_raw, skip_test=True), cases("test", test_raw, skip_test=False)
    # Computed once here, so that later code never needs the test cases to identify a split.
    h = hashlib.sha256(data.digest().encode())
    h.update(f"protocol {PROTOCOL_VERSION}; max_history {max_history}".encode())
    for part in (valid, test):
        h.update(part.users.tobytes())
        h.update(part.targets.tobytes())
    return Split(
        name=name,
        dataset=data,
        train=train,
        train_timestamps=train_ts,
        valid=valid,
        test=test,
        train_counts=counts,
        group_of_item=groups,
        digest=h.hexdigest()[:16],
        info={**info, "dropped_cases": dropped, "protocol_version": PROTOCOL_VERSION, "max_history": max_history},
        max_history=max_history,
    )


def popularity_groups(counts: np.ndarray) -> np.ndarray:
    """Group warm items into four equal-size quarters by training count (0 = most popular).

    Items are ordered by count (ties broken by id, which is random) so each quarter holds
    the same number of items; cold items get -1.
    """
    groups = np.full(len(counts), -1, np.int64)
    warm = np.flatnonzero(counts > 0)
    order = warm[np.lexsort((warm, -counts[warm]))]
    for g, chunk in enumerate(np.array_split(order, len(POPULARITY_GROUPS))):
        groups[chunk] = g
    return groups


def leave_one_out(data: PreparedDataset, max_history: int = DEFAULT_MAX_HISTORY) -> Split:
    """Last item per user -> test, second last -> validation, the rest -> training.

    Users with fewer than three interactions contribute to training only; when no user has
    three, :class:`DatasetError` names the counts (a lower ``--k-core`` cannot help).
    """
    lengths = np.array([len(seq) for seq in data.sequences])
    if not (lengths >= 3).any():
        raise DatasetError(
            f"split loo of {data.name}: no test case: all {len(lengths)} users have fewer than 3 "
            f"interactions (longest: {lengths.max(initial=0)}); loo needs users with at least 3 "
            "(one to train, one to validate, one to test), and a lower --k-core cannot add any: "
            "use data with longer user histories"
        )
    train, train_ts, valid, test = [], [], [], []
    for u, seq in enumerate(data.sequences):
        n = len(seq)
        if n < 3:
            train.append(seq)
            train_ts.append(data.timestamps[u])
            continue
        train.append(seq[: n - 2])
        train_ts.append(data.timestamps[u][: n - 2])
        valid.append((u, n - 2))
        test.append((u, n - 1))
    mend = "loo needs users with at least 3 interactions"
    return _finish("loo", data, train, train_ts, valid, test, {"protocol": "leave-one-out"}, max_history, mend)


def temporal(
    data: PreparedDataset, valid_start: float = 0.8, test_start: float = 0.9, max_history: int = DEFAULT_MAX_HISTORY
) -> Split:
    """One global time cut: interactions before the 80% point train, 80-90% validate,
    the rest test. Cut points are timestamps, so equal times fall on the same side.

    A case needs at least one earlier interaction of its user as input: a later interaction
    that is its user's first is dropped and counted (``info["dropped_cases"]``; ml-100k:
    77 of 9,930 test interactions). When the cuts leave no training interaction or no
    validation interaction (timestamps all equal, or too few distinct ones),
    :class:`DatasetError` names the cut timestamps.
    """
    _check_options("temporal", {"valid_start": valid_start, "test_start": test_start})
    if not valid_start < test_start:
        raise ParameterError(
            f"split temporal: valid_start={valid_start:g} must lie before test_start={test_start:g} (validation "
            "runs from valid_start to test_start); write e.g. temporal:valid_start=0.8,test_start=0.9"
        )
    all_times = np.sort(np.concatenate(data.timestamps))
    n = len(all_times)
    t_valid = all_times[min(n - 1, int(valid_start * n))]
    t_test = all_times[min(n - 1, int(test_start * n))]
    n_distinct = len(np.unique(all_times))
    where = f"split temporal of {data.name}"
    mend = "temporal needs timestamps spread over time: check the dataset's timestamp column, or use --split loo"
    cases_mend = ("temporal needs later interactions of users who also have earlier ones: check the dataset's "
                  "timestamp column, or use --split loo")
    if t_valid == all_times[0]:
        raise DatasetError(
            f"{where}: no training interaction: the {valid_start:.0%} time cut falls on the earliest "
            f"timestamp {t_valid:g}, which {int((all_times == t_valid).sum())} of {n} interactions carry "
            f"({n_distinct} distinct timestamp(s)); {mend}"
        )
    if t_valid == t_test:
        raise DatasetError(
            f"{where}: no validation interaction: the {valid_start:.0%} and {test_start:.0%} time cuts "
            f"fall on the same timestamp {t_valid:g}, which {int((all_times == t_valid).sum())} of {n} "
            f"interactions carry; {mend}"
        )
    train, train_ts, valid, test = [], [], [], []
    for u, (seq, ts) in enumerate(zip(data.sequences, data.timestamps)):
        in_train = ts < t_valid
        train.append(seq[in_train])
        train_ts.append(ts[in_train])
        for p in np.flatnonzero(~in_train):
            (test if ts[p] >= t_test else valid).append((u, int(p)))
    info = {"protocol": "global time cut", "valid_from": float(t_valid), "test_from": float(t_test)}
    return _finish("temporal", data, train, train_ts, valid, test, info, max_history, cases_mend)


def cold_item_quotas(sizes: list[int], share: float, rng: np.random.Generator) -> np.ndarray:
    """How many cold items to draw from each stratum: ``round(share * total)`` in all.

    Largest remainders: each stratum gets the floor of its exact share, and the items still
    owed go to the strata with the largest fractional parts (ties in seeded random order),
    so the realised share is the nearest possible even on small catalogs.
    """
    sizes_array = np.asarray(sizes)
    exact = share * sizes_array
    quotas = np.floor(exact).astype(np.int64)
    owed = int(round(share * sizes_array.sum())) - int(quotas.sum())
    order = np.lexsort((rng.permutation(len(sizes_array)), -(exact - quotas)))
    quotas[order[:owed]] += 1
    return quotas


def cold_items(
    data: PreparedDataset, share: float = 0.1, seed: int = 0, strata: int = 10, max_history: int = DEFAULT_MAX_HISTORY
) -> Split:
    """Strict item cold-start: a seeded share of items never appears in training.

    ``round(share * n_items)`` cold items are drawn, spread over popularity strata
    (``strata`` equal-size bands of items by their leave-one-out training count; see
    :func:`cold_item_quotas`), so they are not all long-tail. Every interaction
    with a cold item becomes a case: the earlier half in time validates, the later half
    tests. Warm cases follow the leave-one-out rule on each user's warm items. Model input
    holds warm items only; a case whose user has no earlier warm item is dropped. A
    validation case's input and seen items leave out its user's test interactions (a
    user's warm test item or later-half cold items may come before a validation case).
    """
    _check_options("cold-items", {"share": share, "seed": seed, "strata": strata})
    if strata > data.n_items:
        raise ParameterError(
            f"split cold-items of {data.name}: option strata={strata} is out of range: strata must be an integer "
            f"from 1 to the number of items ({data.n_items}), e.g. cold-items:strata=10"
        )
    n_cold = int(round(share * data.n_items))
    if not 0 < n_cold < data.n_items:
        raise DatasetError(
            f"split cold-items of {data.name}: share={share} of {data.n_items} items makes "
            f"{n_cold} cold item(s); choose share between {1 / data.n_items:.3g} (one cold item) and "
            f"{1 - 1 / data.n_items:.3g} (one warm item)"
        )
    loo_counts = np.zeros(data.n_items, np.int64)
    for seq in data.sequences:
        np.add.at(loo_counts, seq[:-2], 1)
    items = np.arange(data.n_items)
    order = items[np.lexsort((items, -loo_counts))]
    rng = np.random.default_rng(seed)
    is_cold = np.zeros(data.n_items, bool)
    bands = np.array_split(order, strata)
    for stratum, take in zip(bands, cold_item_quotas([len(b) for b in bands], share, rng)):
        is_cold[rng.choice(stratum, size=take, replace=False)] = True
    train, train_ts, valid, test, cold_events = [], [], [], [], []
    for u, (seq, ts) in enumerate(zip(data.sequences, data.timestamps)):
        warm = np.flatnonzero(~is_cold[seq])
        cold_events += [(ts[p], u, int(p)) for p in np.flatnonzero(is_cold[seq])]
        keep = warm[:-2] if len(warm) >= 3 else warm
        train.append(seq[keep])
        train_ts.append(ts[keep])
        if len(warm) >= 3:
            valid.append((u, int(warm[-2])))
            test.append((u, int(warm[-1])))
    cold_events.sort()
    half = len(cold_events) // 2
    valid += [(u, p) for _, u, p in cold_events[:half]]
    test += [(u, p) for _, u, p in cold_events[half:]]
    info = {
        "protocol": "strict item cold-start",
        "share": share,
        "seed": seed,
        "cold_items": sorted(str(data.item_ids[i]) for i in np.flatnonzero(is_cold)),
    }
    mend = ("cold-items needs users with at least 3 warm interactions, or cold items that users meet "
            "after a warm one: use data with longer user histories, or another share=/seed=")
    return _finish("cold-items", data, train, train_ts, valid, test, info, max_history, mend, hidden=is_cold)


SPLITS: dict[str, Callable[..., Split]] = {
    "loo": leave_one_out,
    "temporal": temporal,
    "cold-items": cold_items,
}


@dataclass(frozen=True)
class SplitOption:
    """One ``split:key=value`` option: its type and allowed range (``low``/``high``, open
    bounds unless ``closed``), and the range in words for error messages."""

    type: type
    low: float
    high: float | None
    closed: bool
    allowed: str
    example: str


# Every option of every split, with its allowed range; make_split and the split functions
# check them all, so no value reaches numpy unchecked. cold-items' strata is also bounded by
# the catalogue (at most one stratum per item), checked where the catalogue is known.
SPLIT_OPTIONS: dict[str, dict[str, SplitOption]] = {
    "loo": {},
    "temporal": {
        "valid_start": SplitOption(float, 0.0, 1.0, False, "a number between 0 and 1 (exclusive), below test_start",
                                   "valid_start=0.8"),
        "test_start": SplitOption(float, 0.0, 1.0, False, "a number between 0 and 1 (exclusive), above valid_start",
                                  "test_start=0.9"),
    },
    "cold-items": {
        "share": SplitOption(float, 0.0, 1.0, False, "a number between 0 and 1 (exclusive)", "share=0.1"),
        "seed": SplitOption(int, 0, None, True, "an integer of 0 or more", "seed=0"),
        "strata": SplitOption(int, 1, None, True, "an integer from 1 to the number of items", "strata=10"),
    },
}


def options_help() -> str:
    """The splits and their options with defaults, for ``--split`` help: ``loo, temporal
    (valid_start=0.8, test_start=0.9), cold-items (share=0.1, seed=0, strata=10)``."""
    parts = []
    for name, function in SPLITS.items():
        defaults = inspect.signature(function).parameters
        options = ", ".join(f"{key}={defaults[key].default}" for key in SPLIT_OPTIONS[name])
        parts.append(f"{name} ({options})" if options else name)
    return ", ".join(parts)


def _option_error(split: str, key: str, value: object, why: str) -> ParameterError:
    option = SPLIT_OPTIONS[split][key]
    return ParameterError(f"split {split}: option {key}={value} {why}: {key} must be {option.allowed}, "
                          f"e.g. {split}:{option.example}")


def _check_options(split: str, values: dict[str, object]) -> None:
    """Each of ``split``'s options in ``values`` is of its type and within its range (a
    :class:`ParameterError` naming the option and the range otherwise)."""
    for key, value in values.items():
        option = SPLIT_OPTIONS[split][key]
        if option.type is int and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
            raise _option_error(split, key, value, "is not an integer")
        if option.type is float and (isinstance(value, bool) or not isinstance(value, (int, float, np.number))):
            raise _option_error(split, key, value, "is not a number")
        number = float(value)
        inside = np.isfinite(number) and (
            (number >= option.low if option.closed else number > option.low)
            and (option.high is None or (number <= option.high if option.closed else number < option.high)))
        if not inside:
            raise _option_error(split, key, value, "is out of range")


def _parse_option(name: str, base: str, key: str, value: str) -> int | float:
    option = SPLIT_OPTIONS[base][key]
    if option.type is int:
        try:
            return int(value)
        except ValueError:
            raise ParameterError(f"split {name!r}: option {key} needs an integer, got {value!r}: {key} must be "
                                 f"{option.allowed}, e.g. {base}:{option.example}") from None
    try:
        return float(value)
    except ValueError:
        raise ParameterError(f"split {name!r}: option {key} needs a number, got {value!r}: {key} must be "
                             f"{option.allowed}, e.g. {base}:{option.example}") from None


def split_names(text: str) -> list[str]:
    """The split names in a comma-separated ``--split`` list, whose options may hold commas too:
    ``loo,cold-items:share=0.2,seed=1`` -> ``["loo", "cold-items:share=0.2,seed=1"]``."""
    names: list[str] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if names and ":" in names[-1] and "=" in part and ":" not in part:
            names[-1] += "," + part
        else:
            names.append(part)
    return names


def make_split(name: str, data: PreparedDataset, max_history: int = DEFAULT_MAX_HISTORY) -> Split:
    """Build the split called ``name``, e.g. ``loo`` or ``cold-items:share=0.2,seed=1``.

    ``max_history`` caps every case's model input (``--max-history``). Unknown names and
    options list the known ones.
    """
    base, _, options = name.partition(":")
    if base not in SPLITS:
        raise BenchmarkError(f"unknown split {name!r}; known splits: {', '.join(SPLITS)}")
    function = SPLITS[base]
    known = list(SPLIT_OPTIONS[base])
    kwargs: dict[str, float | int] = {}
    for option in filter(None, (o.strip() for o in options.split(","))):
        key, equals, value = (part.strip() for part in option.partition("="))
        if key not in known:
            raise ParameterError(
                f"split {name!r}: unknown option {key!r}; {base} takes {', '.join(known) or 'no options'}"
            )
        if key in kwargs:
            raise ParameterError(f"split {name!r}: option {key} is given twice; give each option once")
        if not equals or not value:
            raise ParameterError(f"split {name!r}: option {key} has no value; write {key}=VALUE, e.g. "
                                 f"{base}:{SPLIT_OPTIONS[base][key].example}")
        kwargs[key] = _parse_option(name, base, key, value)
    split = function(data, **kwargs, max_history=max_history)
    split.name = name
    return split
