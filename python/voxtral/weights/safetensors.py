"""safetensors reader (memory-mapped) and a small BF16 writer for test models (spec §3.1).

Format: u64 little-endian header length N, N bytes of JSON
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the data;
offsets are relative to the first byte after the header.
"""
from __future__ import annotations

import difflib
import json
import math
import os
import struct
from typing import Iterator

import numpy as np

from ..errors import MissingTensorError, ModelFormatError
from .sources import FileSource

_MAX_HEADER = 100 << 20  # the safetensors library's own limit on the JSON header
_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2,
             "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
_READABLE = ("F32", "F16", "BF16")


class SafetensorsFile:
    """Header parsed at open; tensors converted to float32 on request from a memory map."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._src = FileSource(self.path)
        size = self._src.size
        if size < 8:
            raise ModelFormatError(f"truncated safetensors file {self.path!r}: {size} bytes, "
                                   f"but it must start with an 8-byte header length")
        (hlen,) = struct.unpack("<Q", self._src.read(0, 8))
        if hlen > min(size - 8, _MAX_HEADER):
            raise ModelFormatError(
                f"bad safetensors header length {hlen} in {self.path!r}: the file is {size} bytes "
                f"(truncated file, or not a safetensors file)")
        try:
            header = json.loads(self._src.read(8, hlen).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:  # ValueError: JSON errors, huge ints
            raise ModelFormatError(f"bad safetensors JSON header in {self.path!r}: "
                                   f"{str(e)[:200] or type(e).__name__}") from None
        if not isinstance(header, dict):
            raise ModelFormatError(f"bad safetensors header in {self.path!r}: not a JSON object")
        self.data_start = 8 + hlen
        self.metadata = header.pop("__metadata__", None) or {}
        if not isinstance(self.metadata, dict):
            raise ModelFormatError(f"bad safetensors header in {self.path!r}: __metadata__ is not an object")
        data_size = size - self.data_start
        self._entries: dict[str, tuple[str, tuple[int, ...], int, int]] = {}
        for name, e in header.items():
            self._entries[name] = self._check_entry(name, e, data_size)
        # Two tensors sharing bytes is a corrupt (or malicious) header: refuse it.
        spans = sorted((b, e, n) for n, (_, _, b, e) in self._entries.items() if e > b)
        for (a0, a1, a), (b0, b1, b) in zip(spans, spans[1:]):
            if b0 < a1:
                raise ModelFormatError(f"tensors {a!r} (data_offsets [{a0}, {a1}]) and {b!r} (data_offsets "
                                       f"[{b0}, {b1}]) overlap in {self.path!r} (corrupt header)")
        self._mm = None

    def _check_entry(self, name, e, data_size):
        def is_int(v):
            return isinstance(v, int) and not isinstance(v, bool)

        try:
            dtype, shape, (begin, end) = e["dtype"], tuple(e["shape"]), e["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise ModelFormatError(f"bad safetensors header entry for tensor {name!r}: {str(e)[:200]}") from None
        if not (all(is_int(d) and d >= 0 for d in shape) and is_int(begin) and is_int(end)):
            raise ModelFormatError(f"bad safetensors header entry for tensor {name!r}: shape and data_offsets "
                                   f"must be non-negative integers, got {str(e)[:200]}")
        if math.prod(max(d, 1) for d in shape) > 1 << 48:  # e.g. [0, 2^62]: 0 bytes, but no array
            raise ModelFormatError(f"tensor {name!r} has an absurd shape {list(shape)[:8]}")
        if not isinstance(dtype, str) or dtype not in _ITEMSIZE:
            raise ModelFormatError(f"tensor {name!r} has unknown safetensors dtype {str(dtype)[:40]!r}")
        if not 0 <= begin <= end:
            raise ModelFormatError(f"tensor {name!r} has bad data_offsets [{begin}, {end}]")
        if end > data_size:
            raise ModelFormatError(
                f"tensor {name!r} runs past the end of the file: data_offsets end {end} but the "
                f"data section is only {data_size} bytes (truncated file?)")
        if end - begin != math.prod(shape) * _ITEMSIZE[dtype]:
            raise ModelFormatError(f"tensor {name!r}: {end - begin} data bytes do not match "
                                   f"shape {list(shape)} of {dtype}")
        return dtype, shape, begin, end

    def _bytes(self, begin: int, end: int) -> np.ndarray:
        """uint8 view of data bytes [begin, end): from the memory map, else a plain read."""
        if end == begin:
            return np.empty(0, np.uint8)
        if self._mm is None:
            try:
                import mmap  # may be missing or limited in a browser runtime

                fh = self._src._file()
                self._mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            except (ImportError, OSError, ValueError, AttributeError):
                self._mm = False
        if self._mm is False:
            return np.frombuffer(self._src.read(self.data_start + begin, end - begin), np.uint8)
        return np.frombuffer(self._mm, np.uint8, count=end - begin, offset=self.data_start + begin)

    @property
    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def _entry(self, name: str):
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._entries, n=3)
            hint = f"; similar names: {close}" if close else ""
            raise MissingTensorError(f"tensor {name!r} is not in {self.path!r} "
                                     f"({len(self._entries)} tensors){hint}") from None

    def shape(self, name: str) -> tuple[int, ...]:
        return self._entry(name)[1]

    def dtype(self, name: str) -> str:
        return self._entry(name)[0]

    def tensor(self, name: str) -> np.ndarray:
        """float32 copy of the tensor (BF16 -> F32 is exact: the bits go in the high half)."""
        dtype, shape, begin, end = self._entry(name)
        if dtype not in _READABLE:
            raise ModelFormatError(f"tensor {name!r} has unsupported dtype {dtype} "
                                   f"(this reader handles {', '.join(_READABLE)})")
        raw = self._bytes(begin, end)
        if dtype == "F32":
            out = raw.view("<f4").astype(np.float32)  # copy: don't pin the memory map
        elif dtype == "F16":
            out = raw.view("<f2").astype(np.float32)
        else:
            wide = raw.view("<u2").astype(np.uint32)
            np.left_shift(wide, 16, out=wide)
            out = wide.view(np.float32)
        del raw
        return out.reshape(shape)

    def iter_tensors(self, names=None) -> Iterator[tuple[str, np.ndarray]]:
        """Yield (name, float32 array) one at a time, keeping no reference to yielded arrays."""
        names = list(self._entries) if names is None else list(names)
        for n in names:
            self._entry(n)  # fail on a missing name before yielding anything heavy
        for n in names:
            yield n, self.tensor(n)

    def close(self) -> None:
        if self._mm:
            try:
                self._mm.close()
            except BufferError:  # a caller still holds a view; the map goes when it does
                pass
        self._mm = None
        self._src.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def f32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> BF16 bit patterns (uint16), round to nearest even; NaN stays a (quiet) NaN."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    # no overflow in uint32: the largest non-NaN pattern is 0xFF800000 (-inf)
    r = (u + (np.uint32(0x7FFF) + ((u >> 16) & 1))) >> 16
    r = np.where(nan, (u >> 16) | 0x0040, r)
    return r.astype(np.uint16)


def write_safetensors_bf16(path: str | os.PathLike, tensors: dict, metadata: dict | None = None) -> None:
    """Write float arrays as a BF16 safetensors file (for generating test models)."""
    shapes = {name: tuple(np.shape(arr)) for name, arr in tensors.items()}
    write_safetensors_bf16_stream(path, shapes, lambda name, shape: tensors[name], metadata)


def write_safetensors_bf16_stream(path: str | os.PathLike, shapes: dict, produce, metadata: dict | None = None,
                                  progress=None) -> None:
    """Write BF16 tensors one at a time: `produce(name, shape)` returns each float array when its
    turn comes. The header (all offsets) follows from the shapes alone, so an 8.9 GB checkpoint
    never sits in memory. `progress.update(nbytes)` is called per tensor when given."""
    header: dict = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    for name, shape in shapes.items():
        n = int(np.prod(shape, dtype=np.int64)) * 2
        header[name] = {"dtype": "BF16", "shape": [int(v) for v in shape], "data_offsets": [offset, offset + n]}
        offset += n
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)  # pad so the data starts 8-byte aligned, as safetensors does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name, shape in shapes.items():
            flat = np.asarray(produce(name, shape), dtype=np.float32).reshape(-1)
            if flat.size != int(np.prod(shape, dtype=np.int64)):
                raise ValueError(f"{name}: produced {flat.size} values for shape {list(shape)}")
            for i in range(0, flat.size, 1 << 22):  # convert in chunks: 16 MB of float32 each
                f.write(f32_to_bf16_bits(flat[i:i + (1 << 22)]).astype("<u2").tobytes())
            if progress is not None:
                progress.update(2 * flat.size)
