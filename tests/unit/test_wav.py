"""read_wav / write_wav / to_mono / load_audio: the numpy RIFF parser against soundfile (libsndfile).

Files are written with soundfile from fresh random samples; the seed is in every failure message
(set VOXTRAL_TEST_SEED to replay one).
"""
import io
import os
import secrets
import struct

import numpy as np
import pytest

from voxtral.audio import encode_wav, load_audio, read_wav, resample, to_mono, write_wav
from voxtral.errors import AudioFormatError, VoxtralError

sf = pytest.importorskip("soundfile")

SUBTYPES = ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"]


@pytest.fixture
def seed():
    return int(os.environ.get("VOXTRAL_TEST_SEED", secrets.randbits(32)))


def _soundfile_wav(samples, rate, subtype, fmt="WAV"):
    buf = io.BytesIO()
    sf.write(buf, samples, rate, subtype=subtype, format=fmt)
    return buf.getvalue()


def _assert_same_as_soundfile(blob, seed, what):
    ref, ref_rate = sf.read(io.BytesIO(blob), dtype="float32", always_2d=True)
    ours, rate = read_wav(blob)
    assert rate == ref_rate, f"seed={seed} {what}"
    assert ours.dtype == np.float32 and ours.shape == ref.shape, f"seed={seed} {what}: {ours.shape} vs {ref.shape}"
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-7, err_msg=f"seed={seed} {what}")


@pytest.mark.parametrize("subtype", SUBTYPES)
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_matches_soundfile(subtype, channels, seed):
    rng = np.random.default_rng(seed)
    rate = int(rng.choice([8000, 11025, 16000, 22050, 44100, 48000, 96000]))
    n = int(rng.integers(1, 3000))
    samples = rng.uniform(-1, 1, (n, channels)).astype(np.float64)
    _assert_same_as_soundfile(_soundfile_wav(samples, rate, subtype), seed,
                              f"{subtype} ch={channels} rate={rate} n={n}")


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_extensible_and_rf64(subtype, seed):
    rng = np.random.default_rng(seed)
    samples = rng.uniform(-1, 1, (777, 3))
    for fmt in ["WAVEX", "RF64"]:
        blob = _soundfile_wav(samples, 32000, subtype, fmt)
        if fmt == "WAVEX":
            assert struct.unpack_from("<H", blob, 20)[0] == 0xFFFE  # really WAVE_FORMAT_EXTENSIBLE
        _assert_same_as_soundfile(blob, seed, f"{fmt} {subtype}")


def test_stereo_8bit_values():
    # Unsigned 8-bit: 0 -> -1, 128 -> 0, 255 -> 127/128; left/right interleaved.
    raw = bytes([0, 255, 128, 64])
    blob = _riff([_fmt_chunk(1, 2, 8000, 8), _chunk(b"data", raw)])
    ours, rate = read_wav(blob)
    assert rate == 8000
    np.testing.assert_array_equal(ours, np.array([[-1.0, 127 / 128], [0.0, -0.5]], np.float32))
    _assert_same_as_soundfile(blob, 0, "stereo u8")


def test_paths_file_objects_and_mono(tmp_path, seed):
    rng = np.random.default_rng(seed)
    samples = rng.uniform(-1, 1, (1000, 2))
    path = tmp_path / "x.wav"
    sf.write(path, samples, 22050, subtype="PCM_16")
    from_path, rate = read_wav(path)
    from_str, _ = read_wav(str(path))
    with open(path, "rb") as f:
        from_file, _ = read_wav(f)
    np.testing.assert_array_equal(from_path, from_str)
    np.testing.assert_array_equal(from_path, from_file)
    mono = to_mono(from_path)
    np.testing.assert_allclose(mono, from_path.mean(axis=1), atol=1e-7, err_msg=f"seed={seed}")
    assert mono.dtype == np.float32 and mono.shape == (1000,)
    loaded = load_audio(path, 16000)
    np.testing.assert_array_equal(loaded, resample(mono, 22050, 16000))
    np.testing.assert_array_equal(load_audio(path, 22050), mono)


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_write_wav_roundtrip(tmp_path, subtype, seed):
    rng = np.random.default_rng(seed)
    for shape in [(501,), (500, 2), (33, 6)]:
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        path = tmp_path / f"w{len(shape)}.wav"
        write_wav(path, x, 16000, subtype=subtype)
        ref, rate = sf.read(path, dtype="float32", always_2d=True)
        ours, our_rate = read_wav(path)
        assert rate == our_rate == 16000
        np.testing.assert_array_equal(ours, ref)
        tol = 0 if subtype == "FLOAT" else 1 / 65536 + 1e-9
        np.testing.assert_allclose(ours, x.reshape(ours.shape), rtol=0, atol=tol, err_msg=f"seed={seed}")
    # PCM16 clips instead of wrapping.
    clipped, _ = read_wav(encode_wav(np.array([2.0, -2.0, 1.0]), 8000))
    np.testing.assert_array_equal(clipped[:, 0], [32767 / 32768, -1.0, 32767 / 32768])


# ------------------------------------------------------------------------ hand-made files


def _chunk(chunk_id: bytes, body: bytes) -> bytes:
    return chunk_id + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")


