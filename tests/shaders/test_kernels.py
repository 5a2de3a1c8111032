"""Every WGSL kernel against a float64 numpy reference, on fresh random inputs.

Each test's seed mixes a per-session random base (VOXTRAL_TEST_SEED, printed in the summary;
set it to replay a run) with the test's parameters, and is shown in every failure message. Tests
poison their output buffers with NaN bit patterns before running and state their error bound next
to the assertion. Error measure unless said otherwise: max |gpu - ref| / max |ref| over the output
("normwise max relative error"); elementwise kernels use a per-element relative error.
"""
from __future__ import annotations

import math
import os
import zlib

import numpy as np
import pytest

from voxtral.backends.webgpu import Kernels, preprocess
from voxtral.backends.webgpu.kernels import expand_includes
from voxtral.weights.q4 import Q4Tensor
from kernel_helpers import SESSION_SEED, max_rel, run, seed_of  # noqa: F401

# Normwise bounds of the matmul family. q4_matvec sums 32 lane partials by a tree (measured
# <= 6.4e-7 over several seeds); the tiled kernels (q4_matmul, linear, conv1d) sum K products
# sequentially in f32 per output (measured <= 1.6e-6 for K <= 3840).
MATVEC_BOUND = 2e-6
TILED_BOUND = 5e-6

NAN_BITS = 0x7FC00000
ALL_ONES = 0xFFFFFFFF  # also a NaN as f32, and an impossible id as u32


@pytest.fixture(scope="module")
def k(host):
    return Kernels(host)


def q4_weight(rng, n, k_dim):
    """A random Q4_0 weight and its exact float64 dequantization."""
    q = Q4Tensor.quantize(rng.standard_normal((n, k_dim)).astype(np.float32))
    return q, q.dequantize().astype(np.float64)


# ------------------------------------------------------------------------ preprocessor
def test_preprocess_nested_if_else():
    src = "a\n// #if X\nb\n// #if !Y\nc\n// #else\nd\n// #endif\n// #else\ne\n// #endif\nf\n"
    assert preprocess(src, {"X"}).split() == ["a", "b", "c", "f"]
    assert preprocess(src, {"X", "Y"}).split() == ["a", "b", "d", "f"]
    assert preprocess(src, set()).split() == ["a", "e", "f"]
    with pytest.raises(ValueError):
        preprocess("// #if X\n", set())


def test_shaders_fit_browser_default_limits():
    """Every entry point uses <= 256 invocations and each module <= 16 KiB of workgroup memory
    (WebGPU defaults, what SwiftShader/Chrome grant), in every preprocessor variant."""
    import re
    from voxtral.backends.webgpu import find_shaders_dir

    sizes = {"f32": 4, "u32": 4, "i32": 4, "vec4<f32>": 16}

    def value(expr: str, consts: dict) -> int:
        """An integer constant expression of literals, module `const`s, + and *."""
        expr = re.sub(r"\b(\d+)u\b", r"\1", expr)
        expr = re.sub(r"\b[A-Z_][A-Z0-9_]*\b", lambda m: str(consts[m.group(0)]), expr)
        assert re.fullmatch(r"[\d\s+*]+", expr), expr
        return eval(expr)  # digits, spaces, + and * only (checked above)

    for path in sorted(find_shaders_dir().glob("*.wgsl")):
        src = preprocess(expand_includes(path.read_text(), path.parent),
                         {"SUBGROUPS", "BIAS", "RESIDUAL", "ADA", "KV_F16"})
        consts: dict = {}
        for name, expr in re.findall(r"const (\w+): u32 = ([\w\s+*]+);", src):
            if not expr.strip().startswith("0x"):
                consts[name] = value(expr, consts)
        for dims in re.findall(r"@workgroup_size\(([^)]*)\)", src):
            assert math.prod(value(d, consts) for d in dims.split(",")) <= 256, path.name
        shared = 0
        for elem, count in re.findall(r"var<workgroup>\s+\w+:\s*array<(.+?),\s*([^<>]+)>;", src):
            shared += sizes[elem] * value(count, consts)
        shared += 4 * len(re.findall(r"var<workgroup>\s+\w+:\s*(?:i32|u32|f32);", src))
        assert shared <= 16384, f"{path.name}: {shared} bytes of workgroup memory"


# ------------------------------------------------------------------------- Q4 matvec


@pytest.mark.parametrize("subgroups", [True, False], ids=["subgroup", "shared"])
@pytest.mark.parametrize("m", [1, 3, 4])
@pytest.mark.parametrize("n,k_dim", [(1, 32), (257, 96), (1000, 1280), (2000, 256), (3072, 3072), (31, 4128)])
def test_q4_matvec(host, subgroups, m, n, k_dim, record_error):
    if subgroups and not host.has_subgroups:
        pytest.skip("adapter has no subgroups")
    seed = seed_of("q4_matvec", subgroups, m, n, k_dim)
    rng = np.random.default_rng(seed)
    k = Kernels(host, use_subgroups=subgroups)
    q, w = q4_weight(rng, n, k_dim)
    x = rng.standard_normal((m, k_dim)).astype(np.float32)
    gw = k.upload_weight(q)
    gx, out = k.tensor(x), k.empty((m, n))
    k.fill_bits(out, NAN_BITS)
    run(k, lambda s: k.q4_matvec(s, gx, gw, out))
    # Scale by the magnitude of the summed terms, not of the result alone: with one output row
    # (n = 1) the dot product can cancel to near zero, and f32 rounding of its 32 terms is then
    # large relative to it (seen: 2.9e-5 of a cancelled result, 1e-7 of the terms).
    ref = x.astype(np.float64) @ w.T
    scale = max(np.abs(ref).max(), (np.abs(x).astype(np.float64) @ np.abs(w).T).max() / 8)
    err = float(np.max(np.abs(k.read(out) - ref)) / scale)
    record_error("q4_matvec", err)
    assert err < MATVEC_BOUND, f"seed={seed} err={err:.3g}"


def rms_normed(x, g, eps, ada=None):
    """float64 reference of rmsnorm: x / sqrt(mean(x²) + eps) · g [· (1 + ada)]."""
    x = x.astype(np.float64)
    y = x / np.sqrt((x * x).mean(axis=1, keepdims=True) + eps) * g
    return y if ada is None else y * (1.0 + ada)


