"""Ranking speed of the generative methods: our beam search against ``generate`` + trie.

For each seq2seq method (its tokenizer fitted on ml-100k ``loo``, seed 0) and each model
size (the ``tiny`` 2+2 d128 T5 and TIGER's 4+4 d128 T5, random weights: decoding cost does
not depend on training), ranks the first ``--users`` test users with beam 20 and top-20:

- **ours, constrained**: the seq2seq recommender's own ``recommend``
  (:func:`benchmark.nn.beam_search.beam_search`) with the trie of valid identifiers and the
  users' seen items pruned (the benchmark's protocol);
- **ours, unconstrained**: the same search without the trie (any token at any step), with
  the share of identifiers that name no item;
- **generate + trie**: ``transformers``' ``generate`` (beam 20, 20 sequences) with a
  ``prefix_allowed_tokens_fn`` that looks the allowed next tokens up in a dict keyed by
  the decoded prefix (no pruning of seen items: ``generate`` has no per-user trie).

Both sides run on the same model, inputs and batches (``--batch`` users) and the same
threads. For codes identifiers the script also checks that ours (without pruning) gives
the same top-20 lists as ``generate``.

SETRec methods (``--setrec setrec,setrec-decoder``) generate an item's whole token set in
one forward pass and score the catalog: they are timed through the harness's own ranking
(:func:`benchmark.evaluation.evaluator.rank_cases`: scores, seen items masked, full sort)
at the same sizes, random weights, same users and batches, and their speed-up over
``tiger`` at the same size is reported twice: against our constrained beam search and
against ``generate`` + trie.

LLM methods (``--llm lcrec,letter-lcrec,lamia,bigrec``) run on their ``tiny`` decoder
(random init, 2 layers at d_model 128) after their ``seq`` prompt: the code-writing ones
(lcrec, letter-lcrec, lamia) through the ``llm`` recommender's constrained beam search
(:func:`benchmark.nn.decoders.prompt_decoder`) against ``generate`` + trie on the same
model, prompts and batches, with the same-top-20 check; ``bigrec`` (one title written by
``generate`` with 4 beams, then L2 grounding over the catalog) through the harness's
ranking.

Newer methods (``--newer rpg,tiger-decoder``), at each size (each method's ``tiny`` profile;
TIGER's 4+4 as one stack of 8 layers at TIGER's widths), random weights: ``tiger-decoder``
(the ``decoder`` recommender, decoder-only TIGER) through its constrained beam search
(:func:`benchmark.nn.decoders.prompt_decoder`, seen items pruned) against ``generate`` +
trie on the same model, prompts and batches, with the same-top-20 check, as the LLM
methods; ``rpg`` (every item scored exactly; its identifiers of the boards' shape, 16 digits
of 256 codes, as its cost grows with them) through the harness's ranking, as SETRec. Both
report their speed-up over ``tiger`` at the same size, users and batches (this run's tiger
numbers, or tiger measured for the section when ``--methods`` leaves it out).

Results go to ``leaderboards/efficiency.md`` (``--out`` elsewhere):

    .venv/bin/python benchmarks/beam_search_efficiency.py [--users 256] [--methods tiger,...] [--setrec setrec]
        [--llm lcrec,bigrec] [--newer rpg,tiger-decoder]

``--methods '' --setrec ''`` measures the LLM and newer methods alone and replaces only
their sections of an existing results file (``--llm ''`` or ``--newer ''`` too: one of them).
"""

from __future__ import annotations

import argparse
import shlex
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from tabulate import tabulate

from benchmark import plugins
from benchmark.cache import default_cache
from benchmark.components import CaseBatch, TrainingData
from benchmark.evaluation.evaluator import rank_cases
from benchmark.nn.causal_lm import base_model, left_padded
from benchmark.runner import RunRequest, fit_identifiers, load_split, machine, package_versions
from plugins.recommenders.decoder import PAD as DECODER_PAD
from plugins.recommenders.decoder import START as DECODER_START
from plugins.recommenders.decoder import DecoderRecommender
from plugins.recommenders.rpg import RPGRecommender
from plugins.recommenders.seq2seq import Seq2SeqRecommender
from plugins.recommenders.setrec import SetRecRecommender

