"""Streaming padding of the waveform (ASR spec 4.2, mistral-common `AudioEncoder.pad`).

For n real samples at 16 kHz (1280 samples per audio token):

    [ 32 tokens of zeros | audio (n) | align zeros | (delay_tokens + 1 + 10) tokens of zeros ]
      left pad = 40,960                align = (1280 - n % 1280) % 1280

The total length L is a multiple of 1280 and the number of decoder positions is
N = L / 1280 = 32 + ceil(n / 1280) + delay_tokens + 11 (= 49 + ceil(n/1280) at 480 ms).
The right pad lets the model emit the words still inside the transcription delay.
"""
from __future__ import annotations

import numpy as np

from ..config import AudioStreamingConfig


def left_pad_samples(cfg: AudioStreamingConfig) -> int:
    """Zeros before the audio: n_left_pad_tokens * 1280 = 40,960."""
    return cfg.n_left_pad_tokens * cfg.raw_audio_length_per_tok


def align_samples(n_samples: int, cfg: AudioStreamingConfig) -> int:
    """Zeros that complete the last, partial audio token."""
    per_tok = cfg.raw_audio_length_per_tok
    return (per_tok - n_samples % per_tok) % per_tok


def right_pad_samples(n_samples: int, cfg: AudioStreamingConfig, delay_ms: float | None = None) -> int:
    """Zeros after the audio: alignment + (delay_tokens + 1 + 10) whole tokens."""
    return align_samples(n_samples, cfg) + cfg.n_right_pad_tokens(delay_ms) * cfg.raw_audio_length_per_tok


def padded_length(n_samples: int, cfg: AudioStreamingConfig, delay_ms: float | None = None) -> int:
    """L = left pad + n + right pad (a multiple of 1280)."""
    return left_pad_samples(cfg) + n_samples + right_pad_samples(n_samples, cfg, delay_ms)


def num_positions(n_samples: int, cfg: AudioStreamingConfig, delay_ms: float | None = None) -> int:
    """N = L / 1280: audio tokens = decoder positions of the padded clip (mel frames = 8N)."""
    return padded_length(n_samples, cfg, delay_ms) // cfg.raw_audio_length_per_tok


def pad_for_offline(audio, cfg: AudioStreamingConfig, delay_ms: float | None = None) -> np.ndarray:
    """The padded waveform (float32 [L]) for a whole clip of real 16 kHz mono samples."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"pad_for_offline expects mono samples [n], got shape {x.shape}")
    left = left_pad_samples(cfg)
    out = np.zeros(padded_length(x.shape[0], cfg, delay_ms), dtype=np.float32)
    out[left : left + x.shape[0]] = x
    return out