# bound: MATVEC_BOUND, relative to the summed terms' magnitude as in test_q4_matvec
@pytest.mark.parametrize("subgroups", [True, False], ids=["subgroup", "shared"])
@pytest.mark.parametrize("m", [1, 4])
@pytest.mark.parametrize("use_ada", [False, True])
@pytest.mark.parametrize("n,k_dim", [(70, 96), (1001, 3072)])
def test_q4_matvec_with_fused_rmsnorm(host, subgroups, m, use_ada, n, k_dim, record_error):
    """NORM: y = W · rmsnorm(x) (· (1 + ada)) in the matvec itself, plus a bias and a residual."""
    if subgroups and not host.has_subgroups:
        pytest.skip("adapter has no subgroups")
    seed = seed_of("q4_norm", subgroups, m, use_ada, n, k_dim)
    rng = np.random.default_rng(seed)
    k = Kernels(host, use_subgroups=subgroups)
    q, w = q4_weight(rng, n, k_dim)
    x = (rng.standard_normal((m, k_dim)) * rng.uniform(0.1, 30, (m, 1))).astype(np.float32)
    g = rng.uniform(0.5, 1.5, k_dim).astype(np.float32)
    ada = rng.uniform(-0.5, 0.5, k_dim).astype(np.float32) if use_ada else None
    b = rng.standard_normal(n).astype(np.float32)
    res = rng.standard_normal((m, n)).astype(np.float32)
    gw, gx, out = k.upload_weight(q), k.tensor(x), k.empty((m, n))
    k.fill_bits(out, NAN_BITS)
    norm = (k.tensor(g), 1e-5, None if ada is None else k.tensor(ada))
    run(k, lambda s: k.q4_matvec(s, gx, gw, out, k.tensor(b), k.tensor(res), norm=norm))
    xn = rms_normed(x, g, 1e-5, ada)
    ref = res + xn @ w.T + b
    scale = max(np.abs(ref).max(), (np.abs(xn) @ np.abs(w).T).max() / 8)
    err = float(np.max(np.abs(k.read(out) - ref)) / scale)
    record_error("q4_matvec + rmsnorm", err)
    assert err < MATVEC_BOUND, f"seed={seed} err={err:.3g}"


# bound: 2e-6 of the largest output (silu(a)·b has no cancellation beyond its inputs')
@pytest.mark.parametrize("subgroups", [True, False], ids=["subgroup", "shared"])
@pytest.mark.parametrize("m", [1, 3])
@pytest.mark.parametrize("with_norm", [False, True])
@pytest.mark.parametrize("f,k_dim", [(5, 64), (1030, 3072)])
def test_q4_swiglu(host, subgroups, m, with_norm, f, k_dim, record_error):
    """SWIGLU: out = silu(x'·gateᵀ) ⊙ (x'·upᵀ) from the fused [gate; up] weight in one dispatch,
    x' = x or rmsnorm(x) · g (odd feature counts: a last workgroup with one feature)."""
    if subgroups and not host.has_subgroups:
        pytest.skip("adapter has no subgroups")
    seed = seed_of("q4_swiglu", subgroups, m, with_norm, f, k_dim)
    rng = np.random.default_rng(seed)
    k = Kernels(host, use_subgroups=subgroups)
    q, w = q4_weight(rng, 2 * f, k_dim)  # rows [0, f): gate, [f, 2f): up
    x = (rng.standard_normal((m, k_dim)) * 0.5).astype(np.float32)
    g = rng.uniform(0.5, 1.5, k_dim).astype(np.float32)
    gw, gx = k.upload_weight(q), k.tensor(x)
    out = k.empty((m, f + 3)).view_cols(1, 1 + f)  # a column range of a wider matrix
    k.fill_bits(out, NAN_BITS)
    norm = (k.tensor(g), 1e-6, None) if with_norm else None
    run(k, lambda s: k.q4_swiglu(s, gx, gw, out, norm=norm))
    xn = rms_normed(x, g, 1e-6) if with_norm else x.astype(np.float64)
    a, u = xn @ w[:f].T, xn @ w[f:].T
    ref = a / (1.0 + np.exp(-a)) * u
    got = k.read(out)
    err = max_rel(got, ref)
    record_error("q4_swiglu", err)
    assert err < 2e-6, f"seed={seed} err={err:.3g}"


def test_q4_rows_written_in_place_equal_an_upload(host):
    """alloc_q4 + write_q4_rows (the resident load path: parts written at their row offsets,
    across row-block boundaries) give the bytes upload_weight gives for the whole matrix."""
    rng = np.random.default_rng(seed_of("q4_rows"))
    row_bytes = 128 // 32 * 18
    k = Kernels(host, max_binding_bytes=7 * row_bytes + 4)  # 7 rows per block
    parts = [q4_weight(rng, n, 128)[0] for n in (5, 11, 3)]
    whole = Q4Tensor((19, 128), np.concatenate([p.raw for p in parts]))
    ref = k.upload_weight(whole)
    gw = k.alloc_q4(19, 128)
    for p in reversed(list(zip([0, 5, 16], parts))):  # any order
        k.write_q4_rows(gw, p[0], p[1].raw)
    assert [(b.row_start, b.n_rows) for b in gw.blocks] == [(b.row_start, b.n_rows) for b in ref.blocks]
    for a, b in zip(gw.blocks, ref.blocks):
        assert host.read_buffer(a.buffer) == host.read_buffer(b.buffer)
    with pytest.raises(ValueError, match="outside a weight"):
        k.write_q4_rows(gw, 17, parts[2].raw)


def test_shader_runtime_checks_do_not_change_results(host):
    """The native host compiles our shaders without naga's runtime checks by default (they cost
    the GEMM 13x on the H100). Compiled with every check ('all', WebGPU's default), with index
    clamping only and with none, the matvec and the tiled GEMM give the same bits, and an unknown
    mode is refused."""
    from voxtral.backends.webgpu.wgpu_host import DEFAULT_SHADER_CHECKS, WgpuHost
    assert host.shader_checks == DEFAULT_SHADER_CHECKS == "none"
    rng = np.random.default_rng(seed_of("shader_checks"))
    q, w = q4_weight(rng, 70, 256)
    x = rng.standard_normal((9, 256)).astype(np.float32)
    outs = {}
    for mode in ("all", "bounds", "none"):
        other = host if mode == host.shader_checks else WgpuHost(shader_checks=mode)
        kk = Kernels(other)
        gw, gx1, gx9 = kk.upload_weight(q), kk.tensor(x[:1]), kk.tensor(x)
        o1, o9 = kk.empty((1, 70)), kk.empty((9, 70))
        run(kk, lambda s_: (kk.linear(s_, gx1, gw, o1), kk.linear(s_, gx9, gw, o9)))
        outs[mode] = (kk.read(o1), kk.read(o9))
    ref = x.astype(np.float64) @ w.T
    assert max_rel(outs["none"][1], ref) < TILED_BOUND
    for mode in ("all", "bounds"):
        assert np.array_equal(outs[mode][0], outs["none"][0]) and np.array_equal(outs[mode][1], outs["none"][1])
    with pytest.raises(ValueError, match="shader checks"):
        WgpuHost(shader_checks="some")


