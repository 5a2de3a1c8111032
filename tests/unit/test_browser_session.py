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


def test_shards_are_released_once_the_model_is_built(shards):
    """The worker's shard arrays (the model's whole size in JS memory) are not kept by the loaded
    model: once `load` returns nothing references them, and transcription still equals the CLI's
    (the model did not need them)."""
    import gc
    import weakref

    d, pieces = shards
    arrays = [FakeU8(p) for p in pieces]
    refs = [weakref.ref(a) for a in arrays]
    s = Session()
    s.load(arrays)
    del arrays
    gc.collect()
    assert [r() for r in refs] == [None] * len(refs)
    got = json.loads(s.transcribe_samples(load_audio(sample_wav_path(), 16000)))
    want = ASRPipeline(open_model(d)).transcribe(load_audio(sample_wav_path(), 16000))
    assert got["tokens"] == want.tokens
    src = s.pipe.files._reader.source.sources[0]
    with pytest.raises(ModelFormatError, match="released"):
        src.read(0, 4)


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


class FakeFileReader:
    """What worker.js hands Python for an uploaded File: size and read(offset, n) (FileReaderSync
    over file.slice); records the largest range asked for."""

    def __init__(self, data: bytes, fail_after: int | None = None):
        self.data, self.size = data, len(data)
        self.largest = self.total = 0
        self.fail_after = fail_after

    def read(self, offset, n):
        if self.fail_after is not None and offset + n > self.fail_after:
            raise RuntimeError("NotReadableError: the file could not be read")
        self.largest = max(self.largest, n)
        self.total += n
        return FakeU8(self.data[offset:offset + n])


def _wav(seconds: float, rate: int = 44100, channels: int = 2, subtype: str = "PCM_16", nan_at=None) -> bytes:
    from voxtral.audio import encode_wav
    rng = np.random.default_rng(1)
    x = (0.2 * rng.standard_normal((int(seconds * rate), channels))).astype(np.float32)
    if nan_at is not None:
        x[int(nan_at * rate), 0] = np.nan
    return encode_wav(x, rate, subtype)


def test_uploaded_wav_is_read_in_pieces_and_equals_the_cli(shards, tmp_path):
    """The page's upload: the File is read through ranges no larger than a second of it (so an
    hours-long WAV never sits whole in wasm memory), and the transcript equals `voxtral
    transcribe` of the same file (the CLI's own code path, run here)."""
    import argparse

    d, pieces = shards
    data = _wav(6.5)  # 44.1 kHz stereo: resampled on the way, as the CLI does
    path = tmp_path / "upload.wav"
    path.write_bytes(data)
    s = Session()
    s.load(pieces)
    reader = FakeFileReader(data)
    seen = []
    got = json.loads(s.transcribe_file(reader, on_progress=lambda done, total: seen.append((done, total)),
                                       name="upload.wav"))
    assert reader.largest <= 44100 * 4 and reader.total >= len(data) - 64  # 1 s of frames at most
    assert seen[-1] == (pytest.approx(6.5, abs=1e-3), pytest.approx(6.5, abs=1e-3))

    from voxtral import transcribe_cli
    out = tmp_path / "cli.json"
    args = argparse.Namespace(audio=str(path), model=d, backend="numpy", format="json", output=str(out),
                              stream=False, delay_ms=None, quiet=True, progress=False)
    assert transcribe_cli._cmd_transcribe(args) == 0
    want = json.loads(out.read_text())
    assert got["tokens"] == want["tokens"] and got["text"] == want["text"]
    # a JS Uint8Array (the old message form) and plain bytes give the same
    assert json.loads(s.transcribe_file(FakeU8(data)))["tokens"] == want["tokens"]
    assert json.loads(s.transcribe_file(data))["tokens"] == want["tokens"]


