"""Bounded fuzzing (hypothesis) of the three parsers that read untrusted bytes: GGUF (header, metadata,
tensor table, data, byte shards), safetensors (JSON header, offsets, data) and WAV (RIFF chunks, fmt,
data; in memory and from a file; decoding and resampling).

Each example must either parse or raise the project's own error (VoxtralError) - any other exception
fails - and must stay within a memory budget that grows only with the input's size (tracemalloc peak:
numpy registers its buffers there, so a 2^40-byte allocation attempt or a quadratic copy shows up).

Budget: VOXTRAL_FUZZ_EXAMPLES examples per target (default 500), about 15 s on 2 cores in all; raise it
for a longer local run (e.g. VOXTRAL_FUZZ_EXAMPLES=5000). No hypothesis deadline (a loaded CI machine
makes per-example timings noisy), but a wall-clock bound that only a hang can reach: an example still
running after HANG_SECONDS (examples take milliseconds) is interrupted and fails the test, so a parser
loop that never ends shows up as a failure with its input instead of a stuck CI job. Failures print
the shrunk input (hypothesis) - add it to tests/unit/test_robust_inputs.py once fixed.
"""
from __future__ import annotations

import io
import json
import os
import signal
import struct
import sys
import tracemalloc

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from voxtral.audio.wav import WavReader, encode_wav, load_audio, read_wav  # noqa: E402
from voxtral.errors import VoxtralError  # noqa: E402
from voxtral.weights.gguf import open_gguf  # noqa: E402
from voxtral.weights.safetensors import SafetensorsFile  # noqa: E402
from voxtral.weights.sources import BufferSource, ShardedBytes  # noqa: E402

