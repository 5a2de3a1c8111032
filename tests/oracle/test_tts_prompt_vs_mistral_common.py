"""TTS prompt ids (`build_tts_prompt`) against mistral-common's own speech-request encoder.

Reference: `MistralTokenizer.encode_speech_request(SpeechRequest(input, voice))` of mistral-common
1.13.1 (InstructTokenizerV7), loaded from the same full-size tekken.json (131072 ids, the real
special tokens and the real voice table, built by `build_tekken_json(131072, "tts", TTS_VOICE_ROWS)`
from mistral-common's bundled vocabulary). Texts: a multilingual sample of
tests/data/multilingual_corpus.txt plus edge cases, each with every one of the 20 voices.
"""
from pathlib import Path

import pytest

from voxtral.errors import VoxtralError
from voxtral.models.tts.prompt import build_tts_prompt
from voxtral.tokenizer import TTS_VOICE_ROWS, Tekken, build_tekken_json, write_tekken_json

mistral = pytest.importorskip("mistral_common.tokens.tokenizers.mistral")
speech = pytest.importorskip("mistral_common.protocol.speech.request")

CORPUS = Path(__file__).resolve().parents[1] / "data" / "multilingual_corpus.txt"
EXTRA = ["Hello.", "a", "  leading and trailing spaces  ", "line one\nline two", "[INST] not special [/INST]",
         "数字 123 和标点。", "مرحبا بالعالم؟", "नमस्ते दुनिया।", "😀 emoji 👍🏽"]


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    d = build_tekken_json(131072, "tts", TTS_VOICE_ROWS)
    path = tmp_path_factory.mktemp("tekken") / "tekken.json"
    write_tekken_json(path, d)
    return Tekken.from_dict(d), mistral.MistralTokenizer.from_file(str(path))


def texts() -> list[str]:
    lines = [ln for ln in CORPUS.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return lines[::4] + EXTRA  # ~190 texts across all the corpus' scripts


def reference_ids(mt, text: str, voice: str) -> list[int]:
    return mt.encode_speech_request(speech.SpeechRequest(input=text, voice=voice)).tokens


def test_known_prompt_from_spec(tokenizers):
    """tts.md 4.4 (tt-metal fixture from mistral-common on the real file)."""
    ours, mt = tokenizers
    expected = [1, 25] + [24] * 67 + [36, 22177, 1046, 35, 25]
    assert build_tts_prompt(ours, "Hello.", "ar_male") == expected
    assert reference_ids(mt, "Hello.", "ar_male") == expected


@pytest.mark.parametrize("voice", sorted(TTS_VOICE_ROWS))
def test_prompt_ids_equal_mistral_common(tokenizers, voice):
    ours, mt = tokenizers
    for i, text in enumerate(texts()):
        got = build_tts_prompt(ours, text, voice)
        assert got == reference_ids(mt, text, voice), f"text #{i} {text!r}, voice {voice}"
        assert got.count(24) == TTS_VOICE_ROWS[voice]


def test_voice_given_as_rows_or_count(tokenizers):
    ours, _ = tokenizers
    by_name = build_tts_prompt(ours, "Bonjour.", "fr_male")
    assert build_tts_prompt(ours, "Bonjour.", 97) == by_name
    import numpy as np
    assert build_tts_prompt(ours, "Bonjour.", np.zeros((97, 8), np.float32)) == by_name


def test_unknown_voice_lists_valid_ones(tokenizers):
    ours, _ = tokenizers
    with pytest.raises(VoxtralError, match=r"unknown voice 'klingon_male'.*ar_male.*hi_female"):
        build_tts_prompt(ours, "Hi.", "klingon_male")
