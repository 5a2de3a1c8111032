"""Voxtral Mini Realtime ASR model: encoder + adapter + decoder over one weight mapping.

`weights` maps the Mistral `consolidated.safetensors` names (ASR spec section 3.1) to numpy arrays
or Q4 tensors; GGUF files use the same names.
"""
from __future__ import annotations

from typing import Any, Mapping

from ...config import ASRConfig
from .adapter import ASRAdapter
from .decoder import ASRDecoder
from .encoder import ASREncoder, EncoderStream


class ASRModel:
    def __init__(self, config: ASRConfig, weights: Mapping[str, Any], ops=None):
        if ops is None:
            from ...backends import NumpyOps
            ops = NumpyOps()
        self.config = config
        self.ops = ops
        self.encoder = ASREncoder(config, weights)
        self.adapter = ASRAdapter(config, weights)
        self.decoder = ASRDecoder(config, weights)

    @property
    def mel_frames_per_token(self) -> int:
        """8: mel frames behind one audio token / decoder position."""
        return self.encoder.time_reduction * self.config.downsample_factor

    def encode(self, mel):
        """mel [n_mels, 8N] -> encoder output [4N, enc_dim] (after the final norm)."""
        return self.encoder(self.ops, mel)

    def audio_embeddings(self, mel):
        """mel [n_mels, 8N] -> audio embeddings [N, dec_dim], one per decoder position."""
        return self.adapter(self.ops, self.encode(mel))

    def encoder_stream(self) -> EncoderStream:
        return EncoderStream(self.encoder, self.ops, frames_per_step=self.config.downsample_factor)

    def delay_tokens(self, delay_ms: float | None = None) -> int:
        return self.config.audio.num_delay_tokens(delay_ms)
