"""The trivial tokenizer: each item is its own atomic id (SASRec, LightGCN, pop)."""

from __future__ import annotations

from benchmark import hookimpl
from benchmark.components import FitContext, ItemIdentifiers, TokenizerSpec, TrainingData


class AtomicTokenizer:
    kind = "atomic"

    def fit(self, data: TrainingData, context: FitContext) -> ItemIdentifiers:
        return ItemIdentifiers(kind="atomic", n_items=data.n_items)


@hookimpl
def register_tokenizers(register) -> None:
    register(
        TokenizerSpec(
            name="atomic", version="c7a456f346e8",
            factory=lambda params, seed: AtomicTokenizer(),
            kind="atomic",
            description="one id per item; the identity for ID-based recommenders",
        )
    )
