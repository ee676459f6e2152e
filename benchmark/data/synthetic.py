"""A seeded synthetic dataset with item text and planted sequential structure.

Items belong to topics; each topic's items form a chain, and a user walks a chain (with
some noise) from a random start, so the next item is predictable from the last one. A
good sequential model must beat popularity here; popularity is skewed (Zipf) so ``pop``
is a real baseline, not a strawman. Item text names the topic and the item, so content
encoders see structure too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmark.data.dataset import RawDataset

TOPIC_WORDS = (
    "space", "cooking", "jazz", "hiking", "chess", "pottery", "sailing", "poetry",
    "robots", "gardens", "comics", "opera", "surfing", "fossils", "knitting", "rockets",
)


def make_synthetic(
    n_users: int = 300,
    n_items: int = 120,
    n_topics: int = 8,
    length: tuple[int, int] = (8, 25),
    noise: float = 0.15,
    seed: int = 0,
) -> RawDataset:
    """Interactions and item text; same arguments, same dataset."""
    rng = np.random.default_rng(seed)
    topic_of = np.arange(n_items) % n_topics
    chains = [np.flatnonzero(topic_of == t) for t in range(n_topics)]
    chains = [rng.permutation(c) for c in chains]
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity = popularity[rng.permutation(n_items)]
    popularity /= popularity.sum()
    rows = []
    for user in range(n_users):
        # Users start at random times so a global time cut mixes users.
        clock = 1_600_000_000.0 + float(rng.uniform(0, 3e7))
        topic = rng.integers(n_topics)
        chain = chains[topic]
        pos = int(rng.integers(len(chain)))
        seen: set[int] = set()
        for _ in range(int(rng.integers(length[0], length[1] + 1))):
            if rng.random() < noise:
                item = int(rng.choice(n_items, p=popularity))
            else:
                item = int(chain[pos % len(chain)])
                pos += 1
            if item in seen:
                continue
            seen.add(item)
            clock += float(rng.integers(60, 3600))
            rows.append((f"u{user}", f"i{item}", clock))
    interactions = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    items = pd.DataFrame(
        {
            "title": [f"{TOPIC_WORDS[topic_of[i] % len(TOPIC_WORDS)]} item {i}" for i in range(n_items)],
            "category": [f"Synthetic > {TOPIC_WORDS[topic_of[i] % len(TOPIC_WORDS)]}" for i in range(n_items)],
        },
        index=pd.Index([f"i{i}" for i in range(n_items)], name="item"),
    )
    return RawDataset(
        name="synthetic",
        interactions=interactions,
        items=items,
        text_fields=("title", "category"),
        source=f"synthetic(seed={seed})",
    )
