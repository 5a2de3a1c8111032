"""Q4_0: our quantizer/dequantizer against gguf-py (the ggml reference), byte for byte."""
import os
import secrets

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as QT

from voxtral.errors import TensorShapeError
from voxtral.weights import Q4Tensor, dequantize_q4_0, quantize_q4_0


@pytest.fixture
def rng():
    seed = int(os.environ.get("VOXTRAL_TEST_SEED", secrets.randbits(32)))
    print(f"random seed {seed} (rerun with VOXTRAL_TEST_SEED={seed})")
    return np.random.default_rng(seed)


def tricky_matrix(rng, rows, cols):
    """float32 [rows, cols] with blocks that exercise every branch of the reference quantizer."""
    x = rng.standard_normal((rows, cols), dtype=np.float32) * rng.choice([1e-3, 1, 30], (rows, 1))
    b = x.reshape(-1, 32)  # view: one block per row
    n = b.shape[0]
    pick = rng.permutation(n)
    b[pick[0::9]] = 0  # all-zero blocks: d = 0, id = 0, every nibble 8
    neg = pick[1::9]  # largest magnitude negative -> positive d
    b[neg, rng.integers(0, 32, neg.size)] = -np.abs(b[neg]).max(axis=1) * 1.5 - 1e-3
    pos = pick[2::9]  # largest magnitude positive -> negative d
    b[pos, rng.integers(0, 32, pos.size)] = np.abs(b[pos]).max(axis=1) * 1.5 + 1e-3
    tie = pick[3::9]  # +m and -m both present: the first one wins
    m = np.abs(b[tie]).max(axis=1) + 1
    b[tie, 3], b[tie, 20] = m, -m
    b[tie[::2], 3], b[tie[::2], 20] = -m[::2], m[::2]
    b[pick[4::9], 7] = 1e-8  # tiny scales (f16 subnormal or zero)
    b[pick[4::9]] *= 1e-6
    b[pick[5::9]] = rng.integers(-8, 8, (pick[5::9].size, 32)).astype(np.float32)  # exact levels
    return x


@pytest.mark.parametrize("rows,cols", [(1, 32), (7, 64), (13, 96), (700, 3072)])
def test_quantize_matches_gguf_bytes(rng, rows, cols):
    x = tricky_matrix(rng, rows, cols)
    ours = quantize_q4_0(x)
    ref = gguf.quants.quantize(x, QT.Q4_0)
    assert ours.dtype == np.uint8 and ours.shape == (rows, cols // 32 * 18) == ref.shape
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("shape", [(3, 32), (5, 160), (2, 3, 64), (64,)])
def test_dequantize_matches_gguf(rng, shape):
    x = tricky_matrix(rng, int(np.prod(shape[:-1])), shape[-1]).reshape(shape)
    raw = gguf.quants.quantize(x, QT.Q4_0)
    ref = gguf.quants.dequantize(raw, QT.Q4_0)
    ours = dequantize_q4_0(raw, shape)
    assert ours.dtype == np.float32 and ours.shape == shape
    assert ours.tobytes() == ref.tobytes()  # bit-exact
    assert dequantize_q4_0(raw.tobytes(), shape).tobytes() == ref.tobytes()  # from bytes too


def test_block_layout_by_hand():
    """Byte j = element j (low nibble) | element j+16 (high nibble); value = (nibble - 8) * d."""
    d = np.float16(0.25)
    nib = np.arange(32) % 16  # element k has nibble k % 16
    block = d.tobytes() + bytes(int(nib[j]) | int(nib[j + 16]) << 4 for j in range(16))
    np.testing.assert_array_equal(dequantize_q4_0(block, (32,)), (nib - 8) * np.float32(0.25))
    # reference quantizer: max = -2 (first largest magnitude) -> d = 0.25, nibble 0 for it
    x = np.zeros((1, 32), np.float32)
    x[0, 0], x[0, 17] = -2.0, 1.75
    raw = quantize_q4_0(x)[0]
    assert raw[:2].view("<f2")[0] == np.float16(0.25)
    assert raw[2] == 0 | (8 << 4) and raw[3] == 8 | (15 << 4)  # byte1 hi = element 17 -> 7+8


def test_round_trip_error_bound(rng):
    x = tricky_matrix(rng, 40, 256)
    raw = quantize_q4_0(x)
    y = dequantize_q4_0(raw, x.shape)
    b, yb = x.reshape(-1, 32).astype(np.float64), y.reshape(-1, 32).astype(np.float64)
    d16 = raw.reshape(-1, 18)[:, :2].copy().view("<f2").astype(np.float64)  # [n, 1]
    d32 = np.take_along_axis(b, np.abs(b).argmax(1)[:, None], 1) / -8
    err = np.abs(b - yb)
    # rounding to nearest level: |d|/2, plus the f16 rounding of d times up to 8 levels
    bound = np.abs(d16) / 2 + 8 * np.abs(d32 - d16) + 1e-6 * np.abs(d32)
    # the opposite extreme may need level +8, which is clipped to 7: error up to |d|
    clipped = np.trunc(b / np.where(d32 == 0, 1, d32) + 8.5) > 15
    bound = np.where(clipped, bound + np.abs(d16) / 2, bound)
    assert np.all(err <= bound)
    assert np.all(y.reshape(-1, 32)[np.all(b == 0, axis=1)] == 0)


def test_q4tensor(rng):
    x = rng.standard_normal((9, 128), dtype=np.float32)  # [out, in]
    t = Q4Tensor.quantize(x)
    assert t.shape == (9, 128) and t.raw.shape == (9, 4 * 18) and t.raw.dtype == np.uint8
    assert t.nbytes == 9 * 4 * 18
    full = t.dequantize()
    assert full.shape == (9, 128) and full.dtype == np.float32
    for i in (0, 4, 8, -1):
        np.testing.assert_array_equal(t.row(i), full[i])
    np.testing.assert_array_equal(t.take([3, 0, 3]), full[[3, 0, 3]])
    t2 = Q4Tensor((9, 128), t.raw.tobytes())  # from raw bytes
    np.testing.assert_array_equal(t2.dequantize(), full)
    with pytest.raises(IndexError):
        t.row(9)


def test_shape_errors():
    with pytest.raises(TensorShapeError, match="multiple of 32"):
        quantize_q4_0(np.zeros((2, 33), np.float32))
    with pytest.raises(TensorShapeError, match="needs 36 bytes"):
        dequantize_q4_0(np.zeros(35, np.uint8), (2, 32))
    with pytest.raises(TensorShapeError, match=r"shape \(4, 64\)"):
        Q4Tensor((4, 64), np.zeros(10, np.uint8))
