"""Model adapters for :func:`benchmark.beam_search.beam_search`.

:class:`T5Decoder` decodes a ``transformers`` T5 (any ``T5ForConditionalGeneration``,
random-init or pretrained) for ``n_cases x beam`` rows at once:

- the encoder runs once per case, and so does the first decoding step (every beam of a
  case starts from the same prefix);
- each decoder layer's cross-attention keys and values are computed once per case and
  never copied per beam: while decoding, the layer's cross-attention is stood in for by
  one that treats a case's beams as query positions over the case's keys (beams of one
  case attend to the same encoder states, so this is the same arithmetic as T5's
  attention, without the ``beam``-fold copy ``generate`` makes and reorders every step);
- only the small self-attention cache follows the beams' reorders.

:class:`CausalLMDecoder` decodes any ``transformers`` causal LM (random-init or
pretrained, with or without LoRA) after a left-padded prompt: the prompt runs once per
case, its key/value cache is expanded to the case's beams on the second step and
reordered by the beams' parents after that (a causal LM has no encoder states to share:
the prompt's cache *is* its per-row state).
"""

from __future__ import annotations

import inspect

import torch
from torch import nn


class _SharedCrossAttention(nn.Module):
    """A T5 cross-attention whose keys and values are one per case, shared by its beams."""

    def __init__(self, attention: nn.Module, keys: torch.Tensor, values: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.attention = attention
        self.keys, self.values, self.bias = keys, values, bias

    def forward(self, hidden_states, mask=None, key_value_states=None, position_bias=None, cache=None, **kwargs):
        attention = self.attention
        rows, cases = hidden_states.shape[0], self.keys.shape[0]
        # (rows, 1, d) -> (cases, heads, beams, head_dim): a case's beams are its query positions.
        query = attention.q(hidden_states).view(cases, rows // cases, attention.n_heads,
                                                attention.key_value_proj_dim).transpose(1, 2)
        scores = torch.matmul(query, self.keys.transpose(-1, -2)) + self.bias  # T5: no 1/sqrt(d) scaling
        weights = torch.softmax(scores.float(), dim=-1).type_as(scores)
        output = torch.matmul(weights, self.values).transpose(1, 2).reshape(rows, 1, -1)
        return attention.o(output), position_bias, None


class T5Decoder:
    """Next-token logits of a T5 for beam search (see the module docstring)."""

    def __init__(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        from transformers.cache_utils import DynamicCache, EncoderDecoderCache
        from transformers.modeling_outputs import BaseModelOutput

        self.model = model
        cases = len(input_ids)
        states = model.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        bias = torch.zeros(attention_mask.shape, dtype=states.dtype, device=states.device)
        bias = bias.masked_fill(attention_mask == 0, torch.finfo(states.dtype).min)[:, None, None, :]
        self.shared = []
        for block in model.decoder.block:
            attention = block.layer[1].EncDecAttention
            shape = (cases, -1, attention.n_heads, attention.key_value_proj_dim)
            keys = attention.k(states).view(shape).transpose(1, 2)
            values = attention.v(states).view(shape).transpose(1, 2)
            self.shared.append(_SharedCrossAttention(attention, keys, values, bias))
        self.cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        self.cases = cases
        self.states = states
        self.output_class = BaseModelOutput
        self.start = model.config.decoder_start_token_id
        self.device = states.device
        self.cache_argument = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    def step(self, tokens: torch.Tensor | None, parents: torch.Tensor | None) -> torch.Tensor:
        if tokens is None:  # one row per case: its beams share the start
            tokens = torch.full((self.cases,), self.start, dtype=torch.long)
        else:  # reorder (or, after the first step, expand) the self-attention cache
            self.cache.self_attention_cache.reorder_cache(parents.to(self.device))
        # The decoder only checks that encoder states exist; the stand-ins hold the real ones.
        encoder_outputs = self.output_class(last_hidden_state=self.states.new_zeros(len(tokens), 1, 0))
        layers = [block.layer[1] for block in self.model.decoder.block]
        originals = [layer.EncDecAttention for layer in layers]
        try:
            for layer, shared in zip(layers, self.shared):
                layer.EncDecAttention = shared
            out = self.model(encoder_outputs=encoder_outputs, decoder_input_ids=tokens.to(self.device)[:, None],
                             use_cache=True, **{self.cache_argument: self.cache})
        finally:
            for layer, original in zip(layers, originals):
                layer.EncDecAttention = original
        return out.logits[:, -1].float().cpu()


class CausalLMDecoder:
    """Next-token logits of a causal LM after a prompt, for beam search.

    ``input_ids`` / ``attention_mask``: the prompts, **left**-padded (real tokens last), so
    every row's next token follows its last column. Positions count real tokens only.
    """

    def __init__(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        from transformers.cache_utils import DynamicCache

        self.model = model
        self.device = input_ids.device
        self.input_ids, self.mask = input_ids, attention_mask
        self.cache = DynamicCache(config=model.config)
        self.next_position: torch.Tensor | None = None
        self.cache_argument = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    def step(self, tokens: torch.Tensor | None, parents: torch.Tensor | None) -> torch.Tensor:
        if tokens is None:  # the prompt: one row per case
            positions = (self.mask.cumsum(-1) - 1).clamp(min=0)
            out = self.model(input_ids=self.input_ids, attention_mask=self.mask, position_ids=positions,
                             use_cache=True, **{self.cache_argument: self.cache})
            self.next_position = positions[:, -1:] + 1
            return out.logits[:, -1].float().cpu()
        parents = parents.to(self.device)
        self.cache.reorder_cache(parents)  # also expands cases to beams on the second call
        self.mask = torch.cat([self.mask[parents], self.mask.new_ones(len(parents), 1)], dim=1)
        self.next_position = self.next_position[parents]
        out = self.model(input_ids=tokens.to(self.device)[:, None], attention_mask=self.mask,
                         position_ids=self.next_position, use_cache=True, **{self.cache_argument: self.cache})
        self.next_position = self.next_position + 1
        return out.logits[:, -1].float().cpu()
