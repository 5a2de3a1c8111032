"""Audio front end: WAV I/O, resampling, streaming padding, log-mel and the streaming chunker.

numpy + standard library only (this package also runs inside Pyodide).

    load_audio(path_or_bytes, 16000)        -> float32 [n] mono at 16 kHz
    pad_for_offline(audio, cfg)             -> float32 [L], L = 1280 * num_positions(n, cfg)
    log_mel(padded, cfg)                    -> float32 [128, L // 160]
    StreamingChunker(cfg).push(x)/.finish() -> ChunkStep(token range, mel frames)
"""
from .chunker import ChunkStep, StreamingChunker
from .mel import StreamingMel, hann_window, log_mel, mel_filter_bank
from .padding import (
    align_samples,
    left_pad_samples,
    num_positions,
    pad_for_offline,
    padded_length,
    right_pad_samples,
)
from .resample import resample
from .wav import encode_wav, load_audio, read_wav, to_mono, write_wav

__all__ = [
    "ChunkStep",
    "StreamingChunker",
    "StreamingMel",
    "align_samples",
    "encode_wav",
    "hann_window",
    "left_pad_samples",
    "load_audio",
    "log_mel",
    "mel_filter_bank",
    "num_positions",
    "pad_for_offline",
    "padded_length",
    "read_wav",
    "resample",
    "right_pad_samples",
    "to_mono",
    "write_wav",
]
