"""Audio-to-text adapter (ASR spec section 6): group 4 encoder frames, Linear -> GELU -> Linear."""
from __future__ import annotations

from typing import Any, Mapping

from ...config import ASRConfig
from .encoder import P


class ASRAdapter:
    def __init__(self, cfg: ASRConfig, weights: Mapping[str, Any]):
        self.factor = cfg.downsample_factor
        self.w_in = weights[P + "audio_language_projection.0.weight"]  # [dec_dim, factor*enc_dim]
        self.w_out = weights[P + "audio_language_projection.2.weight"]  # [dec_dim, dec_dim]

    def __call__(self, ops, enc):
        """enc [factor*N, enc_dim] -> audio embeddings [N, dec_dim] (no biases, exact GELU)."""
        x = ops.group_rows(enc, self.factor)  # row p = frames factor*p … factor*p+factor-1
        return ops.linear(ops.gelu(ops.linear(x, self.w_in)), self.w_out)
