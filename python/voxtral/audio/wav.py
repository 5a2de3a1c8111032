"""WAV reading and writing with numpy and the standard library only (runs in Pyodide).

The stdlib `wave` module reads integer PCM only, so the RIFF container is parsed here:

    "RIFF" <u32 size> "WAVE"  then chunks:  <4-byte id> <u32 size> <size bytes> [pad byte if odd]

The "fmt " chunk gives format tag, channels, rate, block align and bits per sample (plus, for
WAVE_FORMAT_EXTENSIBLE, a sub-format GUID whose first two bytes are the real format tag); the
"data" chunk holds interleaved frames. Unknown chunks (LIST, fact, cue, ...) are skipped. RF64
files (the >4 GiB variant, sizes in a "ds64" chunk) are read too.

Samples come back as float32 [n_samples, n_channels] in [-1, 1] with libsndfile's scaling
(the one `soundfile.read` uses): unsigned 8-bit (v-128)/128, signed k-bit v/2^(k-1), floats as
stored.
"""
from __future__ import annotations

import os
import struct

import numpy as np

from ..errors import AudioFormatError
from .resample import resample

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_EXTENSIBLE = 0xFFFE

# Tags we cannot decode, named in the error so the user knows what the file is.
_COMPRESSED_FORMAT_NAMES = {
    0x0000: "unknown/invalid (0)",
    0x0002: "Microsoft ADPCM",
    0x0006: "A-law (G.711)",
    0x0007: "mu-law (G.711)",
    0x0011: "IMA ADPCM",
    0x0022: "TrueSpeech",
    0x0031: "GSM 6.10",
    0x0040: "G.721 ADPCM",
    0x0050: "MPEG audio",
    0x0055: "MPEG Layer 3 (MP3)",
    0x0092: "Dolby AC-3 SPDIF",
    0x00FF: "AAC",
    0x0161: "Windows Media Audio",
    0x0162: "Windows Media Audio Pro",
    0x0163: "Windows Media Audio Lossless",
    0x1610: "HE-AAC",
    0x2000: "Dolby AC-3",
    0xF1AC: "FLAC",
}

# Leading bytes of other formats, to say what a non-WAV file looks like.
_SIGNATURES = [
    (b"ID3", "MP3 audio (ID3 tag)"),
    (b"fLaC", "FLAC audio"),
    (b"OggS", "Ogg (Vorbis/Opus) audio"),
    (b"\x1a\x45\xdf\xa3", "WebM/Matroska"),
    (b"FORM", "AIFF audio"),
    (b"RIFX", "big-endian RIFF (RIFX), which is not supported"),
    (b"NIST_1A", "NIST SPHERE audio"),
    (b".snd", "Sun/NeXT AU audio"),
    (b"caff", "Core Audio (CAF)"),
    (b"#!AMR", "AMR audio"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"%PDF", "a PDF document"),
    (b"<!DOCTYPE", "an HTML page"),
    (b"<html", "an HTML page"),
    (b"{", "JSON/text"),
]

_CONVERT_HINT = "convert it to WAV first, e.g. `ffmpeg -i INPUT -ar 16000 -ac 1 out.wav`"


# ----------------------------------------------------------------------------------- reading


def _describe_non_wav(head: bytes) -> str:
    """A short guess at what `head` (the first bytes of a file) is."""
    for magic, name in _SIGNATURES:
        if head.startswith(magic):
            return name
    if head[4:8] == b"ftyp":
        return "MP4/M4A/MOV (ISO media)"
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:
        return "MPEG audio (MP3/AAC frame sync)"
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head[:64]):
        return f"text ({head[:24]!r}...)"
    return f"unknown data (first bytes {head[:12].hex(' ')})"