OUT = Path("leaderboards/efficiency.md")
METHODS = ("tiger", "letter-tiger", "p5-tid", "p5-semid", "p5-cid")
SETREC_METHODS = ("setrec", "setrec-decoder")
LLM_METHODS = ("lcrec", "letter-lcrec", "lamia", "bigrec")
SIZES = {
    "tiny 2+2 d128": {},
    "TIGER 4+4 d128": {"layers": 4, "heads": 6, "head_dim": 64, "d_ff": 1024},
}
# The newer methods at each size of SIZES: their own ``tiny`` profile (2 decoder layers at
# the tiny T5's widths), and TIGER's 4+4 layers as one stack of 8 at TIGER's widths (the
# ``decoder`` recommender's ``paper`` profile).
NEWER_METHODS = ("rpg", "tiger-decoder")
NEWER_RECOMMENDERS = ("rpg", "decoder")
NEWER_SIZES = {"tiny 2+2 d128": {}, "TIGER 4+4 d128": {**SIZES["TIGER 4+4 d128"], "layers": 8}}
# RPG's scoring cost grows with its identifiers' shape (a table and a head per digit, a gather
# per digit over the catalogue): the boards' (``cpu``) 16 digits of 256 codes, not tiny's 4 of 16.
NEWER_TOKENIZER = {"rpg": {"tokenizer.digits": 16, "tokenizer.codebook_size": 256, "tokenizer.pca_dims": 128}}
BEAM = 20


def identifiers_for(method: str, cache_dir: str):
    """The method's tokenizer (tiny profile, seed 0) fitted on ml-100k ``loo``."""
    tokenized = fit_identifiers(RunRequest("ml-100k", "loo", method), cache_dir, progress=False, hooks=False)
    return tokenized.method, tokenized.identifiers


def build(resolved, identifiers, size: dict, batch: int) -> Seq2SeqRecommender:
    params = {**resolved.recommender_params, **size, "decode_batch": batch, "beam_size": BEAM}
    recommender = Seq2SeqRecommender(params, seed=0)
    recommender.device = torch.device("cpu")
    torch.manual_seed(0)
    recommender._build(identifiers)
    recommender.model.eval()
    return recommender


def ours(recommender, users, histories, exclude, constrained: bool) -> tuple[float, np.ndarray, float]:
    """Time of the recommender's own ranking (``recommend``), its lists and its invalid-id share."""
    recommender.params["decoding"] = "constrained" if constrained else "unconstrained"
    batch = CaseBatch(users=users, histories=histories, seen=histories, exclude=exclude)
    start = time.perf_counter()
    with torch.no_grad():
        lists = recommender.recommend(batch, BEAM)
    return time.perf_counter() - start, lists, recommender.invalid_share


def paired_times(n: int, batch: int, repeats: int, modes: dict[str, Callable[[slice], float]],
                 reference: Callable[[slice], tuple[float, np.ndarray]]) -> tuple[dict[str, float], float, np.ndarray]:
    """Seconds over ``n`` users for each of our modes and for the reference, batch by batch.

    Each batch runs our modes (the median of ``repeats`` runs each: a typical run, not the
    luckiest) and then the reference once on the same users, so a drift of the machine's
    speed over the minutes a method takes weighs on both sides alike. Returns the modes'
    totals, the reference's total and the reference's lists.
    """
    totals = dict.fromkeys(modes, 0.0)
    t_reference, lists = 0.0, []
    for start in range(0, n, batch):
        part = slice(start, min(start + batch, n))
        for name, run in modes.items():
            totals[name] += float(np.median([run(part) for _ in range(repeats)]))
        seconds, found = reference(part)
        t_reference += seconds
        lists.append(found)
    return totals, t_reference, np.concatenate(lists)


def seq2seq_times(recommender, users, histories, seen, batch: int, repeats: int):
    """Seconds of ours constrained (seen items pruned) and unconstrained, the unconstrained
    invalid-id share, and ``generate`` + trie's seconds and lists, paired batch by batch."""
    invalid_by_batch = []

    def unconstrained(part: slice) -> float:
        seconds, _, share = ours(recommender, users[part], histories[part], None, False)
        invalid_by_batch.append((share, part.stop - part.start))
        return seconds

    times, t_gen, lists_gen = paired_times(
        len(users), batch, repeats,
        {"constrained": lambda part: ours(recommender, users[part], histories[part], seen[part], True)[0],
         "unconstrained": unconstrained},
        lambda part: generate_with_trie(recommender, users[part], histories[part], batch))
    invalid = sum(share * size for share, size in invalid_by_batch) / sum(size for _, size in invalid_by_batch)
    return times["constrained"], times["unconstrained"], invalid, t_gen, lists_gen


