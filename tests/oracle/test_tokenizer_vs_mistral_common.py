"""Our Tekken (pure Python and tiktoken backends) against independent references:

* a tiktoken.Encoding built here straight from the tekken.json,
* mistral-common's own tokenizer loaded from the same file,
* the `regex` package running the original fancy-regex pattern (for the pre-tokenizer).

Inputs: every line of tests/data/multilingual_corpus.txt plus random strings drawn from the
corpus' characters (a fresh seed per run; it is printed in failure messages).
"""

import base64
import json
import random
from pathlib import Path

import pytest

from voxtral.tokenizer import Tekken, build_tekken_json, split, write_tekken_json
from voxtral.tokenizer.pretokenize import TEKKEN_PATTERN

tiktoken = pytest.importorskip("tiktoken")
regex = pytest.importorskip("regex")
mistral = pytest.importorskip("mistral_common.tokens.tokenizers.mistral")

CORPUS = Path(__file__).resolve().parents[1] / "data" / "multilingual_corpus.txt"
SEED = random.SystemRandom().randrange(1 << 32)

# Inputs that do not fit in a text file line, or whose bytes git could rewrite.
EXTRA = [
    "",
    "line one\r\nline two\r\n\r\nline four",
    "a\n\n\n\nb\n",
    "\r\n\r\n  \t\r\n",
    " \n \n ",
    "x\r",
    "\r\r\r",
    "tab\t\t\tend\t",
    "ends with spaces   ",
    "ends with newline and spaces\n   ",
    "\x1c\x1d\x1e\x1f mixed \x1c \n\x1f",
    "\u0085\u2028\u2029\u3000\u00a0 \u1680",
    " " * 300,
    "a" * 300,
    "9" * 100,
    "!" * 120 + "\n/",
]


def corpus_lines() -> list[str]:
    text = CORPUS.read_bytes().decode("utf-8")
    return [line for line in text.split("\n") if line]


def random_strings(count: int = 300) -> list[str]:
    """Random strings over the corpus' characters, with whitespace over-represented (it drives
    the pattern's hardest alternatives: `\\s+(?!\\S)`, `\\s*[\\r\\n]+`)."""
    rng = random.Random(SEED)
    chars = sorted(set("".join(corpus_lines())))
    chars += list(" \t\r\n  ") * 10
    return ["".join(rng.choice(chars) for _ in range(rng.randrange(1, 50))) for _ in range(count)]


INPUTS_CORPUS = corpus_lines() + EXTRA


class Refs:
    """Every tokenizer under comparison, built from one tekken.json written to disk."""

    def __init__(self, path: Path):
        d = json.loads(path.read_text(encoding="utf-8"))
        cfg = d["config"]
        n_special = cfg["default_num_special_tokens"]
        used = d["vocab"][: cfg["default_vocab_size"] - n_special]
        self.n_special = n_special
        self.pattern = cfg["pattern"]
        self.ours_py = Tekken.from_file(path, backend="python")
        self.ours_tt = Tekken.from_file(path, backend="tiktoken")
        self.tiktoken = tiktoken.Encoding(
            name="independent",
            pat_str=self.pattern,
            mergeable_ranks={base64.b64decode(e["token_bytes"]): e["rank"] for e in used},
            special_tokens={},
        )
        self.mistral = mistral.MistralTokenizer.from_file(str(path)).instruct_tokenizer.tokenizer

    def all_ids(self, text: str) -> dict:
        return {
            "python": self.ours_py.encode(text),
            "tiktoken-backend": self.ours_tt.encode(text),
            "tiktoken-direct": [r + self.n_special for r in self.tiktoken.encode_ordinary(text)],
            "mistral_common": self.mistral.encode(text, bos=False, eos=False),
        }


@pytest.fixture(scope="module", params=[(131072, "asr"), (131072, "tts"), (2048, "asr")],
                ids=["asr-131072", "tts-131072", "asr-2048"])
def refs(request, tmp_path_factory):
    vocab_size, kind = request.param
    path = tmp_path_factory.mktemp(f"{kind}{vocab_size}") / "tekken.json"  # name must contain "tekken"
    write_tekken_json(path, build_tekken_json(vocab_size, kind))
    return Refs(path)


