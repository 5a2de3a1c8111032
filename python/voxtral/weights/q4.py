"""ggml Q4_0: 32 weights per 18-byte block (spec §13.1).

Block layout: f16 scale d (little-endian), then 16 bytes; byte j holds element j in its low nibble
and element j+16 in its high nibble; value = (nibble - 8) * d. Blocks run along the last (input)
dimension, so row r of a [rows, cols] matrix is bytes [r*cols/32*18, (r+1)*cols/32*18).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import TensorShapeError

QK = 32  # weights per block
BLOCK_BYTES = 18  # 2-byte f16 scale + 16 nibble bytes
_CHUNK_ELEMS = 1 << 20  # work on ~1M weights at a time so temporaries stay a few MB


def _rows_cols(shape) -> tuple[int, int]:
    shape = tuple(int(s) for s in shape)
    if not shape or shape[-1] % QK != 0 or shape[-1] <= 0:
        raise TensorShapeError(f"Q4_0 needs a last dimension that is a positive multiple of {QK}; "
                               f"got shape {shape}")
    return math.prod(shape[:-1]), shape[-1]


def _chunk_rows(cols: int) -> int:
    return max(1, _CHUNK_ELEMS // cols)


def _dequantize_blocks(blocks: np.ndarray, out: np.ndarray) -> None:
    """blocks: uint8 [n, 18] -> out: float32 [n, 32]."""
    d = np.ascontiguousarray(blocks[:, :2]).view("<f2").astype(np.float32)  # [n, 1]
    qs = blocks[:, 2:]  # [n, 16]
    out[:, :16] = qs & 0x0F
    out[:, 16:] = qs >> 4
    out -= 8.0
    out *= d  # one float32 product per weight, the same rounding as ggml / gguf-py


def dequantize_q4_0(raw, shape) -> np.ndarray:
    """Raw Q4_0 bytes (bytes-like or uint8 array) -> float32 array of `shape` (PyTorch order)."""
    rows, cols = _rows_cols(shape)
    if isinstance(raw, np.ndarray):
        raw = raw.reshape(-1).view(np.uint8)
    else:
        raw = np.frombuffer(raw, dtype=np.uint8)
    bpr = cols // QK * BLOCK_BYTES  # bytes per row
    if raw.size != rows * bpr:
        raise TensorShapeError(f"Q4_0 data of shape {tuple(shape)} needs {rows * bpr} bytes, "
                               f"got {raw.size}")
    raw = raw.reshape(rows, bpr)
    out = np.empty((rows, cols), dtype=np.float32)
    step = _chunk_rows(cols)
    for r0 in range(0, rows, step):
        r1 = min(rows, r0 + step)
        _dequantize_blocks(raw[r0:r1].reshape(-1, BLOCK_BYTES), out[r0:r1].reshape(-1, QK))
    return out.reshape(tuple(shape))


def _quantize_blocks(x: np.ndarray) -> np.ndarray:
    """float32 [n, 32] -> uint8 [n, 18], the ggml reference quantizer (quantize_row_q4_0_ref)."""
    n = x.shape[0]
    # the signed value of largest magnitude; argmax keeps the first on ties, as ggml's `<` does
    imax = np.abs(x).argmax(axis=1)
    vmax = x[np.arange(n), imax]  # [n]
    d = vmax / np.float32(-8.0)  # float32, so the extreme element maps to nibble 0
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, np.float32(0.0), np.float32(1.0) / d).astype(np.float32)
    # trunc(x/d + 8.5) rounds to nearest; the opposite extreme can reach 16, hence min(15)
    q = np.trunc(x * inv[:, None] + np.float32(8.5))  # [n, 32] float32 in [0.5, 16.5]
    q = np.minimum(q, 15).astype(np.uint8)
    out = np.empty((n, BLOCK_BYTES), dtype=np.uint8)
    out[:, :2] = d.astype("<f2").view(np.uint8).reshape(n, 2)
    out[:, 2:] = q[:, :16] | (q[:, 16:] << 4)
    return out


def quantize_q4_0(x: np.ndarray) -> np.ndarray:
    """float32 [rows, cols] (cols % 32 == 0) -> raw Q4_0 uint8 [rows, cols/32*18].

    Byte-identical to ggml's reference quantizer and gguf-py's `quants.quantize(.., Q4_0)`.
    Works in row chunks, so a [131072, 3072] matrix needs only the output plus a few MB.
    """
    x = np.asarray(x)
    rows, cols = _rows_cols(x.shape)
    x2 = x.reshape(rows, cols)
    bpr = cols // QK * BLOCK_BYTES
    out = np.empty((rows, bpr), dtype=np.uint8)
    step = _chunk_rows(cols)
    for r0 in range(0, rows, step):
        r1 = min(rows, r0 + step)
        blocks = x2[r0:r1].astype(np.float32, copy=False).reshape(-1, QK)
        out[r0:r1] = _quantize_blocks(blocks).reshape(r1 - r0, bpr)
    return out


class Q4Tensor:
    """A Q4_0 weight kept in its raw GGUF bytes (uploaded unchanged to the GPU).

    shape: PyTorch order, e.g. (out, in); raw: uint8 [rows, cols/32*18] with rows = prod(shape[:-1]).
    """

    def __init__(self, shape, raw):
        self.shape = tuple(int(s) for s in shape)
        self.rows, self.cols = _rows_cols(self.shape)
        raw = np.asarray(raw) if isinstance(raw, np.ndarray) else np.frombuffer(raw, dtype=np.uint8)
        bpr = self.cols // QK * BLOCK_BYTES
        if raw.dtype != np.uint8 or raw.size != self.rows * bpr:
            raise TensorShapeError(f"Q4_0 tensor of shape {self.shape} needs {self.rows * bpr} "
                                   f"uint8 bytes, got {raw.size} of {raw.dtype}")
        self.raw = raw.reshape(self.rows, bpr)

    @classmethod
    def quantize(cls, x: np.ndarray) -> "Q4Tensor":
        return cls(np.shape(x), quantize_q4_0(x))

    @property
    def nbytes(self) -> int:
        return int(self.raw.nbytes)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def dequantize(self) -> np.ndarray:
        """float32 array of `shape`."""
        return dequantize_q4_0(self.raw, self.shape)

    def row(self, i: int) -> np.ndarray:
        """Dequantized row i (of the [rows, cols] view) -> float32 [cols]."""
        if not -self.rows <= i < self.rows:
            raise IndexError(f"row {i} out of range for {self.rows} rows")
        return dequantize_q4_0(self.raw[i], (self.cols,))

    def take(self, indices) -> np.ndarray:
        """Dequantized rows at `indices` (e.g. token ids into the embedding) -> float32 [len, cols]."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        return dequantize_q4_0(self.raw[idx], (idx.size, self.cols))

    def __repr__(self) -> str:
        return f"Q4Tensor(shape={self.shape}, nbytes={self.nbytes})"