def causal_times(recommender, users, histories, seen, batch: int, repeats: int,
                 generate: Callable[[slice], tuple[float, np.ndarray]]):
    """Seconds of a causal-LM recommender's ranking (``llm``, ``decoder``: seen items pruned)
    and of ``generate(part)`` (``generate`` + trie on users ``part``), paired batch by batch;
    ``generate``'s lists and ours without pruning, to compare. Both decode the same ``batch``
    users at a time: a different batch pads the prompts to another length, and the rounding
    that changes can reorder near-equal beams."""
    recommender.params["decode_batch"] = batch

    def pruned(part: slice) -> float:
        start = time.perf_counter()
        recommender.recommend(CaseBatch(users=users[part], histories=histories[part], seen=seen[part],
                                        exclude=seen[part]), BEAM)
        return time.perf_counter() - start

    with torch.no_grad():
        pruned(slice(0, batch))  # warm-up
        times, t_gen, lists_gen = paired_times(
            len(users), batch, repeats, {"ours": pruned}, generate)
        unpruned = recommender.recommend(CaseBatch(users=users, histories=histories, seen=seen), BEAM)
    return times["ours"], t_gen, lists_gen, unpruned


def setrec_time(method: str, cache_dir: str, split, test, size: dict, batch: int, repeats: int) -> tuple[float, str]:
    """Median of ``repeats`` timings (seconds) of the harness ranking ``test`` with a random-weight SETRec."""
    tokenized = fit_identifiers(RunRequest("ml-100k", "loo", method), cache_dir, progress=False, hooks=False)
    recommender = SetRecRecommender({**tokenized.method.recommender_params, **size}, seed=0)
    recommender.device = torch.device("cpu")
    recommender._build(tokenized.identifiers, TrainingData.from_split(split))
    recommender.model.eval()

    def rank(cases) -> float:
        recommender._table = None  # the item token table is rebuilt once per ranking pass, as after fitting
        start = time.perf_counter()
        rank_cases(recommender, cases, split.n_items, k=BEAM, batch_size=batch, progress=False)
        return time.perf_counter() - start

    rank(test.subset(np.arange(min(batch, len(test)))))  # warm-up
    return float(np.median([rank(test) for _ in range(repeats)])), recommender.backbone()


def random_recommender(method: str, cache_dir: str, split, size: dict | None = None,
                       tokenizer: dict | None = None):
    """The method's recommender (tiny, ``size`` over it, seed 0, random weights) on its fitted
    identifiers (tiny, ``tokenizer`` parameters over it)."""
    tokenized = fit_identifiers(RunRequest("ml-100k", "loo", method, params=tokenizer or {}), cache_dir,
                                progress=False, hooks=False)
    spec = plugins.get_recommenders()[tokenized.method.spec.recommender]
    recommender = spec.factory({**tokenized.method.recommender_params, **(size or {})}, 0)
    recommender.device = torch.device("cpu")
    torch.manual_seed(0)
    identifiers, data = tokenized.identifiers, TrainingData.from_split(split)
    if isinstance(recommender, RPGRecommender):
        recommender._build(identifiers, data)
    elif isinstance(recommender, DecoderRecommender):
        recommender._build(identifiers)
    else:
        recommender._build(identifiers, data)
    recommender.model.eval()
    return recommender


def harness_time(recommender, split, test, batch: int, repeats: int) -> float:
    """Median of ``repeats`` timings (seconds) of the harness ranking ``test`` (scores, masking, sort)."""
    def rank(cases) -> float:
        start = time.perf_counter()
        rank_cases(recommender, cases, split.n_items, k=BEAM, batch_size=batch, progress=False)
        return time.perf_counter() - start

    rank(test.subset(np.arange(min(batch, len(test)))))  # warm-up
    return float(np.median([rank(test) for _ in range(repeats)]))