EXAMPLES = int(os.environ.get("VOXTRAL_FUZZ_EXAMPLES", "500"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
BASE_BUDGET = 48 << 20  # bytes of peak traced memory allowed on top of the per-input-byte allowance
HANG_SECONDS = 30  # per example; examples take milliseconds, so only a hang gets here


class Hang(BaseException):
    """Raised by the alarm inside a hung example (a BaseException: no `except Exception` in the
    code under test can swallow it)."""


def _alarm(signum, frame):
    raise Hang(f"an example ran for more than {HANG_SECONDS} s: the parser hangs on this input")


def bounded(fn, nbytes: int, per_byte: int = 24):
    """Run fn(); VoxtralError is an acceptable outcome. Fails on any other exception, when the
    traced peak exceeds BASE_BUDGET + per_byte * nbytes, or when it runs past HANG_SECONDS."""
    tracemalloc.start()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    try:
        fn()
    except VoxtralError:
        pass
    except Hang as e:
        pytest.fail(str(e))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    limit = BASE_BUDGET + per_byte * nbytes
    assert peak <= limit, f"peak traced memory {peak / 2**20:.1f} MiB > {limit / 2**20:.1f} MiB"


# --------------------------------------------------------------------------- mutation strategy

INTERESTING_U64 = [0, 1, 2, 3, 31, 32, 33, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
                   1 << 32, 1 << 40, (1 << 63) - 1, 1 << 63, (1 << 64) - 1]


@st.composite
def mutated(draw, seed: bytes, hot: int | None = None, keep: int = 0):
    """`seed` with a few random edits: overwrite bytes, plant an 'interesting' u32/u64, cut, insert,
    delete. Edits land mostly in the first `hot` bytes (where the headers are) when given, and
    mostly after the first `keep` bytes (the magic, which every parser checks first)."""
    data = bytearray(seed)
    span = max(1, min(len(data), hot or len(data)))
    rnd = draw(st.randoms(use_true_random=False))  # uniform positions (st.integers favours the ends)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["bytes", "u32", "u64", "cut", "insert", "delete", "flip"]))
        lo = 0 if draw(st.integers(0, 9)) == 0 else min(keep, len(data) - 1)
        hi = span if draw(st.booleans()) else len(data)
        pos = rnd.randint(max(0, lo), max(0, lo, hi - 1))
        if kind == "bytes":
            data[pos:pos + 8] = draw(st.binary(min_size=1, max_size=8))
        elif kind in ("u32", "u64"):
            v = draw(st.sampled_from(INTERESTING_U64))
            fmt, mask = ("<I", 0xFFFFFFFF) if kind == "u32" else ("<Q", (1 << 64) - 1)
            packed = struct.pack(fmt, v & mask)
            data[pos:pos + len(packed)] = packed
        elif kind == "cut":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "delete":
            del data[pos:pos + draw(st.integers(1, 64))]
        else:
            if pos < len(data):
                data[pos] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


# ------------------------------------------------------------------------------------- GGUF

def _gguf_seed() -> bytes:
    """A small GGUF v3 with every metadata value type, string and nested arrays, and F32, F16,
    BF16 and Q4_0 tensors."""
    def s(t: str) -> bytes:
        b = t.encode()
        return struct.pack("<Q", len(b)) + b

    kv = [
        (s("general.name") + struct.pack("<I", 8) + s("fuzz")),
        (s("u8") + struct.pack("<IB", 0, 7)), (s("i8") + struct.pack("<Ib", 1, -7)),
        (s("u16") + struct.pack("<IH", 2, 7)), (s("i16") + struct.pack("<Ih", 3, -7)),
        (s("u32") + struct.pack("<II", 4, 7)), (s("i32") + struct.pack("<Ii", 5, -7)),
        (s("f32") + struct.pack("<If", 6, 0.5)), (s("bool") + struct.pack("<IB", 7, 1)),
        (s("u64") + struct.pack("<IQ", 10, 7)), (s("i64") + struct.pack("<Iq", 11, -7)),
        (s("f64") + struct.pack("<Id", 12, 0.25)),
        (s("arr.i32") + struct.pack("<IIQ", 9, 5, 3) + struct.pack("<3i", 1, 2, 3)),
        (s("arr.str") + struct.pack("<IIQ", 9, 8, 2) + s("a") + s("bc")),
        (s("arr.arr") + struct.pack("<IIQ", 9, 9, 1) + struct.pack("<IQ", 4, 2) + struct.pack("<2I", 1, 2)),
    ]
    tensors = [("f32", [8, 2], 0, 64), ("f16", [8], 1, 16), ("bf16", [4, 2], 30, 16), ("q4", [32, 2], 2, 36)]
    infos, offset = b"", 0
    for name, dims, typ, nbytes in tensors:
        infos += s(name) + struct.pack(f"<I{len(dims)}QIQ", len(dims), *dims, typ, offset)
        offset += -(-nbytes // 32) * 32
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv)) + b"".join(kv)
    table_at = len(head)
    head += infos
    head += bytes(-len(head) % 32)
    rng = np.random.default_rng(0)
    return head + rng.integers(0, 256, offset, dtype=np.uint8).tobytes(), table_at, len(head)


GGUF_SEED, GGUF_TABLE_AT, GGUF_DATA_AT = _gguf_seed()


def _read_all_gguf(blob: bytes, cuts=()):
    parts, prev = [], 0
    for c in sorted(set(c for c in cuts if 0 < c < len(blob))):
        parts.append(BufferSource(blob[prev:c]))
        prev = c
    parts.append(BufferSource(blob[prev:]))
    f = open_gguf(ShardedBytes(parts))
    for name in f.tensors:
        t = f.tensor(name)
        if hasattr(t, "dequantize"):
            t.dequantize()


def test_gguf_seed_is_valid():
    f = open_gguf(GGUF_SEED)
    assert set(f.tensors) == {"f32", "f16", "bf16", "q4"} and f.metadata["arr.str"] == ["a", "bc"]
    _read_all_gguf(GGUF_SEED, cuts=[5, 100])


@FUZZ
@given(blob=mutated(GGUF_SEED, hot=len(GGUF_SEED) - 160, keep=4), cuts=st.lists(st.integers(0, 2000), max_size=3))
def test_fuzz_gguf_mutations(blob, cuts):
    bounded(lambda: _read_all_gguf(blob, cuts), len(blob))


@FUZZ
@given(blob=mutated(GGUF_SEED, hot=GGUF_DATA_AT, keep=GGUF_TABLE_AT), cuts=st.lists(st.integers(0, 2000), max_size=2))
def test_fuzz_gguf_tensor_table(blob, cuts):
    bounded(lambda: _read_all_gguf(blob, cuts), len(blob))


@FUZZ
@given(n_tensors=st.sampled_from(INTERESTING_U64), n_kv=st.sampled_from(INTERESTING_U64),
       version=st.sampled_from([2, 3, 3, 1, 0x03000000]), tail=st.binary(max_size=512))
def test_fuzz_gguf_counts(n_tensors, n_kv, version, tail):
    blob = b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv) + tail
    bounded(lambda: _read_all_gguf(blob), len(blob))


# ------------------------------------------------------------------------------- safetensors

