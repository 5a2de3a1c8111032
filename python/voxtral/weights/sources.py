"""Byte sources: a file, an in-memory buffer, or several byte-split shards read as one stream.

The Q4 GGUF is served as `split -b 512m` pieces (`shard-aa`, `shard-ab`, ...) because browsers and
hosts cap single downloads; the reader must see one continuous byte stream without ever holding
the whole ~2.5 GB in memory. Everything here uses only the standard library and numpy (Pyodide).
"""
from __future__ import annotations

import bisect
import os
import re
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import ModelFormatError


@runtime_checkable
class ByteSource(Protocol):
    """Random access to an immutable run of bytes."""

    size: int

    def read(self, offset: int, n: int) -> bytes:
        """Exactly `n` bytes starting at `offset`, or ModelFormatError ("truncated ...")."""
        ...


def _check_range(offset: int, n: int) -> None:
    if offset < 0 or n < 0:
        raise ValueError(f"invalid byte range: offset {offset}, length {n}")


def _truncated(what: str, offset: int, n: int, size: int) -> ModelFormatError:
    return ModelFormatError(
        f"truncated {what}: bytes [{offset}, {offset + n}) were requested "
        f"but it is only {size} bytes long"
    )


def read_into(source: ByteSource, offset: int, out) -> None:
    """Fill the writable buffer `out` from `source` at `offset`, without an extra copy if possible.

    Sources written by others may only implement `read`; fall back to it.
    """
    view = memoryview(out).cast("B")
    fn = getattr(source, "read_into", None)
    if fn is not None:
        fn(offset, view)
    else:
        view[:] = source.read(offset, len(view))


