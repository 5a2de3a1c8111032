"""A start-up self-test of the WGSL kernels on known inputs, against the numpy backend.

A browser's WebGPU stack (driver, shader compiler, software fallback) may compile a kernel and still
compute garbage, e.g. a subgroup reduction on an unusual subgroup size. Before trusting the GPU
the worker runs `choose_kernels`: small Q4 matvec and matmul, dense linear, RMSNorm, RoPE, prefill
and split-K decode attention over a ring cache, GELU/SwiGLU, the Q4 embedding gather and argmax,
each compared with `NumpyOps`, and both readback paths (`to_host` and the one-step-behind
`read_later`). It tries the device's best kernel variant first, then without subgroups, then the
plain f32 path; None means "use the numpy backend".

Host-agnostic (numpy + stdlib): the native tests run it on wgpu-py, the worker on the JS host.
"""
from __future__ import annotations

import time

import numpy as np

from ...config import TransformerConfig
from ..numpy_backend import NumpyOps
from .kernels import Kernels
from .ops import GPURingCache, WebGPUOps

REL_TOL = 1e-3  # max |gpu - numpy| / max |numpy|: f32 summation order differs, garbage does not


def _q4(rng, rows: int, cols: int):
    from ...weights.q4 import Q4Tensor

    return Q4Tensor.quantize(rng.standard_normal((rows, cols)).astype(np.float32) * 0.1)


def _cases(gpu: WebGPUOps, ref: NumpyOps, rng):
    """(name, gpu thunk, numpy thunk) for each check; thunks return host arrays."""
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    x1, x9, w_q4, b96 = f32(1, 128), f32(9, 128), _q4(rng, 96, 128), f32(96)
    w_dense = f32(40, 64)
    xd = f32(3, 64)
    xn, wn = f32(3, 256), f32(256)
    xr = f32(5, 4 * 16)
    pos5 = np.arange(7, 12)
    table = _q4(rng, 50, 64)
    ids = np.array([3, 17, 49, 0], dtype=np.int64)
    logits = f32(1, 5000)
    logits[0, 4321] = 50.0  # in the second 4096-wide group: the cross-group reduction matters

    def linear(x, w, b=None):
        return lambda ops: ops.to_host(ops.linear(ops.asarray(x), w, b))

    def argmax_later(ops):
        # the decode loop's readback: scheduled with the next submit, read one step late
        handle = ops.read_later(ops.argmax(ops.asarray(logits)))
        ops.flush()
        return np.asarray(handle.result())

    # attention: 4 query heads over 2 KV heads, head_dim 16; 290 prompt rows (two ring batches),
    # then one decode query over a 300-key window (split-K: several segments + the combine pass)
    n_heads, n_kv, hd, window, n_prompt = 4, 2, 16, 300, 290
    cfg = TransformerConfig(dim=n_heads * hd, n_layers=1, head_dim=hd, hidden_dim=64, n_heads=n_heads,
                            n_kv_heads=n_kv, rope_theta=1e6, norm_eps=1e-5, sliding_window=window)
    q_all, k_all, v_all = f32(n_prompt + 1, n_heads * hd), f32(n_prompt + 1, n_kv * hd), f32(n_prompt + 1, n_kv * hd)
    positions = np.arange(n_prompt + 1)

    def attention_gpu(ops):
        cache = GPURingCache(ops, n_kv * hd, cfg)
        p = n_prompt
        first = cache.attend(ops.asarray(q_all[:p]), ops.asarray(k_all[:p]), ops.asarray(v_all[:p]), positions[:p])
        step = cache.attend(ops.asarray(q_all[p:]), ops.asarray(k_all[p:]), ops.asarray(v_all[p:]), positions[p:])
        return np.concatenate([ops.to_host(first), ops.to_host(step)])

    def attention_ref(ops):
        return ops.attention(q_all, k_all, v_all, positions, positions, n_heads, n_kv, hd, window)

    return [
        ("q4 matvec + bias", linear(x1, w_q4, b96), linear(x1, w_q4, b96)),
        ("q4 matmul", linear(x9, w_q4), linear(x9, w_q4)),
        ("dense linear", linear(xd, w_dense), linear(xd, w_dense)),
        ("rmsnorm", lambda ops: ops.to_host(ops.rmsnorm(ops.asarray(xn), wn, 1e-5)),
         lambda ops: ops.rmsnorm(xn, wn, 1e-5)),
        ("rope", lambda ops: ops.to_host(ops.rope_interleaved(ops.asarray(xr), pos5, 4, 16, 1e6)),
         lambda ops: ops.rope_interleaved(xr, pos5, 4, 16, 1e6)),
        ("attention (prefill + split-K decode)", attention_gpu, attention_ref),
        ("gelu", lambda ops: ops.to_host(ops.gelu(ops.asarray(xn))), lambda ops: ops.gelu(xn)),
        ("swiglu", lambda ops: ops.to_host(ops.mul(ops.silu(ops.asarray(xn)), ops.asarray(xn[::-1].copy()))),
         lambda ops: ops.mul(ops.silu(xn), xn[::-1])),
        ("q4 embedding gather", lambda ops: ops.to_host(ops.embedding_rows(table, ids)),
         lambda ops: ops.embedding_rows(table, ids)),
        ("argmax (read one step late)", argmax_later, lambda ops: ops.argmax(logits)),
    ]


