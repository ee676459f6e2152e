"""SETRec and its ablations (Lin et al., SIGIR'25, §6.2): each the ``setrec`` tokenizer with the
``setrec`` recommender, one component removed, like the paper's Figure 6."""

from __future__ import annotations

from benchmark import hookimpl
from benchmark.components import MethodSpec

PAPER = "Order-agnostic Identifier for Large Language Model-based Generative Recommendation, SIGIR 2025"
# The paper's grid (§5.4): N in 1..6 (Fig. 9b), alpha 0..1 (Fig. 9a); beta is chosen on
# validation inside every fit, from recommender.beta_grid.
SEARCH_SPACE = (
    "tokenizer.semantic_tokens",
    "recommender.alpha",
    "recommender.learning_rate",
)
VARIANTS = (
    ("setrec", {}, "SETRec (Lin et al., SIGIR'25): CF + semantic token sets, simultaneous generation, T5"),
    ("setrec-decoder", {"recommender.backbone": "decoder"}, "SETRec on a decoder-only backbone (Qwen2 "
     "architecture)"),
    ("setrec-no-sem", {"tokenizer.semantic_tokens": 0}, "SETRec w/o Sem: the CF token only"),
    ("setrec-no-cf", {"tokenizer.cf_token": False}, "SETRec w/o CF: the semantic tokens only"),
    ("setrec-no-query", {"recommender.learn_queries": False}, "SETRec w/o Query: frozen random query vectors"),
    ("setrec-no-sparse", {"recommender.sparse_mask": False}, "SETRec w/o SA: token-level causal history mask"),
)


@hookimpl
def register_methods(register) -> None:
    for name, defaults, description in VARIANTS:
        # An ablation does not tune what it removed (without semantic tokens alpha weighs nothing).
        removed = set(defaults) | ({"recommender.alpha"} if defaults.get("tokenizer.semantic_tokens") == 0 else set())
        space = tuple(k for k in SEARCH_SPACE if k not in removed)
        register(MethodSpec(name=name, version="3b731691ac7e", tokenizer="setrec", recommender="setrec",
                            description=description, defaults=defaults, search_space=space, paper=PAPER))
