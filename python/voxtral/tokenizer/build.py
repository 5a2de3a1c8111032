"""Build a `tekken.json` for test models from mistral-common's bundled real vocabularies.

The published tekken.json files cannot be downloaded here, but mistral-common ships two real Tekken
vocabularies whose merge tables match the models' (ASR spec 10: `tekken_240911.json`; TTS spec 4.4:
`tekken_240718.json`).  They lack the special-token list and the `audio` block, which we add with
the real names at the real ids and the published audio settings, so the result loads both in our
`Tekken` and in `mistral_common.tokens.tokenizers.mistral.MistralTokenizer.from_file`.
"""

from __future__ import annotations

import importlib.util
import json
import os

from ..errors import TokenizerError

NUM_SPECIAL = 1000

# Special ids shared by the ASR and TTS files (asr.md 10, tts.md 4.3); other ids are fillers.
SPECIAL_TOKEN_IDS = {
    0: "<unk>", 1: "<s>", 2: "</s>", 3: "[INST]", 4: "[/INST]", 5: "[AVAILABLE_TOOLS]",
    6: "[/AVAILABLE_TOOLS]", 7: "[TOOL_RESULTS]", 8: "[/TOOL_RESULTS]", 9: "[TOOL_CALLS]",
    10: "[IMG]", 11: "<pad>", 12: "[IMG_BREAK]", 13: "[IMG_END]", 14: "[PREFIX]", 15: "[MIDDLE]",
    16: "[SUFFIX]", 17: "[SYSTEM_PROMPT]", 18: "[/SYSTEM_PROMPT]", 19: "[TOOL_CONTENT]",
    24: "[AUDIO]", 25: "[BEGIN_AUDIO]", 26: "[OUTPUT_AUDIO]", 32: "[STREAMING_PAD]",
    33: "[STREAMING_WORD]", 34: "[TRANSCRIBE]", 35: "[REPEAT_AUDIO_TEXT]", 36: "[NEXT_AUDIO_TEXT]",
}

# Frames per preset voice = rows of each voice embedding file (tts.md 4.3).
TTS_VOICE_ROWS = {
    "casual_female": 214, "casual_male": 147, "cheerful_female": 132, "neutral_female": 218,
    "neutral_male": 169, "pt_male": 144, "pt_female": 175, "nl_male": 138, "nl_female": 146,
    "it_male": 168, "it_female": 172, "fr_male": 97, "fr_female": 97, "es_male": 208,
    "es_female": 138, "de_male": 163, "de_female": 147, "ar_male": 67, "hi_male": 94,
    "hi_female": 86,
}

# mistral-common's AudioConfig cannot be built without a spectrogram config, so the TTS file
# carries the same (unused) one as the ASR file.
_ENCODING_CONFIG = {"num_mel_bins": 128, "hop_length": 160, "window_size": 400}

# asr.md 2.2.
ASR_AUDIO = {
    "sampling_rate": 16000,
    "frame_rate": 12.5,
    "audio_encoding_config": _ENCODING_CONFIG,
    "transcription_delay_ms": 480,
    "streaming_look_ahead_ms": 2.5,
    "streaming_look_back_ms": 52.5,
    "streaming_n_left_pad_tokens": 32,
    "transcription_format": "streaming",
}

# Base vocabulary per model kind (the first that exists is used).
_BASE_FILES = {"asr": ("tekken_240911.json",), "tts": ("tekken_240718.json", "tekken_240911.json")}


def mistral_common_data_dir() -> str:
    """mistral-common's `data/` folder, found without importing the package (it is heavy)."""
    spec = importlib.util.find_spec("mistral_common")
    if spec is None or not spec.submodule_search_locations:
        raise TokenizerError("mistral_common is not installed: it provides the base Tekken vocabulary")
    return os.path.join(list(spec.submodule_search_locations)[0], "data")


def load_base_vocab(kind: str) -> dict:
    """The bundled real tekken file for `kind` ("asr" or "tts"), parsed."""
    data_dir = mistral_common_data_dir()
    for name in _BASE_FILES[kind]:
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                return json.load(f)
    raise TokenizerError(f"none of {_BASE_FILES[kind]} found in {data_dir}")


def special_tokens_list() -> list[dict]:
    """All 1000 special tokens, named at the real ids, `<SPECIAL_i>` elsewhere (mistral-common's filler)."""
    return [
        {"rank": i, "token_str": SPECIAL_TOKEN_IDS.get(i, f"<SPECIAL_{i}>"), "is_control": True}
        for i in range(NUM_SPECIAL)
    ]


def audio_block(kind: str, voices: dict[str, int] | None) -> dict:
    if kind == "asr":
        if voices is not None:
            raise ValueError("voices are only meaningful for kind='tts'")
        return json.loads(json.dumps(ASR_AUDIO))  # a deep copy: callers may edit the result
    return {
        "sampling_rate": 24000,
        "frame_rate": 12.5,
        "audio_encoding_config": dict(_ENCODING_CONFIG),
        "voice_num_audio_tokens": dict(TTS_VOICE_ROWS if voices is None else voices),
    }


def build_tekken_json(
    vocab_size: int = 131072, kind: str = "asr", voices: dict[str, int] | None = None, *, version: str = "v7"
) -> dict:
    """A complete tekken.json dict for a (possibly tiny) test model.

    `vocab_size` counts the 1000 special ids.  At the base file's own size all 150,000 vocab
    entries are kept, as in the real files (readers must truncate); smaller test vocabularies keep
    exactly the `vocab_size - 1000` entries that are used.  `version` "v7" is the oldest
    mistral-common version with audio support (the TTS file is v7).
    """
    if kind not in _BASE_FILES:
        raise ValueError(f"kind must be 'asr' or 'tts', not {kind!r}")
    base = load_base_vocab(kind)
    base_config = base["config"]
    vocab = base["vocab"]
    if not NUM_SPECIAL + 256 <= vocab_size <= NUM_SPECIAL + len(vocab):
        # Below 1256 some single bytes would have no id and some text could not be encoded.
        raise ValueError(f"vocab_size must be in {NUM_SPECIAL + 256}..{NUM_SPECIAL + len(vocab)}, got {vocab_size}")
    if vocab_size < base_config["default_vocab_size"]:
        vocab = vocab[: vocab_size - NUM_SPECIAL]
    return {
        "config": {
            "pattern": base_config["pattern"],
            "num_vocab_tokens": len(vocab),
            "default_vocab_size": vocab_size,
            "default_num_special_tokens": NUM_SPECIAL,
            "version": version,
        },
        "vocab": vocab,
        "special_tokens": special_tokens_list(),
        "audio": audio_block(kind, voices),
    }


def write_tekken_json(path, d: dict) -> None:
    """Write `d` as JSON.  mistral-common only recognises files named `*tekken*.json`."""
    with open(os.fspath(path), "w", encoding="utf-8") as f:
        json.dump(d, f, ensure_ascii=False)
