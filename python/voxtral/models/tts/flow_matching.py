"""Per-frame heads on the backbone hidden h (TTS spec 7.2-7.5).

* semantic code: masked argmax of `semantic_codebook_output`·h (no sampling in the reference);
* 36 acoustic values: a flow-matching ODE solved with Euler steps, whose velocity comes from a small
  bidirectional transformer over 3 tokens [W_in·x, W_time·τ(t), W_llm·h] (no RoPE, no mask), with
  classifier-free guidance against the same network fed h = 0; then FSQ-quantised to 21 levels.

Codes carry the +2 offset of the two audio specials ([EMPTY_AUDIO] 0, [END_AUDIO] 1) everywhere
except at the codec input.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Mapping

import numpy as np

from ...config import TTS_N_SPECIAL_AUDIO_CODES, TTSConfig
from ..layers import LayerWeights, TransformerLayer

A = "acoustic_transformer."
EMPTY_AUDIO = 0
END_AUDIO = 1
TIME_EMBEDDING_THETA = 10000.0


def time_embedding(t: np.ndarray, dim: int, theta: float = TIME_EMBEDDING_THETA) -> np.ndarray:
    """τ(t) [len(t), dim] = [cos(t·f_j) …, sin(t·f_j) …], f_j = θ^(-j/(dim/2)): cosine block FIRST.

    inv_freq and t·f are formed in float32 like the reference's buffer and einsum (inv_freq is not
    in the checkpoint); cos/sin of that f32 argument are evaluated in float64."""
    half = dim // 2
    inv_freq = np.exp(np.float32(-math.log(theta)) * np.arange(half, dtype=np.float32) / np.float32(half))
    arg = np.asarray(t, dtype=np.float32)[:, None] * inv_freq.astype(np.float32)[None, :]  # [n, half]
    arg = arg.astype(np.float64)
    return np.concatenate([np.cos(arg), np.sin(arg)], axis=1)


def fsq_codes(x: np.ndarray, levels: int) -> np.ndarray:
    """Continuous values -> FSQ codes with the +2 offset: clamp to [-1, 1] FIRST, then
    round((u+1)/2·(levels-1)) half-to-even (torch.round semantics; np.round is the same)."""
    u = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    q = np.round((u + 1.0) / 2.0 * (levels - 1))
    return q.astype(np.int64) + TTS_N_SPECIAL_AUDIO_CODES


def fsq_values(codes: np.ndarray, levels: int) -> np.ndarray:
    """Inverse of `fsq_codes` (codec input): code a (with +2 offset) -> (a-2)·2/(levels-1) - 1."""
    return (np.asarray(codes, dtype=np.float64) - TTS_N_SPECIAL_AUDIO_CODES) * (2.0 / (levels - 1)) - 1.0


def group_positions(b: int) -> np.ndarray:
    """[3B] int64: the velocity network's row -> group (rows are laid out [x_0.., t_0.., llm_0..]);
    attention stays inside a group, whose rows share its index as their position."""
    return np.tile(np.arange(b, dtype=np.int64), 3)


def euler_timesteps(steps: int) -> np.ndarray:
    """linspace(0, 1, steps+1): the velocity is evaluated at the first `steps` of them, never at 1."""
    if steps < 1:
        raise ValueError(f"euler_steps must be >= 1, got {steps}")
    return np.linspace(0.0, 1.0, steps + 1)


class FlowMatchingHead:
    def __init__(self, cfg: TTSConfig, weights: Mapping[str, Any]):
        self.cfg = cfg
        # Bidirectional attention inside each 3-token group, none across groups (cond and uncond
        # run as one batch): every row of a group gets the group's index as its "position" and the
        # window is 1, so key j is visible to query i iff pos_j == pos_i. No RoPE (use_rope False).
        self.layer_cfg = replace(cfg.flow, sliding_window=1)
        self.layers = [TransformerLayer(self.layer_cfg, LayerWeights.from_mapping(weights, f"{A}layers.{j}."))
                       for j in range(cfg.flow.n_layers)]
        self.w_in = weights[A + "input_projection.weight"]  # [dim, 36]
        self.w_time = weights[A + "time_projection.weight"]  # [dim, dim]
        self.w_llm = weights[A + "llm_projection.weight"]  # [dim, backbone dim]
        self.w_semantic = weights[A + "semantic_codebook_output.weight"]  # [8320, backbone dim]
        self.w_acoustic = weights[A + "acoustic_codebook_output.weight"]  # [36, dim]
        self.norm = weights[A + "norm.weight"]
        self._mask: dict[int, tuple[Any, Any]] = {}  # id(ops) -> (ops, [1, 8320] additive mask)
        self._time_tables: dict[tuple[int, int], tuple[Any, Any]] = {}  # (id(ops), steps) -> (ops, [steps, dim])
        self._graphs: dict[tuple, tuple[Any, Any]] = {}  # (id(ops), steps, alpha) -> (ops, recorded solve)

    # ------------------------------------------------------------------------------ semantic
    def semantic_mask(self, ops):
        """[1, padded] additive mask: -inf on [EMPTY_AUDIO] (0) and on the padding rows past
        8194; [END_AUDIO] (1) stays allowed (it is how generation stops)."""
        hit = self._mask.get(id(ops))
        if hit is None or hit[0] is not ops:
            n_rows = int(self.w_semantic.shape[0])
            mask = np.zeros((1, n_rows))
            mask[0, EMPTY_AUDIO] = -np.inf
            mask[0, self.cfg.semantic_codebook_size + TTS_N_SPECIAL_AUDIO_CODES:] = -np.inf
            self._mask[id(ops)] = hit = (ops, ops.asarray(mask))
        return hit[1]

    def semantic_code(self, ops, h) -> int:
        """h [1, dim] (backbone final-normed hidden) -> code in {1} ∪ [2, 8193] (greedy)."""
        logits = ops.add(ops.linear(h, self.w_semantic), self.semantic_mask(ops))  # [1, 8320]
        return int(np.asarray(ops.to_host(ops.argmax(logits))).reshape(-1)[0])

    # ------------------------------------------------------------------------------ acoustic
    def time_table(self, ops, steps: int):
        """W_time·τ(t_i) for the `steps` evaluated timesteps [steps, dim]: computed once per run."""
        key = (id(ops), int(steps))
        hit = self._time_tables.get(key)
        if hit is None or hit[0] is not ops:
            tau = time_embedding(euler_timesteps(steps)[:-1], self.cfg.flow.dim)  # [steps, dim]
            self._time_tables[key] = hit = (ops, ops.linear(ops.asarray(tau), self.w_time))
        return hit[1]

    def velocity(self, ops, x_tok, t_tok, llm_tok):
        """One network evaluation for B groups at once.

        x_tok, t_tok, llm_tok [B, dim] (already projected) -> velocity [B, 36]. Rows are laid out
        block-wise [x_0..x_B-1, t_0.., llm_0..]; group b's three rows share position b."""
        b = x_tok.shape[0]
        z = ops.concat_rows([x_tok, t_tok, llm_tok])  # [3B, dim]
        groups = group_positions(b)  # [3B]
        for layer in self.layers:
            z = layer(ops, z, groups)
        # The velocity is read from each group's x token (position 0 of the 3), after the final norm.
        return ops.linear(ops.rmsnorm(ops.rows(z, 0, b), self.norm, self.cfg.flow.norm_eps), self.w_acoustic)

    def solve_positions(self) -> np.ndarray:
        """The positions of every velocity pass of acoustic_values (2 groups: cond, uncond)."""
        return group_positions(2)

    def acoustic_values(self, ops, h, noise, euler_steps: int | None = None, cfg_alpha: float | None = None):
        """Solve the ODE from `noise` [36] (host) with CFG; returns the final state x [1, 36].

        Each Euler step is one batched pass of 2 groups: conditional (h) and unconditional (h = 0,
        so W_llm·0 = 0: no dropped-token embedding). x ← x + dt·(α·v_c + (1-α)·v_u)."""
        steps = self.cfg.euler_steps if euler_steps is None else int(euler_steps)
        alpha = self.cfg.cfg_alpha if cfg_alpha is None else float(cfg_alpha)
        dts = np.diff(euler_timesteps(steps))  # [steps]
        t_table = self.time_table(ops, steps)  # [steps, dim]
        llm_tok = ops.concat_rows([ops.linear(h, self.w_llm), ops.zeros((1, self.cfg.flow.dim))])  # [2, dim]
        if isinstance(noise, (np.ndarray, list, tuple)):  # else a [1, 36] backend array
            noise = np.asarray(noise, dtype=np.float64).reshape(1, -1)
        x = ops.asarray(noise)  # [1, 36]
        scalar = lambda v: ops.asarray(np.full((1, 1), v))  # noqa: E731 - broadcast factor
        w_c, w_u = scalar(alpha), scalar(1.0 - alpha)
        for i in range(steps):
            x_row = ops.linear(x, self.w_in)  # [1, dim]
            t_row = ops.rows(t_table, i, i + 1)  # [1, dim]
            v = self.velocity(ops, ops.concat_rows([x_row, x_row]), ops.concat_rows([t_row, t_row]), llm_tok)
            v = ops.add(ops.mul(ops.rows(v, 0, 1), w_c), ops.mul(ops.rows(v, 1, 2), w_u))  # [1, 36]
            x = ops.add(x, ops.mul(v, scalar(dts[i])))
        return x

    def acoustic_codes(self, ops, h, noise, euler_steps: int | None = None,
                       cfg_alpha: float | None = None) -> np.ndarray:
        """h [1, dim], noise [36] -> 36 FSQ codes in 2..22 (host int64).

        A backend that can record the whole Euler solve (WebGPU: `flow_matching_graph`) records it
        once per (steps, alpha) and replays it every frame: no Python per network evaluation."""
        steps = self.cfg.euler_steps if euler_steps is None else int(euler_steps)
        alpha = self.cfg.cfg_alpha if cfg_alpha is None else float(cfg_alpha)
        factory = getattr(ops, "flow_matching_graph", None)
        if factory is None:
            x = ops.to_host(self.acoustic_values(ops, h, noise, steps, alpha))
        else:
            key = (id(ops), steps, alpha)
            hit = self._graphs.get(key)
            if hit is None or hit[0] is not ops:
                self._graphs[key] = hit = (ops, factory(self, steps, alpha))
            x = ops.to_host(hit[1].run(h, noise))
        return fsq_codes(np.asarray(x).reshape(-1), self.cfg.acoustic_codebook_size)