def causal_generate_with_trie(model, prompts_of: Callable[[slice], tuple[torch.Tensor, torch.Tensor]],
                              codes: list[list[int]], n: int, batch: int, pad: int,
                              eos: int) -> tuple[float, np.ndarray]:
    """``generate`` (beam 20, 20 sequences) of a causal LM after the left-padded prompts of
    users ``0..n`` (``prompts_of(part)``: ids and mask), the next tokens looked up in a dict
    keyed by the generated prefix; ``codes``: each item's token sequence."""
    allowed: dict[tuple[int, ...], list[int]] = {}
    for sequence in codes:
        for depth in range(len(sequence)):
            allowed.setdefault(tuple(sequence[:depth]), []).append(sequence[depth])
    allowed = {prefix: sorted(set(tokens)) for prefix, tokens in allowed.items()}
    item_of = {tuple(sequence): item for item, sequence in enumerate(codes)}
    length = max(len(c) for c in codes)
    lists = []
    start = time.perf_counter()
    with torch.no_grad():
        for s in range(0, n, batch):
            ids, mask = prompts_of(slice(s, min(s + batch, n)))
            width = ids.shape[1]
            out = base_model(model).generate(
                input_ids=ids, attention_mask=mask, num_beams=BEAM, num_return_sequences=BEAM,
                max_new_tokens=length, do_sample=False, pad_token_id=pad, eos_token_id=eos,
                prefix_allowed_tokens_fn=lambda _, sentence, w=width: allowed.get(tuple(sentence[w:].tolist()), [eos]))
            items = [item_of.get(tuple(row), -1) for row in out[:, width:].tolist()]
            lists.append(np.asarray(items).reshape(len(ids), BEAM))
    return time.perf_counter() - start, np.concatenate(lists)


def llm_generate_with_trie(recommender, histories, batch: int) -> tuple[float, np.ndarray]:
    """``generate`` + trie after the ``llm`` recommender's ``seq`` prompts."""
    prompts = recommender.prompts
    return causal_generate_with_trie(
        recommender.model,
        lambda part: left_padded([prompts.sample("seq", h, 0)[0] for h in histories[part]], prompts.pad),
        prompts.codes, len(histories), batch, prompts.pad, prompts.eos)


def decoder_generate_with_trie(recommender, users, histories, seen, batch: int) -> tuple[float, np.ndarray]:
    """``generate`` + trie after the ``decoder`` recommender's prompts (user token, the history's codes)."""
    return causal_generate_with_trie(
        recommender.model,
        lambda part: recommender._prompts(CaseBatch(users=users[part], histories=histories[part], seen=seen[part])),
        recommender.code_table.tolist(), len(users), batch, DECODER_PAD, DECODER_START)


