"""Training pieces of the LLM family that register nothing (shared by ``bigrec``; ``llm``
holds its own copies until its archived board rows are next refitted, since editing it
changes its code hash): the ``tiny`` training budget and the response-only loss."""

from __future__ import annotations

from dataclasses import replace

import torch

from benchmark.training import TRAINING_PARAMS
from plugins.recommenders.backbones import base_model, hidden_states, left_padded

# The 2-core CPU budget of the LLM family: fewer sampled targets and epochs than seq2seq's,
# in smaller steps (batch 64 at 1e-3 reached validation N@10 0.019 after one ml-100k epoch
# of lcrec where batch 256 at 3e-3 had 0.013 after three).
TINY_TRAINING = {"prefixes_per_user": 2, "epochs": 3, "batch_size": 64, "learning_rate": 1e-3}
LLM_TRAINING_PARAMS = tuple(replace(p, profiles={**p.profiles, "tiny": TINY_TRAINING[p.name]})
                            if p.name in TINY_TRAINING else p for p in TRAINING_PARAMS)


def response_loss(model: torch.nn.Module, pairs: list[tuple[list[int], list[int]]], pad: int,
                  device: torch.device, temperature: float = 1.0) -> torch.Tensor:
    """Cross-entropy of the response tokens of (prompt, response) id pairs: rows are
    left-padded so every response ends its row, and the output layer runs on the positions
    that predict a response token only (over the whole vocabulary)."""
    ids, mask = left_padded([prompt + response for prompt, response in pairs], pad)
    keep = max(len(response) for _, response in pairs)
    labels = torch.full((len(pairs), keep), -100, dtype=torch.long)
    for row, (_, response) in enumerate(pairs):
        labels[row, keep - len(response):] = torch.as_tensor(response)
    hidden = hidden_states(model, ids.to(device), mask.to(device))
    labels = labels.to(device)
    targets = labels != -100
    logits = base_model(model).get_output_embeddings()(hidden[:, -keep - 1:-1][targets]).float()
    return torch.nn.functional.cross_entropy(logits / temperature, labels[targets])