def test_uploaded_wav_problems_are_plain_messages(shards):
    s = Session()
    s.load(shards[1])
    calls = []
    # NaN near the end: refused before anything is transcribed (the CLI scans first too)
    with pytest.raises(VoxtralError, match="NaN or infinite samples .* frame 88200"):
        s.transcribe_file(FakeFileReader(_wav(2.5, rate=44100, channels=1, subtype="FLOAT", nan_at=2.0)),
                          on_progress=lambda *a: calls.append(a))
    assert calls == []
    # the File went away while it was read (FileReaderSync throws): a message, not a JS traceback
    data = _wav(3.0)
    with pytest.raises(VoxtralError, match="upload.wav: the file could not be read any more"):
        s.transcribe_file(FakeFileReader(data, fail_after=len(data) // 2), name="upload.wav")
    with pytest.raises(VoxtralError, match="not a WAV"):
        s.transcribe_file(FakeFileReader(b"ID3\x04 this is an mp3, say" * 10))


class FakeF32:
    """A JS Float32Array as Pyodide shows it: length, subarray, to_bytes."""

    def __init__(self, x: np.ndarray):
        self.x = x
        self.length = len(x)
        self.largest = 0

    def subarray(self, a, b):
        self.largest = max(self.largest, b - a)
        return FakeU8(self.x[a:b].astype("<f4").tobytes())


def test_decoded_samples_are_taken_a_second_at_a_time(shards):
    s = Session()
    s.load(shards[1])
    audio = load_audio(sample_wav_path(), 16000)
    js = FakeF32(audio)
    got = json.loads(s.transcribe_samples(js))
    assert js.largest == 16000
    assert got["tokens"] == json.loads(s.transcribe_samples(audio))["tokens"]
    with pytest.raises(VoxtralError, match="no audio samples"):
        s.transcribe_samples(FakeF32(np.zeros(0, np.float32)))


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


def test_too_small_gpu_limits_are_named_before_any_kernel_is_built():
    """A device below what the kernels need (here a compatibility-mode-like one: 128-invocation
    workgroups, 4 storage buffers per stage) gets a message naming each short limit, and the
    self-test is not even tried; a device at the WebGPU defaults passes the check."""
    from voxtral.backends.webgpu.host import GPUHost
    from voxtral.backends.webgpu.kernels import REQUIRED_LIMITS, Kernels, limit_shortfalls

    class SmallHost(GPUHost):
        adapter_name = "small test adapter"

        def __init__(self, limits):
            super().__init__()
            self.limits = limits

        def _create_buffer(self, *a):  # the check must come before any GPU object is made
            raise AssertionError("a buffer was created")

        def _compile_pipeline(self, *a):
            raise AssertionError("a shader was compiled")

    small = {"max_compute_invocations_per_workgroup": 128, "max_compute_workgroup_size_x": 128,
             "max_storage_buffers_per_shader_stage": 4, "max_compute_workgroup_storage_size": 16384,
             "max_storage_buffer_binding_size": 128 << 20}
    s = Session()
    r = json.loads(s.setup_webgpu(SmallHost(small)))
    assert not r["ok"] and r["attempts"] == [] and s.kernels is None
    msg = r["message"]
    assert msg.startswith("this GPU's WebGPU limits are too small for the kernels")
    for part in ("max_compute_invocations_per_workgroup is 128, the kernels need 256",
                 "max_compute_workgroup_size_x is 128, the kernels need 256",
                 "max_storage_buffers_per_shader_stage is 4, the kernels need 8"):
        assert part in msg
    assert "workgroup_storage" not in msg  # 16384 is enough
    with pytest.raises(RuntimeError, match="limits are too small: max_compute_invocations"):
        Kernels(SmallHost(small))
    # the WebGPU core defaults (what any core adapter offers) are enough
    defaults = {"max_compute_invocations_per_workgroup": 256, "max_compute_workgroup_size_x": 256,
                "max_storage_buffers_per_shader_stage": 8, "max_compute_workgroup_storage_size": 16384}
    assert limit_shortfalls(defaults) == [] and set(defaults) == set(REQUIRED_LIMITS)
