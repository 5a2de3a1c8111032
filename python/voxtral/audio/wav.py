"""WAV reading and writing with numpy and the standard library only (runs in Pyodide).

The stdlib `wave` module reads integer PCM only, so the RIFF container is parsed here:

    "RIFF" <u32 size> "WAVE"  then chunks:  <4-byte id> <u32 size> <size bytes> [pad byte if odd]

The "fmt " chunk gives format tag, channels, rate, block align and bits per sample (plus, for
WAVE_FORMAT_EXTENSIBLE, a sub-format GUID whose first two bytes are the real format tag); the
"data" chunk holds interleaved frames. Unknown chunks (LIST, fact, cue, ...) are skipped. RF64
files (the >4 GiB variant, sizes in a "ds64" chunk) are read too. Files are read block by block
(`WavReader`), never whole, so hour-long recordings cost only their decoded result.

Samples come back as float32 [n_samples, n_channels] in [-1, 1] with libsndfile's scaling
(the one `soundfile.read` uses): unsigned 8-bit (v-128)/128, signed k-bit v/2^(k-1), floats as
stored.
"""
from __future__ import annotations

import os
import struct

import numpy as np

from ..errors import AudioFormatError
from .resample import StreamingResampler, output_length

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


class _Bytes:
    """Random access to a WAV held in memory."""

    def __init__(self, buf, name: str):
        self.buf = memoryview(buf).cast("B")
        self.size = len(self.buf)
        self.name = name

    def read(self, offset: int, n: int) -> bytes:
        """Up to n bytes at offset (fewer at the end of the data)."""
        return bytes(self.buf[offset:offset + n])

    def array(self, offset: int, n: int) -> np.ndarray:
        return np.frombuffer(self.buf, dtype=np.uint8, count=n, offset=offset)

    def close(self) -> None:
        pass


class _File:
    """Random access to a WAV file on disk (or a seekable binary file object): nothing is read
    before it is needed, so an hour-long file is never held whole."""

    def __init__(self, f, name: str, owned: bool):
        self.f, self.name, self.owned = f, name, owned
        self.base = f.tell()
        self.size = f.seek(0, os.SEEK_END) - self.base

    def read(self, offset: int, n: int) -> bytes:
        self.f.seek(self.base + offset)
        return self.f.read(max(0, min(n, self.size - offset)))

    def array(self, offset: int, n: int) -> np.ndarray:
        out = np.empty(n, dtype=np.uint8)
        self.f.seek(self.base + offset)
        got = self.f.readinto(memoryview(out))
        if got != n:  # the file shrank under us
            raise AudioFormatError(f"{self.name}: the file changed while it was read")
        return out

    def close(self) -> None:
        if self.owned:
            self.f.close()


