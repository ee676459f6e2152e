"""The LLM family on the ``llm`` recommender: LC-Rec and LETTER on LC-Rec.

Profiles: ``tiny`` trains a random-init 4-layer decoder (CPU); ``small`` fine-tunes
Gemma-3-270M (optional extra ``small``) with LoRA on the tiny budget otherwise (a GPU);
``paper`` takes a user-given ``recommender.model_path`` (Qwen2.5-1.5B, LLaMA-7B).
"""

from __future__ import annotations

from benchmark import hookimpl
from benchmark.components import MethodSpec

LCREC_TASKS = "seq,item2index,index2item,seq2title,titles2seq"
SPACE = ("recommender.learning_rate", "recommender.dropout", "recommender.weight_decay")
# Gemma-3-270M through LoRA: the adapters and the (new-token) embedding rows learn.
SMALL = {"recommender.model_path": "gemma3-270m", "recommender.lora_rank": 16,
         "recommender.learning_rate": 5e-4, "recommender.batch_size": 64}


@hookimpl
def register_methods(register) -> None:
    register(MethodSpec(
        name="lcrec", version="dc314614bc26", tokenizer="lcrec", recommender="llm",
        description="LC-Rec (Zheng et al., ICDE'24): uniform-mapping RQ-VAE codes as new LLM tokens, "
        "sequential + alignment tasks",
        defaults={"recommender.tasks": LCREC_TASKS}, search_space=SPACE, profiles={"small": SMALL},
        paper="Adapting Large Language Models by Integrating Collaborative Semantics for Recommendation, "
        "ICDE 2024"))
    register(MethodSpec(
        name="letter-lcrec", version="dc314614bc26", tokenizer="letter", recommender="llm",
        description="LETTER (Wang et al., CIKM'24) identifiers on LC-Rec, ranking-guided loss",
        defaults={"recommender.tasks": LCREC_TASKS, "recommender.rank_temperature": 0.7},
        search_space=SPACE + ("recommender.rank_temperature",), profiles={"small": SMALL},
        paper="Learnable Item Tokenization for Generative Recommendation, CIKM 2024"))
