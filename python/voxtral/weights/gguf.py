"""GGUF v2/v3 reader over a (possibly byte-split) stream (spec §3.2).

Phase 1, `open_gguf(...)`, reads only the header, metadata and tensor table, fetching the source
in small growing chunks, so opening a 2.5 GB model costs a few hundred KB of reads.
Phase 2, `GGUFFile.iter_tensors()`, loads one tensor at a time straight into its own array, so peak
host memory stays near the largest tensor (the browser cannot hold the whole file twice).

Layout (little-endian): magic "GGUF", version u32, tensor_count u64, kv_count u64, kv pairs,
tensor infos (name, n_dims u32, dims u64 x n_dims in ggml order = reversed PyTorch order,
type u32, offset u64 relative to the data section), padding to `general.alignment` (default 32),
data section.
"""
from __future__ import annotations

import difflib
import math
import os
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Iterator

import numpy as np

from ..errors import MissingTensorError, ModelFormatError
from .q4 import BLOCK_BYTES, QK, Q4Tensor
from .sources import BufferSource, FileSource, ShardedBytes, shard_sources_from_dir

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_ELEMENTS = 1 << 48  # per tensor, zero dims ignored: far beyond any model, well inside numpy
MAX_ARRAY_DEPTH = 8  # arrays of arrays (real files use none); deeper is a corrupt file


class GGMLType(IntEnum):
    F32 = 0
    F16 = 1
    Q4_0 = 2
    BF16 = 30


# (elements per block, bytes per block)
_BLOCK = {GGMLType.F32: (1, 4), GGMLType.F16: (1, 2), GGMLType.BF16: (1, 2),
          GGMLType.Q4_0: (QK, BLOCK_BYTES)}


class ValueType(IntEnum):
    UINT8 = 0
    INT8 = 1
    UINT16 = 2
    INT16 = 3
    UINT32 = 4
    INT32 = 5
    FLOAT32 = 6
    BOOL = 7
    STRING = 8
    ARRAY = 9
    UINT64 = 10
    INT64 = 11
    FLOAT64 = 12


# numpy dtypes of the fixed-size value types (bool is one byte, 0 or 1)
_SCALAR_DTYPE = {
    ValueType.UINT8: "<u1", ValueType.INT8: "<i1", ValueType.UINT16: "<u2",
    ValueType.INT16: "<i2", ValueType.UINT32: "<u4", ValueType.INT32: "<i4",
    ValueType.FLOAT32: "<f4", ValueType.BOOL: "<u1", ValueType.UINT64: "<u8",
    ValueType.INT64: "<i8", ValueType.FLOAT64: "<f8",
}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # PyTorch order (the reverse of the ggml dims in the file)
    ggml_type: GGMLType
    offset: int  # absolute byte offset in the (stitched) stream
    nbytes: int

    @property
    def ggml_dims(self) -> tuple[int, ...]:
        return tuple(reversed(self.shape))


class _Cursor:
    """Sequential little-endian reads from a source, fetched in chunks of 64 KiB growing to 4 MiB."""

    def __init__(self, source):
        self.source = source
        self.pos = 0
        self.what = "header"  # what is being parsed, for truncation messages
        self._buf = b""
        self._buf_start = 0
        self._chunk = 64 << 10

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > self._buf_start + len(self._buf):
            if end > self.source.size:
                raise ModelFormatError(
                    f"truncated GGUF {self.what}: it needs bytes up to {end} "
                    f"but the file is only {self.source.size} bytes"
                )
            stop = min(self.source.size, max(end, self.pos + self._chunk))
            self._buf = self.source.read(self.pos, stop - self.pos)
            self._buf_start = self.pos
            self._chunk = min(self._chunk * 2, 4 << 20)
        i = self.pos - self._buf_start
        self.pos = end
        return self._buf[i:i + n]

    def check_count(self, count: int, min_bytes: int, what: str) -> None:
        """Refuse a count of items of at least `min_bytes` each that the bytes left cannot hold
        (e.g. a header claiming 2^63 tensors): a clear error instead of a long loop."""
        left = self.source.size - self.pos
        if count > left // min_bytes:
            raise ModelFormatError(
                f"truncated GGUF {self.what} (or a corrupt count): it claims {count} {what}, but the "
                f"{left} bytes left in the file can hold at most {left // min_bytes}")

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def string(self) -> str:
        raw = self.take(self.u64())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ModelFormatError(f"invalid UTF-8 in GGUF {self.what}: {e}") from e

    def value(self, vtype: int, depth: int = 0):
        if vtype in _SCALAR_DTYPE:
            dt = np.dtype(_SCALAR_DTYPE[vtype])
            v = np.frombuffer(self.take(dt.itemsize), dtype=dt)[0].item()
            return bool(v) if vtype == ValueType.BOOL else v
        if vtype == ValueType.STRING:
            return self.string()
        if vtype == ValueType.ARRAY:
            etype = self.u32()
            count = self.u64()
            if etype in _SCALAR_DTYPE:  # one read for the whole array
                dt = np.dtype(_SCALAR_DTYPE[etype])
                arr = np.frombuffer(self.take(count * dt.itemsize), dtype=dt)
                return arr.astype(bool).tolist() if etype == ValueType.BOOL else arr.tolist()
            if etype not in (ValueType.STRING, ValueType.ARRAY):
                raise ModelFormatError(f"unknown GGUF value type {etype} in the array of {self.what}")
            # each element takes >= 8 bytes (a string's length, an array's type + count): a count
            # the rest of the file cannot hold is refused before any element is parsed
            self.check_count(count, 8, "array elements")
            if etype == ValueType.ARRAY and depth >= MAX_ARRAY_DEPTH:
                raise ModelFormatError(f"GGUF arrays nested more than {MAX_ARRAY_DEPTH} deep in {self.what}")
            return [self.value(etype, depth + 1) for _ in range(count)]
        raise ModelFormatError(f"unknown GGUF value type {vtype} in {self.what}")