def run_checks(ops: WebGPUOps, *, corrupt: bool = False, seed: int = 1234) -> list[dict]:
    """Each check as {name, ok, error, message}. corrupt=True perturbs the references so every
    check fails (to exercise the fallback path end to end)."""
    rng = np.random.default_rng(seed)
    ref = NumpyOps()
    results = []
    for name, gpu_fn, ref_fn in _cases(ops, ref, rng):
        entry = {"name": name, "ok": False, "error": None, "message": ""}
        try:
            want = np.asarray(ref_fn(ref))
            got = np.asarray(gpu_fn(ops))
            if corrupt:
                want = want + 1
            if got.shape != want.shape:
                entry["message"] = f"shape {got.shape}, expected {want.shape}"
            elif want.dtype.kind in "iu":
                entry["ok"] = bool(np.array_equal(got.astype(np.int64), want.astype(np.int64)))
                entry["error"] = 0.0 if entry["ok"] else 1.0
                if not entry["ok"]:
                    entry["message"] = f"got {got.tolist()}, expected {want.tolist()}"
            elif not np.all(np.isfinite(got)):
                entry["message"] = "non-finite values"
            else:
                err = float(np.abs(got - want).max() / max(float(np.abs(want).max()), 1e-6))
                entry["error"] = err
                entry["ok"] = err <= REL_TOL
                if not entry["ok"]:
                    entry["message"] = f"relative error {err:.3g} > {REL_TOL}"
        except Exception as exc:  # a shader that does not compile, a failed readback, ...
            entry["message"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
        results.append(entry)
    take_errors = getattr(ops.host, "take_errors", None)
    errors = take_errors() if take_errors else None
    if errors:
        results.append({"name": "WebGPU errors", "ok": False, "error": None, "message": errors[:500]})
    return results


def kernel_variants(host) -> list[tuple[bool, bool]]:
    """(use_subgroups, use_shader_f16) to try, best first: what the device offers, then without
    subgroups, then the plain f32 path."""
    best = (host.has_subgroups, host.has_shader_f16)
    out = []
    for v in (best, (False, best[1]), (False, False)):
        if v not in out:
            out.append(v)
    return out


def choose_kernels(host, *, force_fail: bool = False, variants=None) -> tuple[Kernels | None, dict]:
    """The first kernel variant whose self-test passes (None if none does) and a JSON-able report:
    {ok, adapter, use_subgroups, use_shader_f16, attempts: [{use_subgroups, use_shader_f16, ok,
    seconds, failed: [...]}]}."""
    report = {"ok": False, "adapter": getattr(host, "adapter_name", "?"), "use_subgroups": False,
              "use_shader_f16": False, "attempts": []}
    for use_sg, use_f16 in (variants or kernel_variants(host)):
        t0 = time.perf_counter()
        attempt = {"use_subgroups": use_sg, "use_shader_f16": use_f16, "ok": False, "failed": []}
        try:
            kernels = Kernels(host, use_subgroups=use_sg, use_shader_f16=use_f16)
            results = run_checks(WebGPUOps(kernels=kernels), corrupt=force_fail)
            attempt["failed"] = [f"{r['name']}: {r['message']}" for r in results if not r["ok"]]
            attempt["ok"] = not attempt["failed"]
            attempt["max_error"] = max((r["error"] or 0.0) for r in results)
        except Exception as exc:
            kernels = None
            attempt["failed"] = [f"{type(exc).__name__}: {exc}"]
        attempt["seconds"] = round(time.perf_counter() - t0, 3)
        report["attempts"].append(attempt)
        if attempt["ok"]:
            kernels.clear_bind_groups()  # the test's buffers can go
            report.update(ok=True, use_subgroups=use_sg, use_shader_f16=use_f16)
            return kernels, report
    return None, report
