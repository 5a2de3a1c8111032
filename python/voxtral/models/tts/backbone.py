"""TTS backbone (TTS spec 6): the ASR decoder's Mistral stack without time conditioning.

Causal GQA with interleaved-pair RoPE (θ = 1e6) over the whole cache (no sliding window), and a
final RMSNorm whose output h feeds the semantic and flow-matching heads. The token table serves
the prompt only: TTS never computes text logits (tied LM head unused).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ...config import TTSConfig
from ..layers import LayerWeights, TransformerLayer, new_kv_caches

TOK_EMBEDDINGS = "mm_audio_embeddings.tok_embeddings.weight"


class TTSBackbone:
    def __init__(self, cfg: TTSConfig, weights: Mapping[str, Any]):
        self.cfg = cfg.backbone
        self.layers = [TransformerLayer(self.cfg, LayerWeights.from_mapping(weights, f"layers.{i}."))
                       for i in range(self.cfg.n_layers)]
        self.norm = weights["norm.weight"]
        self.tok_embeddings = weights[TOK_EMBEDDINGS]  # [vocab, dim]

    def new_caches(self, ops) -> list:
        """Unbounded caches (one per layer): every generated frame attends to the whole prompt."""
        return new_kv_caches(ops, self.cfg, extra_rows=1)

    def __call__(self, ops, x, positions, caches=None):
        """x [M, dim] input embeddings at absolute positions [M] -> final-normed hidden [M, dim]."""
        positions = np.asarray(positions, dtype=np.int64)
        caches = caches if caches is not None else [None] * len(self.layers)
        for layer, cache in zip(self.layers, caches):
            x = layer(ops, x, positions, cache)
        return ops.rmsnorm(x, self.norm, self.cfg.norm_eps)
