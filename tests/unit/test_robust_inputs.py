"""The bad-input matrix of issue 8: every case gets a clear, specific answer, never a hang, a traceback
or a partial output file.

* CLI (`voxtral transcribe|speak|quantize|shard`, run in-process): exit 2 and ONE line
  "voxtral: error: ..." naming the problem; no output file (nor a temporary one) left behind, an
  earlier output file untouched; Ctrl-C part way (KeyboardInterrupt) the same, with exit 130.
* Unusual but valid WAVs (8-bit, 24-bit, float32/64, 6 channels, 8 kHz, 192 kHz, extensible) transcribe.
* Weight files: GGUF corruptions and absurd sizes (a petabyte tensor, 2^63 tensors, ...), safetensors
  with overlapping / out-of-range offsets: ModelFormatError naming the problem, at once.
* Hours-long audio is read from disk in pieces: memory does not grow with its length.
* The browser worker's Python side (voxtral.browser.Session) raises VoxtralError, whose message the
  page shows.
"""
from __future__ import annotations

import json
import os
import struct
import time
import tracemalloc

import numpy as np
import pytest

from voxtral.audio.wav import WavReader, encode_wav, load_audio
from voxtral.cli import main as cli_main
from voxtral.errors import AudioFormatError, ModelFormatError, VoxtralError
from voxtral.testmodel import make_test_model
from voxtral.weights import SafetensorsFile, open_gguf
from voxtral.weights.loader import open_model

CASE_SECONDS = 60  # no single bad input may take longer than this to be answered ("never a hang")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    base = tmp_path_factory.mktemp("robust-models")
    return {"asr": make_test_model("asr", str(base / "asr"), seed=0, fmt="mistral"),
            "asr_gguf": make_test_model("asr", str(base / "asr-gguf"), seed=0, fmt="gguf"),
            "tts": make_test_model("tts", str(base / "tts"), seed=0, fmt="gguf")}


def run(capsys, *argv) -> tuple[int, str, str]:
    t0 = time.monotonic()
    rc = cli_main([str(a) for a in argv])
    assert time.monotonic() - t0 < CASE_SECONDS, argv
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc, err, fragment):
    assert rc == 2, (rc, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("voxtral: error: "), err
    assert fragment.lower() in lines[0].lower(), (fragment, lines[0])


def leftovers(folder) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.endswith((".part", ".tmp")) or n.startswith(".shard-tmp"))


# ------------------------------------------------------------------------------ WAV builders

def voice(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    ph = 2 * np.pi * np.cumsum(f0) / rate
    x = sum(np.sin(k * ph) / k for k in range(1, 10)) * 0.25 * (np.sin(2 * np.pi * 1.3 * t) > -0.3)
    return x + 0.01 * np.random.default_rng(0).standard_normal(len(t))


def riff(fmt_body: bytes | None, payload: bytes | None, riff_id=b"RIFF", extra=b"") -> bytes:
    body = b"WAVE" + extra
    if fmt_body is not None:
        body += b"fmt " + struct.pack("<I", len(fmt_body)) + fmt_body
    if payload is not None:
        body += b"data" + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1 else b"")
    return riff_id + struct.pack("<I", len(body)) + body


def fmt(tag, channels, rate, bits, align=None):
    align = channels * ((bits + 7) // 8) if align is None else align
    return struct.pack("<HHIIHH", tag, channels, rate, (rate * align) & 0xFFFFFFFF, align, bits)


def pcm(x: np.ndarray, bits: int) -> bytes:
    x = np.clip(x, -1, 1 - 1e-9)
    if bits == 8:
        return np.round(x * 127 + 128).astype(np.uint8).tobytes()
    if bits == 24:
        v = np.round(x * (2**23 - 1)).astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]
        return v.tobytes()
    return np.round(x * (2 ** (bits - 1) - 1)).astype({16: "<i2", 32: "<i4"}[bits]).tobytes()