@pytest.mark.parametrize("mode", ["bias", "bias+residual", "accumulate"])
@pytest.mark.parametrize("m", [1, 4, 5, 17])
def test_q4_linear_bias_residual_and_split(host, mode, m, record_error):
    """Bias / residual / in-place accumulate, with the weight split into 5 row blocks (a small
    binding limit) so every block writes its own output columns; M <= 4 -> matvec, else tiled."""
    n, k_dim = 600, 320
    seed = seed_of("q4_fused", mode, m)
    rng = np.random.default_rng(seed)
    row_bytes = k_dim // 32 * 18
    k = Kernels(host, max_binding_bytes=130 * row_bytes + 4)
    q, w = q4_weight(rng, n, k_dim)
    gw = k.upload_weight(q)
    assert len(gw.blocks) == 5 and gw.blocks[-1].n_rows == 80
    x = rng.standard_normal((m, k_dim)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    r = rng.standard_normal((m, n)).astype(np.float32)
    gx, gb = k.tensor(x), k.tensor(b)
    ref = x.astype(np.float64) @ w.T + b
    if mode == "bias":
        out = k.empty((m, n))
        k.fill_bits(out, NAN_BITS)
        run(k, lambda s: k.linear(s, gx, gw, out, bias=gb))
    elif mode == "bias+residual":
        out, gr = k.empty((m, n)), k.tensor(r)
        k.fill_bits(out, NAN_BITS)
        run(k, lambda s: k.linear(s, gx, gw, out, bias=gb, residual=gr))
        ref = ref + r
    else:
        out = k.tensor(r)  # the residual stream, updated in place
        run(k, lambda s: k.linear(s, gx, gw, out, bias=gb, residual=out))
        ref = ref + r
    err = max_rel(k.read(out), ref)
    record_error("q4 bias/residual/split", err)
    assert err < TILED_BOUND, f"seed={seed} err={err:.3g}"


@pytest.mark.parametrize("m", [1, 5])
def test_q4_linear_into_column_view(host, m):
    """Three projections write their column ranges of one fused [M, 3N] output (matvec and tiled,
    weights split in blocks): each block lands at view offset + block row, bias follows the row,
    and the columns outside the view keep their poison."""
    n, k_dim = 200, 128
    seed = seed_of("q4_view", m)
    rng = np.random.default_rng(seed)
    k = Kernels(host, max_binding_bytes=70 * (k_dim // 32 * 18) + 4)
    x = rng.standard_normal((m, k_dim)).astype(np.float32)
    gx = k.tensor(x)
    fused = k.empty((m, 3 * n))
    k.fill_bits(fused, NAN_BITS)
    refs, seq = [], []
    for part in (0, 2):  # leave the middle third untouched
        q, w = q4_weight(rng, n, k_dim)
        b = rng.standard_normal(n).astype(np.float32)
        view = fused.view_cols(part * n, (part + 1) * n)
        k.linear(seq, gx, k.upload_weight(q), view, bias=k.tensor(b))
        refs.append(x.astype(np.float64) @ w.T + b)
    k.run(seq)
    got = k.read(fused)
    err = max(max_rel(got[:, :n], refs[0]), max_rel(got[:, 2 * n:], refs[1]))
    assert err < TILED_BOUND, f"seed={seed} err={err:.3g}"
    assert np.all(np.isnan(got[:, n:2 * n])), f"seed={seed}: wrote outside its view"


# -------------------------------------------------------------------------- Q4 matmul
@pytest.mark.parametrize("gemm8", [False, True], ids=["4x4", "8x8"])
@pytest.mark.parametrize("m", [5, 17, 64, 130])
@pytest.mark.parametrize("n,k_dim", [(257, 96), (1000, 1280), (2000, 256)])
def test_q4_matmul(host, gemm8, m, n, k_dim, record_error):
    """q4_matmul.wgsl (4x4 outputs per invocation) and q4_gemm8.wgsl (8x8) against float64, with
    bias and a residual (the encoder's fused adds)."""
    seed = seed_of("q4_matmul", gemm8, m, n, k_dim)
    rng = np.random.default_rng(seed)
    k = Kernels(host)
    k.gemm8 = gemm8
    q, w = q4_weight(rng, n, k_dim)
    x = rng.standard_normal((m, k_dim)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    r = rng.standard_normal((m, n)).astype(np.float32)
    gw, gx, out = k.upload_weight(q), k.tensor(x), k.empty((m, n))
    k.fill_bits(out, NAN_BITS)
    run(k, lambda s: k.q4_matmul(s, gx, gw, out, bias=k.tensor(b), residual=k.tensor(r)))
    err = max_rel(k.read(out), r + x.astype(np.float64) @ w.T + b)
    record_error("q4_matmul", err)
    assert err < TILED_BOUND, f"seed={seed} err={err:.3g}"


def test_q4_matvec_and_matmul_agree_on_m4(k, record_error):
    """The two Q4 kernels compute the same product (the tiled one accepts any M)."""
    seed = seed_of("q4_agree")
    rng = np.random.default_rng(seed)
    q, w = q4_weight(rng, 333, 512)
    x = rng.standard_normal((4, 512)).astype(np.float32)
    gw, gx = k.upload_weight(q), k.tensor(x)
    a, b = k.empty((4, 333)), k.empty((4, 333))
    run(k, lambda s: (k.q4_matvec(s, gx, gw, a), k.q4_matmul(s, gx, gw, b)))
    err = max_rel(k.read(a), k.read(b))
    record_error("q4 matvec vs matmul", err)
    assert err < 4e-6, f"seed={seed} err={err:.3g}"


# ------------------------------------------------------------------------ dense linear
# bound: TILED_BOUND for f32 and f16 weights (f16 compared with the f16-rounded weights: the
# decode is exact)
@pytest.mark.parametrize("wdtype,shader_f16", [("f32", False), ("f16", False), ("f16", True)],
                         ids=["f32", "f16-packed", "f16-shader"])
@pytest.mark.parametrize("m,n,k_dim", [(1, 300, 1280), (3, 64, 32), (5, 77, 100), (64, 130, 66),
                                       (17, 1000, 512)])
def test_linear_dense(host, wdtype, shader_f16, m, n, k_dim, record_error):
    if shader_f16 and not host.has_shader_f16:
        pytest.skip("adapter has no shader-f16")
    seed = seed_of("linear", shader_f16, wdtype, m, n, k_dim)
    rng = np.random.default_rng(seed)
    k = Kernels(host, use_shader_f16=shader_f16)
    w = rng.standard_normal((n, k_dim)).astype(np.float32)
    w_ref = w.astype(np.float16 if wdtype == "f16" else np.float32).astype(np.float64)
    x = rng.standard_normal((m, k_dim)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    r = rng.standard_normal((m, n)).astype(np.float32)
    gw, gx, gb, gr = k.upload_weight(w, wdtype), k.tensor(x), k.tensor(b), k.tensor(r)
    out = k.empty((m, n))
    k.fill_bits(out, NAN_BITS)
    run(k, lambda s: k.linear(s, gx, gw, out, bias=gb, residual=gr))
    err = max_rel(k.read(out), r + x.astype(np.float64) @ w_ref.T + b)
    record_error("linear (f32/f16 W)", err)
    assert err < TILED_BOUND, f"seed={seed} err={err:.3g}"


def test_linear_dense_split_into_blocks(host, record_error):
    seed = seed_of("linear_split")
    rng = np.random.default_rng(seed)
    n, k_dim, m = 500, 64, 3
    k = Kernels(host, max_binding_bytes=64 * k_dim * 2)  # 64 f16 rows per block
    w = rng.standard_normal((n, k_dim)).astype(np.float16)
    x = rng.standard_normal((m, k_dim)).astype(np.float32)
    gw = k.upload_weight(w, "f16")
    assert len(gw.blocks) == 8
    gx, out = k.tensor(x), k.empty((m, n))
    k.fill_bits(out, NAN_BITS)
    run(k, lambda s: k.linear(s, gx, gw, out))
    err = max_rel(k.read(out), x.astype(np.float64) @ w.astype(np.float64).T)
    record_error("linear split", err)
    assert err < TILED_BOUND, f"seed={seed} err={err:.3g}"


# ----------------------------------------------------------------------------- conv1d
def conv1d_ref(x_tc, w, b, stride):
    """x [T_in, C] with left context, w [O, C, 3] -> [T_out, O] (valid cross-correlation)."""
    t_out = (x_tc.shape[0] - 3) // stride + 1
    x = x_tc.astype(np.float64)
    y = np.empty((t_out, w.shape[0]))
    for t in range(t_out):
        y[t] = np.einsum("ock,kc->o", w, x[stride * t: stride * t + 3])
    return y + b


# bound: TILED_BOUND normwise
@pytest.mark.parametrize("c,o,t_in,stride", [(128, 96, 2 + 16, 1), (64, 80, 1 + 16, 2),
                                              (256, 130, 2 + 70, 1), (96, 64, 1 + 130, 2)])
def test_conv1d(k, c, o, t_in, stride, record_error):
    seed = seed_of("conv1d", c, o, t_in, stride)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((t_in, c)).astype(np.float32)
    w = rng.standard_normal((o, c, 3)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    t_out = (t_in - 3) // stride + 1
    gx, gw, gb, out = k.tensor(x), k.tensor(w), k.tensor(b), k.empty((t_out, o))
    k.fill_bits(out, NAN_BITS)
    run(k, lambda s: k.conv1d(s, gx, gw, gb, out, stride))
    err = max_rel(k.read(out), conv1d_ref(x, w.astype(np.float64), b, stride))
    record_error("conv1d", err)
    assert err < TILED_BOUND, f"seed={seed} err={err:.3g}"


# ---------------------------------------------------------------------------- rmsnorm
# bound: 2e-6 normwise
@pytest.mark.parametrize("ada", [False, True])
@pytest.mark.parametrize("rows,d", [(1, 3072), (5, 1280), (17, 100), (64, 333)])
def test_rmsnorm(k, ada, rows, d, record_error):
    seed = seed_of("rmsnorm", ada, rows, d)
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, d)) * rng.uniform(0.1, 10, (rows, 1))).astype(np.float32)
    w = rng.standard_normal(d).astype(np.float32)
    s = (0.1 * rng.standard_normal(d)).astype(np.float32)
    eps = 1e-5
    gx, gw, gs, out = k.tensor(x), k.tensor(w), k.tensor(s), k.empty((rows, d))
    k.fill_bits(out, NAN_BITS)
    run(k, lambda q: k.rmsnorm(q, gx, gw, out, eps, ada_s=gs if ada else None))
    x64 = x.astype(np.float64)
    ref = x64 / np.sqrt(np.mean(x64 * x64, axis=-1, keepdims=True) + eps) * w
    if ada:
        ref = ref * (1.0 + s.astype(np.float64))
    err = max_rel(k.read(out), ref)
    record_error("rmsnorm", err)
    assert err < 2e-6, f"seed={seed} err={err:.3g}"


# ------------------------------------------------------------------------------- rope
def rope_ref(x, positions, n_heads, hd, theta):
    """float64 rotation by the reference's f32 angle (pos_f32 * inv_freq_f32, rounded to f32)."""
    expo = np.arange(0, hd, 2, dtype=np.float32) / np.float32(hd)
    inv = (np.float32(1.0) / np.power(np.float32(theta), expo)).astype(np.float32)
    ang = (np.asarray(positions, np.float32)[:, None] * inv[None]).astype(np.float64)
    xr = x.astype(np.float64).reshape(len(positions), n_heads, hd // 2, 2)
    c, s = np.cos(ang)[:, None], np.sin(ang)[:, None]
    out = np.empty_like(xr)
    out[..., 0] = xr[..., 0] * c - xr[..., 1] * s
    out[..., 1] = xr[..., 0] * s + xr[..., 1] * c
    return out.reshape(x.shape)


# bound: 2e-6 normwise, positions up to 60000 (the f32 angle is reduced mod 2π in the shader)
@pytest.mark.parametrize("m,n_q,n_kv,hd,max_pos", [(1, 32, 8, 128, 60000), (4, 32, 32, 64, 1000),
                                                  (17, 4, 2, 64, 20), (64, 8, 2, 128, 9000)])
def test_rope_on_fused_qkv_view(k, m, n_q, n_kv, hd, max_pos, record_error):
    """Rotates the q and k columns of a fused [M, (n_q + 2 n_kv)·hd] matrix in one call; the v
    columns must stay untouched."""
    seed = seed_of("rope", m, n_q, n_kv, hd, max_pos)
    rng = np.random.default_rng(seed)
    theta = 1e6
    width = (n_q + 2 * n_kv) * hd
    qkv = rng.standard_normal((m, width)).astype(np.float32)
    start = rng.integers(0, max_pos - m + 1)
    pos = np.arange(start, start + m, dtype=np.uint32)
    g = k.tensor(qkv)
    gpos = k.tensor(np.concatenate([[ALL_ONES] * 3, pos]).astype(np.uint32))  # view at offset 3
    run(k, lambda s: k.rope(s, g.view_cols(0, (n_q + n_kv) * hd), gpos.view_elems(3, 3 + m),
                            n_q + n_kv, hd, theta))
    got = k.read(g)
    rot = (n_q + n_kv) * hd
    ref = rope_ref(qkv[:, :rot], pos, n_q + n_kv, hd, theta)
    err = max_rel(got[:, :rot], ref)
    record_error("rope", err)
    assert err < 2e-6, f"seed={seed} err={err:.3g}"
    assert np.array_equal(got[:, rot:], qkv[:, rot:]), f"seed={seed}: v columns changed"


# -------------------------------------------------------------------------- attention
def attention_ref(q, keys, values, q_pos, k_pos, n_heads, n_kv, hd, window, scale):
    """float64 causal sliding-window GQA attention; keys/values [L, n_kv*hd] at positions k_pos."""
    q_pos = np.asarray(q_pos, np.int64)[:, None]
    k_pos = np.asarray(k_pos, np.int64)[None, :]
    visible = (k_pos <= q_pos) & (k_pos > q_pos - window)  # [M, L]
    out = np.zeros((q.shape[0], n_heads * hd))
    for h in range(n_heads):
        g = h // (n_heads // n_kv)
        s = (q[:, h * hd:(h + 1) * hd].astype(np.float64) * scale) @ keys[:, g * hd:(g + 1) * hd].T
        s = np.where(visible, s, -np.inf)
        e = np.exp(s - s.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        out[:, h * hd:(h + 1) * hd] = p @ values[:, g * hd:(g + 1) * hd]
    return out


def attention_chunks(k: Kernels, *, kv_dtype, n_heads, n_kv, hd, window, capacity, chunks, seed):
    """Feed positions 0, 1, ... in chunks of the given row counts through kv_write + attention on
    a configured Kernels k. Each chunk size's dispatch list is built once and re-run with new data
    for every later chunk of that size (as a decode loop does); the step input is one fused
    [rows, q | k | v] matrix, like a QKV projection output, read through column views; the rings
    start as NaN (a slot read before it is written poisons the output). Returns (worst normwise
    error over the chunks against the float64 reference, {rows: that chunk size's dispatches})."""
    rng = np.random.default_rng(seed)
    width = n_kv * hd
    qkv_w = n_heads * hd + 2 * width
    k_cache = k.kv_cache(capacity, width, kv_dtype)
    v_cache = k.kv_cache(capacity, width, kv_dtype)
    k.fill_bits(k_cache, ALL_ONES)
    k.fill_bits(v_cache, ALL_ONES)
    steps = {}

    def step_for(rows):
        if rows not in steps:
            g_qkv, g_pos = k.empty((rows, qkv_w)), k.empty((rows,), "u32")
            out = k.empty((rows, n_heads * hd))
            seq: list = []
            k.kv_write(seq, g_qkv.view_cols(n_heads * hd, n_heads * hd + width),
                       g_qkv.view_cols(n_heads * hd + width, qkv_w), g_pos, k_cache, v_cache)
            k.attention(seq, g_qkv.view_cols(0, n_heads * hd), k_cache, v_cache, g_pos, out,
                        n_heads, n_kv, hd, window)
            steps[rows] = (seq, g_qkv, g_pos, out)
        return steps[rows]

    all_kv = np.zeros((0, 2 * width))
    worst = 0.0
    rounding = np.float16 if kv_dtype == "f16" else np.float32
    start = 0
    for rows in chunks:
        seq, g_qkv, g_pos, out = step_for(rows)
        pos = np.arange(start, start + rows, dtype=np.int64)
        start += rows
        qkv = rng.standard_normal((rows, qkv_w)).astype(np.float32)
        qkv[:, n_heads * hd:] *= 2.0  # sharper softmax
        k.write(g_qkv, qkv)
        k.write(g_pos, pos)
        k.fill_bits(out, NAN_BITS)
        k.run(seq)
        all_kv = np.concatenate([all_kv, qkv[:, n_heads * hd:].astype(rounding).astype(np.float64)])
        # what the ring still holds: the last `capacity` positions
        k_pos = np.arange(len(all_kv))
        held = k_pos > pos[-1] - capacity
        ref = attention_ref(qkv[:, :n_heads * hd], all_kv[held, :width], all_kv[held, width:], pos,
                            k_pos[held], n_heads, n_kv, hd, window, 1.0 / math.sqrt(hd))
        worst = max(worst, max_rel(k.read(out), ref))
    return worst, {rows: s[0] for rows, s in steps.items()}


def _attention_steps(host, *, kv_dtype, shader_f16, n_heads, n_kv, hd, window, capacity, chunks,
                     seed, min_split_keys=None, attn_rows=True, used=None, subgroups=None,
                     defines=()):
    """attention_chunks on a Kernels with these switches; `used` collects the attention shaders
    that ran. Returns the worst error."""
    k = Kernels(host, use_shader_f16=shader_f16, use_subgroups=subgroups)
    if min_split_keys:
        k.attn_min_split_keys = min_split_keys  # many key segments (split-K) and empty ones
    k.attn_rows = attn_rows
    k.extra_defines = frozenset(defines)
    worst, _ = attention_chunks(k, kv_dtype=kv_dtype, n_heads=n_heads, n_kv=n_kv, hd=hd, window=window,
                                capacity=capacity, chunks=chunks, seed=seed)
    if used is not None:  # which attention shaders ran
        used.update(key[0] for key in k._pipelines if key[0].startswith("attention"))
    return worst


# bounds: f32 cache 5e-6 normwise; f16 cache 2e-3 (the reference rounds K/V to f16 too, but the
# GPU's f32->f16 rounding mode for pack2x16float is implementation-defined)
@pytest.mark.parametrize("kv_dtype,shader_f16", [("f32", False), ("f16", False), ("f16", True)],
                         ids=["f32", "f16-packed", "f16-shader"])
@pytest.mark.parametrize("gqa", [1, 2, 4])
def test_attention_prefill_window_smaller_than_sequence(host, kv_dtype, shader_f16, gqa, record_error):
    if shader_f16 and not host.has_shader_f16:
        pytest.skip("adapter has no shader-f16")
    seed = seed_of("attn_prefill", kv_dtype, shader_f16, gqa)
    n_kv = 2
    err = _attention_steps(host, kv_dtype=kv_dtype, shader_f16=shader_f16, n_heads=n_kv * gqa,
                           n_kv=n_kv, hd=64, window=8, capacity=64, chunks=[17], seed=seed)
    record_error(f"attention ({kv_dtype} kv)", err)
    bound = 5e-6 if kv_dtype == "f32" else 2e-3
    assert err < bound, f"seed={seed} err={err:.3g}"


@pytest.mark.parametrize("min_split_keys", [None, 7], ids=["auto-split", "split7"])
@pytest.mark.parametrize("kv_dtype", ["f32", "f16"])
@pytest.mark.parametrize("gqa,hd,chunks,window,capacity", [
    (4, 128, [1] * 100, 32, 40),         # decode: ring wraps twice; window < capacity
    (2, 64, [4] * 20, 24, 27),           # streaming encoder: 4 rows a step, capacity = window + 3
    (1, 64, [5] * 10, 300, 16),          # ring smaller than the window: only what it holds is seen
    (2, 128, [64] * 3, 48, 130),         # prefill chunks (M = 64) crossing 128-key chunks
    (4, 128, [100] * 3 + [1] * 3, 600, 700),  # prefill, then decode over 300+ keys (split-K)
])
def test_attention_ring_wraparound(host, kv_dtype, min_split_keys, gqa, hd, chunks, window,
                                   capacity, record_error):
    seed = seed_of("attn_ring", kv_dtype, min_split_keys, gqa, hd, chunks, window, capacity)
    err = _attention_steps(host, kv_dtype=kv_dtype, shader_f16=False, n_heads=2 * gqa, n_kv=2,
                           hd=hd, window=window, capacity=capacity, chunks=chunks, seed=seed,
                           min_split_keys=min_split_keys)
    record_error(f"attention ({kv_dtype} kv)", err)
    bound = 5e-6 if kv_dtype == "f32" else 2e-3
    assert err < bound, f"seed={seed} err={err:.3g}"


# bounds as above
@pytest.mark.parametrize("kv_dtype", ["f32", "f16"])
@pytest.mark.parametrize("subgroups", [True, False], ids=["subgroup", "shared"])
@pytest.mark.parametrize("gqa,hd,chunks,window,capacity", [
    (1, 64, [30, 25], 30, 35),            # encoder-like: 1:1 heads, ring smaller than the clip
    (1, 32, [37], 500, 600),              # whole clip inside the window, rows not a multiple of 16
    (4, 128, [39, 1, 1], 8192, 8200),     # a decoder prompt, then decode steps
    (2, 96, [20], 16, 40),                # head_dim not a multiple of 32: `attention` instead
])
def test_attention_rows_many_query_rows(host, kv_dtype, subgroups, gqa, hd, chunks, window, capacity,
                                        record_error):
    """attention_rows.wgsl (16 query rows of a head per workgroup) against the float64 reference,
    and the same cases through `attention` (VOXTRAL_ATTN_ROWS=0); with subgroups off, or a head_dim
    it does not take, `attention` runs."""
    if subgroups and not host.has_subgroups:
        pytest.skip("adapter has no subgroups")
    seed = seed_of("attn_rows", kv_dtype, subgroups, gqa, hd, chunks, window, capacity)
    bound = 5e-6 if kv_dtype == "f32" else 2e-3
    for rows_kernel in (True, False):
        used: set = set()
        err = _attention_steps(host, kv_dtype=kv_dtype, shader_f16=False, n_heads=2 * gqa, n_kv=2,
                               hd=hd, window=window, capacity=capacity, chunks=chunks, seed=seed,
                               attn_rows=rows_kernel, used=used, subgroups=subgroups)
        record_error(f"attention ({kv_dtype} kv)", err)
        assert err < bound, f"seed={seed} rows_kernel={rows_kernel} err={err:.3g}"
        assert ("attention_rows.wgsl" in used) == (rows_kernel and subgroups and hd % 32 == 0), used
    if subgroups and hd % 32 == 0:  # the team sums through workgroup memory (subgroups < 8 lanes)
        err = _attention_steps(host, kv_dtype=kv_dtype, shader_f16=False, n_heads=2 * gqa, n_kv=2,
                               hd=hd, window=window, capacity=capacity, chunks=chunks, seed=seed,
                               defines=("TEAM_SUMS_IN_MEMORY",))
        assert err < bound, f"seed={seed} (sums in memory) err={err:.3g}"


def test_kv_write_f16_bytes_match_numpy(host):
    """The f16 ring holds exactly numpy's f16 rounding at slot p % capacity (packed path)."""
    seed = seed_of("kv_write_bytes")
    rng = np.random.default_rng(seed)
    k = Kernels(host, use_shader_f16=False)
    cap, width, m = 10, 64, 4
    kc, vc = k.kv_cache(cap, width, "f16"), k.kv_cache(cap, width, "f16")
    kn = rng.standard_normal((m, width)).astype(np.float32)
    vn = rng.standard_normal((m, width)).astype(np.float32)
    pos = np.array([8, 9, 10, 11], np.uint32)  # slots 8, 9, 0, 1
    run(k, lambda s: k.kv_write(s, k.tensor(kn), k.tensor(vn), k.tensor(pos), kc, vc))
    got_k, got_v = k.read(kc), k.read(vc)
    slots = pos % cap
    mismatch = max(np.mean(got_k[slots] != kn.astype(np.float16)),
                   np.mean(got_v[slots] != vn.astype(np.float16)))
    assert mismatch < 0.01, f"seed={seed}: {mismatch:.3%} of halves differ from numpy's rounding"


@pytest.mark.parametrize("kv_dtype", ["f32", "f16"])
@pytest.mark.parametrize("m,n_q,n_kv,hd,cap", [(1, 32, 8, 128, 50), (3, 4, 2, 64, 5), (4, 8, 8, 16, 9)])
def test_rope_kv_write_equals_rope_then_kv_write(host, kv_dtype, m, n_q, n_kv, hd, cap):
    """The fused decode-step kernel leaves exactly the bytes of rope (q and k in place) followed
    by kv_write (rotated k and v into the ring at p % capacity), including ring wrap-around and
    a positions view at an offset."""
    seed = seed_of("rope_kv", kv_dtype, m, n_q, n_kv, hd)
    rng = np.random.default_rng(seed)
    theta, width = 1e6, n_kv * hd
    qkv = rng.standard_normal((m, (n_q + 2 * n_kv) * hd + 6)).astype(np.float32)  # + 6 spare columns
    start = int(rng.integers(cap - m, 40000))
    pos = np.concatenate([[ALL_ONES] * 5, np.arange(start, start + m)]).astype(np.uint32)
    results = []
    for fused in (False, True):
        k = Kernels(host)
        g, gpos = k.tensor(qkv), k.tensor(pos)
        kc, vc = k.kv_cache(cap, width, kv_dtype), k.kv_cache(cap, width, kv_dtype)
        for c in (kc, vc):
            k.fill_bits(c, 0x3F803F80)  # stale ring contents that must survive outside the slots
        view = g.view_cols(2, 2 + (n_q + 2 * n_kv) * hd)
        p = gpos.view_elems(5, 5 + m)
        if fused:
            run(k, lambda s: k.rope_kv_write(s, view, p, n_q, n_kv, hd, theta, kc, vc))
        else:
            qk = g.view_cols(2, 2 + (n_q + n_kv) * hd)
            kk = g.view_cols(2 + n_q * hd, 2 + (n_q + n_kv) * hd)
            vv = g.view_cols(2 + (n_q + n_kv) * hd, 2 + (n_q + 2 * n_kv) * hd)
            run(k, lambda s: (k.rope(s, qk, p, n_q + n_kv, hd, theta),
                              k.kv_write(s, kk, vv, p, kc, vc)))
        results.append([host.read_buffer(t.buffer) for t in (g, kc, vc)])
    for plain, fused in zip(*results):
        assert plain == fused, f"seed={seed}"
    assert results[0][0] != qkv.tobytes()  # the rotation did happen


@pytest.mark.parametrize("kv_dtype,shader_f16", [("f32", False), ("f16", False), ("f16", True)])
@pytest.mark.parametrize("m", [1, 3])
@pytest.mark.parametrize("with_norm,with_bias", [(True, False), (False, True)])
def test_q4_matvec_rope_kv_equals_matvec_then_rope_kv_write(host, kv_dtype, shader_f16, m,
                                                            with_norm, with_bias):
    """ROPE_KV: the QKV matvec that rotates q and k and writes k, v into the ring caches leaves
    the bytes of the matvec followed by rope_kv_write (output, both caches), with a positions view
    at an offset, ring wrap-around and the output as a column view of a wider matrix."""
    if shader_f16 and not host.has_shader_f16:
        pytest.skip("adapter has no shader-f16")
    seed = seed_of("q4_rope_kv", kv_dtype, shader_f16, m, with_norm, with_bias)
    rng = np.random.default_rng(seed)
    n_q, n_kv, hd, cap, theta = 4, 2, 32, 37, 1e6
    width, cols = n_kv * hd, (n_q + 2 * n_kv) * hd
    q, _ = q4_weight(rng, cols, 96)
    x = rng.standard_normal((m, 96)).astype(np.float32)
    g = rng.uniform(0.5, 1.5, 96).astype(np.float32)
    b = rng.standard_normal(cols).astype(np.float32)
    start = int(rng.integers(cap - m, 40000))
    pos = np.concatenate([[ALL_ONES] * 5, np.arange(start, start + m)]).astype(np.uint32)
    results = []
    for fused in (False, True, "over the storage-buffer limit"):
        k = Kernels(host, use_shader_f16=shader_f16)
        if fused == "over the storage-buffer limit":  # the two dispatches instead, same bytes
            k.host = _HostWithLimits(host, max_storage_buffers_per_shader_stage=7)  # the fused one needs 8
        gw, gx, gpos = k.upload_weight(q), k.tensor(x), k.tensor(pos)
        wide = k.empty((m, cols + 6))
        k.fill_bits(wide, NAN_BITS)
        out = wide.view_cols(2, 2 + cols)
        kc, vc = k.kv_cache(cap, width, kv_dtype), k.kv_cache(cap, width, kv_dtype)
        for c in (kc, vc):
            k.fill_bits(c, 0x3F803F80)  # stale ring contents that must survive outside the slots
        p = gpos.view_elems(5, 5 + m)
        norm = (k.tensor(g), 1e-5, None) if with_norm else None
        bias = k.tensor(b) if with_bias else None
        if fused:
            run(k, lambda s: k.q4_matvec(s, gx, gw, out, bias, norm=norm,
                                         rope_kv=(p, n_q, n_kv, hd, theta, kc, vc)))
        else:
            run(k, lambda s: (k.q4_matvec(s, gx, gw, out, bias, norm=norm),
                              k.rope_kv_write(s, out, p, n_q, n_kv, hd, theta, kc, vc)))
        results.append([host.read_buffer(t.buffer) for t in (wide, kc, vc)])
        assert any(key[1] == "rope_kv_write" for key in k._pipelines) == (fused is not True)
    for plain, fused, split in zip(*results):
        assert plain == fused == split, f"seed={seed}"
    assert results[0][1] != bytes(len(results[0][1]))  # the cache was written


class _HostWithLimits:
    """A host whose reported limits are lowered (the rest is the real host's)."""

    def __init__(self, host, **limits):
        self._host = host
        self.limits = {**host.limits, **limits}

    def __getattr__(self, name):
        return getattr(self._host, name)


# ------------------------------------------------------------------------- elementwise
def gelu_ref(x):
    """0.5·x·erfc(-x/√2) = 0.5·x·(1 + erf(x/√2)) without the cancellation for negative x."""
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * x * np.vectorize(math.erfc)(-x / math.sqrt(2.0))


def test_gelu_exact_erf(k, record_error):
    """Per-element relative error over [-14, 14] plus special points; bound 1e-6 (values below
    f32's normal range, x < -13.2, are compared absolutely)."""
    seed = seed_of("gelu")
    rng = np.random.default_rng(seed)
    x = np.concatenate([np.linspace(-14, 14, 28001), rng.standard_normal(3000) * 3,
                        [0.0, -0.0, 1e-30, -1e-30, 0.6629, -0.6629, 0.663, 5.65, -5.66, 40, -40]]
                       ).astype(np.float32)
    gx, out = k.tensor(x.reshape(1, -1)), k.empty((1, x.size))
    k.fill_bits(out, NAN_BITS)
    run(k, lambda s: k.gelu(s, gx, out))
    got = k.read(out).reshape(-1).astype(np.float64)
    ref = gelu_ref(x)
    assert np.all(np.isfinite(got)), f"seed={seed}"
    rel = np.abs(got - ref) / np.maximum(np.abs(ref), 1e-38)
    rel = np.where(np.abs(ref) < 1e-37, np.abs(got - ref), rel)  # f32 flushes those to zero
    record_error("gelu (per element)", float(rel.max()))
    assert rel.max() < 1e-6, f"seed={seed} worst x={x[rel.argmax()]} rel={rel.max():.3g}"


def test_silu_swiglu_add_on_views(k, record_error):
    """swiglu reads the gate/up halves of one fused [M, 2F] buffer; add/add_/silu in place.
    Per-element relative error bound 1e-6 (floor 1e-6)."""
    seed = seed_of("elementwise")
    rng = np.random.default_rng(seed)
    m, f = 17, 333
    gu = (rng.standard_normal((m, 2 * f)) * 4).astype(np.float32)
    a = rng.standard_normal((m, f)).astype(np.float32)
    g_gu, g_a = k.tensor(gu), k.tensor(a)
    outs = {name: k.empty((m, f)) for name in ("swiglu", "silu", "add")}
    for t in outs.values():
        k.fill_bits(t, NAN_BITS)
    g_inplace = k.tensor(a)

    def build(s):
        k.swiglu(s, g_gu.view_cols(0, f), g_gu.view_cols(f, 2 * f), outs["swiglu"])
        k.silu(s, g_gu.view_cols(f, 2 * f), outs["silu"])
        k.add(s, g_a, g_gu.view_cols(0, f), outs["add"])
        k.add_(s, g_inplace, g_gu.view_cols(f, 2 * f))
        k.gelu(s, g_inplace)  # in place after the add
    run(k, build)
    gate, up = gu[:, :f].astype(np.float64), gu[:, f:].astype(np.float64)
    silu = lambda v: v / (1.0 + np.exp(-v))  # noqa: E731
    refs = {"swiglu": silu(gate) * up, "silu": silu(up), "add": a + gate}
    for name, ref in refs.items():
        got = k.read(outs[name]).astype(np.float64)
        rel = np.max(np.abs(got - ref) / np.maximum(np.abs(ref), 1e-6))
        record_error(f"{name} (per element)", rel)
        assert rel < 1e-6, f"seed={seed} {name} rel={rel:.3g}"
    ref = gelu_ref((a + up.astype(np.float32)).astype(np.float32))
    rel = np.max(np.abs(k.read(g_inplace) - ref) / np.maximum(np.abs(ref), 1e-6))
    assert rel < 1e-6, f"seed={seed} add_+gelu_ rel={rel:.3g}"


# -------------------------------------------------------------------------- embedding
@pytest.mark.parametrize("accumulate", [False, True])
def test_embedding_gather_from_split_q4_table(host, accumulate):
    """Rows gathered from a Q4 table split into 4 blocks match Q4Tensor.take bit for bit (the
    GPU and numpy dequantize with the same single f32 product); ids come from a GPU buffer view."""
    seed = seed_of("embedding", accumulate)
    rng = np.random.default_rng(seed)
    vocab, d, m = 1000, 256, 9
    k = Kernels(host, max_binding_bytes=250 * (d // 32 * 18) + 4)
    q = Q4Tensor.quantize(rng.standard_normal((vocab, d)).astype(np.float32))
    table = k.upload_weight(q)
    assert len(table.blocks) == 4
    edges = [0, vocab - 1, 249, 250, 499, 500, 750]  # first/last rows of blocks
    ids = np.concatenate([edges, rng.integers(0, vocab, m - len(edges))]).astype(np.uint32)
    base = rng.standard_normal((m, d)).astype(np.float32)
    g_ids = k.tensor(np.concatenate([[ALL_ONES], ids]).astype(np.uint32))
    out = k.tensor(base) if accumulate else k.empty((m, d))
    if not accumulate:
        k.fill_bits(out, NAN_BITS)
    run(k, lambda s: k.embedding(s, table, g_ids.view_elems(1, 1 + m), out, accumulate=accumulate))
    rows = q.take(ids)
    ref = base + rows if accumulate else rows
    assert np.array_equal(k.read(out), ref), f"seed={seed}"


def test_gather_rows_f32_by_device_index(k):
    """gather_rows: out[m] = src[ids[m]] from a row view of a wider f32 matrix; the same dispatch
    re-run with new indices written to the ids buffer picks the new rows."""
    rng = np.random.default_rng(seed_of("gather_rows"))
    full = rng.standard_normal((23, 8 + 96)).astype(np.float32)
    src = k.tensor(full).view_cols(8, 8 + 96).view_rows(3, 23)  # [20, 96] at an offset
    ids, out = k.empty((3,), "u32"), k.empty((3, 96))
    seq = []
    k.gather_rows(seq, src, ids, out)
    for pick in ([0, 19, 7], [5, 5, 18]):
        k.write(ids, np.asarray(pick, np.uint32))
        k.fill_bits(out, NAN_BITS)
        k.run(seq)
        assert np.array_equal(k.read(out), full[3:, 8:][pick])
    with pytest.raises(ValueError, match="multiples of 4"):
        k.gather_rows([], k.tensor(full).view_cols(1, 97), ids, out)


# ----------------------------------------------------------------------------- argmax
@pytest.mark.parametrize("rows,n", [(1, 131072), (3, 5000), (2, 4096), (1, 7)])
def test_argmax_ties_lowest_index(k, rows, n):
    seed = seed_of("argmax", rows, n)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, n)).astype(np.float32)
    top = np.float32(x.max() + 1.0)
    for r in range(rows):  # plant ties in different workgroups; numpy picks the first
        x[r, rng.choice(n, size=min(3, n), replace=False)] = top
    if rows > 1:
        x[1] = -np.inf  # all -inf: index 0
    g_x = k.tensor(x)
    ids = k.empty((rows + 2,), "u32")
    k.fill_bits(ids, ALL_ONES)
    run(k, lambda s: k.argmax(s, g_x, ids.view_elems(2, 2 + rows)))
    got = k.read(ids)
    assert np.array_equal(got[2:], np.argmax(x, axis=1)), f"seed={seed} got={got[2:]}"
    assert np.all(got[:2] == ALL_ONES), f"seed={seed}: wrote outside the view"


# --------------------------------------------------------------------- decode-step reuse
def test_decode_step_list_is_reusable(host):
    """argmax -> embedding of the predicted id -> matvec, all on the GPU, list built once and run
    twice: the second run consumes the first run's token without any host round trip."""
    seed = seed_of("decode_chain")
    rng = np.random.default_rng(seed)
    k = Kernels(host)
    vocab, d = 512, 128
    q = Q4Tensor.quantize(rng.standard_normal((vocab, d)).astype(np.float32))
    table = k.upload_weight(q)
    x0 = rng.standard_normal((1, d)).astype(np.float32)
    h = k.tensor(x0)
    logits = k.empty((1, vocab))
    ids = k.empty((1,), "u32")
    step: list = []
    k.linear(step, h, table, logits)               # tied LM head
    k.argmax(step, logits, ids)
    k.embedding(step, table, ids, h)               # next input = embedding of the argmax
    k.run(step)
    k.run(step)
    w = q.dequantize().astype(np.float64)
    t1 = int(np.argmax(x0.astype(np.float64) @ w.T))
    t2 = int(np.argmax(w[t1] @ w.T))
    assert int(k.read(ids)[0]) == t2, f"seed={seed}"
    assert np.array_equal(k.read(h)[0], q.take([t2])[0]), f"seed={seed}"
