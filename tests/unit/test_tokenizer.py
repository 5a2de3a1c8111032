"""Unit tests of the Tekken tokenizer (pure-Python path; tiktoken/mistral-common parity is in
tests/oracle/test_tokenizer_vs_mistral_common.py)."""

import base64
import random
import unicodedata
from pathlib import Path

import pytest

from voxtral.errors import TokenizerError
from voxtral.tokenizer import TTS_VOICE_ROWS, StreamingDecoder, Tekken, build_tekken_json, split, write_tekken_json
from voxtral.tokenizer import pretokenize
from voxtral.tokenizer.bpe import BytePairEncoder, _merge
from voxtral.tokenizer.build import SPECIAL_TOKEN_IDS

CORPUS = Path(__file__).resolve().parents[1] / "data" / "multilingual_corpus.txt"
PHONOGRAPH_IDS = [1362, 19135, 1294, 1278, 4618, 40307, 3910, 1046]
PHONOGRAPH_TEXT = " I spoke in the original phonograph."


def corpus_lines() -> list[str]:
    # Split on "\n" only: lines keep their "\r", U+2028, U+0085 etc. (str.splitlines would cut them).
    text = CORPUS.read_bytes().decode("utf-8")
    return [line for line in text.split("\n") if line]


@pytest.fixture(scope="module")
def asr_json():
    return build_tekken_json(131072, "asr")


@pytest.fixture(scope="module")
def asr_py(asr_json):
    return Tekken.from_dict(asr_json, backend="python")


@pytest.fixture(scope="module")
def tts_py():
    return Tekken.from_dict(build_tekken_json(131072, "tts"), backend="python")


# ---- known values -----------------------------------------------------------------------------


def test_known_asr_ids(asr_py):
    assert asr_py.decode(PHONOGRAPH_IDS) == PHONOGRAPH_TEXT
    assert asr_py.encode(PHONOGRAPH_TEXT) == PHONOGRAPH_IDS


def test_known_tts_ids(tts_py):
    assert tts_py.encode("Hello.") == [22177, 1046]
    assert tts_py.decode([1, 22177, 1046, 2]) == "Hello."


def test_decode_drops_special_ids_and_strips_nothing(asr_py):
    ids = [asr_py.bos_id, 32, 33] + PHONOGRAPH_IDS + [asr_py.eos_id]
    assert asr_py.decode(ids) == PHONOGRAPH_TEXT  # leading space kept: callers strip


def test_special_strings_in_text_are_plain_text(asr_py):
    ids = asr_py.encode("<s>[INST]hi[/INST]</s>[STREAMING_PAD]")
    assert all(i >= asr_py.num_special for i in ids)
    assert asr_py.decode(ids) == "<s>[INST]hi[/INST]</s>[STREAMING_PAD]"


def test_empty_text(asr_py):
    assert asr_py.encode("") == []
    assert asr_py.decode([]) == ""


def test_lone_surrogate_is_replaced_like_tiktoken(asr_py):
    assert asr_py.decode(asr_py.encode("a\ud800b")) == "a\ufffdb"


# ---- special tokens, sizes, config ----------------------------------------------------------


@pytest.mark.parametrize("name,expected", sorted(((v, k) for k, v in SPECIAL_TOKEN_IDS.items()), key=lambda x: x[1]))
def test_special_ids_by_name(asr_py, tts_py, name, expected):
    assert asr_py.special_id(name) == expected
    assert tts_py.special_id(name) == expected


def test_bos_eos_filler_and_sizes(asr_py):
    assert (asr_py.bos_id, asr_py.eos_id) == (1, 2)
    assert asr_py.special_id("<SPECIAL_999>") == 999
    assert asr_py.vocab_size == 131072 and asr_py.num_special == 1000


def test_missing_special_token_names_it(asr_py):
    with pytest.raises(TokenizerError, match=r"\[NOT_A_TOKEN\]"):
        asr_py.special_id("[NOT_A_TOKEN]")