def check_all_agree(refs: Refs, texts, label: str):
    for text in texts:
        got = refs.all_ids(text)
        assert len({tuple(v) for v in got.values()}) == 1, f"{label}: {text!r}: {got}"
        assert refs.ours_py.decode(got["python"]) == text, f"{label}: round trip of {text!r}"
        assert refs.mistral.decode(got["python"]) == text


def test_corpus_encodings_agree(refs):
    check_all_agree(refs, INPUTS_CORPUS, "corpus")


def test_random_strings_agree(refs):
    check_all_agree(refs, random_strings(), f"random (seed {SEED})")


def test_known_values_through_mistral_common(refs):
    if refs.ours_py.vocab_size < 131072:
        pytest.skip("known ids need the full vocabulary")
    text = " I spoke in the original phonograph."
    ids = [1362, 19135, 1294, 1278, 4618, 40307, 3910, 1046]
    assert refs.mistral.encode(text, bos=False, eos=False) == ids == refs.ours_py.encode(text)
    assert refs.mistral.decode(ids) == refs.ours_py.decode(ids) == text
    assert refs.mistral.encode("Hello.", bos=False, eos=False) == [22177, 1046]


def test_special_ids_agree_with_mistral_common(refs):
    for name in ["<s>", "</s>", "[AUDIO]", "[BEGIN_AUDIO]", "[STREAMING_PAD]", "[STREAMING_WORD]",
                 "[NEXT_AUDIO_TEXT]", "[REPEAT_AUDIO_TEXT]", "[TRANSCRIBE]", "<SPECIAL_500>"]:
        assert refs.ours_py.special_id(name) == refs.mistral.get_special_token(name), name
    assert refs.ours_py.vocab_size == refs.mistral.n_words


@pytest.mark.parametrize("source", ["corpus", "random"])
def test_split_equals_regex_package(source):
    texts = INPUTS_CORPUS if source == "corpus" else random_strings(600)
    pattern = build_tekken_json(2048, "asr")["config"]["pattern"]  # the file's pattern, not our default
    for text in texts:
        assert split(text, pattern) == regex.findall(pattern, text), f"seed {SEED}: {text!r}"


def test_bundled_pattern_is_the_default():
    for kind in ["asr", "tts"]:
        assert build_tekken_json(2048, kind)["config"]["pattern"] == TEKKEN_PATTERN


def test_mistral_common_audio_paths(tmp_path):
    """The built files drive mistral-common's transcription and speech prompts (asr 14.4, tts 4.4)."""
    import numpy as np
    from mistral_common.protocol.instruct.chunk import RawAudio
    from mistral_common.protocol.speech.request import SpeechRequest
    from mistral_common.protocol.transcription.request import StreamingMode, TranscriptionRequest
    from mistral_common.tokens.tokenizers.audio import Audio

    asr_path = tmp_path / "asr" / "tekken.json"
    asr_path.parent.mkdir()
    write_tekken_json(asr_path, build_tekken_json(131072, "asr"))
    asr = mistral.MistralTokenizer.from_file(str(asr_path)).instruct_tokenizer
    audio = Audio(audio_array=np.zeros(16000, dtype=np.float32), sampling_rate=16000, format="wav")
    req = TranscriptionRequest(audio=RawAudio.from_audio(audio), streaming=StreamingMode.OFFLINE, language=None)
    tokens = asr.encode_transcription(req).tokens
    assert tokens == [1] + [32] * 38  # BOS + 32 left-pad + 6 delay tokens
    assert asr.audio_encoder.audio_config.get_num_delay_tokens() == 6

    tts_path = tmp_path / "tts" / "tekken.json"
    tts_path.parent.mkdir()
    write_tekken_json(tts_path, build_tekken_json(131072, "tts"))
    tts = mistral.MistralTokenizer.from_file(str(tts_path)).instruct_tokenizer
    tokens = tts.encode_speech_request(SpeechRequest(input="Hello.", voice="ar_male")).tokens
    assert tokens == [1, 25] + [24] * 67 + [36, 22177, 1046, 35, 25]
