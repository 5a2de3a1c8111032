"""Tekken tokenizer: pure-Python (numpy/stdlib only) with an optional tiktoken fast path."""

from .build import TTS_VOICE_ROWS, build_tekken_json, write_tekken_json
from .pretokenize import split
from .tekken import StreamingDecoder, Tekken

__all__ = [
    "Tekken",
    "StreamingDecoder",
    "split",
    "build_tekken_json",
    "write_tekken_json",
    "TTS_VOICE_ROWS",
]