def test_audio_config(asr_py, tts_py):
    asr = asr_py.audio_config
    assert asr["sampling_rate"] == 16000 and asr["frame_rate"] == 12.5
    assert asr["transcription_delay_ms"] == 480 and asr["streaming_n_left_pad_tokens"] == 32
    assert asr["transcription_format"] == "streaming"
    tts = tts_py.audio_config
    assert tts["sampling_rate"] == 24000 and tts["frame_rate"] == 12.5
    assert tts["voice_num_audio_tokens"] == TTS_VOICE_ROWS
    assert len(TTS_VOICE_ROWS) == 20 and TTS_VOICE_ROWS["ar_male"] == 67


def test_no_audio_block_gives_none(asr_json):
    d = dict(asr_json)
    del d["audio"]
    assert Tekken.from_dict(d, backend="python").audio_config is None


def test_file_without_special_tokens_uses_legacy_names(asr_json):
    d = dict(asr_json)
    del d["special_tokens"]
    tok = Tekken.from_dict(d, backend="python")
    assert (tok.bos_id, tok.special_id("[INST]")) == (1, 3)
    with pytest.raises(TokenizerError, match="STREAMING_PAD"):
        tok.special_id("[STREAMING_PAD]")


def test_vocab_is_truncated_to_the_id_space(asr_json, asr_py):
    assert len(asr_json["vocab"]) == 150000  # like the real file
    assert asr_py.token_bytes(131071) == base64.b64decode(asr_json["vocab"][130071]["token_bytes"])
    with pytest.raises(TokenizerError):
        asr_py.token_bytes(131072)


def test_tiny_vocab_build():
    d = build_tekken_json(2048, "asr")
    assert len(d["vocab"]) == d["config"]["num_vocab_tokens"] == 1048
    assert d["config"]["default_vocab_size"] == 2048 and len(d["special_tokens"]) == 1000
    tok = Tekken.from_dict(d, backend="python")
    for line in corpus_lines()[::7]:
        ids = tok.encode(line)
        assert all(1000 <= i < 2048 for i in ids)
        assert tok.decode(ids) == line


def test_build_rejects_bad_arguments():
    with pytest.raises(ValueError):
        build_tekken_json(1200, "asr")  # not every byte would have an id
    with pytest.raises(ValueError):
        build_tekken_json(2048, "image")
    with pytest.raises(ValueError):
        build_tekken_json(2048, "asr", voices={"x": 3})


def test_tts_custom_voices():
    d = build_tekken_json(2048, "tts", voices={"tiny_voice": 5})
    assert d["audio"]["voice_num_audio_tokens"] == {"tiny_voice": 5}


def test_write_and_load_file(tmp_path):
    path = tmp_path / "tekken.json"
    write_tekken_json(path, build_tekken_json(2048, "tts"))
    tok = Tekken.from_file(path, backend="python")
    ids = tok.encode("Hello.")  # "Hello" (22177) is past a 2048-id vocabulary: smaller pieces
    assert all(1000 <= i < 2048 for i in ids) and ids[-1] == 1046
    assert tok.decode(ids) == "Hello."
    assert tok.special_id("[NEXT_AUDIO_TEXT]") == 36


# ---- errors -----------------------------------------------------------------------------------


def test_error_missing_file(tmp_path):
    with pytest.raises(TokenizerError, match="not found"):
        Tekken.from_file(tmp_path / "nope.json")


def test_error_not_json(tmp_path):
    p = tmp_path / "tekken.json"
    p.write_text("{not json")
    with pytest.raises(TokenizerError, match="not valid JSON"):
        Tekken.from_file(p)
    p.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(TokenizerError, match="not valid JSON"):
        Tekken.from_file(p)


@pytest.mark.parametrize("drop", ["config", "vocab", "config.pattern", "config.default_vocab_size",
                                  "config.default_num_special_tokens"])
def test_error_missing_keys(drop, tmp_path):
    d = build_tekken_json(2048, "asr")
    d["config"] = dict(d["config"])
    if "." in drop:
        del d["config"][drop.split(".")[1]]
    else:
        del d[drop]
    key = drop.split(".")[-1]
    with pytest.raises(TokenizerError, match=key):
        Tekken.from_dict(d, backend="python")
    p = tmp_path / "tekken.json"
    write_tekken_json(p, d)
    with pytest.raises(TokenizerError, match=key):
        Tekken.from_file(p, backend="python")


