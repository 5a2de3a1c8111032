"""The TTS WGSL kernels (attention_local, conv_causal, conv_transpose, reduce_rows) against the
numpy ops they replace, in float64, on fresh random inputs.

Seeds mix the session's VOXTRAL_TEST_SEED (printed in the summary) with the test parameters and
appear in every failure message. Outputs are poisoned with NaN bits before each run. Error measure:
max |gpu - ref| / max |ref| over the output (normwise max relative error), bounds stated next to
each assertion.
"""
from __future__ import annotations

import math
import os
import zlib

import numpy as np
import pytest

from voxtral.backends import NumpyOps
from voxtral.backends.webgpu import Kernels
from voxtral.models.tts.codec import alibi_slopes, pad_left
from kernel_helpers import SESSION_SEED, max_rel, run, seed_of  # noqa: F401


NAN_BITS = 0x7FC00000
# The convs reuse conv1d.wgsl's tiling: each output sums its C·K products in order in f32.
# Measured over many seeds: <= 2.3e-6 (conv_transpose, C·taps = 2048) and <= 3.7e-6 (conv_causal,
# C·K = 7168, the full-size output_proj); the error grows like sqrt(C·K)·2^-24.
CONV_BOUND = 1e-5
# Attention: f32 scores, online softmax; measured <= 3e-7 normwise over many seeds.
ATTENTION_BOUND = 2e-6
# Row sums in f32, in order, of <= 40 rows: measured <= 2e-7.
SUM_BOUND = 1e-6

REF = NumpyOps(np.float64)
@pytest.fixture(scope="module")
def k(host):
    return Kernels(host)


def _u32(k, a):
    return k.tensor(np.asarray(a, dtype=np.uint32), "u32")


def _key_ranges(q_pos, k_pos, window):
    """What WebGPUOps passes: the sorted-key band, or every key."""
    q_pos, k_pos = np.asarray(q_pos), np.asarray(k_pos)
    if np.all(np.diff(k_pos) >= 0):
        lo = np.searchsorted(k_pos, q_pos - window + 1, "left")
        hi = np.searchsorted(k_pos, q_pos, "right")
    else:
        lo, hi = np.zeros_like(q_pos), np.full_like(q_pos, len(k_pos))
    return np.stack([lo, hi], axis=1).reshape(-1)


# --------------------------------------------------------------------------- attention
@pytest.mark.parametrize("case", [
    # (rows, n_heads, n_kv_heads, head_dim, window, alibi): the codec's stages (MHA, W+1 keys)
    (24, 4, 4, 8, 3, True),      # tiny codec, window 2 + 1
    (150, 8, 8, 128, 17, True),  # full-size codec head shape, window 16 + 1
    (300, 2, 1, 16, 200, True),  # GQA, long window: several 128-key chunks per query
    (40, 4, 2, 32, 5, False),    # plain sliding window (no ALiBi)
])
def test_attention_local_codec(k, case, record_error):
    m, nh, nkv, hd, window, alibi = case
    seed = seed_of("attention_local", case)
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((m, nh * hd)).astype(np.float32)
    kk = rng.standard_normal((m, nkv * hd)).astype(np.float32)
    v = rng.standard_normal((m, nkv * hd)).astype(np.float32)
    pos = np.arange(m) + int(rng.integers(0, 1000))  # absolute positions need not start at 0
    slopes = alibi_slopes(nh) if alibi else None
    ref = REF.attention(q.astype(np.float64), kk.astype(np.float64), v.astype(np.float64), pos, pos,
                        nh, nkv, hd, window, alibi_slopes=slopes)
    out = k.empty((m, nh * hd))
    k.fill_bits(out, NAN_BITS)
    gs = k.tensor(np.asarray(slopes, np.float32)) if alibi else None
    args = (k.tensor(q), k.tensor(kk), k.tensor(v), _u32(k, pos), _u32(k, pos),
            _u32(k, _key_ranges(pos, pos, window)), out, nh, nkv, hd, window, gs)
    run(k, lambda s: k.attention_local(s, *args))
    err = max_rel(k.read(out), ref)
    record_error("attention_local", err)
    assert err < ATTENTION_BOUND, f"seed={seed} err={err:.3g}"


@pytest.mark.parametrize("groups,nh,nkv,hd", [(2, 4, 2, 16), (2, 32, 8, 128), (5, 4, 4, 8)])
def test_attention_local_flow_matching_groups(k, groups, nh, nkv, hd, record_error):
    """The FM head's batch: rows [x_0.., t_0.., llm_0..], group b's three rows share position b,
    window 1 -> bidirectional inside each group, nothing across groups. Keys unsorted: full scan.
    q/k/v are column views of one fused matrix, as a fused QKV output would be."""
    m = 3 * groups
    seed = seed_of("attention_local_fm", groups, nh, nkv, hd)
    rng = np.random.default_rng(seed)
    wq, wkv = nh * hd, nkv * hd
    qkv = rng.standard_normal((m, wq + 2 * wkv)).astype(np.float32)
    pos = np.tile(np.arange(groups), 3)
    q, kk, v = qkv[:, :wq], qkv[:, wq:wq + wkv], qkv[:, wq + wkv:]
    ref = REF.attention(q.astype(np.float64), kk.astype(np.float64), v.astype(np.float64), pos, pos,
                        nh, nkv, hd, 1)
    g = k.tensor(qkv)
    out = k.empty((m, wq))
    k.fill_bits(out, NAN_BITS)
    gp = _u32(k, pos)
    ranges = _u32(k, _key_ranges(pos, pos, 1))
    run(k, lambda s: k.attention_local(s, g.view_cols(0, wq), g.view_cols(wq, wq + wkv),
                                       g.view_cols(wq + wkv, wq + 2 * wkv), gp, gp, ranges, out, nh, nkv, hd, 1))
    err = max_rel(k.read(out), ref)
    record_error("attention_local", err)
    assert err < ATTENTION_BOUND, f"seed={seed} err={err:.3g}"