def _st_blob(header, data: bytes, hlen: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if hlen is None else hlen) + raw + data


def _read_all_st(path):
    f = SafetensorsFile(path)
    try:
        for name in f.names:
            try:
                f.tensor(name)
            except VoxtralError:
                pass  # e.g. an I64 tensor: unsupported dtype, said clearly; the others still read
    finally:
        f.close()


ST_SEED = _st_blob({"__metadata__": {"format": "pt"},
                    "a": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]},
                    "b": {"dtype": "F32", "shape": [2], "data_offsets": [12, 20]},
                    "c": {"dtype": "F16", "shape": [4], "data_offsets": [20, 28]},
                    "d": {"dtype": "I64", "shape": [1], "data_offsets": [28, 36]}}, bytes(range(36)))

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(1 << 65), 1 << 65),
                      st.floats(allow_nan=True), st.text(max_size=8))
entry = st.fixed_dictionaries(
    {"dtype": st.one_of(st.sampled_from(["F32", "F16", "BF16", "I64", "U8", "BOOL", "F8_E4M3", "Q4", ""]),
                        json_leaf),
     "shape": st.one_of(st.lists(st.one_of(st.integers(-2, 70), st.sampled_from(INTERESTING_U64)),
                                 max_size=4), json_leaf),
     "data_offsets": st.one_of(st.lists(st.one_of(st.integers(-2, 80), st.sampled_from(INTERESTING_U64)),
                                        min_size=2, max_size=2),
                               st.lists(json_leaf, max_size=3), json_leaf)})
headers = st.dictionaries(st.text(max_size=6), st.one_of(entry, json_leaf,
                                                         st.lists(json_leaf, max_size=3)), max_size=5)


@FUZZ
@given(header=headers, data=st.binary(max_size=96))
def test_fuzz_safetensors_headers(tmp_path, header, data):
    p = tmp_path / "f.safetensors"
    p.write_bytes(_st_blob(header, data))
    bounded(lambda: _read_all_st(p), p.stat().st_size)


@FUZZ
@given(blob=mutated(ST_SEED, keep=8), hlen=st.one_of(st.none(), st.sampled_from(INTERESTING_U64)))
def test_fuzz_safetensors_bytes(tmp_path, blob, hlen):
    if hlen is not None and len(blob) >= 8:
        blob = struct.pack("<Q", hlen) + blob[8:]
    p = tmp_path / "f.safetensors"
    p.write_bytes(blob)
    bounded(lambda: _read_all_st(p), len(blob))


def test_safetensors_json_bombs(tmp_path):
    """Deep nesting and huge numbers in the JSON header: a clear error, not RecursionError."""
    p = tmp_path / "b.safetensors"
    for raw in [b"[" * 200_000 + b"]" * 200_000, b'{"a": ' + b"9" * 100_000 + b"}",
                b'{"a": {"dtype": "F32", "shape": [1e999], "data_offsets": [0, 4]}}']:
        p.write_bytes(_st_blob(raw, b"\0" * 4))
        bounded(lambda: SafetensorsFile(p), len(raw), per_byte=64)
        with pytest.raises(VoxtralError, match="bad safetensors"):
            SafetensorsFile(p)


# -------------------------------------------------------------------------------------- WAV

def _wav_seeds() -> list[bytes]:
    rng = np.random.default_rng(1)
    x = rng.uniform(-0.9, 0.9, (300, 2)).astype(np.float32)
    out = [encode_wav(x, 16000), encode_wav(x[:, :1], 44100, "FLOAT"), encode_wav(x, 8000)]
    # 8-bit unsigned, 24-bit, 64-bit float, extensible, RF64: hand-built
    def riff(fmt_body: bytes, payload: bytes, extra=b"", riff_id=b"RIFF") -> bytes:
        body = (b"WAVE" + extra + b"fmt " + struct.pack("<I", len(fmt_body)) + fmt_body + b"data"
                + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1 else b""))
        return riff_id + struct.pack("<I", len(body)) + body
    out.append(riff(struct.pack("<HHIIHH", 1, 1, 22050, 22050, 1, 8), rng.integers(0, 256, 301, np.uint8).tobytes()))
    out.append(riff(struct.pack("<HHIIHH", 1, 6, 48000, 48000 * 18, 18, 24), rng.bytes(18 * 40)))
    out.append(riff(struct.pack("<HHIIHH", 3, 1, 192000, 192000 * 8, 8, 64), x[:, 0].astype("<f8").tobytes()))
    guid = struct.pack("<H", 1) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    ext = struct.pack("<HHIIHHHHI", 0xFFFE, 2, 16000, 64000, 4, 16, 22, 16, 3) + guid
    out.append(riff(ext, rng.bytes(4 * 100), extra=b"LIST" + struct.pack("<I", 5) + b"abcde\0"))
    out.append(riff(struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16), rng.bytes(200),
                    extra=b"ds64" + struct.pack("<I", 28) + struct.pack("<QQQI", 0, 200, 100, 0), riff_id=b"RF64"))
    return out