def test_error_bad_contents():
    d = build_tekken_json(2048, "asr")
    with pytest.raises(TokenizerError, match="vocab has 1048 entries"):
        Tekken.from_dict({**d, "config": {**d["config"], "default_vocab_size": 4096}}, backend="python")
    with pytest.raises(TokenizerError, match="top level"):
        Tekken.from_dict([1, 2], backend="python")
    bad_vocab = [dict(e) for e in d["vocab"]]
    bad_vocab[5]["token_bytes"] = "!!"
    with pytest.raises(TokenizerError, match="base64"):
        Tekken.from_dict({**d, "vocab": bad_vocab}, backend="python")
    with pytest.raises(TokenizerError, match="backend"):
        Tekken.from_dict(d, backend="rust")


def test_error_decode_out_of_range(asr_py):
    with pytest.raises(TokenizerError):
        asr_py.decode([1000, -1])


# ---- streaming decoder -----------------------------------------------------------------------


STREAM_TEXTS = [
    "Family 👨‍👩‍👧‍👦 and 👋🏾 waves 🏳️‍🌈!",
    "你好，世界！語音識別 🤖🎉",
    "مرحبا 🇫🇷🇯🇵 नमस्ते ✅",
    "🫠🫠 ゔぁゔぃ ꙮ",
]


@pytest.mark.parametrize("text", STREAM_TEXTS)
def test_streaming_decoder_holds_back_partial_chars(asr_py, text):
    ids = [asr_py.bos_id] + asr_py.encode(text) + [asr_py.special_id("[STREAMING_PAD]")]
    dec = StreamingDecoder(asr_py)
    pieces = [dec.push(i) for i in ids]
    assert all("\ufffd" not in p for p in pieces)
    assert "".join(pieces) + dec.flush() == text


def test_streaming_test_text_really_splits_characters(asr_py):
    # Guard for the test above: some token must be an incomplete UTF-8 sequence on its own.
    def invalid(b):
        try:
            b.decode("utf-8")
            return False
        except UnicodeDecodeError:
            return True

    ids = [i for t in STREAM_TEXTS for i in asr_py.encode(t)]
    assert any(invalid(asr_py.token_bytes(i)) for i in ids)


def test_streaming_decoder_matches_decode_on_random_ids(asr_py):
    rng = random.Random()
    for _ in range(50):
        ids = [rng.randrange(0, 1400) for _ in range(rng.randrange(0, 30))]  # many raw bytes
        dec = asr_py.streaming_decoder()
        assert "".join(dec.push(i) for i in ids) + dec.flush() == asr_py.decode(ids), ids


# ---- round trip over the corpus (python backend) ------------------------------------------


def test_corpus_is_big_and_covers_scripts():
    lines = corpus_lines()
    assert len(lines) >= 500
    text = "".join(lines)
    names = " ".join(unicodedata.name(c, "") for c in set(text))
    for script in ["DEVANAGARI", "ARABIC", "CYRILLIC", "GREEK", "CJK", "HIRAGANA", "KATAKANA", "HANGUL",
                   "HEBREW", "THAI", "COMBINING", "ZERO WIDTH JOINER", "EMOJI MODIFIER", "REGIONAL INDICATOR"]:
        assert script in names, script
    for ch in ["\t", "\r", "\u3000", "\u00a0", "\x1c"]:
        assert ch in text


def test_corpus_round_trip(asr_py, tts_py):
    for line in corpus_lines():
        assert asr_py.decode(asr_py.encode(line)) == line
        assert tts_py.decode(tts_py.encode(line)) == line


# ---- pretokenizer internals -----------------------------------------------------------------


def test_white_space_class_is_isspace_minus_info_separators():
    expected = [c for c in range(0x110000) if chr(c).isspace() and not 0x1C <= c <= 0x1F]
    got = [c for a, b in pretokenize.WHITE_SPACE_RANGES for c in range(a, b + 1)]
    assert got == expected


@pytest.mark.parametrize("name,cats", [("L", "Lu Ll Lt Lm Lo"), ("Lu", "Lu"), ("Ll", "Ll"), ("Lt", "Lt"),
                                       ("Lm", "Lm"), ("Lo", "Lo"), ("M", "Mn Mc Me"), ("N", "Nd Nl No")])