def _parse_header(cur: _Cursor):
    """-> (version, metadata, alignment, [(name, shape, type, rel_offset, nbytes)], table end)."""
    magic = cur.take(4)
    if magic != GGUF_MAGIC:
        raise ModelFormatError(
            f"not a GGUF file: the first 4 bytes are {magic!r}, but a GGUF file starts with 'GGUF'"
        )
    version = cur.u32()
    if version not in (2, 3):
        hint = ""
        if int.from_bytes(version.to_bytes(4, "little"), "big") in (2, 3):
            hint = " (this looks like a big-endian GGUF, which is not supported)"
        raise ModelFormatError(f"unsupported GGUF version {version}: this reader handles versions "
                               f"2 and 3{hint}")
    n_tensors = cur.u64()
    n_kv = cur.u64()
    cur.what = "header"
    cur.check_count(n_kv, 13, "metadata entries")  # key length 8 + type 4 + value >= 1
    cur.check_count(n_tensors, 32, "tensors")  # name length 8 + n_dims 4 + dims >= 8 + type 4 + offset 8

    metadata: dict = {}
    for i in range(n_kv):
        cur.what = f"metadata key #{i}"
        key = cur.string()
        cur.what = f"metadata value {key!r}"
        if key in metadata:
            raise ModelFormatError(f"duplicate GGUF metadata key {key!r}")
        metadata[key] = cur.value(cur.u32())

    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if (not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0
            or alignment & (alignment - 1)):
        raise ModelFormatError(f"invalid general.alignment {alignment!r}: must be a power of two")

    table = []
    names = set()
    for i in range(n_tensors):
        cur.what = f"tensor info #{i}"
        name = cur.string()
        cur.what = f"tensor info of {name!r}"
        n_dims = cur.u32()
        if not 1 <= n_dims <= MAX_DIMS:
            raise ModelFormatError(f"tensor {name!r} has {n_dims} dims (GGUF allows 1..{MAX_DIMS})")
        dims = [cur.u64() for _ in range(n_dims)]
        type_id = cur.u32()
        rel_offset = cur.u64()
        if name in names:
            raise ModelFormatError(f"duplicate tensor {name!r} in the GGUF tensor table")
        names.add(name)
        try:
            gtype = GGMLType(type_id)
        except ValueError:
            raise ModelFormatError(
                f"tensor {name!r} has unsupported ggml type {type_id} (this reader handles "
                f"F32=0, F16=1, Q4_0=2, BF16=30)") from None
        if math.prod(max(d, 1) for d in dims) > MAX_ELEMENTS:  # e.g. [8, 2^62, 0]: 0 bytes, but no array
            raise ModelFormatError(f"tensor {name!r} has an absurd shape {dims} (corrupt tensor table)")
        block_elems, block_bytes = _BLOCK[gtype]
        if dims[0] % block_elems:
            raise ModelFormatError(f"tensor {name!r}: {gtype.name} needs the innermost dimension "
                                   f"to be a multiple of {block_elems}, got dims {dims}")
        nbytes = math.prod(dims) // block_elems * block_bytes
        if rel_offset % alignment:
            raise ModelFormatError(f"tensor {name!r}: data offset {rel_offset} is not a multiple of the "
                                   f"alignment {alignment} (corrupt tensor table)")
        table.append((name, tuple(reversed(dims)), gtype, rel_offset, nbytes))
    return version, metadata, alignment, table, cur.pos


