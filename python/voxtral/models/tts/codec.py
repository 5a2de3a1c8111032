"""Codec decoder (TTS spec 8): frames of 37 codes -> 24 kHz waveform, and its streaming form (spec 10).

    codes [T, 37] ─ dequantise ─► latent [T, 292] (semantic VQ row ‖ FSQ values)
      block 0  causal Conv1d 292→dim, k=3, replicate left pad        [T, dim]      12.5 Hz
      block 1  2 ALiBi layers, window 2                                              
      block 2  causal ConvTranspose1d k=4 s=2 (drop the last 2 rows) [2T, dim]     25 Hz
      …        (windows 4, 8, 16 after each upsampler)                [8T, dim]    100 Hz
      out      causal Conv1d dim→240, k=7, reflect left pad          [8T, 240]
      unpatch  sample t·240 + c                                      [1920·T]

Activations are time-major [T, C] like every other model here. The conv weights are stored as
weight-norm pairs (g, v) and folded once at load, W = g·v/‖v‖ over all axes but 0 (for the
transposed convs, whose v is [in, out, k], that is per INPUT channel), in float64, stored in the
backend's dtype. The semantic codebook is embedding_sum / max(cluster_usage, 1e-5).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ...config import TTS_N_SPECIAL_AUDIO_CODES, CodecConfig
from ...errors import ModelFormatError
from ...layout import TTS_CODEC_PREFIX
from ..layers import LayerWeights, swiglu
from .flow_matching import END_AUDIO, fsq_values

C = TTS_CODEC_PREFIX  # the codec's tensor names
CLUSTER_USAGE_MIN = 1e-5
# Frames of left context after which a window re-decode equals the whole-utterance decode (spec 10:
# the first sample of frame F depends on frames F-21 … F).
MIN_CONTEXT_FRAMES = 21


def _dense(w) -> np.ndarray:
    return np.asarray(w.dequantize() if hasattr(w, "dequantize") else w)


def fold_weight_norm(g, v, dtype) -> np.ndarray:
    """W = g·v/‖v‖, the norm over every axis but 0, no epsilon (PyTorch weight_norm, dim=0)."""
    v64 = _dense(v).astype(np.float64)
    norm = np.sqrt(np.sum(v64 * v64, axis=tuple(range(1, v64.ndim)), keepdims=True))
    return (_dense(g).astype(np.float64) * v64 / norm).astype(dtype)


def semantic_table(embedding_sum, cluster_usage, dtype) -> np.ndarray:
    """[codebook, semantic_dim] VQ rows: EMA sums over EMA counts clamped at 1e-5 (both BF16 in the file)."""
    usage = np.maximum(_dense(cluster_usage).astype(np.float64), CLUSTER_USAGE_MIN)
    return (_dense(embedding_sum).astype(np.float64) / usage[:, None]).astype(dtype)


def alibi_slopes(n_heads: int) -> np.ndarray:
    """Reference slopes: the geometric sequence 1, r, r², … with r = 2^(-8/n) (NOT textbook ALiBi,
    which starts at r): [1, 1/2, …, 1/128] for 8 heads. Non-powers of two interleave like ALiBi."""
    def powers(n):
        r = 2.0 ** (-8.0 / n)
        return [r ** i for i in range(n)]

    if float(np.log2(n_heads)).is_integer():
        return np.array(powers(n_heads))
    m = 2 ** int(np.floor(np.log2(n_heads)))
    return np.array(powers(m) + powers(2 * m)[::2][: n_heads - m])


class CodecLayer:
    """Pre-norm layer with QK-RMSNorm over the full q/k width (before the head split), ALiBi,
    a causal window of W+1 keys, and per-channel LayerScale on both residual branches."""

    def __init__(self, cfg: CodecConfig, weights: Mapping[str, Any], prefix: str, window: int, dtype):
        self.cfg = cfg
        self.window = window
        self.w = LayerWeights.from_mapping(weights, prefix)
        self.q_norm = weights[prefix + "attention.q_norm.weight"]
        self.k_norm = weights[prefix + "attention.k_norm.weight"]
        # LayerScale multiplies activations elementwise: keep it as a [1, dim] row in the backend dtype.
        self.attention_scale = np.asarray(weights[prefix + "attention_scale"], dtype=dtype).reshape(1, -1)
        self.ffn_scale = np.asarray(weights[prefix + "ffn_scale"], dtype=dtype).reshape(1, -1)

    def __call__(self, ops, x, positions, slopes):
        cfg, w = self.cfg, self.w
        n = ops.rmsnorm(x, w.attention_norm, cfg.norm_eps)  # eps 1e-2
        q, k = ops.linear(n, w.wq), ops.linear(n, w.wk)  # [L, heads*hd]
        if cfg.qk_norm:
            q = ops.rmsnorm(q, self.q_norm, cfg.qk_norm_eps)
            k = ops.rmsnorm(k, self.k_norm, cfg.qk_norm_eps)
        v = ops.linear(n, w.wv)
        # The reference keeps keys i-W <= j <= i (flash-attn window (W, 0)); the op's window counts
        # keys, i - window < j <= i, hence W + 1.
        a = ops.attention(q, k, v, positions, positions, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim,
                          self.window + 1, alibi_slopes=slopes)
        x = ops.add(x, ops.mul(ops.linear(a, w.wo), ops.asarray(self.attention_scale)))
        m = ops.rmsnorm(x, w.ffn_norm, cfg.norm_eps)
        return ops.add(x, ops.mul(swiglu(ops, m, w), ops.asarray(self.ffn_scale)))


def pad_left(ops, x, n: int, mode: str):
    """Left-pad time-major x [L, C] by n rows: "replicate" repeats row 0, "reflect" mirrors rows
    n…1 (padded[-j] = x[j], so L must exceed n). Zero padding would be wrong at the utterance start."""
    if n == 0:
        return x
    if mode == "replicate":
        head = [ops.rows(x, 0, 1)] * n
    elif mode == "reflect":
        if x.shape[0] <= n:
            raise ValueError(f"reflect padding of {n} needs more than {n} rows, got {x.shape[0]}")
        head = [ops.rows(x, j, j + 1) for j in range(n, 0, -1)]
    else:
        raise ValueError(f"unknown pad mode {mode!r}")
    return ops.concat_rows(head + [x])


def causal_conv1d(ops, x, w, mode: str):
    """Causal Conv1d (stride 1, no bias) with K-1 left rows padded by `mode`. A backend with a
    `conv1d_padded` op (WebGPU: the padding is made inside the kernel) uses it; otherwise the
    rows are padded explicitly and the plain conv runs. Both compute the same thing."""
    pad = w.shape[2] - 1
    padded = getattr(ops, "conv1d_padded", None)
    if padded is not None:
        if mode == "reflect" and x.shape[0] <= pad:  # same error as pad_left
            raise ValueError(f"reflect padding of {pad} needs more than {pad} rows, got {x.shape[0]}")
        return padded(x, w, pad, mode)
    return ops.conv1d(pad_left(ops, x, pad, mode), w, None, 1, 0)


class CodecDecoder:
    def __init__(self, cfg: CodecConfig, weights: Mapping[str, Any], dtype=np.float32):
        self.cfg = cfg
        self.dtype = np.dtype(dtype)
        if cfg.strides[0] != 1:
            raise ModelFormatError(f"codec decoder block 0 must have stride 1, got {cfg.strides[0]}")
        self.semantic = semantic_table(weights[C + "quantizer.semantic_codebook.embedding_sum"],
                                       weights[C + "quantizer.semantic_codebook.cluster_usage"], self.dtype)
        self.convs = []  # folded weights: block 0 [dim, 292, k] (Conv1d), then [dim, dim, k] (ConvTranspose1d)
        self.stages = []  # per stage: list of CodecLayer
        for s, n_layers in enumerate(cfg.lengths):
            p = f"{C}decoder_blocks.{2 * s}.conv.parametrizations.weight."
            self.convs.append(fold_weight_norm(weights[p + "original0"], weights[p + "original1"], self.dtype))
            self.stages.append([CodecLayer(cfg, weights, f"{C}decoder_blocks.{2 * s + 1}.layers.{l}.",
                                           cfg.windows[s], self.dtype) for l in range(n_layers)])
        p = f"{C}output_proj.conv.parametrizations.weight."
        self.output_proj = fold_weight_norm(weights[p + "original0"], weights[p + "original1"], self.dtype)
        self.slopes = alibi_slopes(cfg.n_heads)

    def latent(self, codes) -> np.ndarray:
        """codes [T, 37] with the +2 offset -> latent [T, semantic_dim + acoustic_dim] (host)."""
        codes = np.asarray(codes, dtype=np.int64)
        sem = self.semantic[codes[:, 0] - TTS_N_SPECIAL_AUDIO_CODES]  # the -2 matters (spec pitfall 8)
        ac = fsq_values(codes[:, 1:], self.cfg.acoustic_codebook_size)  # [T, 36] in [-1, 1]
        return np.concatenate([sem, ac.astype(self.dtype)], axis=1)

    def __call__(self, ops, codes) -> np.ndarray:
        """Decode frames [T, 37] (cut at the first [END_AUDIO] frame, if any) -> waveform [1920·T]."""
        codes = np.asarray(codes, dtype=np.int64).reshape(-1, 1 + self.cfg.acoustic_dim)
        end = np.flatnonzero(codes[:, 0] == END_AUDIO)
        if end.size:
            codes = codes[: end[0]]
        if codes.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        x = ops.asarray(self.latent(codes))  # [T, 292]
        x = causal_conv1d(ops, x, self.convs[0], "replicate")
        for s, layers in enumerate(self.stages):
            if s > 0:
                x = self._upsample(ops, x, self.convs[s], self.cfg.strides[s])
            positions = np.arange(x.shape[0], dtype=np.int64)
            for layer in layers:
                x = layer(ops, x, positions, self.slopes)
        x = causal_conv1d(ops, x, self.output_proj, "reflect")
        # [8T, 240] time-major: row t holds samples t·240 … t·240+239, so a row-major flatten unpatches.
        return np.asarray(ops.to_host(x), dtype=np.float32).reshape(-1)

    @staticmethod
    def _upsample(ops, x, w, stride: int):
        """Causal transposed conv: the full output has (L-1)·s + k rows; keep the first L·s (the
        trim of k - s rows is all on the right), so output u depends on inputs ⌊u/s⌋ and earlier."""
        n = x.shape[0]
        return ops.rows(ops.conv_transpose1d(x, w, stride), 0, n * stride)


class StreamingCodec:
    """Audio for frames as they are generated, equal to the whole-utterance decode.

    The codec is causal with a finite receptive field (21 frames), so re-decoding a window
    [F0 - C, F1) with C >= 21 frames of left context and dropping the context's samples gives
    frames F0 … F1-1 exactly (up to float rounding): the start-of-window pads only disturb samples
    inside the dropped context. The schedule is the reference's: chunks of `first_chunk` (5) frames
    until `warmup` (25) frames are out, then chunks of `chunk` (25) frames, each with up to
    `context` (25) frames of left context; `flush` decodes the tail.
    """

    def __init__(self, codec: CodecDecoder, ops, context: int = 25, first_chunk: int = 5,
                 chunk: int = 25, warmup: int = 25):
        if context < MIN_CONTEXT_FRAMES:
            raise ValueError(f"context must be >= {MIN_CONTEXT_FRAMES} frames for an exact decode, got {context}")
        self.codec, self.ops = codec, ops
        self.context, self.first_chunk, self.chunk, self.warmup = context, first_chunk, chunk, warmup
        self.frames: list[np.ndarray] = []  # [37] each, +2 offset
        self.emitted = 0  # frames whose audio has been returned

    def push(self, frame) -> np.ndarray | None:
        """Add one frame; returns the next chunk of audio when one is due, else None."""
        self.frames.append(np.asarray(frame, dtype=np.int64).reshape(-1))
        size = self.first_chunk if self.emitted < self.warmup else self.chunk
        if len(self.frames) - self.emitted >= size:
            return self._decode_to(len(self.frames))
        return None

    def flush(self) -> np.ndarray | None:
        """The audio of the frames not yet returned (None if there are none)."""
        if len(self.frames) > self.emitted:
            return self._decode_to(len(self.frames))
        return None

    def _decode_to(self, end: int) -> np.ndarray:
        start = max(0, self.emitted - self.context)
        wav = self.codec(self.ops, np.stack(self.frames[start:end]))
        out = wav[(self.emitted - start) * self.codec.cfg.samples_per_frame:]
        self.emitted = end
        return out