def valid_wavs() -> dict[str, bytes]:
    v = voice(1.6, 48000)
    mono = lambda rate: voice(1.6, rate)  # noqa: E731
    six = np.stack([mono(48000) * (0.5 + 0.1 * c) for c in range(6)], axis=1)
    guid = struct.pack("<H", 1) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    ext = struct.pack("<HHIIHHHHI", 0xFFFE, 2, 32000, 128000, 4, 16, 22, 16, 3) + guid
    return {
        "8-bit unsigned 22.05 kHz": riff(fmt(1, 1, 22050, 8), pcm(mono(22050), 8)),
        "24-bit 44.1 kHz stereo": riff(fmt(1, 2, 44100, 24), pcm(np.stack([mono(44100)] * 2, 1).ravel(), 24)),
        "32-bit float 48 kHz stereo": encode_wav(np.stack([v, -v], 1), 48000, "FLOAT"),
        "64-bit float 16 kHz": riff(fmt(3, 1, 16000, 64), mono(16000).astype("<f8").tobytes()),
        "6 channels 48 kHz": riff(fmt(1, 6, 48000, 16), pcm(six.ravel(), 16)),
        "8 kHz telephone": riff(fmt(1, 1, 8000, 16), pcm(mono(8000), 16)),
        "192 kHz 32-bit": riff(fmt(1, 1, 192000, 32), pcm(mono(192000), 32)),
        "extensible 32 kHz stereo": riff(ext, pcm(np.stack([mono(32000)] * 2, 1).ravel(), 16)),
    }


VALID = valid_wavs()


@pytest.mark.parametrize("name", list(VALID))
def test_unusual_but_valid_wavs_transcribe(models, tmp_path, capsys, name):
    wav = tmp_path / "in.wav"
    wav.write_bytes(VALID[name])
    out = tmp_path / "out.json"
    rc, _, err = run(capsys, "transcribe", wav, "--model", models["asr"], "--backend", "numpy",
                     "--format", "json", "-o", out, "--quiet")
    assert rc == 0, err
    tr = json.loads(out.read_text())
    assert abs(tr["timings"]["audio_s"] - 1.6) < 0.01
    assert tr["tokens"] and isinstance(tr["text"], str)  # 1.6 s: the prompt plus a few decided tokens
    assert leftovers(tmp_path) == []


def bad_wavs() -> list[tuple[str, bytes | None, str]]:
    x = voice(1.0, 16000).astype(np.float32)
    nan = x.copy()
    nan[5000] = np.nan
    inf = x.copy()
    inf[100] = np.inf
    return [
        ("empty file", b"", "too short to be a WAV"),
        ("header only (data chunk empty)", riff(fmt(1, 1, 16000, 16), b""), "no audio samples"),
        ("header only (no data chunk)", riff(fmt(1, 1, 16000, 16), None), "no 'data' chunk"),
        ("cut inside the fmt chunk", riff(fmt(1, 1, 16000, 16), b"\0" * 64)[:30], "truncated"),
        ("ADPCM", riff(fmt(2, 1, 8000, 4, 256), b"\0" * 512), "Microsoft ADPCM"),
        ("mu-law", riff(fmt(7, 1, 8000, 8), b"\0" * 512), "mu-law"),
        ("MP3 inside RIFF", riff(fmt(0x55, 2, 44100, 0, 1), b"\0" * 512), "MP3"),
        ("16-bit float", riff(fmt(3, 1, 16000, 16), b"\0" * 512), "16-bit IEEE float"),
        ("NaN samples", encode_wav(nan, 16000, "FLOAT"), "NaN or infinite samples"),
        ("infinite samples", encode_wav(inf, 16000, "FLOAT"), "NaN or infinite samples"),
        ("zero channels", riff(fmt(1, 0, 16000, 16, 0), b"\0" * 64), "0 channels"),
        ("rate 0 Hz", riff(fmt(1, 1, 0, 16), b"\0" * 64), "0 Hz"),
        ("rate 5 Hz", riff(fmt(1, 1, 5, 16), b"\0" * 64), "outside the supported"),
        ("rate 4 GHz", riff(fmt(1, 1, 0xFFFFFFF0, 16), b"\0" * 64), "outside the supported"),
        ("random bytes", np.random.default_rng(1).bytes(5000), "not a WAV"),
        ("a PNG", b"\x89PNG\r\n\x1a\n" + bytes(200), "PNG image"),
        ("text", b"this is not audio, just a text file\n" * 10, "text"),
        ("an MP3", b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(400), "MP3"),
        ("AVI", b"RIFF\x10\x00\x00\x00AVI LIST\x00\x00\x00\x00", "not WAVE"),
        ("a million empty chunks", b"RIFF\0\0\0\0WAVE" + b"junk\0\0\0\0" * 100_000, "RIFF chunks"),
    ]