def _open_source(path_or_bytes):
    """A _Bytes or _File over the input, plus its name for error messages."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return _Bytes(path_or_bytes, "<bytes>")
    if hasattr(path_or_bytes, "read"):
        name = str(getattr(path_or_bytes, "name", "<file object>"))
        seekable = False
        try:
            seekable = path_or_bytes.seekable()
        except (AttributeError, OSError, ValueError):
            pass
        if seekable and hasattr(path_or_bytes, "readinto"):
            probe = path_or_bytes.read(0)
            if not isinstance(probe, (bytes, bytearray)):
                raise AudioFormatError("audio file object must be opened in binary mode")
            return _File(path_or_bytes, name, owned=False)
        data = path_or_bytes.read()
        if not isinstance(data, (bytes, bytearray)):
            raise AudioFormatError("audio file object must be opened in binary mode")
        return _Bytes(data, name)
    path = os.fspath(path_or_bytes)
    try:
        if os.path.isdir(path):
            raise IsADirectoryError(21, "Is a directory")
        return _File(open(path, "rb"), str(path), owned=True)
    except OSError as e:
        raise AudioFormatError(f"cannot read audio file {path}: {e.strerror or e}") from e


MAX_CHUNKS = 4096  # RIFF chunks looked at before giving up (real files have a handful)
MIN_RATE, MAX_RATE = 1000, 1_000_000  # sample rates accepted (Hz)
BLOCK_FRAMES = 1 << 16  # frames decoded per block when reading


def _iter_chunks(src, start: int, end: int):
    """Yield (chunk_id, body_offset, declared_size) for the RIFF chunks in src[start:end]."""
    pos = start
    n = 0
    while pos + 8 <= end:
        n += 1
        if n > MAX_CHUNKS:
            raise AudioFormatError(f"{src.name}: more than {MAX_CHUNKS} RIFF chunks before the audio: "
                                   "not a usable WAV file")
        head = src.read(pos, 8)
        chunk_id = head[:4]
        (size,) = struct.unpack_from("<I", head, 4)
        yield chunk_id, pos + 8, size
        pos += 8 + size + (size & 1)  # chunks are word-aligned: odd sizes carry a pad byte


class _Format:
    """The parsed "fmt " chunk."""

    def __init__(self, src, offset: int, size: int, name: str):
        body = src.read(offset, 40)
        if size < 16 or len(body) < 16:
            raise AudioFormatError(f"{name}: WAV 'fmt ' chunk is truncated ({size} bytes, need 16)")
        (self.tag, self.channels, self.rate, _byte_rate, self.block_align,
         self.bits) = struct.unpack_from("<HHIIHH", body, 0)
        if self.tag == WAVE_FORMAT_EXTENSIBLE:
            # cbSize(2) validBits(2) channelMask(4) subFormat GUID(16): tag = first 2 GUID bytes
            if size < 40 or len(body) < 40:
                raise AudioFormatError(f"{name}: WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk is truncated")
            (self.tag,) = struct.unpack_from("<H", body, 24)


def _sample_decoder(fmt: _Format, name: str):
    """(bytes of one stored sample, function raw uint8 array -> float32) for this format."""
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
    if not MIN_RATE <= fmt.rate <= MAX_RATE:
        raise AudioFormatError(f"{name}: WAV sample rate {fmt.rate} Hz is outside the supported "
                               f"{MIN_RATE} .. {MAX_RATE} Hz")
    # The container size per sample comes from block_align (bits may be e.g. 20 in a 24-bit
    # container, left-justified, so scaling by the container size is right).
    container = fmt.block_align // fmt.channels if fmt.block_align else 0
    if container * fmt.channels != fmt.block_align or container * 8 < fmt.bits or container == 0:
        container = (fmt.bits + 7) // 8  # inconsistent block_align: trust bits per sample
    if fmt.tag == WAVE_FORMAT_IEEE_FLOAT:
        if container not in (4, 8):
            raise AudioFormatError(f"{name}: {fmt.bits}-bit IEEE float WAV is not supported")
        dtype = np.dtype("<f4" if container == 4 else "<f8")

        def decode_float(raw):
            with np.errstate(over="ignore", invalid="ignore"):  # out of float32 range -> inf -> refused
                return raw.view(dtype).astype(np.float32)
        return container, decode_float
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


class WavReader:
    """A WAV file opened for reading: the header is parsed at once, the samples are decoded block
    by block on request, so files of any length are read in constant memory.

    `path_or_bytes`: a path, bytes-like data, or a binary file object. Attributes: rate, channels,
    n_frames, seconds, is_float. A data chunk that claims more bytes than the file holds (a
    truncated download, or a streamed WAV whose sizes were never filled in) is read as far as
    whole frames exist. Float samples that are NaN or infinite are refused (AudioFormatError):
    they are a corrupt file, and would silently turn the model's output into noise.
    Raises AudioFormatError for anything it cannot read.
    """

    def __init__(self, path_or_bytes):
        self._src = _open_source(path_or_bytes)
        try:
            self._parse()
        except BaseException:
            self._src.close()
            raise

    def _parse(self) -> None:
        src = self._src
        name = self.name = src.name
        if src.size < 12:
            raise AudioFormatError(f"{name}: file too short to be a WAV file ({src.size} bytes)")
        head = src.read(0, 64)
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
        for chunk_id, offset, size in _iter_chunks(src, 12, src.size):
            if chunk_id == b"ds64" and riff == b"RF64":
                body = src.read(offset, 24)
                if len(body) == 24:
                    (rf64_data_size,) = struct.unpack_from("<Q", body, 8)
            elif chunk_id == b"fmt ":
                fmt = _Format(src, offset, size, name)
            elif chunk_id == b"data":
                data_offset = offset
                data_size = rf64_data_size if (riff == b"RF64" and size == 0xFFFFFFFF
                                               and rf64_data_size is not None) else size
                if fmt is not None or offset + data_size >= src.size:
                    break  # have all we need, or the data runs to the end of the file
        if fmt is None:
            raise AudioFormatError(f"{name}: WAV file has no 'fmt ' chunk (header missing or truncated)")
        if data_offset is None:
            raise AudioFormatError(f"{name}: WAV file has no 'data' chunk")
        bytes_per_sample, self._decode = _sample_decoder(fmt, name)
        self.channels = int(fmt.channels)
        self.rate = int(fmt.rate)
        self.is_float = fmt.tag == WAVE_FORMAT_IEEE_FLOAT
        self._frame_bytes = bytes_per_sample * fmt.channels
        self._data_offset = data_offset
        available = min(data_size, src.size - data_offset)
        self.n_frames = max(available, 0) // self._frame_bytes
        if self.n_frames == 0:
            why = "is empty" if data_size == 0 else "is truncated to less than one frame"
            raise AudioFormatError(f"{name}: WAV file has no audio samples (the data chunk {why})")

    @property
    def seconds(self) -> float:
        return self.n_frames / self.rate

    def blocks(self, frames: int = BLOCK_FRAMES, start: int = 0):
        """Yield float32 [k, channels] blocks of at most `frames` frames, in order."""
        frames = max(1, int(frames))
        for f0 in range(start, self.n_frames, frames):
            k = min(frames, self.n_frames - f0)
            raw = self._src.array(self._data_offset + f0 * self._frame_bytes, k * self._frame_bytes)
            block = self._decode(raw).reshape(k, self.channels)
            if self.is_float and not np.isfinite(block).all():
                bad = f0 + int(np.argmin(np.isfinite(block).all(axis=1)))
                raise AudioFormatError(
                    f"{self.name}: the WAV holds NaN or infinite samples (the first at frame {bad}, "
                    f"{bad / self.rate:.3f} s): the file is corrupt; re-export it")
            yield block

    def check_finite(self) -> None:
        """Scan a float WAV for NaN / infinity (raises AudioFormatError); integer PCM has none."""
        if self.is_float:
            for _ in self.blocks():
                pass

    def read(self) -> np.ndarray:
        """All samples: float32 [n_frames, channels]."""
        out = np.empty((self.n_frames, self.channels), dtype=np.float32)
        pos = 0
        for block in self.blocks():
            out[pos:pos + len(block)] = block
            pos += len(block)
        return out

    def mono_blocks(self, frames: int = BLOCK_FRAMES):
        """Yield float32 [k] blocks with the channels averaged."""
        for block in self.blocks(frames):
            yield to_mono(block)

    def stream(self, target_rate: int = 16000, seconds: float = 1.0):
        """Yield mono float32 pieces at `target_rate`, about `seconds` of audio each (the last
        ones may be shorter): the whole file, resampled on the way, in constant memory."""
        rs = StreamingResampler(self.rate, target_rate)
        frames = max(1, int(round(seconds * self.rate)))
        for block in self.mono_blocks(frames):
            out = rs.push(block)
            if out.size:
                yield out
        out = rs.finish()
        if out.size:
            yield out

    def close(self) -> None:
        self._src.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_wav(path_or_bytes) -> tuple[np.ndarray, int]:
    """Read a WAV file (path, bytes or binary file object).

    Returns (samples float32 [n_samples, n_channels], sample_rate). See WavReader for what is
    accepted; raises AudioFormatError otherwise.
    """
    with WavReader(path_or_bytes) as r:
        return r.read(), r.rate


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
    """Read a WAV file, average its channels and resample to `target_rate`: float32 [n].

    Decoded and resampled block by block: peak memory is the result (64 KB per second at 16 kHz,
    230 MB per hour) plus a few MB, whatever the file's rate and channel count."""
    with WavReader(path_or_bytes) as r:
        rs = StreamingResampler(r.rate, target_rate)
        out = np.empty(output_length(r.n_frames, rs.up, rs.down), dtype=np.float32)
        pos = 0
        for block in r.mono_blocks():
            y = rs.push(block)
            out[pos:pos + y.size] = y
            pos += y.size
        y = rs.finish()
        out[pos:pos + y.size] = y
        assert pos + y.size == out.size, (pos + y.size, out.size)
        return out


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