# ------------------------------------------------------------------------------- convs
@pytest.mark.parametrize("case", [
    # (T, C_in, C_out, K, mode): codec block 0 (replicate, k 3) and output_proj (reflect, k 7)
    (5, 52, 32, 3, "replicate"),
    (40, 292, 100, 3, "replicate"),
    (16, 32, 240, 7, "reflect"),
    (7, 1024, 240, 7, "reflect"),   # the shortest input reflect padding of 6 allows
    (70, 33, 65, 5, "zeros"),
])
def test_conv_causal(k, case, record_error):
    t, c_in, c_out, kk, mode = case
    seed = seed_of("conv_causal", case)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((t, c_in)).astype(np.float32)
    w = (rng.standard_normal((c_out, c_in, kk)) / np.sqrt(c_in * kk)).astype(np.float32)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    if mode == "zeros":
        ref = REF.conv1d(x64, w64, None, 1, kk - 1)
    else:
        ref = REF.conv1d(pad_left(REF, x64, kk - 1, mode), w64, None, 1, 0)
    out = k.empty((t, c_out))
    k.fill_bits(out, NAN_BITS)
    gx, gw = k.tensor(x), k.tensor(w)
    run(k, lambda s: k.conv_causal(s, gx, gw, out, pad_mode=mode))
    err = max_rel(k.read(out), ref)
    record_error("conv_causal", err)
    assert err < CONV_BOUND, f"seed={seed} err={err:.3g}"


def test_conv_causal_stride_and_reflect_limit(k, record_error):
    seed = seed_of("conv_causal_stride")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((31, 20)).astype(np.float32)
    w = rng.standard_normal((12, 20, 4)).astype(np.float32)
    ref = REF.conv1d(x.astype(np.float64), w.astype(np.float64), None, 2, 2)
    out = k.empty(((31 + 2 - 4) // 2 + 1, 12))
    k.fill_bits(out, NAN_BITS)
    gx, gw = k.tensor(x), k.tensor(w)
    run(k, lambda s: k.conv_causal(s, gx, gw, out, stride=2, pad=2))
    err = max_rel(k.read(out), ref)
    record_error("conv_causal", err)
    assert err < CONV_BOUND, f"seed={seed} err={err:.3g}"
    with pytest.raises(ValueError, match="reflect"):
        k.conv_causal([], k.tensor(x[:6]), k.tensor(rng.standard_normal((3, 20, 7)).astype(np.float32)),
                      k.empty((6, 3)), pad_mode="reflect")


@pytest.mark.parametrize("case", [
    # (T, C_in, C_out, K, stride): the codec's upsamplers (k 4, s 2), plus odd shapes
    (5, 32, 32, 4, 2),
    (50, 1024, 1024, 4, 2),
    (33, 70, 45, 4, 2),
    (9, 16, 24, 5, 3),
    (8, 10, 6, 3, 1),
])
def test_conv_transpose(k, case, record_error):
    t, c_in, c_out, kk, stride = case
    seed = seed_of("conv_transpose", case)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((t, c_in)).astype(np.float32)
    w = (rng.standard_normal((c_in, c_out, kk)) / np.sqrt(c_in)).astype(np.float32)
    ref = REF.conv_transpose1d(x.astype(np.float64), w.astype(np.float64), stride)
    out = k.empty(ref.shape)
    k.fill_bits(out, NAN_BITS)
    gx, gw = k.tensor(x), k.tensor(w)
    run(k, lambda s: k.conv_transpose(s, gx, gw, out, stride))
    err = max_rel(k.read(out), ref)
    record_error("conv_transpose", err)
    assert err < CONV_BOUND, f"seed={seed} err={err:.3g}"


# ------------------------------------------------------------------------- reductions
@pytest.mark.parametrize("m,d", [(37, 64), (37, 3072), (1, 300), (5, 257)])
def test_sum_rows(k, m, d, record_error):
    seed = seed_of("sum_rows", m, d)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, d)).astype(np.float32)
    out = k.empty((1, d))
    k.fill_bits(out, NAN_BITS)
    gx = k.tensor(x)
    run(k, lambda s: k.sum_rows(s, gx, out))
    err = max_rel(k.read(out), REF.sum_rows(x.astype(np.float64)))
    record_error("sum_rows", err)
    assert err < SUM_BOUND, f"seed={seed} err={err:.3g}"


def test_scale_views(k, record_error):
    """out = a·s on a row view of a wider matrix (per element: exactly one f32 rounding)."""
    seed = seed_of("scale")
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((6, 40)).astype(np.float32)
    s = float(rng.uniform(-3, 3))
    g = k.tensor(a)
    out = k.empty((2, 36))
    k.fill_bits(out, NAN_BITS)
    run(k, lambda sq: k.scale(sq, g.view_rows(3, 5).view_cols(2, 38), s, out))
    want = (a[3:5, 2:38].astype(np.float64) * np.float64(np.float32(s))).astype(np.float32)
    got = k.read(out)
    assert np.array_equal(got, want), f"seed={seed}"
