"""Causal Whisper-style audio encoder (ASR spec section 5): conv stem + sliding-window transformer.

mel [n_mels, T] (100 Hz) -> conv k3 s1 + GELU -> conv k3 s2 + GELU -> [T/2, dim] (50 Hz encoder
frames) -> n_layers pre-norm layers (interleaved RoPE at absolute frame positions, window 750)
-> final RMSNorm. Two drivers share the same layers: `ASREncoder.__call__` (whole clip at once)
and `EncoderStream.step` (chunks of mel frames with conv states and bounded KV rings).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ...config import ASRConfig
from ..layers import LayerWeights, TransformerLayer, new_kv_caches

P = "mm_streams_embeddings.embedding_module."
EP = P + "whisper_encoder."

# (stride) of conv_layers.0 and .1. Each conv is causal with left pad = kernel - stride (HF/vLLM):
# conv1 pads 2 (frame i reads mel i-2, i-1, i); conv2 pads 1 (frame j reads conv1 2j-1, 2j, 2j+1).
# executorch pads both with kernel - 1 = 2, which shifts conv2 by one frame: not the reference.
CONV_STRIDES = (1, 2)


class ASREncoder:
    def __init__(self, cfg: ASRConfig, weights: Mapping[str, Any]):
        self.cfg = cfg.encoder
        self.convs = [(weights[f"{EP}conv_layers.{i}.conv.weight"],  # [C_out, C_in, K]
                       weights[f"{EP}conv_layers.{i}.conv.bias"], stride)
                      for i, stride in enumerate(CONV_STRIDES)]
        self.layers = [TransformerLayer(self.cfg, LayerWeights.from_mapping(weights, f"{EP}transformer.layers.{i}."))
                       for i in range(self.cfg.n_layers)]
        self.norm = weights[EP + "transformer.norm.weight"]

    @property
    def time_reduction(self) -> int:
        """Mel frames per encoder frame (2)."""
        r = 1
        for _, _, s in self.convs:
            r *= s
        return r

    def conv_left_pads(self) -> list[int]:
        return [w.shape[2] - stride for w, _, stride in self.convs]

    def conv_stem(self, ops, x):
        """x [T, n_mels] time-major -> [T/2, dim]; zero left padding = the start of the stream."""
        for (w, b, stride), pad in zip(self.convs, self.conv_left_pads()):
            x = ops.gelu(ops.conv1d(x, w, b, stride, pad))
        return x

    def transformer(self, ops, h, positions, caches=None):
        """h [S, dim] at absolute encoder positions [S] -> final-normed [S, dim]."""
        for i, layer in enumerate(self.layers):
            h = layer(ops, h, positions, None if caches is None else caches[i])
        return ops.rmsnorm(h, self.norm, self.cfg.norm_eps)

    def __call__(self, ops, mel):
        """Offline: mel [n_mels, T] (T even; a multiple of 8 with the spec's padding) -> [T/2, dim]."""
        mel = np.asarray(mel)
        if mel.shape[1] % self.time_reduction:
            raise ValueError(f"mel length {mel.shape[1]} is not a multiple of {self.time_reduction}")
        h = self.conv_stem(ops, ops.asarray(mel.T))  # [T/2, dim]
        positions = np.arange(h.shape[0], dtype=np.int64)
        return self.transformer(ops, h, positions)


class EncoderStream:
    """Incremental encoder, identical to the offline one in exact arithmetic (spec section 11).

    State: the last (kernel - stride) input rows of each conv (zeros at the start, which equals
    the offline causal padding), one KV ring per layer of window + `frames_per_step` rows, and the
    next absolute encoder position.
    """

    def __init__(self, encoder: ASREncoder, ops, frames_per_step: int = 4):
        self.encoder = encoder
        self.ops = ops
        self.conv_states = [ops.zeros((pad, w.shape[1])) for (w, _, _), pad
                            in zip(encoder.convs, encoder.conv_left_pads())]  # [K - stride, C_in] each
        self.caches = new_kv_caches(ops, encoder.cfg, extra_rows=frames_per_step)
        self.next_position = 0
        # A backend that records steps (WebGPU) replays the regular one-token step (8 mel frames of
        # a live 80 ms piece): the same dispatches, without hundreds of op calls from Python.
        self.one_token_frames = frames_per_step * encoder.time_reduction
        self._graph = None
        self._use_graph = hasattr(ops, "encoder_step_graph")

    def step(self, mel_chunk):
        """mel_chunk [n_mels, t] with t a multiple of the time reduction -> [t/2, dim]."""
        mel_chunk = np.asarray(mel_chunk)
        if mel_chunk.shape[1] % self.encoder.time_reduction:
            raise ValueError(f"chunk of {mel_chunk.shape[1]} mel frames is not a multiple of "
                             f"{self.encoder.time_reduction}")
        ops = self.ops
        if self._use_graph and mel_chunk.shape[1] == self.one_token_frames:
            return self._graph_step(mel_chunk)
        x = ops.asarray(mel_chunk.T)  # [t, n_mels]
        for i, (w, b, stride) in enumerate(self.encoder.convs):
            x = ops.concat_rows([self.conv_states[i], x])
            pad = self.conv_states[i].shape[0]
            # every input row is consumed when t is a multiple of the stride, so the rows the next
            # chunk's first window needs are exactly the last `pad` rows
            self.conv_states[i] = ops.rows(x, x.shape[0] - pad, x.shape[0])
            x = ops.gelu(ops.conv1d(x, w, b, stride, 0))
        n = x.shape[0]
        positions = np.arange(self.next_position, self.next_position + n, dtype=np.int64)
        self.next_position += n
        return self.encoder.transformer(ops, x, positions, self.caches)

    def _graph_step(self, mel_chunk):
        if self._graph is None:
            self._graph = self.ops.encoder_step_graph(self.encoder, self.conv_states, self.caches,
                                                      self.one_token_frames)
        out = self._graph.step(mel_chunk, self.next_position, self.conv_states)
        self.conv_states = list(self._graph.states)  # the graph updated them in place
        self.next_position += out.shape[0]
        return out

    def kv_slots(self) -> int:
        """Rows allocated per layer for keys (memory bound check)."""
        return max(c.n_slots for c in self.caches)