def _check_no_overlap(infos) -> None:
    """Two tensors whose bytes overlap are a corrupt table (a writer never shares data)."""
    spans = sorted((i.offset, i.offset + i.nbytes, i.name) for i in infos if i.nbytes)
    for (a0, a1, a), (b0, b1, b) in zip(spans, spans[1:]):
        if b0 < a1:
            raise ModelFormatError(f"tensors {a!r} (bytes {a0}..{a1}) and {b!r} (bytes {b0}..{b1}) "
                                   "overlap in the GGUF data section (corrupt tensor table)")


class GGUFFile:
    """A parsed GGUF: metadata and tensor table in memory, tensor data read on demand."""

    def __init__(self, source: ShardedBytes):
        self.source = source
        cur = _Cursor(source)
        self.version, self.metadata, self.alignment, table, end = _parse_header(cur)
        self.header_nbytes = end  # header + metadata + tensor table, before the padding
        # the data section starts at the next multiple of the alignment after the table
        self.data_offset = -(-end // self.alignment) * self.alignment
        self.tensors: dict[str, TensorInfo] = {}
        for name, shape, gtype, rel, nbytes in table:
            info = TensorInfo(name, shape, gtype, self.data_offset + rel, nbytes)
            # checked here, so a missing last shard fails at open, not minutes into loading
            if info.offset + nbytes > source.size:
                raise ModelFormatError(
                    f"tensor {name!r} runs past the end of the data: it needs bytes up to "
                    f"{info.offset + nbytes} but the file is only {source.size} bytes "
                    f"(truncated file or missing last shard?)")
            self.tensors[name] = info
        _check_no_overlap(self.tensors.values())

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def info(self, name: str) -> TensorInfo:
        try:
            return self.tensors[name]
        except KeyError:
            close = difflib.get_close_matches(name, self.tensors, n=3)
            hint = f"; similar names: {close}" if close else ""
            raise MissingTensorError(f"tensor {name!r} is not in the GGUF file "
                                     f"({len(self.tensors)} tensors){hint}") from None

    def read_raw(self, name: str) -> bytes:
        info = self.info(name)
        return self.source.read(info.offset, info.nbytes)

    def tensor(self, name: str):
        """F32/F16/BF16 -> float32 ndarray of the PyTorch shape; Q4_0 -> Q4Tensor."""
        info = self.info(name)
        raw = np.empty(info.nbytes, dtype=np.uint8)  # read straight into its final buffer
        self.source.read_into(info.offset, raw)
        if info.ggml_type == GGMLType.F32:
            return raw.view("<f4").reshape(info.shape)
        if info.ggml_type == GGMLType.F16:
            return raw.view("<f2").astype(np.float32).reshape(info.shape)
        if info.ggml_type == GGMLType.BF16:
            # BF16 is the high half of an f32: widening by a 16-bit shift is exact
            wide = raw.view("<u2").astype(np.uint32)
            np.left_shift(wide, 16, out=wide)
            return wide.view(np.float32).reshape(info.shape)
        return Q4Tensor(info.shape, raw)

    def iter_tensors(self, names=None) -> Iterator[tuple[TensorInfo, object]]:
        """Yield (TensorInfo, value) one at a time, in file order or the order of `names`.

        The generator keeps no reference to a yielded value, so a consumer that uploads and drops
        each tensor holds at most one in memory.
        """
        infos = [self.info(n) for n in names] if names is not None else list(self.tensors.values())
        for info in infos:
            yield info, self.tensor(info.name)

    def close(self) -> None:
        self.source.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return (f"GGUFFile(version={self.version}, {len(self.tensors)} tensors, "
                f"{len(self.metadata)} metadata keys, {self.source.size} bytes)")


def _as_source(obj):
    if isinstance(obj, (str, os.PathLike)):
        return FileSource(obj)
    if isinstance(obj, (bytes, bytearray, memoryview, np.ndarray)):
        return BufferSource(obj)
    if hasattr(obj, "read") and hasattr(obj, "size"):
        return obj
    raise TypeError(f"cannot read GGUF data from {type(obj).__name__}")


def open_gguf(obj) -> GGUFFile:
    """Phase 1: parse header, metadata and tensor table.

    `obj`: a GGUFFile, a ShardedBytes, a path to a .gguf file or to a directory of `split -b`
    shards, bytes-like data, a single ByteSource, or a list of sources / paths / buffers (shards
    in order).
    """
    if isinstance(obj, GGUFFile):
        return obj
    if isinstance(obj, ShardedBytes):
        return GGUFFile(obj)
    if isinstance(obj, (str, os.PathLike)):
        if os.path.isdir(obj):
            return GGUFFile(ShardedBytes(shard_sources_from_dir(obj)))
        if not os.path.exists(obj):
            raise ModelFormatError(f"GGUF file {os.fspath(obj)!r} does not exist")
    if isinstance(obj, (list, tuple)):
        return GGUFFile(ShardedBytes([_as_source(o) for o in obj]))
    return GGUFFile(ShardedBytes([_as_source(obj)]))
