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
(:class:`benchmark.nn.decoders.CausalLMDecoder`) against ``generate`` + trie on the same
model, prompts and batches, with the same-top-20 check; ``bigrec`` (one title written by
``generate`` with 4 beams, then L2 grounding over the catalog) through the harness's
ranking. Results go to ``leaderboards/efficiency.md``:

    .venv/bin/python benchmarks/beam_search_efficiency.py [--users 256] [--methods tiger,...] [--setrec setrec]
        [--llm lcrec,bigrec]

``--methods '' --setrec ''`` measures the LLM methods alone and replaces only the LLM
section of an existing results file.
"""

from __future__ import annotations

import argparse
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


def llm_times(recommender, users, histories, seen, batch: int, repeats: int):
    """Seconds of the LLM recommender's ranking (seen items pruned) and of ``generate`` + trie,
    paired batch by batch; ``generate``'s lists and ours without pruning, to compare. Both
    decode the same ``batch`` users at a time: a different batch pads the prompts to another
    length, and the rounding that changes can reorder near-equal beams."""
    recommender.params["decode_batch"] = batch

    def pruned(part: slice) -> float:
        start = time.perf_counter()
        recommender.recommend(CaseBatch(users=users[part], histories=histories[part], seen=seen[part],
                                        exclude=seen[part]), BEAM)
        return time.perf_counter() - start

    with torch.no_grad():
        pruned(slice(0, batch))  # warm-up
        times, t_gen, lists_gen = paired_times(
            len(users), batch, repeats, {"ours": pruned},
            lambda part: llm_generate_with_trie(recommender, histories[part], batch))
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


def llm_recommender(method: str, cache_dir: str, split):
    """The method's recommender (tiny, seed 0, random weights) on its fitted identifiers."""
    tokenized = fit_identifiers(RunRequest("ml-100k", "loo", method), cache_dir, progress=False, hooks=False)
    spec = plugins.get_recommenders()[tokenized.method.spec.recommender]
    recommender = spec.factory(dict(tokenized.method.recommender_params), 0)
    recommender.device = torch.device("cpu")
    torch.manual_seed(0)
    recommender._build(tokenized.identifiers, TrainingData.from_split(split))
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


def llm_generate_with_trie(recommender, histories, batch: int) -> tuple[float, np.ndarray]:
    """``generate`` (beam 20, 20 sequences) after the ``seq`` prompts, the next tokens looked
    up in a dict keyed by the generated prefix."""
    prompts, codes = recommender.prompts, recommender.prompts.codes
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
        for s in range(0, len(histories), batch):
            ids, mask = left_padded([prompts.sample("seq", h, 0)[0] for h in histories[s:s + batch]], prompts.pad)
            width = ids.shape[1]
            out = base_model(recommender.model).generate(
                input_ids=ids, attention_mask=mask, num_beams=BEAM, num_return_sequences=BEAM,
                max_new_tokens=length, do_sample=False, pad_token_id=prompts.pad, eos_token_id=prompts.eos,
                prefix_allowed_tokens_fn=lambda _, sentence, w=width: allowed.get(tuple(sentence[w:].tolist()),
                                                                                  [prompts.eos]))
            items = [item_of.get(tuple(row), -1) for row in out[:, width:].tolist()]
            lists.append(np.asarray(items).reshape(len(ids), BEAM))
    return time.perf_counter() - start, np.concatenate(lists)


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
    parser.add_argument("--cache", default=str(default_cache()))
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
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
        recommender = llm_recommender(method, args.cache, split)
        n = len(users)
        if not hasattr(recommender.prompts, "codes"):  # writes titles and scores the catalog (bigrec)
            t = harness_time(recommender, split, test, args.batch, args.repeats)
            llm_rows.append([method, recommender.backbone(), "title + L2 grounding", f"{n / t:.1f}",
                             f"{1000 * t / n:.2f}", "", "", "", ""])
            print(f"{method}: {n / t:.1f} users/s", flush=True)
            continue
        t_ours, t_gen, lists_gen, unpruned = llm_times(recommender, users, histories, seen, args.batch, args.repeats)
        same = f"{(unpruned == lists_gen).all(axis=1).mean():.3f}"
        print(f"{method}: ours {n / t_ours:.1f} users/s, generate+trie {n / t_gen:.1f}", flush=True)
        llm_rows.append([method, recommender.backbone(), f"{len(recommender.prompts.codes[0])} code tokens",
                         f"{n / t_ours:.1f}", f"{1000 * t_ours / n:.2f}", f"{n / t_gen:.1f}",
                         f"{1000 * t_gen / n:.2f}", f"{t_gen / t_ours:.1f}x", same])
    versions = package_versions()
    lines = [
        "# Ranking speed of the generative methods: constrained beam search vs `generate` + trie",
        "",
        "Written by `benchmarks/beam_search_efficiency.py`; numbers are as measured, never edited.",
        "",
        f"- command: `.venv/bin/python benchmarks/beam_search_efficiency.py --users {args.users} "
        f"--batch {args.batch} --repeats {args.repeats} --methods {args.methods} --setrec {args.setrec} "
        f"--llm {args.llm}`",
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
            f"- command: `.venv/bin/python benchmarks/beam_search_efficiency.py --users {args.users} "
            f"--batch {args.batch} --repeats {args.repeats} --methods {args.methods} --setrec {args.setrec} "
            f"--llm {args.llm}`; date: {datetime.now(timezone.utc).isoformat(timespec='minutes')}; "
            f"machine: {machine()}, {torch.get_num_threads()} torch threads; the first {len(users)} "
            f"ml-100k `loo` test users, beam {BEAM}, {args.batch} users per batch, random weights",
            "",
            tabulate(llm_rows, headers=["method", "backbone", "writes", "ours users/s", "ours s/1k users",
                                        "generate+trie users/s", "generate+trie s/1k users", "speed-up",
                                        "same top-20 as generate"], tablefmt="github", disable_numparse=True),
            "",
            "- ours: the `llm` recommender's ranking, the `seq` prompt run once per user and its key/value "
            "cache expanded to the beams (`CausalLMDecoder`), seen items pruned in the trie; timed as the "
            "table above (batch by batch, the median of the runs of each batch, then generate+trie's one run, "
            "no pruning, on the same users).",
            "- bigrec: the harness's ranking (one title generated with 4 beams by `generate`, its "
            "embedding against every cached title embedding, seen items masked, full sort); random "
            "weights write titles of the full length, so this is its slowest case.",
            "",
        ]
    out = Path(args.out)
    if not rows and not set_rows and out.exists():
        # An LLM-only run (--methods '' --setrec ''): the file keeps its other sections and
        # this section, with its own command and date, replaces the previous one.
        kept = out.read_text().split(llm_heading)[0].rstrip("\n").split("\n")
        lines = kept + [""]
    out.write_text("\n".join(lines + llm_lines))
    print(Path(args.out).read_text())


if __name__ == "__main__":
    main()