def generate_with_trie(recommender, users, histories, batch: int) -> tuple[float, np.ndarray]:
    layout, model = recommender.layout, recommender.model
    allowed: dict[tuple[int, ...], list[int]] = {}
    for sequence in layout.outputs:
        for depth in range(len(sequence)):
            allowed.setdefault(tuple(sequence[:depth]), []).append(sequence[depth])
    allowed = {prefix: sorted(set(tokens)) for prefix, tokens in allowed.items()}
    item_of = {tuple(sequence): item for item, sequence in enumerate(layout.outputs)}
    finished = [layout.pad]

    def prefix_allowed_tokens(_, sentence: torch.Tensor) -> list[int]:
        return allowed.get(tuple(sentence[1:].tolist()), finished)

    lists = []
    start = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(users), batch):
            ids, mask = layout.encoder_inputs(users[s:s + batch], histories[s:s + batch])
            out = model.generate(input_ids=ids, attention_mask=mask, num_beams=BEAM, num_return_sequences=BEAM,
                                 max_new_tokens=recommender.trie.max_length, do_sample=False,
                                 prefix_allowed_tokens_fn=prefix_allowed_tokens)
            rows = out[:, 1:].tolist()
            items = []
            for row in rows:
                tokens = tuple(t for t in row if t != layout.pad)
                if layout.end_token is None:
                    tokens = tokens[: recommender.trie.max_length]
                items.append(item_of.get(tokens, -1))
            lists.append(np.asarray(items).reshape(len(ids), BEAM))
    return time.perf_counter() - start, np.concatenate(lists)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs of each batch in each of our modes (median kept)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--setrec", default=",".join(SETREC_METHODS),
                        help="SETRec methods compared with tiger at each size (needs tiger in --methods)")
    parser.add_argument("--llm", default=",".join(LLM_METHODS), help="LLM methods at their tiny size")
    parser.add_argument("--newer", default=",".join(NEWER_METHODS),
                        help="methods on the 'rpg' or 'decoder' recommender, compared with tiger at each size "
                        "(tiger measured here when not in --methods); '' to skip")
    parser.add_argument("--cache", default=str(default_cache()))
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    newer = [m for m in args.newer.split(",") if m]
    for method in newer:
        spec = plugins.get_methods().get(method)
        if spec is None or spec.recommender not in NEWER_RECOMMENDERS:
            raise SystemExit(f"--newer {method!r}: not a method on the {' or '.join(NEWER_RECOMMENDERS)} recommender")
    command = " ".join([".venv/bin/python benchmarks/beam_search_efficiency.py",
                        *(f"--{name} {shlex.quote(str(getattr(args, name)))}"
                          for name in ("users", "batch", "repeats", "methods", "setrec", "llm", "newer")),
                        *([f"--out {shlex.quote(args.out)}"] if args.out != str(OUT) else [])])
    split = load_split("ml-100k", "loo")
    test = split.test.subset(np.arange(min(args.users, len(split.test))))
    users, histories, seen = test.users, test.histories, test.seen
    rows, timings = [], {}
    for method in [m for m in args.methods.split(",") if m]:
        resolved, identifiers = identifiers_for(method, args.cache)
        for size_name, size in SIZES.items():
            recommender = build(resolved, identifiers, size, args.batch)
            n = len(users)
            # Warm-up (thread pools, allocator) on one batch, so no mode pays it in its timing.
            ours(recommender, users[: args.batch], histories[: args.batch], seen[: args.batch], True)
            t_ours, t_free, invalid, t_gen, lists_gen = seq2seq_times(recommender, users, histories, seen,
                                                                      args.batch, args.repeats)
            same = ""
            if identifiers.kind == "codes":
                _, unpruned, _ = ours(recommender, users, histories, None, True)
                same = f"{(unpruned == lists_gen).all(axis=1).mean():.3f}"
            timings[(method, size_name)] = (t_ours, t_gen)
            print(f"{method} {size_name}: ours {n / t_ours:.1f} users/s, unconstrained {n / t_free:.1f}, "
                  f"generate+trie {n / t_gen:.1f}", flush=True)
            rows.append([method, size_name, identifiers.kind, recommender.trie.max_length,
                         f"{n / t_ours:.1f}", f"{1000 * t_ours / n:.2f}",
                         f"{n / t_free:.1f}", f"{t_ours / t_free:.2f}", f"{invalid:.3f}",
                         f"{n / t_gen:.1f}", f"{1000 * t_gen / n:.2f}", f"{t_gen / t_ours:.1f}x", same])
    set_rows = []
    for method in [m for m in args.setrec.split(",") if m]:
        for size_name, size in SIZES.items():
            if ("tiger", size_name) not in timings:
                raise SystemExit("--setrec compares with tiger: include tiger in --methods")
            t_set, backbone = setrec_time(method, args.cache, split, test, size, args.batch, args.repeats)
            t_ours, t_gen = timings[("tiger", size_name)]
            n = len(users)
            print(f"{method} {size_name}: {n / t_set:.1f} users/s, {t_ours / t_set:.1f}x ours, "
                  f"{t_gen / t_set:.1f}x generate", flush=True)
            set_rows.append([method, size_name, backbone, f"{n / t_set:.1f}", f"{1000 * t_set / n:.2f}",
                             f"{n / t_ours:.1f}", f"{t_ours / t_set:.1f}x", f"{n / t_gen:.1f}",
                             f"{t_gen / t_set:.1f}x"])
    llm_rows = []
    for method in [m for m in args.llm.split(",") if m]:
        recommender = random_recommender(method, args.cache, split)
        n = len(users)
        if not hasattr(recommender.prompts, "codes"):  # writes titles and scores the catalog (bigrec)
            t = harness_time(recommender, split, test, args.batch, args.repeats)
            llm_rows.append([method, recommender.backbone(), "title + L2 grounding", f"{n / t:.1f}",
                             f"{1000 * t / n:.2f}", "", "", "", ""])
            print(f"{method}: {n / t:.1f} users/s", flush=True)
            continue
        t_ours, t_gen, lists_gen, unpruned = causal_times(
            recommender, users, histories, seen, args.batch, args.repeats,
            lambda part, r=recommender: llm_generate_with_trie(r, histories[part], args.batch))
        same = f"{(unpruned == lists_gen).all(axis=1).mean():.3f}"
        print(f"{method}: ours {n / t_ours:.1f} users/s, generate+trie {n / t_gen:.1f}", flush=True)
        llm_rows.append([method, recommender.backbone(), f"{len(recommender.prompts.codes[0])} code tokens",
                         f"{n / t_ours:.1f}", f"{1000 * t_ours / n:.2f}", f"{n / t_gen:.1f}",
                         f"{1000 * t_gen / n:.2f}", f"{t_gen / t_ours:.1f}x", same])
    tiger_here = []

    def tiger_times(size_name: str) -> tuple[float, float]:
        """tiger's seconds at ``size_name`` (ours constrained with pruning, generate + trie): this
        run's from the table above, or measured now on the same users and batches, paired alike."""
        if ("tiger", size_name) not in timings:
            resolved, identifiers = identifiers_for("tiger", args.cache)
            recommender = build(resolved, identifiers, SIZES[size_name], args.batch)
            ours(recommender, users[: args.batch], histories[: args.batch], seen[: args.batch], True)  # warm-up
            times, t_gen, _ = paired_times(
                len(users), args.batch, args.repeats,
                {"ours": lambda part: ours(recommender, users[part], histories[part], seen[part], True)[0]},
                lambda part: generate_with_trie(recommender, users[part], histories[part], args.batch))
            timings[("tiger", size_name)] = (times["ours"], t_gen)
            tiger_here.append(size_name)
        return timings[("tiger", size_name)]

    newer_rows, newer_kinds = [], {plugins.get_methods()[method].recommender for method in newer}
    for method in newer:
        for size_name, size in NEWER_SIZES.items():
            recommender = random_recommender(method, args.cache, split, size, NEWER_TOKENIZER.get(method))
            n = len(users)
            if isinstance(recommender, DecoderRecommender):
                t, t_gen, lists_gen, unpruned = causal_times(
                    recommender, users, histories, seen, args.batch, args.repeats,
                    lambda part, r=recommender: decoder_generate_with_trie(r, users[part], histories[part],
                                                                           seen[part], args.batch))
                ranking = f"beam search, {recommender.levels} code tokens"
                against_generate = [f"{n / t_gen:.1f}", f"{1000 * t_gen / n:.2f}", f"{t_gen / t:.1f}x",
                                    f"{(unpruned == lists_gen).all(axis=1).mean():.3f}"]
            else:  # rpg: every item scored exactly, through the harness's ranking
                t = harness_time(recommender, split, test, args.batch, args.repeats)
                ranking = f"exact scores, {recommender.digits} digits of {recommender.model.vocab}"
                against_generate = ["", "", "", ""]
            t_tiger, t_tiger_gen = tiger_times(size_name)
            print(f"{method} {size_name}: {n / t:.1f} users/s, {t_tiger / t:.1f}x tiger ours, "
                  f"{t_tiger_gen / t:.1f}x tiger generate+trie", flush=True)
            newer_rows.append([method, size_name, recommender.backbone(), ranking, f"{n / t:.1f}",
                               f"{1000 * t / n:.2f}", *against_generate, f"{n / t_tiger:.1f}",
                               f"{t_tiger / t:.1f}x", f"{n / t_tiger_gen:.1f}", f"{t_tiger_gen / t:.1f}x"])
    versions = package_versions()
    lines = [
        "# Ranking speed of the generative methods: constrained beam search vs `generate` + trie",
        "",
        "Written by `benchmarks/beam_search_efficiency.py`; numbers are as measured, never edited.",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.now(timezone.utc).isoformat(timespec='minutes')}",
        f"- machine: {machine()}, {torch.get_num_threads()} torch threads",
        "- packages: " + ", ".join(f"{p} {versions[p]}" for p in ("torch", "transformers", "genrec-bench")),
        f"- protocol: ml-100k `loo`, the first {len(users)} test users, beam {BEAM}, top-{BEAM}, "
        f"{args.batch} users per batch; identifiers from each method's tokenizer (tiny profile, seed 0); "
        "random model weights (decoding cost does not depend on them)",
        "",
        tabulate(rows, headers=["method", "model", "ids", "max id tokens", "ours users/s", "ours s/1k users",
                                "unconstrained users/s", "constrained / unconstrained time",
                                "unconstrained invalid-id share", "generate+trie users/s",
                                "generate+trie s/1k users", "speed-up", "same top-20 as generate"],
                 tablefmt="github", disable_numparse=True),
        "",
        "- ours: encoder once per user, cross-attention keys and values computed once per user and "
        "shared by its beams, decoding steps by a T5 loop written for one new token per row (`T5Decoder`), "
        "a beam's candidates only its trie node's children (top-k over beams x children), seen items "
        "pruned in the trie.",
        f"- timing: batch by batch after a warm-up batch, each batch's ours (the median of {args.repeats} runs) "
        "right before generate+trie's one run on the same users, so the machine's drift over minutes weighs "
        "on both alike.",
        "- speed-up: generate+trie time over ours (constrained, with pruning).",
        "- same top-20: share of users whose 20-item list from ours (constrained, no pruning, as "
        "`generate` cannot prune per user) equals `generate`'s; codes identifiers only (text "
        "identifiers differ in length, and `generate` normalises finished beams by length).",
        "- invalid-id share: unconstrained beams whose token sequence names no item; with random "
        "weights it measures the decoding, not a trained model (trained runs store it as "
        "`generation/invalid_id_share` with `--param recommender.decoding=unconstrained`).",
        "",
    ]
    if set_rows:
        lines += [
            "## SETRec: simultaneous generation against tiger's token-by-token decoding",
            "",
            tabulate(set_rows, headers=["method", "size", "backbone", "users/s", "s/1k users",
                                        "tiger ours users/s", "speed-up over tiger (ours)",
                                        "tiger generate+trie users/s", "speed-up over tiger (generate+trie)"],
                     tablefmt="github", disable_numparse=True),
            "",
            "- SETRec: one forward pass writes every token of the next item (its history: each item's "
            "token set, 1 CF + 4 semantic tokens, under the sparse mask), then one matrix product per "
            "token scores the whole catalog; timed through the harness's ranking (seen items masked, "
            "full sort), the median of the timed runs after a warm-up batch. Decoder-only: the same "
            "width with 2 x the T5's layers per stack (the T5's parameter budget).",
            "- The two speed-ups answer two questions: over `generate` + trie, how SETRec compares with "
            "token-sequence decoding done the usual way (the paper's comparison); over our beam search, "
            "what is left once the beam search itself is vectorised.",
            "",
        ]
    llm_heading = "## LLM family (tiny decoder): our constrained beam search vs `generate` + trie"
    llm_lines = []
    if llm_rows:
        llm_lines += [
            llm_heading,
            "",
            f"- command: `{command}`; date: {datetime.now(timezone.utc).isoformat(timespec='minutes')}; "
            f"machine: {machine()}, {torch.get_num_threads()} torch threads; the first {len(users)} "
            f"ml-100k `loo` test users, beam {BEAM}, {args.batch} users per batch, random weights",
            "",
            tabulate(llm_rows, headers=["method", "backbone", "writes", "ours users/s", "ours s/1k users",
                                        "generate+trie users/s", "generate+trie s/1k users", "speed-up",
                                        "same top-20 as generate"], tablefmt="github", disable_numparse=True),
            "",
            "- ours: the `llm` recommender's ranking, the `seq` prompt run once per user and its key/value "
            "cache shared by the user's beams (`SharedPromptDecoder`), seen items pruned in the trie; timed as the "
            "table above (batch by batch, the median of the runs of each batch, then generate+trie's one run, "
            "no pruning, on the same users).",
            "- bigrec: the harness's ranking (one title generated with 4 beams by `generate`, its "
            "embedding against every cached title embedding, seen items masked, full sort); random "
            "weights write titles of the full length, so this is its slowest case.",
            "",
        ]
    newer_heading = "## Newer methods against tiger: decoder-only TIGER and RPG"
    newer_lines = []
    if newer_rows:
        measured = (f"tiger measured in this section's run at {', '.join(tiger_here)}" if tiger_here
                    else "tiger's numbers are the table's at the top of this run")
        newer_lines += [
            newer_heading,
            "",
            f"- command: `{command}`; date: {datetime.now(timezone.utc).isoformat(timespec='minutes')}; "
            f"machine: {machine()}, {torch.get_num_threads()} torch threads; the first {len(users)} "
            f"ml-100k `loo` test users, beam {BEAM}, top-{BEAM}, {args.batch} users per batch, random weights",
            "",
            tabulate(newer_rows, headers=["method", "size", "backbone", "ranking", "users/s", "s/1k users",
                                          "generate+trie users/s", "generate+trie s/1k users",
                                          "speed-up over generate+trie", "same top-20 as generate",
                                          "tiger ours users/s", "speed-up over tiger (ours)",
                                          "tiger generate+trie users/s", "speed-up over tiger (generate+trie)"],
                     tablefmt="github", disable_numparse=True),
            "",
            *(["- tiger-decoder (`decoder` recommender): its own ranking (its prompt, the user token and the "
               "history's codes, run once per user and its key/value cache shared by the user's beams "
               "(`SharedPromptDecoder`); constrained beam search, seen items pruned in the trie) against `generate` "
               "+ trie on the same model, prompts and batches (no pruning), timed as the LLM table; same "
               "top-20: ours without pruning against `generate`."]
              if "decoder" in newer_kinds else []),
            *(["- rpg: the harness's ranking (one pass of the decoder over the history's pooled digit "
               "embeddings, every item scored exactly by its digits' summed log-probabilities, seen items "
               "masked, full sort), the median of the timed runs after a warm-up batch, as SETRec; its "
               "identifiers have the boards' (`cpu`) shape, 16 digits of 256 codes (its cost grows with "
               "them), the other tokenizer settings tiny's."] if "rpg" in newer_kinds else []),
            "- sizes: `tiny 2+2 d128` is each method's own `tiny` profile (2 decoder layers, d128, 4x32, MLP "
            "512) against tiger's tiny 2+2 T5; `TIGER 4+4 d128` is TIGER's 4+4 layers as one stack of 8 at "
            "its widths (6x64, MLP 1024; the `decoder` recommender's `paper` profile) against TIGER's T5.",
            f"- speed-ups over tiger: tiger's time at the same size (ours: constrained with pruning; "
            f"generate + trie) over the method's, on the same users and batches; {measured}.",
            "",
        ]
    out = Path(args.out)
    if not rows and not set_rows and out.exists():
        # A run of the LLM and/or newer sections alone (--methods '' --setrec ''): the file keeps
        # its other sections, and each section measured here, with its own command and date,
        # replaces the previous one of its heading (or is appended).
        lines = replace_sections(out.read_text(), {heading: section for heading, section in
                                                   ((llm_heading, llm_lines), (newer_heading, newer_lines))
                                                   if section})
        out.write_text("\n".join(lines))
    else:
        out.write_text("\n".join(lines + llm_lines + newer_lines))
    print(Path(args.out).read_text())


def replace_sections(text: str, sections: dict[str, list[str]]) -> list[str]:
    """The lines of ``text`` with each of ``sections`` (its heading -> its lines, the heading
    first) in place of the ``## `` section of that heading, appended where ``text`` has none."""
    lines, skipping = [], False
    for line in text.rstrip("\n").split("\n"):
        if line.startswith("## "):
            skipping = line in sections
            if skipping:
                lines += sections[line]
                continue
        if not skipping:
            lines.append(line)
    for heading, section in sections.items():
        if heading not in text.split("\n"):
            while lines and not lines[-1]:
                lines.pop()
            lines += ["", *section]
    if lines and lines[-1]:
        lines.append("")
    return lines


if __name__ == "__main__":
    main()