def test_property_ranges_match_unicodedata(name, cats):
    ranges = pretokenize.property_ranges(name)
    assert all(a <= b and b + 1 < c for (a, b), (c, _) in zip(ranges, ranges[1:]))  # sorted, merged
    members = {c for a, b in ranges for c in range(a, b + 1)}
    wanted = set(cats.split())
    sample = range(0, 0x110000, 7)  # every 7th code point keeps the test quick
    assert {c for c in sample if unicodedata.category(chr(c)) in wanted} == {c for c in sample if c in members}


def test_split_examples():
    assert split("Hello world!!\n\n  x") == ["Hello", " world", "!!\n\n", " ", " x"]
    assert split("ab12 3") == ["ab", "1", "2", " ", "3"]
    assert split("a  \r\n b") == ["a", "  \r\n", " b"]
    assert split("HTTPServer/v2") == ["HTTPServer", "/v", "2"]
    assert "".join(split("x\u2028y \x1c z")) == "x\u2028y \x1c z"


@pytest.mark.parametrize("pattern", [r"\p{Zs}", r"[\P{L}]", r"[\S]", r"\d+", r"[[a]]", r"[abc", "abc\\"])
def test_translate_rejects_unsupported(pattern):
    with pytest.raises(TokenizerError):
        pretokenize.translate(pattern)


def test_translate_keeps_other_syntax():
    assert pretokenize.translate(r" ?[\r\n/]*(?!x)|a+") == r" ?[\r\n/]*(?!x)|a+"
    assert pretokenize.compile_pattern(r"\P{L}+").findall("ab12 cd") == ["12 "]


# ---- BPE -------------------------------------------------------------------------------------


def naive_merge(piece: bytes, ranks: dict) -> list[int]:
    """tiktoken's original O(n^2) loop: merge the lowest-ranked adjacent pair, leftmost first."""
    parts = [piece[i : i + 1] for i in range(len(piece))]
    while True:
        best = None
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            return [ranks[p] for p in parts]
        i = best[1]
        parts[i : i + 2] = [parts[i] + parts[i + 1]]


def test_heap_merge_equals_naive_merge(asr_py):
    ranks = asr_py._bpe.ranks
    rng = random.Random()
    alphabet = "".join(sorted(set("".join(corpus_lines()))))
    for _ in range(300):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randrange(2, 60)))
        b = s.encode()
        assert _merge(b, ranks) == naive_merge(b, ranks), s
    for s in ["a" * 257, " " * 100, "ab" * 77, "1234567890" * 9, "…" * 40]:
        assert _merge(s.encode(), ranks) == naive_merge(s.encode(), ranks)


def test_bpe_toy_table_tie_break():
    # "aaa": pairs "aa"@0 and "aa"@1 have equal rank: the leftmost merges first -> [aa, a].
    ranks = {bytes([i]): i for i in range(256)}
    ranks[b"aa"] = 256
    enc = BytePairEncoder(ranks)
    assert enc.encode_piece(b"aaa") == (256, ord("a"))
    assert enc.encode_piece(b"aaaaa") == (256, 256, ord("a"))


def test_python_backend_does_not_need_tiktoken(asr_json, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tiktoken(name, *args, **kwargs):
        if name == "tiktoken":
            raise ImportError("simulated Pyodide")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tiktoken)
    tok = Tekken.from_dict(asr_json)  # auto falls back
    assert tok.backend == "python"
    assert tok.encode(PHONOGRAPH_TEXT) == PHONOGRAPH_IDS
    with pytest.raises(TokenizerError, match="tiktoken"):
        Tekken.from_dict(asr_json, backend="tiktoken")


def test_tokenizer_modules_import_only_stdlib_and_numpy():
    import ast

    allowed = {"__future__", "base64", "binascii", "codecs", "functools", "heapq", "importlib", "json",
               "os", "re", "sys", "unicodedata", "numpy"}
    pkg = Path(pretokenize.__file__).parent
    for path in pkg.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only: tiktoken is imported lazily inside a function
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [] if node.level else [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, (path.name, name)
