"""Model adapters for :func:`benchmark.nn.beam_search.beam_search`.

:class:`T5Decoder` decodes a ``transformers`` T5 (any ``T5ForConditionalGeneration``,
random-init or pretrained) for ``n_cases x beam`` rows at once:

- the encoder runs once per case, and so does the first decoding step (every beam of a
  case starts from the same prefix);
- each decoder layer's cross-attention keys and values are computed once per case and
  never copied per beam: a case's beams are the query positions of one attention over
  the case's keys (beams of one case attend to the same encoder states, so this is the
  same arithmetic as T5's attention, without the ``beam``-fold copy ``generate`` makes
  and reorders every step);
- only the small self-attention cache follows the beams' reorders, one gather per step
  for every layer;
- the decoding steps run the model's own weights and sub-modules in a loop written for
  one new token per row, not through the generic forward, which rebuilds masks, caches
  and position biases on every call (see :class:`T5Decoder`).

:class:`CausalLMDecoder` decodes any ``transformers`` causal LM (random-init or
pretrained, with or without LoRA) after a left-padded prompt: the prompt runs once per
case, its key/value cache is expanded to the case's beams on the second step and
reordered by the beams' parents after that (a causal LM has no encoder states to share:
the prompt's cache *is* its per-row state).
"""

from __future__ import annotations

import inspect

import torch

# Up to this many keys, self-attention by elementwise products (measured faster on CPU than
# batched one-row matrix products up to about 12 keys, slower at 20).
SHORT_PREFIX = 12


class T5Decoder:
    """Next-token logits of a T5 for beam search (see the module docstring).

    Each step runs the decoder's layer norms, feed-forward blocks, relative position bias,
    embedding and output head as the model holds them (gated or not, tied or not); the
    self-attention's query, key and value projections are one matrix product, and its
    keys and values for all layers live in one buffer. It is T5's decoder in eval mode:
    no dropout, and none of the float16 overflow clamps of ``transformers``' T5 blocks
    (the recommenders decode in float32). ``tests/test_beam_search.py`` checks its logits
    against the model's forward and its top-20 lists against ``generate``.
    """

    def __init__(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        config = model.config
        self.model = model
        self.cases = len(input_ids)
        states = model.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        self.device, self.dtype = states.device, states.dtype
        blocks = model.decoder.block
        first = blocks[0].layer[0].SelfAttention
        self.heads, self.head_dim = first.n_heads, first.key_value_proj_dim
        self.inner = self.heads * self.head_dim
        self.bias_module = first  # T5: the first layer's relative position bias serves every layer
        # Additive encoder mask per case, broadcast over heads and beams.
        self.cross_bias = torch.zeros(attention_mask.shape, dtype=self.dtype, device=self.device).masked_fill(
            attention_mask.to(self.device) == 0, torch.finfo(self.dtype).min)[:, None, None, :]
        self.layers = []
        for block in blocks:
            attention, cross = block.layer[0].SelfAttention, block.layer[1].EncDecAttention
            shape = (self.cases, -1, self.heads, self.head_dim)
            keys = cross.k(states).view(shape).permute(0, 2, 3, 1).contiguous()  # (cases, heads, dim, source)
            values = cross.v(states).view(shape).transpose(1, 2).contiguous()  # (cases, heads, source, dim)
            qkv = torch.cat([attention.q.weight, attention.k.weight, attention.v.weight])
            self.layers.append((block, qkv, attention.o, cross.q, cross.o, keys, values))
        self.scale = (config.d_model ** -0.5) if getattr(config, "scale_decoder_outputs",
                                                          config.tie_word_embeddings) else None
        self.start = config.decoder_start_token_id
        self.position = 0
        self.cache: torch.Tensor | None = None  # (position, layers, 2, rows, heads, dim)

    def step(self, tokens: torch.Tensor | None, parents: torch.Tensor | None) -> torch.Tensor:
        t = self.position
        if tokens is None:  # one row per case: its beams share the start
            tokens = torch.full((self.cases,), self.start, dtype=torch.long)
        rows = len(tokens)
        cache = torch.empty((t + 1, len(self.layers), 2, rows, self.heads, self.head_dim),
                            dtype=self.dtype, device=self.device)
        if t:  # follow (or, after the first step, expand to) the beams: one gather for all layers
            torch.index_select(self.cache, 3, parents.to(self.device), out=cache[:t])
        self.cache = cache
        # The new token's relative position bias over the t + 1 keys: (heads, t + 1).
        bias = self.bias_module.compute_bias(1, t + 1, device=self.device, past_seen_tokens=t)[0, :, 0]
        hidden = self.model.decoder.embed_tokens(tokens.to(self.device))
        for index, (block, qkv, out, cross_q, cross_out, keys, values) in enumerate(self.layers):
            # Self-attention over this row's tokens so far.
            q, k, v = torch.nn.functional.linear(block.layer[0].layer_norm(hidden), qkv).split(self.inner, dim=-1)
            cache[t, index, 0] = k.view(rows, self.heads, self.head_dim)
            cache[t, index, 1] = v.view(rows, self.heads, self.head_dim)
            hidden = hidden + out(self._self_attention(q, cache[:, index, 0], cache[:, index, 1], bias))
            # Cross-attention: a case's beams are query positions over the case's encoder states.
            query = cross_q(block.layer[1].layer_norm(hidden)).view(self.cases, -1, self.heads, self.head_dim)
            scores = torch.matmul(query.transpose(1, 2), keys) + self.cross_bias
            weights = torch.softmax(scores.float(), dim=-1).type_as(scores)
            hidden = hidden + cross_out(torch.matmul(weights, values).transpose(1, 2).reshape(rows, self.inner))
            feed_forward = block.layer[-1]
            hidden = hidden + feed_forward.DenseReluDense(feed_forward.layer_norm(hidden))
        hidden = self.model.decoder.final_layer_norm(hidden)
        if self.scale is not None:
            hidden = hidden * self.scale
        self.position = t + 1
        return self.model.lm_head(hidden).float().cpu()

    def _self_attention(self, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                        bias: torch.Tensor) -> torch.Tensor:
        """Each row's new query over its ``t + 1`` keys and values ``(t + 1, rows, heads, dim)``."""
        rows, positions = len(q), len(keys)
        q = q.view(rows, self.heads, self.head_dim)
        if positions <= SHORT_PREFIX:  # a few keys: products and sums beat rows x heads tiny matrix products
            scores = (q * keys).sum(-1) + bias.T[:, None]  # (t + 1, rows, heads); T5: no 1/sqrt(d) scaling
            weights = torch.softmax(scores.float(), dim=0).type_as(scores)
            return (weights[..., None] * values).sum(0).reshape(rows, self.inner)
        scores = torch.matmul(keys.permute(1, 2, 0, 3), q[..., None])[..., 0] + bias  # (rows, heads, t + 1)
        weights = torch.softmax(scores.float(), dim=-1).type_as(scores)
        return torch.matmul(weights[:, :, None], values.permute(1, 2, 0, 3)).reshape(rows, self.inner)


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