@pytest.mark.parametrize("name,blob,message", bad_wavs(), ids=[c[0] for c in bad_wavs()])
def test_bad_wavs_one_line_exit_2_no_output(models, tmp_path, capsys, name, blob, message):
    wav = tmp_path / "in.wav"
    wav.write_bytes(blob)
    out = tmp_path / "out.txt"
    rc, stdout, err = run(capsys, "transcribe", wav, "--model", models["asr"], "--backend", "numpy", "-o", out)
    assert_one_line_error(rc, err, message)
    assert stdout == "" and not out.exists() and leftovers(tmp_path) == []
    # the same bytes in the browser worker: a VoxtralError whose message the page shows
    from voxtral.browser import Session
    with pytest.raises(VoxtralError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Session().transcribe_file(blob)


def test_bad_paths(models, tmp_path, capsys):
    rc, _, err = run(capsys, "transcribe", tmp_path / "missing.wav", "--model", models["asr"])
    assert_one_line_error(rc, err, "cannot read audio file")
    rc, _, err = run(capsys, "transcribe", tmp_path, "--model", models["asr"])
    assert_one_line_error(rc, err, "is a directory")
    wav = tmp_path / "ok.wav"
    wav.write_bytes(VALID["8 kHz telephone"])
    rc, _, err = run(capsys, "transcribe", wav, "--model", models["asr"], "-o", tmp_path / "no" / "such" / "x.txt")
    assert_one_line_error(rc, err, "does not exist")
    rc, _, err = run(capsys, "transcribe", wav, "--model", models["asr"], "-o", tmp_path)
    assert_one_line_error(rc, err, "is a directory")
    rc, _, err = run(capsys, "transcribe", wav, "--model", models["tts"], "--backend", "numpy")
    assert_one_line_error(rc, err, "not speech-to-text")


def test_interrupted_transcription_leaves_no_file(models, tmp_path, capsys, monkeypatch):
    from voxtral.asr_pipeline import LiveTranscription
    wav = tmp_path / "in.wav"
    wav.write_bytes(riff(fmt(1, 1, 16000, 16), pcm(voice(5.0, 16000), 16)))
    out = tmp_path / "out.srt"
    out.write_text("an earlier, complete result\n")
    calls = []
    real_push = LiveTranscription.push

    def push(self, x):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_push(self, x)

    monkeypatch.setattr(LiveTranscription, "push", push)
    rc, _, err = run(capsys, "transcribe", wav, "--model", models["asr"], "--backend", "numpy",
                     "--format", "srt", "-o", out, "--stream")
    assert rc == 130 and "interrupted" in err
    assert out.read_text() == "an earlier, complete result\n" and leftovers(tmp_path) == []


def test_nan_pushed_live_is_refused_and_the_stream_goes_on(models):
    from voxtral.browser import Session
    s = Session()
    with open(models["asr_gguf"], "rb") as f:
        s.load([f.read()])
    s.live_start()
    x = voice(0.5, 16000).astype(np.float32)
    s.live_push(x)
    with pytest.raises(AudioFormatError, match="NaN or infinite"):
        s.live_push(np.full(1280, np.nan, np.float32))
    json.loads(s.live_push(x))  # still running
    assert "text" in json.loads(s.live_finish())
    with pytest.raises(AudioFormatError, match="NaN or infinite"):
        s.transcribe_samples(np.array([0.0, np.inf] * 8000, np.float32).tobytes())
    with pytest.raises(VoxtralError, match="no audio samples"):
        s.transcribe_samples(b"")


# -------------------------------------------------------------------------- hours-long audio

def sparse_wav(path, seconds: float, rate: int, channels: int, bits: int = 16, rf64: bool = False) -> None:
    """A WAV of `seconds` of silence without writing it: the data is a hole in a sparse file."""
    n = int(seconds * rate) * channels * bits // 8
    f = fmt(1, channels, rate, bits)
    if rf64:
        ds64 = b"ds64" + struct.pack("<I", 28) + struct.pack("<QQQI", 0, n, n // (channels * bits // 8), 0)
        head = b"RF64" + b"\xff\xff\xff\xff" + b"WAVE" + ds64 + b"fmt " + struct.pack("<I", 16) + f + b"data\xff\xff\xff\xff"
    else:
        head = b"RIFF" + struct.pack("<I", 36 + n) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + f + b"data" + struct.pack("<I", n)
    with open(path, "wb") as fh:
        fh.write(head)
        fh.truncate(len(head) + n)


def traced_peak(fn):
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_hours_long_wav_is_read_in_constant_memory(tmp_path):
    p = tmp_path / "two-hours.wav"
    sparse_wav(p, 2 * 3600, 16000, 1)  # 230 MB on disk (a hole)
    with WavReader(p) as r:
        assert r.seconds == 7200.0
        n, peak = traced_peak(lambda: sum(len(b) for b in r.stream(16000, 1.0)))
    assert n == 7200 * 16000 and peak < 8 << 20, peak
    p = tmp_path / "twenty-minutes-44k-stereo.wav"
    sparse_wav(p, 20 * 60, 44100, 2)  # resampled on the way
    with WavReader(p) as r:
        n, peak = traced_peak(lambda: sum(len(b) for b in r.stream(16000, 1.0)))
    assert n == 20 * 60 * 16000 and peak < 8 << 20, peak


def test_rf64_ten_hours_opens_at_once(tmp_path):
    p = tmp_path / "ten-hours.rf64.wav"
    sparse_wav(p, 10 * 3600, 48000, 2, bits=24, rf64=True)  # 10 GB: only an RF64 can say so
    t0 = time.monotonic()
    with WavReader(p) as r:
        assert r.seconds == 36000.0 and r.channels == 2
        first = next(r.stream(16000, 1.0))
    assert len(first) > 0 and time.monotonic() - t0 < 5


def test_load_audio_memory_is_its_result(tmp_path):
    p = tmp_path / "ten-minutes-48k-stereo.wav"
    sparse_wav(p, 600, 48000, 2)  # 115 MB file, 1.2 GB as float64 stereo; 38 MB as the 16 kHz result
    y, peak = traced_peak(lambda: load_audio(str(p), 16000))
    assert y.shape == (600 * 16000,) and peak < y.nbytes + (16 << 20), (peak, y.nbytes)


# --------------------------------------------------------------------------------------- TTS

@pytest.mark.parametrize("args,message", [
    (["speak", ""], "empty"),
    (["speak", "   \n\t "], "empty"),
    (["speak", "x" * 50_000], "too long (50000 characters"),
    (["speak", "Hi.", "--voice", "nobody_we_know"], "unknown voice 'nobody_we_know'"),
    (["speak", "Hi.", "--voice", "/no/such/voice.pt"], "voice"),
    (["speak", "Hi.", "--euler-steps", "0"], "--euler-steps"),
    (["speak", "Hi.", "--max-seconds", "-1"], "--max-seconds"),
])
def test_speak_bad_input(models, tmp_path, capsys, args, message):
    out = tmp_path / "speech.wav"
    rc, stdout, err = run(capsys, *args, "--model", models["tts"], "--backend", "numpy", "--out", out)
    assert_one_line_error(rc, err, message)
    assert not out.exists() and leftovers(tmp_path) == []


def test_speak_out_folder_checked_before_the_work(models, tmp_path, capsys):
    rc, _, err = run(capsys, "speak", "Hi.", "--model", models["tts"], "--out", tmp_path / "nope" / "a.wav")
    assert_one_line_error(rc, err, "does not exist")


@pytest.mark.parametrize("stream", [False, True])
def test_interrupted_speak_leaves_no_partial_wav(models, tmp_path, capsys, monkeypatch, stream):
    from voxtral import speak_cli
    from voxtral.tts_pipeline import TTSPipeline
    out = tmp_path / "speech.wav"
    real = TTSPipeline.synthesize

    def synthesize(self, *a, on_audio=None, **k):
        def boom(chunk):
            if on_audio:
                on_audio(chunk)  # some audio reached the (temporary) file ...
            raise KeyboardInterrupt  # ... then Ctrl-C
        return real(self, *a, on_audio=boom, **k)

    monkeypatch.setattr(TTSPipeline, "synthesize", synthesize)
    rc, _, err = run(capsys, "speak", "Hello there.", "--model", models["tts"], "--backend", "numpy",
                     "--out", out, *(["--stream"] if stream else []))
    assert rc == 130 and "interrupted" in err
    assert not out.exists() and leftovers(tmp_path) == []
    assert speak_cli  # imported for monkeypatch's sake


# --------------------------------------------------------------------------- weights: GGUF

def s(text: str) -> bytes:
    b = text.encode()
    return struct.pack("<Q", len(b)) + b


def gguf(kvs=b"", n_kv=0, infos=b"", n_tensors=0, version=3, data=64, align=32) -> bytes:
    head = b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv) + kvs + infos
    return head + bytes(-len(head) % align) + bytes(data)


def info(name, dims, type_id=0, offset=0):
    return s(name) + struct.pack(f"<I{len(dims)}QIQ", len(dims), *dims, type_id, offset)


GGUF_CASES = [
    ("wrong magic", b"GGML" + bytes(60), "not a GGUF file"),
    ("big-endian", b"GGUF" + struct.pack(">I", 3) + bytes(60), "big-endian"),
    ("version 1", gguf(version=1), "unsupported GGUF version 1"),
    ("truncated header", b"GGUF\x03\x00\x00\x00\x01", "truncated GGUF header"),
    ("2^63 tensors", gguf(n_tensors=1 << 63), "claims 9223372036854775808 tensors"),
    ("2^64-1 metadata entries", gguf(n_kv=(1 << 64) - 1), "claims 18446744073709551615 metadata entries"),
    ("key length 2^63", gguf(struct.pack("<Q", 1 << 63), n_kv=1), "truncated GGUF metadata key #0"),
    ("string of 2^62 bytes", gguf(s("k") + struct.pack("<IQ", 8, 1 << 62), n_kv=1), "truncated GGUF metadata value 'k'"),
    ("array of 2^60 strings", gguf(s("k") + struct.pack("<IIQ", 9, 8, 1 << 60), n_kv=1), "claims 1152921504606846976 array elements"),
    ("array of 10^12 u32", gguf(s("k") + struct.pack("<IIQ", 9, 4, 10**12), n_kv=1), "truncated GGUF metadata value 'k'"),
    ("arrays nested 100 deep", gguf(s("k") + struct.pack("<I", 9) + struct.pack("<IQ", 9, 1) * 100 + struct.pack("<IQ", 4, 0), n_kv=1),
     "nested more than"),
    ("unknown value type", gguf(s("k") + struct.pack("<I", 13), n_kv=1), "unknown GGUF value type 13"),
    ("duplicate key", gguf((s("k") + struct.pack("<IB", 0, 1)) * 2, n_kv=2), "duplicate GGUF metadata key 'k'"),
    ("bad UTF-8 key", gguf(struct.pack("<Q", 2) + b"\xff\xfe" + struct.pack("<IB", 0, 1), n_kv=1), "invalid UTF-8"),
    ("alignment 24", gguf(s("general.alignment") + struct.pack("<II", 4, 24), n_kv=1), "invalid general.alignment 24"),
    ("a petabyte tensor", gguf(infos=info("t", [1 << 25, 1 << 23]), n_tensors=1), "runs past the end"),
    ("a shape of 2^62 x 0", gguf(infos=info("t", [8, 1 << 62, 0]), n_tensors=1), "absurd shape"),
    ("offset 2^63", gguf(infos=info("t", [4], offset=1 << 63), n_tensors=1), "runs past the end"),
    ("misaligned offset", gguf(infos=info("t", [4], offset=4), n_tensors=1), "not a multiple of the alignment"),
    ("overlapping tensors", gguf(infos=info("a", [8]) + info("b", [8], offset=0), n_tensors=2, data=64),
     "overlap"),
    ("5 dims", gguf(infos=info("t", [1] * 5), n_tensors=1), "has 5 dims"),
    ("0 dims", gguf(infos=info("t", []), n_tensors=1), "has 0 dims"),
    ("unknown ggml type", gguf(infos=info("t", [32], 8), n_tensors=1), "unsupported ggml type 8"),
    ("Q4 not a multiple of 32", gguf(infos=info("t", [16], 2), n_tensors=1), "multiple of 32"),
    ("duplicate tensor", gguf(infos=info("t", [4]) + info("t", [4], offset=32), n_tensors=2), "duplicate tensor 't'"),
]


@pytest.mark.parametrize("name,blob,message", GGUF_CASES, ids=[c[0] for c in GGUF_CASES])
def test_gguf_corruptions(tmp_path, capsys, name, blob, message):
    t0 = time.monotonic()
    with pytest.raises(ModelFormatError, match=message.replace("(", r"\(")):
        open_gguf(blob)
    assert time.monotonic() - t0 < 5
    # through the CLI: one line, exit 2
    p = tmp_path / "bad.gguf"
    p.write_bytes(blob)
    wav = tmp_path / "a.wav"
    wav.write_bytes(VALID["8 kHz telephone"])
    rc, _, err = run(capsys, "transcribe", wav, "--model", p, "--backend", "numpy")
    assert_one_line_error(rc, err, message.split("(")[0])


def test_gguf_model_level_corruptions(models, tmp_path, capsys):
    """A real (tiny) model GGUF with its params metadata broken or a tensor of the wrong shape."""
    from voxtral.weights.loader import KEY_PARAMS
    import gguf as gguf_lib
    src = open_gguf(models["asr_gguf"])
    params = json.loads(src.metadata[KEY_PARAMS])

    def rewrite(path, md_update, drop=(), reshape=None):
        w = gguf_lib.GGUFWriter(str(path), "voxtral-realtime")
        for k, v in {**src.metadata, **md_update}.items():
            if k.startswith("general.") or k.startswith("GGUF."):
                continue
            w.add_string(k, v) if isinstance(v, str) else w.add_uint32(k, v)
        for name, ti in src.tensors.items():
            if name in drop:
                continue
            raw = np.frombuffer(src.read_raw(name), np.uint8)
            if name == reshape:
                w.add_tensor(name, np.zeros((3, 5), np.float32))
            elif ti.ggml_type.name == "Q4_0":
                w.add_tensor(name, raw.reshape(*ti.shape[:-1], -1), raw_dtype=gguf_lib.GGMLQuantizationType.Q4_0)
            else:
                w.add_tensor(name, raw.view(np.float32).reshape(ti.shape))
        w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
        return path

    name0 = next(iter(src.tensors))
    cases = [
        ({KEY_PARAMS: "{not json"}, (), None, "is not valid JSON"),
        ({KEY_PARAMS: json.dumps({**params, "n_layers": 10**9})}, (), None, "not a layer count"),
        ({KEY_PARAMS: json.dumps([1, 2])}, (), None, "must hold a JSON object"),
        ({}, (name0,), None, f"missing tensor {name0!r}"),
        ({}, (), name0, f"tensor {name0!r} has shape [3, 5]"),
    ]
    wav = tmp_path / "a.wav"
    wav.write_bytes(VALID["8 kHz telephone"])
    for i, (md, drop, reshape, message) in enumerate(cases):
        p = rewrite(tmp_path / f"m{i}.gguf", md, drop, reshape)
        with pytest.raises(ModelFormatError, match=message.replace("[", r"\[").replace("]", r"\]")):
            open_model(p)
        rc, _, err = run(capsys, "transcribe", wav, "--model", p, "--backend", "numpy")
        assert_one_line_error(rc, err, message)


# -------------------------------------------------------------------------- weights: safetensors

def st_file(path, header: dict | bytes, data: bytes) -> str:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return str(path)


ST_CASES = [
    ("overlapping offsets", {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                             "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, 16, "overlap"),
    ("same bytes twice", {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                          "b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, 16, "overlap"),
    ("offset past the end", {"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, 8, "runs past the end"),
    ("offset 2^64", {"a": {"dtype": "F32", "shape": [1], "data_offsets": [2**64, 2**64 + 4]}}, 8, "runs past the end"),
    ("begin after end", {"a": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}}, 16, "bad data_offsets"),
    ("negative offset", {"a": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}}, 8, "bad data_offsets"),
    ("float offset", {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0.5, 4.5]}}, 8, "non-negative integers"),
    ("petabyte shape", {"a": {"dtype": "F32", "shape": [1 << 24, 1 << 24], "data_offsets": [0, 4]}}, 8,
     "do not match shape"),
    ("exabyte shape", {"a": {"dtype": "F32", "shape": [1 << 30, 1 << 30], "data_offsets": [0, 4]}}, 8,
     "absurd shape"),
    ("shape of 2^62 x 0", {"a": {"dtype": "F32", "shape": [0, 1 << 62], "data_offsets": [0, 0]}}, 8, "absurd shape"),
    ("dtype a list", {"a": {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}}, 8, "unknown safetensors dtype"),
    ("entry a string", {"a": "F32"}, 8, "bad safetensors header entry"),
    ("metadata a list", {"__metadata__": [1], "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, 8,
     "__metadata__"),
    ("header length 2^63", None, 8, "bad safetensors header length"),
    ("JSON nested 100k deep", b"[" * 100_000 + b"]" * 100_000, 8, "bad safetensors JSON header"),
    ("not JSON", b"\xff\xfe{{{", 8, "bad safetensors JSON header"),
]


@pytest.mark.parametrize("name,header,data,message", ST_CASES, ids=[c[0] for c in ST_CASES])
def test_safetensors_corruptions(tmp_path, name, header, data, message):
    p = tmp_path / "x.safetensors"
    if header is None:
        p.write_bytes(struct.pack("<Q", 1 << 63) + b"{}" + bytes(data))
    else:
        st_file(p, header, bytes(data))
    with pytest.raises(ModelFormatError, match=message):
        SafetensorsFile(p)


def test_mistral_dir_with_overlapping_safetensors_via_cli(models, tmp_path, capsys):
    """A Mistral directory whose consolidated.safetensors lies about its offsets: one clean line."""
    import shutil
    d = tmp_path / "m"
    shutil.copytree(models["asr"], d)
    st_path = d / "consolidated.safetensors"
    blob = st_path.read_bytes()
    hlen = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + hlen])
    names = [n for n in header if n != "__metadata__"]
    header[names[1]]["data_offsets"] = list(header[names[0]]["data_offsets"])  # b reuses a's bytes
    shape0 = header[names[0]]["shape"]
    header[names[1]]["shape"], header[names[1]]["dtype"] = shape0, header[names[0]]["dtype"]
    raw = json.dumps(header).encode()
    st_path.write_bytes(struct.pack("<Q", len(raw)) + raw + blob[8 + hlen:])
    wav = tmp_path / "a.wav"
    wav.write_bytes(VALID["8 kHz telephone"])
    rc, _, err = run(capsys, "transcribe", wav, "--model", d, "--backend", "numpy")
    assert_one_line_error(rc, err, "overlap")


# ------------------------------------------------------------------ quantize / shard: no partials

def test_interrupted_quantize_leaves_no_file(models, tmp_path, capsys, monkeypatch):
    from voxtral.prepare import quantize
    out = tmp_path / "q.gguf"
    calls = []
    real = quantize._StreamedTensor.tofile

    def tofile(self, f):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(self, f)

    monkeypatch.setattr(quantize._StreamedTensor, "tofile", tofile)
    rc, _, err = run(capsys, "quantize", "asr", models["asr"], "-o", out, "--quiet")
    assert rc == 130 and not out.exists() and leftovers(tmp_path) == []


def test_interrupted_shard_keeps_the_earlier_set(models, tmp_path, capsys, monkeypatch):
    from voxtral.prepare import shard
    src = models["asr_gguf"]
    out = tmp_path / "shards"
    rc, _, err = run(capsys, "shard", src, "-o", out, "--max-bytes", "200K", "--quiet")
    assert rc == 0, err
    before = {n: (out / n).read_bytes() for n in os.listdir(out)}
    real = shard.hashlib.sha256
    made = []

    def sha256(*a):
        made.append(1)
        if len(made) == 3:  # the whole-file hash, shard-aa's, then shard-ab's: stop there
            raise KeyboardInterrupt
        return real(*a)

    monkeypatch.setattr(shard.hashlib, "sha256", sha256)
    rc, _, err = run(capsys, "shard", src, "-o", out, "--max-bytes", "100K", "--quiet")
    assert rc == 130
    assert {n: (out / n).read_bytes() for n in os.listdir(out)} == before  # untouched, nothing extra
    monkeypatch.undo()
    open_model(out, verify=True)
