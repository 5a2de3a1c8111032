"""Voxtral 4B TTS over one weight mapping: backbone, heads, frame-embedding feedback and codec.

`weights` maps the `consolidated.safetensors` names (TTS spec 3) to numpy arrays or Q4 tensors;
GGUF files use the same names.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ...config import TTSConfig
from .backbone import TTSBackbone
from .codec import CodecDecoder
from .flow_matching import FlowMatchingHead

AUDIO_CODEBOOK_EMBEDDINGS = "mm_audio_embeddings.audio_codebook_embeddings.embeddings.weight"


class TTSModel:
    def __init__(self, config: TTSConfig, weights: Mapping[str, Any], ops=None):
        if ops is None:
            from ...backends import NumpyOps
            ops = NumpyOps()
        self.config = config
        self.ops = ops
        self.backbone = TTSBackbone(config, weights)
        self.head = FlowMatchingHead(config, weights)
        self.codec = CodecDecoder(config.codec, weights, dtype=getattr(ops, "dtype", np.float32))
        self.audio_embeddings = weights[AUDIO_CODEBOOK_EMBEDDINGS]  # [9088, dim]: 37 tables + padding
        self._offsets = np.asarray(config.codebook_offsets, dtype=np.int64)  # [37]

    def frame_embedding(self, codes):
        """codes [37] (semantic, 36 acoustic; with their +2 offsets) -> next backbone input [1, dim].

        The sum of one row per codebook, E[s] + Σ_k E[8194 + 23·(k-1) + a_k]: it replaces the input
        embedding entirely (no [AUDIO] token embedding is added)."""
        ids = np.asarray(codes, dtype=np.int64).reshape(-1) + self._offsets
        return self.ops.sum_rows(self.ops.embedding_rows(self.audio_embeddings, ids))  # [1, dim]