class FileSource:
    """A file read with seek/read; the handle is opened on first use (cheap to list many shards)."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        try:
            self.size = os.stat(self.path).st_size
        except OSError as e:
            raise ModelFormatError(f"cannot open weight file {self.path!r}: {e}") from e
        self._fh = None

    def _file(self):
        if self._fh is None:
            try:
                self._fh = open(self.path, "rb")
            except OSError as e:
                raise ModelFormatError(f"cannot open weight file {self.path!r}: {e}") from e
        return self._fh

    def read(self, offset: int, n: int) -> bytes:
        _check_range(offset, n)
        if offset + n > self.size:
            raise _truncated(f"file {self.path!r}", offset, n, self.size)
        fh = self._file()
        fh.seek(offset)
        data = fh.read(n)
        if len(data) != n:  # the file shrank after we looked at its size
            raise _truncated(f"file {self.path!r}", offset, n, offset + len(data))
        return data

    def read_into(self, offset: int, out) -> None:
        view = memoryview(out).cast("B")
        n = len(view)
        _check_range(offset, n)
        if offset + n > self.size:
            raise _truncated(f"file {self.path!r}", offset, n, self.size)
        fh = self._file()
        fh.seek(offset)
        got = 0
        while got < n:  # readinto may return short counts
            k = fh.readinto(view[got:])
            if not k:
                raise _truncated(f"file {self.path!r}", offset, n, offset + got)
            got += k

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __repr__(self) -> str:
        return f"FileSource({self.path!r}, size={self.size})"


class BufferSource:
    """bytes / bytearray / memoryview / numpy array held in memory (e.g. a fetched shard)."""

    def __init__(self, buf):
        if isinstance(buf, np.ndarray):
            buf = np.ascontiguousarray(buf).reshape(-1).view(np.uint8)
        self._view = memoryview(buf).cast("B")
        self.size = len(self._view)

    def read(self, offset: int, n: int) -> bytes:
        _check_range(offset, n)
        if offset + n > self.size:
            raise _truncated("buffer", offset, n, self.size)
        return bytes(self._view[offset:offset + n])

    def read_into(self, offset: int, out) -> None:
        view = memoryview(out).cast("B")
        _check_range(offset, len(view))
        if offset + len(view) > self.size:
            raise _truncated("buffer", offset, len(view), self.size)
        view[:] = self._view[offset:offset + len(view)]

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"BufferSource(size={self.size})"


class ShardedBytes:
    """The concatenation of several sources, in order, as one read-only byte stream."""

    def __init__(self, sources: list):
        self.sources = list(sources)
        # starts[i] = absolute offset of shard i; starts[-1] = total size
        self._starts = [0]
        for s in self.sources:
            self._starts.append(self._starts[-1] + int(s.size))
        self.size = self._starts[-1]

    def _pieces(self, offset: int, n: int):
        """(source, local offset, position in the output, length) for each shard the range touches."""
        _check_range(offset, n)
        if offset + n > self.size:
            raise ModelFormatError(
                f"truncated data: bytes [{offset}, {offset + n}) were requested but the "
                f"{len(self.sources)} shard(s) hold only {self.size} bytes "
                f"(missing range [{max(offset, self.size)}, {offset + n}))"
            )
        i = bisect.bisect_right(self._starts, offset) - 1
        pos = 0
        while pos < n:
            while self._starts[i + 1] <= offset + pos:  # skip empty shards
                i += 1
            local = offset + pos - self._starts[i]
            k = min(n - pos, self._starts[i + 1] - (offset + pos))
            yield self.sources[i], local, pos, k
            pos += k
            i += 1

    def read(self, offset: int, n: int) -> bytes:
        pieces = list(self._pieces(offset, n))
        if len(pieces) == 1:
            src, local, _, k = pieces[0]
            return src.read(local, k)
        buf = bytearray(n)  # only reads that straddle a shard boundary are stitched here
        self.read_into(offset, buf)
        return bytes(buf)

    def read_into(self, offset: int, out) -> None:
        view = memoryview(out).cast("B")
        for src, local, pos, k in self._pieces(offset, len(view)):
            read_into(src, local, view[pos:pos + k])

    def close(self) -> None:
        for s in self.sources:
            close = getattr(s, "close", None)
            if close is not None:
                close()

    def __repr__(self) -> str:
        return f"ShardedBytes({len(self.sources)} sources, size={self.size})"


# `split -b` names its pieces PREFIX + aa, ab, ..., az, ba, ... (suffix length 2 by default, 3
# with `-a 3`).
_SUFFIX = re.compile(r"[a-z]+")


def _suffix_index(s: str) -> int:
    v = 0
    for ch in s:
        v = v * 26 + (ord(ch) - ord("a"))
    return v


def _suffix_name(i: int, length: int) -> str:
    chars = []
    for _ in range(length):
        i, r = divmod(i, 26)
        chars.append(chr(ord("a") + r))
    return "".join(reversed(chars))


def shard_sources_from_dir(path: str | os.PathLike) -> list[FileSource]:
    """FileSources for the `split -b` pieces in a directory, in order.

    A group of shards is a common prefix plus a 2- or 3-letter suffix starting at `aa`/`aaa`;
    other files (tekken.json, params.json, ...) are ignored. A gap in the suffixes is an error,
    because silently concatenating around it would shift every later byte.
    """
    path = os.fspath(path)
    try:
        names = sorted(n for n in os.listdir(path)
                       if not n.startswith(".") and os.path.isfile(os.path.join(path, n)))
    except OSError as e:
        raise ModelFormatError(f"cannot list shard directory {path!r}: {e}") from e

    groups: dict[tuple[str, int], dict[int, str]] = {}
    for name in names:
        for length in (2, 3):
            if len(name) > length and _SUFFIX.fullmatch(name[-length:]):
                key = (name[:-length], length)
                groups.setdefault(key, {})[_suffix_index(name[-length:])] = name
    # a real group contains the first piece (`aa` / `aaa`)
    candidates = [(k, g) for k, g in groups.items() if 0 in g]
    if not candidates:
        raise ModelFormatError(
            f"no shards in {path!r}: expected files named like shard-aa, shard-ab, ... "
            f"(as made by `split -b`)"
        )
    # `shard-aaa` also parses as prefix `shard-a` + `aa`; the largest reading wins, and two
    # different file sets (e.g. a-aa and b-aa) are ambiguous.
    candidates.sort(key=lambda kg: -len(kg[1]))
    (prefix, length), group = candidates[0]
    for (_, _), other in candidates[1:]:
        if not set(other.values()) <= set(group.values()):
            others = sorted({k[0] + "*" for k, _ in candidates})
            raise ModelFormatError(f"ambiguous shards in {path!r}: several shard sets {others}")
    last = max(group)
    for i in range(last + 1):
        if i not in group:
            raise ModelFormatError(
                f"missing shard {prefix}{_suffix_name(i, length)} in {path!r} "
                f"(found {len(group)} shards up to {group[last]})"
            )
    return [FileSource(os.path.join(path, group[i])) for i in range(last + 1)]