def _read_source(path_or_bytes) -> tuple[bytes | memoryview, str]:
    """The file's bytes and a name for error messages."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return memoryview(path_or_bytes).cast("B"), "<bytes>"
    if hasattr(path_or_bytes, "read"):
        data = path_or_bytes.read()
        if not isinstance(data, (bytes, bytearray)):
            raise AudioFormatError("audio file object must be opened in binary mode")
        return data, getattr(path_or_bytes, "name", "<file object>")
    path = os.fspath(path_or_bytes)
    try:
        with open(path, "rb") as f:
            return f.read(), str(path)
    except OSError as e:
        raise AudioFormatError(f"cannot read audio file {path}: {e.strerror or e}") from e


def _iter_chunks(data, start: int, end: int):
    """Yield (chunk_id, body_offset, declared_size) for the RIFF chunks in data[start:end]."""
    pos = start
    while pos + 8 <= end:
        chunk_id = bytes(data[pos : pos + 4])
        (size,) = struct.unpack_from("<I", data, pos + 4)
        yield chunk_id, pos + 8, size
        pos += 8 + size + (size & 1)  # chunks are word-aligned: odd sizes carry a pad byte


class _Format:
    """The parsed "fmt " chunk."""

    def __init__(self, data, offset: int, size: int, name: str):
        if size < 16 or offset + 16 > len(data):
            raise AudioFormatError(f"{name}: WAV 'fmt ' chunk is truncated ({size} bytes, need 16)")
        (self.tag, self.channels, self.rate, _byte_rate, self.block_align,
         self.bits) = struct.unpack_from("<HHIIHH", data, offset)
        if self.tag == WAVE_FORMAT_EXTENSIBLE:
            # cbSize(2) validBits(2) channelMask(4) subFormat GUID(16): tag = first 2 GUID bytes
            if size < 40 or offset + 40 > len(data):
                raise AudioFormatError(f"{name}: WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk is truncated")
            (self.tag,) = struct.unpack_from("<H", data, offset + 24)


def _sample_decoder(fmt: _Format, name: str):
    """(numpy dtype of one stored sample, function raw array -> float32) for this format."""
    if fmt.tag not in (WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT):
        what = _COMPRESSED_FORMAT_NAMES.get(fmt.tag, "a compressed or unsupported encoding")
        raise AudioFormatError(
            f"{name}: WAV format tag 0x{fmt.tag:04X} ({what}) is not supported; only PCM "
            f"(8/16/24/32-bit) and IEEE float (32/64-bit) can be read: {_CONVERT_HINT}"
        )
    if fmt.channels == 0:
        raise AudioFormatError(f"{name}: WAV header says 0 channels")
    if fmt.rate == 0:
        raise AudioFormatError(f"{name}: WAV header says a sample rate of 0 Hz")
    # The container size per sample comes from block_align (bits may be e.g. 20 in a 24-bit
    # container, left-justified, so scaling by the container size is right).
    container = fmt.block_align // fmt.channels if fmt.block_align else 0
    if container * fmt.channels != fmt.block_align or container * 8 < fmt.bits or container == 0:
        container = (fmt.bits + 7) // 8  # inconsistent block_align: trust bits per sample
    if fmt.tag == WAVE_FORMAT_IEEE_FLOAT:
        if container not in (4, 8):
            raise AudioFormatError(f"{name}: {fmt.bits}-bit IEEE float WAV is not supported")
        dtype = np.dtype("<f4" if container == 4 else "<f8")
        return container, lambda raw: raw.view(dtype).astype(np.float32)
    if container == 1:  # 8-bit WAV is unsigned with 128 = silence
        return 1, lambda raw: ((raw.astype(np.float32) - 128.0) * (1.0 / 128.0))
    if container == 2:
        return 2, lambda raw: raw.view("<i2").astype(np.float32) * np.float32(1 / 32768)
    if container == 3:
        return 3, _decode_int24
    if container == 4:
        return 4, lambda raw: (raw.view("<i4").astype(np.float64) * (1 / 2**31)).astype(np.float32)
    raise AudioFormatError(f"{name}: {fmt.bits}-bit PCM WAV is not supported")


def _decode_int24(raw: np.ndarray) -> np.ndarray:
    """Little-endian signed 24-bit -> float32: place the 3 bytes in the top of an int32."""
    triples = raw.reshape(-1, 3)
    words = np.zeros((triples.shape[0], 4), dtype=np.uint8)
    words[:, 1:] = triples
    return (words.view("<i4")[:, 0].astype(np.float64) * (1 / 2**31)).astype(np.float32)


def read_wav(path_or_bytes) -> tuple[np.ndarray, int]:
    """Read a WAV file (path, bytes or binary file object).

    Returns (samples float32 [n_samples, n_channels], sample_rate). A data chunk that claims more
    bytes than the file holds (a truncated download, or a streamed WAV whose sizes were never
    filled in) is read as far as whole frames exist. Raises AudioFormatError otherwise.
    """
    data, name = _read_source(path_or_bytes)
    if len(data) < 12:
        raise AudioFormatError(f"{name}: file too short to be a WAV file ({len(data)} bytes)")
    head = bytes(data[:64])
    riff, wave = head[:4], head[8:12]
    if riff not in (b"RIFF", b"RF64") or wave != b"WAVE":
        if riff == b"RIFF":
            what = f"a RIFF file of type {wave!r}, not WAVE"
        else:
            what = _describe_non_wav(head)
        raise AudioFormatError(f"{name}: not a WAV (RIFF/WAVE) file; it looks like {what}: "
                               f"{_CONVERT_HINT}")

    fmt = None
    data_offset = data_size = None
    rf64_data_size = None
    for chunk_id, offset, size in _iter_chunks(data, 12, len(data)):
        if chunk_id == b"ds64" and riff == b"RF64" and offset + 24 <= len(data):
            (rf64_data_size,) = struct.unpack_from("<Q", data, offset + 8)
        elif chunk_id == b"fmt ":
            fmt = _Format(data, offset, size, name)
        elif chunk_id == b"data":
            data_offset = offset
            data_size = rf64_data_size if (riff == b"RF64" and size == 0xFFFFFFFF
                                           and rf64_data_size is not None) else size
            if fmt is not None or offset + data_size >= len(data):
                break  # have all we need, or the data runs to the end of the file
    if fmt is None:
        raise AudioFormatError(f"{name}: WAV file has no 'fmt ' chunk (header missing or truncated)")
    if data_offset is None:
        raise AudioFormatError(f"{name}: WAV file has no 'data' chunk")

    bytes_per_sample, decode = _sample_decoder(fmt, name)
    frame_bytes = bytes_per_sample * fmt.channels
    available = min(data_size, len(data) - data_offset)
    n_frames = max(available, 0) // frame_bytes
    if n_frames == 0:
        why = "is empty" if data_size == 0 else "is truncated to less than one frame"
        raise AudioFormatError(f"{name}: WAV file has no audio samples (the data chunk {why})")
    raw = np.frombuffer(data, dtype=np.uint8, count=n_frames * frame_bytes, offset=data_offset)
    samples = decode(raw).reshape(n_frames, fmt.channels)
    return samples, int(fmt.rate)


def to_mono(samples) -> np.ndarray:
    """Average the channels of [n, channels] samples -> float32 [n]; a 1-D input is returned as is."""
    x = np.asarray(samples)
    if x.ndim == 1:
        return x.astype(np.float32, copy=False)
    if x.ndim != 2 or x.shape[1] == 0:
        raise AudioFormatError(f"expected [n_samples, n_channels] audio, got shape {x.shape}")
    if x.shape[1] == 1:
        return x[:, 0].astype(np.float32)
    return x.mean(axis=1, dtype=np.float64).astype(np.float32)


def load_audio(path_or_bytes, target_rate: int = 16000) -> np.ndarray:
    """Read a WAV file, average its channels and resample to `target_rate`: float32 [n]."""
    samples, rate = read_wav(path_or_bytes)
    return resample(to_mono(samples), rate, target_rate)


# ----------------------------------------------------------------------------------- writing


def encode_wav(samples, rate: int, subtype: str = "PCM_16") -> bytes:
    """A complete WAV file as bytes. `samples`: [n] or [n, channels] floats in [-1, 1].

    subtype "PCM_16" (scaled by 32768, rounded and clipped, the inverse of read_wav's scaling)
    or "FLOAT" (IEEE float32, written as is).
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"expected [n] or [n, channels] samples, got shape {x.shape}")
    rate = int(rate)
    channels = x.shape[1]
    if subtype == "PCM_16":
        tag, width = WAVE_FORMAT_PCM, 2
        payload = np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2").tobytes()
        fmt_body = struct.pack("<HHIIHH", tag, channels, rate, rate * channels * width,
                               channels * width, 8 * width)
        extra_chunks = b""
    elif subtype == "FLOAT":
        tag, width = WAVE_FORMAT_IEEE_FLOAT, 4
        payload = x.astype("<f4").tobytes()
        # Non-PCM formats carry cbSize in fmt and a "fact" chunk with the frame count.
        fmt_body = struct.pack("<HHIIHHH", tag, channels, rate, rate * channels * width,
                               channels * width, 8 * width, 0)
        extra_chunks = b"fact" + struct.pack("<II", 4, x.shape[0])
    else:
        raise ValueError(f"subtype must be 'PCM_16' or 'FLOAT', got {subtype!r}")
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_body)) + fmt_body + extra_chunks
            + b"data" + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1 else b""))
    return b"RIFF" + struct.pack("<I", len(body)) + body


def write_wav(path, samples, rate: int, subtype: str = "PCM_16") -> None:
    """Write `samples` ([n] or [n, channels], floats in [-1, 1]) to a WAV file (path or binary file)."""
    blob = encode_wav(samples, rate, subtype)
    if hasattr(path, "write"):
        path.write(blob)
        return
    with open(os.fspath(path), "wb") as f:
        f.write(blob)
