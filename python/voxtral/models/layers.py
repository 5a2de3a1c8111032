"""Mistral-style pre-norm transformer layer (attention + SwiGLU FFN) and its KV cache.

Shared by the ASR encoder (MHA, biases on q/v/o/w2), the ASR decoder (GQA, no biases, FFN input
scaled by the time conditioning), the TTS backbone (plain causal GQA, full cache) and the TTS
flow-matching head (`use_rope` False; bidirectional by giving a group of rows one position and
window 1). All arithmetic goes through `ops`.

Positions are absolute integers kept on the host (numpy int64): RoPE angles and attention masks are
functions of them, never of a row's index in a cache.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ..config import TransformerConfig

# Position stored in empty KV slots: larger than any query position, so `key <= query` masks it.
EMPTY_POSITION = np.iinfo(np.int64).max


# ------------------------------------------------------------------------------------- weights
@dataclass
class LayerWeights:
    """One layer in Mistral naming (`consolidated.safetensors` suffixes); biases optional."""

    attention_norm: Any
    wq: Any
    wk: Any
    wv: Any
    wo: Any
    ffn_norm: Any
    w1: Any  # gate
    w2: Any  # down
    w3: Any  # up
    bq: Any = None
    bk: Any = None
    bv: Any = None
    bo: Any = None
    b2: Any = None

    @classmethod
    def from_mapping(cls, weights: Mapping[str, Any], prefix: str) -> "LayerWeights":
        def need(name):
            try:
                return weights[prefix + name]
            except KeyError:
                raise KeyError(f"missing weight {prefix + name}") from None

        def opt(name):
            return weights.get(prefix + name)

        return cls(
            attention_norm=need("attention_norm.weight"),
            wq=need("attention.wq.weight"), wk=need("attention.wk.weight"),
            wv=need("attention.wv.weight"), wo=need("attention.wo.weight"),
            ffn_norm=need("ffn_norm.weight"),
            w1=need("feed_forward.w1.weight"), w2=need("feed_forward.w2.weight"),
            w3=need("feed_forward.w3.weight"),
            bq=opt("attention.wq.bias"), bk=opt("attention.wk.bias"), bv=opt("attention.wv.bias"),
            bo=opt("attention.wo.bias"), b2=opt("feed_forward.w2.bias"),
        )


# ------------------------------------------------------------------------------------ KV cache
class KVCache:
    """Keys and values of one attention layer, every row tagged with its absolute position.

    capacity None: unbounded. Otherwise a ring buffer of at most `capacity` rows: once full, new
    rows overwrite the oldest, so memory never exceeds capacity × width per tensor however long the
    stream. Storage grows by doubling up to the capacity (a 8192-row decoder window is not
    allocated for a 10 s clip; in wasm32 untouched zeros are not free). Rows stay in storage order;
    attention masks by position, so order is irrelevant. Appended positions must increase.
    """

    INITIAL_ROWS = 64

    def __init__(self, ops, width: int, capacity: int | None = None):
        self.ops = ops
        self.width = width
        self.capacity = capacity
        n = self.INITIAL_ROWS if capacity is None else min(capacity, self.INITIAL_ROWS)
        self.keys = ops.zeros((n, width))  # [slots, n_kv_heads*head_dim]
        self.values = ops.zeros((n, width))  # [slots, n_kv_heads*head_dim]
        self.positions = np.full(n, EMPTY_POSITION, dtype=np.int64)  # [slots]
        self.n_appended = 0  # rows ever appended; ring write index = n_appended % capacity

    @property
    def n_stored(self) -> int:
        return self.n_appended if self.capacity is None else min(self.n_appended, self.capacity)

    @property
    def n_slots(self) -> int:
        """Rows of storage allocated (what bounds memory)."""
        return self.keys.shape[0]

    def holds_window_for(self, n_new: int, window: int | None) -> bool:
        """True if, after appending n_new rows, every key the new queries may see is still stored:
        the oldest new query at P needs keys down to P - window + 1, i.e. window + n_new - 1 rows."""
        if self.capacity is None:
            return True
        return window is not None and self.capacity >= window + n_new - 1

    def append(self, k, v, positions) -> None:
        positions = np.asarray(positions, dtype=np.int64)
        m = positions.shape[0]
        cap = self.capacity
        if cap is None:
            self._grow_to(self.n_appended + m)
            self._write(self.n_appended, k, v, positions)
            self.n_appended += m
            return
        if m > cap:  # only the newest `cap` rows can survive anyway
            skip = m - cap
            k, v, positions = self.ops.rows(k, skip, m), self.ops.rows(v, skip, m), positions[skip:]
            self._grow_to(cap)
            self.n_appended += skip
            m = cap
        else:
            self._grow_to(min(cap, self.n_appended + m))
        # Until the ring is full, n_appended + m <= n_slots and nothing wraps; once it can wrap,
        # storage has reached `cap` rows, so indices modulo cap address it.
        start = self.n_appended % cap
        first = min(m, cap - start)  # rows before the ring wraps
        self._write(start, self.ops.rows(k, 0, first), self.ops.rows(v, 0, first), positions[:first])
        if first < m:
            self._write(0, self.ops.rows(k, first, m), self.ops.rows(v, first, m), positions[first:])
        self.n_appended += m

    def view(self):
        """(keys, values, positions) of the stored rows (ring: all slots, empty ones masked)."""
        if self.capacity is None:
            n = self.n_appended
            return self.ops.rows(self.keys, 0, n), self.ops.rows(self.values, 0, n), self.positions[:n]
        return self.keys, self.values, self.positions

    def _write(self, start, k, v, positions):
        self.ops.write_rows(self.keys, start, k)
        self.ops.write_rows(self.values, start, v)
        self.positions[start:start + positions.shape[0]] = positions

    def _grow_to(self, n: int) -> None:
        """Reallocate to hold n rows (doubling); only called before the ring first wraps."""
        if n <= self.n_slots:
            return
        size = max(n, 2 * self.n_slots)
        if self.capacity is not None:
            size = min(size, self.capacity)
        kept = min(self.n_appended, self.n_slots)  # rows 0..kept-1 are in append order
        keys, values = self.ops.zeros((size, self.width)), self.ops.zeros((size, self.width))
        self.ops.write_rows(keys, 0, self.ops.rows(self.keys, 0, kept))
        self.ops.write_rows(values, 0, self.ops.rows(self.values, 0, kept))
        positions = np.full(size, EMPTY_POSITION, dtype=np.int64)
        positions[:kept] = self.positions[:kept]
        self.keys, self.values, self.positions = keys, values, positions


def new_kv_caches(ops, cfg: TransformerConfig, extra_rows: int = 1) -> list[KVCache]:
    """One cache per layer, bounded to sliding_window + extra_rows - 1 rows when the stack has a
    window (extra_rows = rows added per regular step: 1 for a decoder, 4 for the encoder), so a
    regular step attends in place; larger batches take the concatenating path."""
    width = cfg.n_kv_heads * cfg.head_dim
    cap = None if cfg.sliding_window is None else cfg.sliding_window + extra_rows - 1
    # A backend may keep its caches itself (the WebGPU backend: preallocated GPU rings that the
    # attention kernel reads in place); it then provides `new_kv_cache` and the cache's `attend`.
    factory = getattr(ops, "new_kv_cache", None)
    if factory is not None:
        return [factory(width, cap, cfg) for _ in range(cfg.n_layers)]
    return [KVCache(ops, width, cap) for _ in range(cfg.n_layers)]


# --------------------------------------------------------------------------------------- layer
def cached_attention(ops, cfg: TransformerConfig, q, k, v, positions, cache: KVCache | None):
    """Sliding-window attention of new rows over (cache + new rows); appends the new rows.

    Regular steps write into the ring first and attend over it in place. A batch too large for the
    ring (e.g. the prompt prefill with a tiny window) attends over cache + batch concatenated, then
    keeps only what the ring holds: peak memory is temporary, persistent memory stays bounded.
    """
    args = (cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.sliding_window)
    if cache is not None and not isinstance(cache, KVCache):
        return cache.attend(q, k, v, positions)  # backend-owned cache
    if cache is None:
        return ops.attention(q, k, v, positions, positions, *args)
    if cache.holds_window_for(len(positions), cfg.sliding_window):
        cache.append(k, v, positions)
        ck, cv, cp = cache.view()
        return ops.attention(q, ck, cv, positions, cp, *args)
    ck, cv, cp = cache.view()
    out = ops.attention(q, ops.concat_rows([ck, k]), ops.concat_rows([cv, v]), positions,
                        np.concatenate([cp, positions]), *args)
    cache.append(k, v, positions)
    return out


class TransformerLayer:
    """Pre-norm layer:

        h = h + Wo·attn(rope(Wq·n1(h) + bq), rope(Wk·n1(h) + bk), Wv·n1(h) + bv) + bo
        h = h + W2·(silu(W1·y) ⊙ W3·y) + b2,   y = n2(h) ⊙ (1 + ffn_ada)   (ffn_ada optional)

    `ffn_ada` is the decoder's time conditioning s_l: it scales only the FFN input.
    Q/K/V and gate/up are each one `linear_split` (one matmul on the GPU, whose column ranges
    are the separate outputs), and the residual adds ride on the Wo and W2 matmuls.
    """

    def __init__(self, cfg: TransformerConfig, w: LayerWeights):
        self.cfg = cfg
        self.w = w

    def __call__(self, ops, h, positions, cache: KVCache | None = None, ffn_ada=None):
        cfg, w = self.cfg, self.w
        # q [M, n_heads*hd], k and v [M, n_kv_heads*hd] of the normed h
        q, k, v = norm_linear_split(ops, h, w.attention_norm, cfg.norm_eps, (w.wq, w.wk, w.wv),
                                    (w.bq, w.bk, w.bv))
        if cfg.use_rope:  # the TTS flow-matching head has no positional encoding
            q, k = ops.rope_qk(q, k, positions, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.rope_theta)
        a = cached_attention(ops, cfg, q, k, v, positions, cache)  # [M, n_heads*hd]
        h = ops.linear(a, w.wo, w.bo, residual=h)
        return swiglu(ops, h, w, residual=h, norm=(w.ffn_norm, cfg.norm_eps, ffn_ada))


def norm_linear_split(ops, h, norm_w, eps: float, ws, bs=None, ada=None):
    """ops.linear_split(ops.rmsnorm(h, norm_w, eps, ada=ada), ws, bs); a backend may do both in
    one step (WebGPU: the decode step's matvec normalises its own input)."""
    fused = getattr(ops, "norm_linear_split", None)
    if fused is not None:
        return fused(h, norm_w, eps, ws, bs, ada=ada)
    return ops.linear_split(ops.rmsnorm(h, norm_w, eps, ada=ada), ws, bs)


def swiglu(ops, x, w: LayerWeights, residual=None, norm=None):
    """[residual +] W2·(silu(W1·x') ⊙ W3·x') + b2 -> [M, dim], x' = x, or with norm = (norm_w,
    eps, ada | None) x' = rmsnorm(x, norm_w, eps, ada). A backend may fuse the norm, the gate/up
    matmul and the activation (WebGPU: one dispatch in the decode step)."""
    norm_w, eps, ada = norm if norm is not None else (None, 0.0, None)
    fused = getattr(ops, "norm_swiglu", None)
    if fused is not None:
        act = fused(x, norm_w, eps, w.w1, w.w3, ada=ada)
    else:
        if norm_w is not None:
            x = ops.rmsnorm(x, norm_w, eps, ada=ada)
        gate, up = ops.linear_split(x, (w.w1, w.w3))  # [M, hidden] each
        act = ops.swiglu(gate, up)
    return ops.linear(act, w.w2, w.b2, residual=residual)