WAV_SEEDS = _wav_seeds()


def _read_wav_all(blob: bytes, how: str, tmp_path):
    if how == "bytes":
        samples, rate = read_wav(blob)
        assert samples.dtype == np.float32 and samples.ndim == 2 and rate > 0
        assert np.isfinite(samples).all()  # NaN / inf are refused, never returned
    elif how == "file":
        p = tmp_path / "f.wav"
        p.write_bytes(blob)
        with WavReader(p) as r:
            n = sum(len(b) for b in r.stream(16000, 0.05))
            assert n <= -(-r.n_frames * 16000 // r.rate) + 1
    elif how == "fileobj":
        read_wav(io.BytesIO(blob))
    else:
        y = load_audio(blob, 16000)
        assert y.dtype == np.float32 and y.ndim == 1 and np.isfinite(y).all()


def test_wav_seeds_are_valid(tmp_path):
    for blob in WAV_SEEDS:
        for how in ("bytes", "file", "fileobj", "load"):
            _read_wav_all(blob, how, tmp_path)


@FUZZ
@given(seed=st.sampled_from(range(len(WAV_SEEDS))), data=st.data(),
       how=st.sampled_from(["bytes", "file", "fileobj", "load"]))
def test_fuzz_wav_mutations(tmp_path, seed, data, how):
    blob = data.draw(mutated(WAV_SEEDS[seed], hot=80, keep=12))
    bounded(lambda: _read_wav_all(blob, how, tmp_path), len(blob), per_byte=400)  # 8-bit 1 kHz -> 16 kHz


@FUZZ
@given(tag=st.sampled_from([1, 3, 0xFFFE, 0, 2, 7, 0x55, 0xFFFF]), channels=st.sampled_from([0, 1, 2, 6, 255, 65535]),
       rate=st.sampled_from([0, 1, 999, 1000, 8000, 22051, 44100, 192000, 1_000_000, 1_000_001, 0xFFFFFFFF]),
       block_align=st.integers(0, 0xFFFF), bits=st.sampled_from([0, 1, 7, 8, 12, 16, 20, 24, 32, 64, 0xFFFF]),
       data_size=st.sampled_from([0, 1, 3, 100, 0xFFFFFFFF]), payload=st.binary(max_size=256),
       fmt_first=st.booleans(), fmt_size=st.sampled_from([14, 16, 18, 40, 0xFFFFFFFF]))
def test_fuzz_wav_headers(tag, channels, rate, block_align, bits, data_size, payload, fmt_first, fmt_size):
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * max(block_align, 1) & 0xFFFFFFFF, block_align, bits)
    fmt += struct.pack("<HHHI", 22, bits, 0, 3) + struct.pack("<H", 1) + bytes(14)  # extensible tail
    fmt_chunk = b"fmt " + struct.pack("<I", fmt_size) + fmt[:fmt_size if fmt_size < 40 else 40]
    data_chunk = b"data" + struct.pack("<I", data_size) + payload
    chunks = fmt_chunk + data_chunk if fmt_first else data_chunk + fmt_chunk
    blob = b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks
    bounded(lambda: load_audio(blob, 16000), len(blob), per_byte=400)


def test_a_hanging_parser_fails_instead_of_stalling(monkeypatch):
    """The wall-clock bound itself: an example that never ends is interrupted and fails."""
    monkeypatch.setattr(sys.modules[__name__], "HANG_SECONDS", 0.2)

    def forever():
        while True:
            pass

    with pytest.raises(pytest.fail.Exception, match="the parser hangs on this input"):
        bounded(forever, 0)


def test_many_tiny_chunks_is_refused_quickly():
    """A file of a million empty chunks must not take a million iterations per read."""
    blob = b"RIFF" + struct.pack("<I", 0) + b"WAVE" + (b"junk" + struct.pack("<I", 0)) * 1_000_000
    with pytest.raises(VoxtralError, match="RIFF chunks"):
        read_wav(blob)