def _fmt_chunk(tag, channels, rate, bits, block_align=None):
    block_align = channels * ((bits + 7) // 8) if block_align is None else block_align
    return _chunk(b"fmt ", struct.pack("<HHIIHH", tag, channels, rate, rate * block_align, block_align, bits))


def _riff(chunks, riff=b"RIFF", form=b"WAVE"):
    body = form + b"".join(chunks)
    return riff + struct.pack("<I", len(body)) + body


def test_odd_sized_and_unknown_chunks(seed):
    rng = np.random.default_rng(seed)
    pcm = rng.integers(0, 256, 7, dtype=np.uint8).tobytes()  # 7 bytes: data chunk needs a pad byte
    blob = _riff([
        _chunk(b"junk", b"abc"),  # odd unknown chunk before fmt
        _fmt_chunk(1, 1, 11025, 8),
        _chunk(b"LIST", b"INFOISFT\x05\x00\x00\x00test\x00"),
        _chunk(b"data", pcm),
        _chunk(b"cue ", b"\x00" * 5),  # after data, odd again
    ])
    ours, rate = read_wav(blob)
    assert rate == 11025
    np.testing.assert_array_equal(ours[:, 0], (np.frombuffer(pcm, np.uint8) - 128.0) / 128.0)
    _assert_same_as_soundfile(blob, seed, "odd chunks")


def test_data_before_fmt():
    pcm = np.array([1000, -2000, 3000], "<i2").tobytes()
    ours, _ = read_wav(_riff([_chunk(b"data", pcm), _fmt_chunk(1, 1, 16000, 16)]))
    np.testing.assert_array_equal(ours[:, 0], np.array([1000, -2000, 3000]) / 32768)


def test_truncated_data_chunk_uses_what_is_there(seed):
    rng = np.random.default_rng(seed)
    samples = rng.uniform(-1, 1, (1000, 2))
    blob = _soundfile_wav(samples, 16000, "PCM_24")
    cut = blob[: len(blob) - 1000 * 6 // 2 - 4]  # half the frames, plus a partial frame
    ours, rate = read_wav(cut)
    full, _ = read_wav(blob)
    n = ours.shape[0]
    assert 490 <= n < 500, f"seed={seed}"
    np.testing.assert_array_equal(ours, full[:n])
    # A streamed WAV with 0xFFFFFFFF sizes reads to the end of the file.
    streamed = bytearray(blob)
    streamed[4:8] = b"\xff\xff\xff\xff"
    data_at = bytes(blob).index(b"data")
    streamed[data_at + 4 : data_at + 8] = b"\xff\xff\xff\xff"
    np.testing.assert_array_equal(read_wav(bytes(streamed))[0], full)


@pytest.mark.parametrize(
    "blob, message",
    [
        (b"RIFF\x00\x00", "too short"),
        (b"", "too short"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x00" * 100, "MP3"),
        (b"\xff\xfb\x90\x64" + b"\x00" * 100, "MPEG audio"),
        (b"fLaC\x00\x00\x00\x22" + b"\x00" * 40, "FLAC"),
        (b"OggS" + b"\x00" * 40, "Ogg"),
        (b"\x00\x00\x00\x20ftypM4A " + b"\x00" * 40, "MP4"),
        (b"hello, this is just some text, not audio at all", "text"),
        (b"RIFF\x10\x00\x00\x00AVI LIST\x00\x00\x00\x00", "not WAVE"),
        (_riff([_fmt_chunk(2, 1, 8000, 4, 256), _chunk(b"data", b"\x00" * 256)]), "0x0002 (Microsoft ADPCM)"),
        (_riff([_fmt_chunk(0x55, 2, 44100, 0, 1), _chunk(b"data", b"\x00" * 16)]), "MP3"),
        (_riff([_fmt_chunk(7, 1, 8000, 8), _chunk(b"data", b"\x00" * 16)]), "mu-law"),
        (_riff([_fmt_chunk(1, 1, 8000, 16)]), "no 'data' chunk"),
        (_riff([_chunk(b"data", b"\x00" * 16)]), "no 'fmt ' chunk"),
        (_riff([]), "no 'fmt ' chunk"),
        (_riff([_chunk(b"fmt ", b"\x01\x00\x01\x00")]), "truncated"),
        (_riff([_fmt_chunk(1, 0, 8000, 16, 0), _chunk(b"data", b"\x00" * 16)]), "0 channels"),
        (_riff([_fmt_chunk(1, 1, 8000, 16), _chunk(b"data", b"")]), "no audio samples"),
        (_riff([_fmt_chunk(1, 2, 8000, 16), _chunk(b"data", b"\x00" * 3)]), "no audio samples"),
        (_riff([_fmt_chunk(3, 1, 8000, 16), _chunk(b"data", b"\x00" * 4)]), "16-bit IEEE float"),
    ],
)
def test_bad_files_raise_clear_errors(blob, message):
    with pytest.raises(AudioFormatError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        read_wav(blob)
    assert isinstance(info.value, VoxtralError)


def test_truncated_header_of_real_file(seed):
    blob = _soundfile_wav(np.zeros((10, 1)), 16000, "PCM_16")
    for cut, message in [(11, "too short"), (12, "no 'fmt ' chunk"), (30, "truncated"), (40, "no 'data'")]:
        with pytest.raises(AudioFormatError, match=message):
            read_wav(blob[:cut])


def test_extensible_compressed_subformat_is_named():
    # WAVE_FORMAT_EXTENSIBLE whose sub-format GUID says IMA ADPCM (0x0011).
    guid = struct.pack("<H", 0x0011) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    body = struct.pack("<HHIIHHHHI", 0xFFFE, 1, 8000, 4000, 256, 4, 22, 4, 4) + guid
    blob = _riff([_chunk(b"fmt ", body), _chunk(b"data", b"\x00" * 256)])
    with pytest.raises(AudioFormatError, match="0x0011 .IMA ADPCM."):
        read_wav(blob)


def test_missing_file_is_audio_format_error(tmp_path):
    with pytest.raises(AudioFormatError, match="cannot read"):
        read_wav(tmp_path / "nope.wav")
