"""voxtral.browser (the worker's Python side), run natively: shards as bytes or as fake JS arrays give
the same tokens as `voxtral transcribe`; live 80 ms pieces give the offline result."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from voxtral.asr_pipeline import ASRPipeline
from voxtral.audio import load_audio
from voxtral.browser import JsArraySource, Session
from voxtral.data import sample_wav_path
from voxtral.errors import ModelFormatError, VoxtralError
from voxtral.testmodel import make_test_model
from voxtral.weights.loader import open_model


class FakeU8:
    """What Pyodide hands Python for a JS Uint8Array: length, subarray, to_bytes, assign_to."""

    def __init__(self, data: bytes, start: int = 0, end: int | None = None):
        self.data, self.start = data, start
        self.end = len(data) if end is None else end
        self.length = self.end - self.start
        self.copied = 0

    def subarray(self, a, b):
        return FakeU8(self.data, self.start + a, self.start + b)

    def to_bytes(self):
        return self.data[self.start:self.end]

    def assign_to(self, view):
        assert len(view) == self.length
        view[:] = self.data[self.start:self.end]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    d = tmp_path_factory.mktemp("m")
    make_test_model("asr", str(d), fmt="shards", shard_bytes=200_000)
    names = sorted(n for n in os.listdir(d) if n.startswith("shard-"))
    return str(d), [(d / n).read_bytes() for n in names]


def test_js_array_source_reads_ranges():
    src = JsArraySource(FakeU8(bytes(range(256)) * 4))
    assert src.size == 1024 and src.read(250, 10) == bytes(range(250, 256)) + bytes(range(4))
    out = bytearray(5)
    src.read_into(3, out)
    assert bytes(out) == bytes(range(3, 8))
    with pytest.raises(ModelFormatError, match="truncated"):
        src.read(1020, 10)


@pytest.mark.parametrize("wrap", [bytes, FakeU8])
def test_file_transcript_equals_cli_pipeline(shards, wrap):
    d, pieces = shards
    s = Session()
    info = json.loads(s.load([wrap(p) for p in pieces], name="demo"))
    assert info["kind"] == "asr" and info["backend"] == "numpy"
    wav = open(sample_wav_path(), "rb").read()
    got = json.loads(s.transcribe_file(wav))
    want = ASRPipeline(open_model(d)).transcribe(load_audio(sample_wav_path(), 16000))
    assert got["tokens"] == want.tokens and got["text"] == want.text
    assert got["srt"].startswith("1\n") and got["vtt"].startswith("WEBVTT")
    assert got["timings"]["steps_per_s"] > 0


def test_live_pieces_equal_offline(shards):
    d, pieces = shards
    s = Session()
    s.load(pieces)
    audio = load_audio(sample_wav_path(), 16000)
    s.live_start()
    streamed = ""
    for i in range(0, len(audio), 1280):
        fig = json.loads(s.live_push(audio[i:i + 1280].astype("<f4").tobytes()))
        streamed += fig["text"]
    done = json.loads(s.live_finish())
    streamed += done["tail"]
    offline = json.loads(s.transcribe_samples(audio.astype(np.float32)))
    assert done["tokens"] == offline["tokens"]
    assert streamed.strip() == done["text"] == offline["text"]


def test_errors_are_plain(shards):
    s = Session()
    with pytest.raises(VoxtralError, match="no model"):
        s.transcribe_samples(b"\0" * 400)
    with pytest.raises(ModelFormatError):
        s.load([b"not a gguf file at all"])
    s.load(shards[1])
    with pytest.raises(VoxtralError, match="not a WAV"):
        s.transcribe_file(b"ID3\x04 this is an mp3, say")


def test_tts_bench_mode_equals_the_cli():
    """The page's ?bench=tts (Session.bench_tts, numpy here) runs `voxtral bench tts`'s frames on
    the same in-memory random model: the same semantic codes, and every figure present."""
    from voxtral.bench_tts import run_tts_bench

    r = json.loads(Session().bench_tts("tiny", 4, "numpy"))
    cli = run_tts_bench("tiny", frames=4, backend="numpy")
    assert r["bench"] == cli["bench"] == "tts" and r["host"] == "browser"
    assert r["semantic_codes"] == cli["semantic_codes"] and len(r["semantic_codes"]) == 4
    assert r["prompt_tokens"] == cli["prompt_tokens"] and r["audio_s"] == cli["audio_s"] > 0
    for key in ("load_s", "prefill_ms", "backbone_ms_per_frame", "fm_ms_per_frame", "codec_ms_per_frame",
                "frames_per_s", "rtf"):
        assert r[key] > 0, key


def test_bench_kernel_switches_parsed_and_refused():
    """The benchmark page's ?kernels= A/B switches: known names and values only."""
    from voxtral.browser import _kernel_switches
    from voxtral.errors import VoxtralError
    assert _kernel_switches(None) == {} and _kernel_switches("") == {}
    assert _kernel_switches("attn_rows=0, attn_decode=v1") == {"attn_rows": False, "attn_decode": "v1"}
    assert _kernel_switches("gemm8=1,prefill_rows=4") == {"gemm8": True, "prefill_chunk_rows": 4}
    for bad in ("attn_rows=2", "shader_checks=none", "attn_decode", "gemm8=yes", "prefill_rows=-1",
                "prefill_rows=65"):
        with pytest.raises(VoxtralError, match="unknown kernel switch"):
            _kernel_switches(bad)
