"""Voice presets (TTS spec 5.3): [N, dim] frame embeddings that replace the prompt's [AUDIO] rows.

They come as `voice_embedding/<name>.pt` (a torch.save zip, BF16) in the Mistral directory, as GGUF
tensors `voice_embedding.<name>`, or as raw little-endian float32 `<name>.bin` files (no header,
N = bytes / (4·dim)). All of them go through `load_voice`, which also checks the row count
against the tokenizer's voice table: the prompt has exactly that many placeholders.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ...errors import ModelFormatError, VoxtralError

# Language of each published preset, from its name (the 3 English voices carry a style instead).
LANGUAGES = {"en": "English", "fr": "French", "es": "Spanish", "de": "German", "it": "Italian",
             "pt": "Portuguese", "nl": "Dutch", "ar": "Arabic", "hi": "Hindi"}
ENGLISH_STYLES = ("casual", "cheerful", "neutral")


@dataclass(frozen=True)
class VoiceInfo:
    name: str
    language: str
    rows: int


def voice_language(name: str) -> str:
    prefix = name.split("_", 1)[0]
    if prefix in ENGLISH_STYLES:
        return LANGUAGES["en"]
    return LANGUAGES.get(prefix, "unknown")


def read_voice_bin(path: str, dim: int) -> np.ndarray:
    """A raw float32 voice file -> [N, dim]."""
    raw = np.fromfile(path, dtype="<f4")
    if raw.size == 0 or raw.size % dim:
        raise ModelFormatError(f"{path}: {raw.size * 4} bytes is not a whole number of float32 rows of "
                               f"width {dim}")
    return raw.reshape(-1, dim).astype(np.float32)


def read_voice_file(path: str, dim: int) -> np.ndarray:
    """A voice from a file: `.pt` (torch.save), `.bin` (raw f32) or `.npy`."""
    if path.endswith(".pt"):
        from ...weights.torch_pt import read_pt_tensor
        return np.asarray(read_pt_tensor(path), dtype=np.float32)
    if path.endswith(".bin"):
        return read_voice_bin(path, dim)
    if path.endswith(".npy"):
        return np.load(path).astype(np.float32)
    raise VoxtralError(f"{path}: a voice file must be .pt, .bin (raw float32) or .npy")


def is_voice_path(voice) -> bool:
    return isinstance(voice, (str, os.PathLike)) and os.path.isfile(os.fspath(voice))


def load_voice(voice, dim: int, model_files=None, expected_rows: dict[str, int] | None = None) -> np.ndarray:
    """The voice embedding float32 [N, dim] for a preset name (from `model_files`), a voice file
    path, or an array. expected_rows: name -> row count (the tokenizer's table) to check against."""
    if isinstance(voice, np.ndarray):
        rows, name = np.asarray(voice, dtype=np.float32), None
    elif is_voice_path(voice):
        path = os.fspath(voice)
        rows = read_voice_file(path, dim)
        name = os.path.splitext(os.path.basename(path))[0]
    elif isinstance(voice, str):
        if model_files is None or voice not in model_files.voices:
            known = ", ".join(sorted(model_files.voices)) if model_files is not None else ""
            raise VoxtralError(f"unknown voice {voice!r}; valid voices: {known or 'none'}")
        rows, name = np.asarray(model_files.voice(voice), dtype=np.float32), voice
    else:
        raise VoxtralError(f"a voice is a preset name, a voice file or an array, not {type(voice).__name__}")
    if rows.ndim != 2 or rows.shape[1] != dim:
        raise ModelFormatError(f"voice {name or ''} has shape {list(rows.shape)}; this model needs [N, {dim}]")
    if expected_rows and name in expected_rows and rows.shape[0] != expected_rows[name]:
        raise ModelFormatError(f"voice {name!r} has {rows.shape[0]} rows but the tokenizer's voice table "
                               f"says {expected_rows[name]}")
    return rows
