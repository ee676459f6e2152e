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

:class:`SharedPromptDecoder` gives :class:`CausalLMDecoder`'s logits for Qwen2-architecture
models with each case's prompt cache shared by the case's rows instead of copied into each:
exact scoring decodes a row per inner trie node, where the copies dominate, and beam search
copies the prompt into every beam. :func:`prompt_decoder` picks it for both where it applies.
"""

from __future__ import annotations

import inspect

import torch

from benchmark.nn.causal_lm import base_model
from benchmark.nn.exact_scoring import row_floats

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


class SharedPromptDecoder(CausalLMDecoder):
    """:class:`CausalLMDecoder`'s logits for a Qwen2-architecture model (random-init, or
    pretrained with or without LoRA adapters), with each case's prompt cache shared by its rows.

    ``CausalLMDecoder`` copies a case's whole prompt cache into every row it decodes, and
    copies it again at every reorder. Exact scoring (:mod:`benchmark.nn.exact_scoring`)
    decodes one row per inner node of the identifier trie, a thousand or more per case,
    so the copies cost far more than the arithmetic. Here the prompt runs once through the
    model's forward (:class:`CausalLMDecoder`'s first step); its keys and values stay one per
    case, and a later step attends over two parts: the case's prompt keys (one matrix product
    per case, the case's rows as its query positions, as :class:`T5Decoder` treats
    cross-attention) and the row's own few decoded tokens, which alone follow the rows'
    parents. One softmax spans both parts.

    Steps take rows case-major (``n_cases x width``, as beam search and exact scoring lay
    them out). Each step runs the model's own sub-modules (norms, projections with any
    LoRA adapters, rotary embedding, MLP, output head) in eval mode.
    ``tests/test_exact_scoring.py`` checks its logits against :class:`CausalLMDecoder`'s.
    """

    def __init__(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        self.core = shared_prompt_core(model)
        if self.core is None:
            raise ValueError("SharedPromptDecoder takes a Qwen2-architecture causal LM without sliding windows")
        super().__init__(model, input_ids, attention_mask)
        self.lm = base_model(model)
        config = self.lm.config
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.groups = self.heads // self.kv_heads
        self.scaling = self.head_dim ** -0.5
        self.cases = len(input_ids)
        self.position: torch.Tensor | None = None  # (cases,): the first decoded token's position
        self.own: torch.Tensor | None = None  # (t, layers, 2, rows, kv_heads, dim)
        self.t = 0
        self.prompt: list[tuple[torch.Tensor, torch.Tensor]] = []  # per layer: (cases, kv_heads, P, dim)
        self.prompt_bias: torch.Tensor | None = None  # (cases, 1, 1, P): -inf on the left padding
        self.dtype = torch.float32

    def step(self, tokens: torch.Tensor | None, parents: torch.Tensor | None) -> torch.Tensor:
        if tokens is None:  # the prompt: one row per case, as CausalLMDecoder runs it
            logits = super().step(None, None)
            self.prompt = [(layer.keys, layer.values) for layer in self.cache.layers]
            self.dtype = self.prompt[0][0].dtype
            self.prompt_bias = torch.zeros(self.mask.shape, dtype=torch.float32, device=self.device).masked_fill(
                self.mask == 0, -torch.inf)[:, None, None, :]
            self.position = self.next_position[:, 0]
            return logits
        rows = len(tokens)
        if rows % self.cases:
            raise ValueError(f"SharedPromptDecoder: {rows} rows for {self.cases} cases; rows must be case-major")
        width = rows // self.cases
        t = self.t
        parents = parents.to(self.device)
        own = torch.empty((t + 1, len(self.core.layers), 2, rows, self.kv_heads, self.head_dim),
                          dtype=self.dtype, device=self.device)
        if t:
            torch.index_select(self.own, 3, parents, out=own[:t])
        self.own = own
        positions = self.position.repeat_interleave(width) + t  # (rows,)
        hidden = self.core.embed_tokens(tokens.to(self.device))  # (rows, d)
        cos, sin = self.core.rotary_emb(hidden[None], positions[None])
        cos, sin = cos[0][:, None, :], sin[0][:, None, :]  # (rows, 1, dim)
        for index, layer in enumerate(self.core.layers):
            attention = layer.self_attn
            normed = layer.input_layernorm(hidden)
            q = attention.q_proj(normed).view(rows, self.heads, self.head_dim)
            k = attention.k_proj(normed).view(rows, self.kv_heads, self.head_dim)
            q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
            own[t, index, 0] = k
            own[t, index, 1] = attention.v_proj(normed).view(rows, self.kv_heads, self.head_dim)
            hidden = hidden + attention.o_proj(self._attention(q, index, width))
            hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
        self.t = t + 1
        hidden = self.core.norm(hidden)
        return self.lm.lm_head(hidden).float().cpu()

    def _attention(self, q: torch.Tensor, index: int, width: int) -> torch.Tensor:
        """Rows' queries ``(rows, heads, dim)`` over their case's prompt and their own tokens."""
        rows, t = len(q), self.t + 1
        cases, kv, groups, dim = self.cases, self.kv_heads, self.groups, self.head_dim
        keys, values = self.prompt[index]  # (cases, kv, P, dim)
        own_keys, own_values = self.own[:t, index, 0], self.own[:t, index, 1]  # (t, rows, kv, dim)
        # A case's rows and a key head's query heads are the query positions of one product.
        query = q.view(cases, width, kv, groups, dim).permute(0, 2, 1, 3, 4).reshape(cases, kv, width * groups, dim)
        prompt_scores = torch.matmul(query, keys.transpose(-1, -2)).float() * self.scaling + self.prompt_bias
        own_scores = torch.einsum("rkgd,jrkd->rkgj", q.view(rows, kv, groups, dim), own_keys).float() * self.scaling
        own_scores = own_scores.view(cases, width, kv, groups, t).permute(0, 2, 1, 3, 4).reshape(
            cases, kv, width * groups, t)
        weights = torch.softmax(torch.cat([prompt_scores, own_scores], dim=-1), dim=-1).to(q.dtype)
        prompt_weights, own_weights = weights.split([keys.shape[2], t], dim=-1)
        out = torch.matmul(prompt_weights, values)  # (cases, kv, width * groups, dim)
        own_weights = own_weights.view(cases, kv, width, groups, t).permute(0, 2, 1, 3, 4).reshape(rows, kv, groups, t)
        out = out.view(cases, kv, width, groups, dim).permute(0, 2, 1, 3, 4).reshape(rows, kv, groups, dim) \
            + torch.einsum("rkgj,jrkd->rkgd", own_weights, own_values)
        return out.reshape(rows, self.heads * dim)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def shared_prompt_core(model):
    """The decoder stack :class:`SharedPromptDecoder` steps through (``model.model`` of a
    Qwen2 causal LM, under any peft wrapper), or ``None`` where it does not apply: another
    architecture, or sliding-window attention."""
    lm = base_model(model)
    config = getattr(lm, "config", None)
    if getattr(config, "model_type", None) != "qwen2" or getattr(config, "use_sliding_window", False):
        return None
    return getattr(lm, "model", None)


def prompt_decoder(model, input_ids: torch.Tensor, attention_mask: torch.Tensor):
    """The decoder of a causal LM for beam search and exact scoring: :class:`SharedPromptDecoder`
    where it applies, :class:`CausalLMDecoder` otherwise."""
    if shared_prompt_core(model) is not None:
        return SharedPromptDecoder(model, input_ids, attention_mask)
    return CausalLMDecoder(model, input_ids, attention_mask)


def shared_row_floats(model, prompt: int, decoded: int) -> int:
    """Floats one exact-scoring row of :func:`prompt_decoder`'s decoder holds after a
    ``prompt``-token prompt, ``decoded`` tokens in: the prompt cache is per row for
    :class:`CausalLMDecoder`, per case (only its attention scores per row) for
    :class:`SharedPromptDecoder`."""
    config = base_model(model).config
    if shared_prompt_core(model) is not None:
        return row_floats(config, decoded, attended=prompt)
    return row_floats(config, prompt + decoded)
