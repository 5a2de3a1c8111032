"""Microbenchmarks of the Q4 kernels on the full-size model's shapes, per shader variant.

Run on the GPU machine (docs/perf-notes.md keeps the results). For each variant - a set of
shader defines (`Kernels.extra_defines`, the names VOXTRAL_SHADER_DEFINES takes) and the runtime
checks the shaders are compiled with (`checks=all|bounds|none`, VOXTRAL_SHADER_CHECKS; "base" is
the host's default) - and each shape, the kernel is dispatched `reps` times in one submit. The dispatches write the
same output, so they run one after another like the dependent dispatches of a real step. Per
dispatch: microseconds of GPU time (timestamps; wall time where the adapter has none), the wall
and host-encoding times, GB/s of weight bytes (the floor of a matvec is bytes / bandwidth) and
TFLOP/s. Every variant's output is compared with the base variant's (they must be bit-identical).

Usage: python scripts/kernel_bench.py [--variants base,checks=bounds,checks=none]
                                      [--reps 30] [--m 800] [--only matmul|matvec] [--decoder-gemm]
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from voxtral.backends.webgpu.kernels import Kernels  # noqa: E402
from voxtral.backends.webgpu.wgpu_host import DEFAULT_SHADER_CHECKS, WgpuHost  # noqa: E402
from voxtral.random_weights import random_q4_raw  # noqa: E402
from voxtral.weights import Q4Tensor  # noqa: E402

# (name, rows N, features K) of the full model's Q4 matrices, fused the way the pipelines fuse them
ENCODER = [("enc.qkv", 6144, 1280), ("enc.wo", 1280, 2048), ("enc.w13", 10240, 1280),
           ("enc.w2", 1280, 5120)]
DECODER = [("dec.qkv", 6144, 3072), ("dec.wo", 3072, 4096), ("dec.w13", 18432, 3072),
           ("dec.w2", 3072, 9216), ("lm_head", 131072, 3072),
           ("launch", 16, 64)]  # one workgroup: the per-dispatch floor of a dependent chain


def time_seq(k: Kernels, seq: list) -> tuple[float, float, float | None]:
    """Seconds per dispatch of `seq` (one dispatch repeated) after a warm-up submit: wall time
    (host encoding + GPU), the host's encoding and submit alone, and GPU time by timestamps."""
    # warm-up for >= 0.2 s: after host work (generating weights) the GPU idles and clocks down,
    # and one submit is not enough to bring it back (measured: 3x slower dispatches)
    t_warm = time.perf_counter()
    while time.perf_counter() - t_warm < 0.2:
        k.run(seq)
        k.host.wait()
    t = time.perf_counter()
    k.run(seq)
    t_encoded = time.perf_counter()
    k.host.wait()
    t_done = time.perf_counter()
    gpu = k.host.gpu_time_s(seq) if hasattr(k.host, "gpu_time_s") else None
    n = len(seq)
    return (t_done - t) / n, (t_encoded - t) / n, (gpu / n if gpu is not None else None)


# The decode step's fused forms (--fused): name suffixes of a DECODER shape
FUSED = [("dec.qkv", "norm"), ("dec.w13", "swiglu"), ("dec.w13", "swiglu+norm"),
         ("dec.w13", "swiglu+norm+ada")]


def bench_shape(k: Kernels, weight, m: int, reps: int, rng, mode: str = "") -> tuple[tuple, np.ndarray]:
    """mode: "" (plain), or "+"-joined parts of norm / swiglu / ada (the fused kernels)."""
    n, kdim = weight.rows, weight.cols
    x = k.tensor(rng.standard_normal((m, kdim)).astype(np.float32))  # [M, K]
    parts = set(mode.split("+")) if mode else set()
    norm = None
    if "norm" in parts:
        g = k.tensor(rng.uniform(0.5, 1.5, kdim).astype(np.float32))  # [K]
        ada = k.tensor(rng.uniform(-0.5, 0.5, kdim).astype(np.float32)) if "ada" in parts else None
        norm = (g, 1e-5, ada)
    out = k.empty((m, n // 2 if "swiglu" in parts else n))             # [M, N] or [M, N/2]
    seq = []
    for _ in range(reps):
        if "swiglu" in parts:
            k.q4_swiglu(seq, x, weight, out, norm=norm)
        else:
            k.q4_matvec(seq, x, weight, out, norm=norm) if norm else k.linear(seq, x, weight, out)
    return time_seq(k, seq), k.read(out)


def split_layout_rows(k: Kernels, rows: list, reps: int, refs: dict, probe: str = "",
                      shader: str = "q4split_matvec.wgsl", rows_per_group: int = 16) -> list:
    """EXPERIMENT: scripts/experiments/<shader> (the same matvec over Q4_0 repacked into aligned
    quant and scale arrays) on the decoder's shapes, against q4_matvec's outputs; `probe` names
    '+'-joined defines of the shader (diagnostic probes, variants); rows_per_group: its rows
    per workgroup."""
    from voxtral.backends.webgpu.host import Dispatch
    from voxtral.backends.webgpu.kernels import preprocess
    src = (Path(__file__).parent / "experiments" / shader).read_text()
    pipeline = k.host.create_pipeline(preprocess(src, set(probe.split("+")) if probe else set()), "main")
    out_rows = []
    for name, n, kd in DECODER:
        nb = kd // 32
        if name not in _SPLIT_BUFFERS:
            raw = random_q4_raw(name, (n, kd), 0).reshape(n, nb, 18)
            quants = np.ascontiguousarray(raw[:, :, 2:]).reshape(-1)              # [n*nb*16] bytes
            scales = np.ascontiguousarray(raw[:, :, :2]).reshape(-1)              # [n*nb*2] bytes
            scales = np.concatenate([scales, np.zeros(-len(scales) % 4 + 4, np.uint8)])
            qbuf = k.host.create_buffer(quants.nbytes)
            k.host.write_buffer(qbuf, quants)
            sbuf = k.host.create_buffer(scales.nbytes)
            k.host.write_buffer(sbuf, scales)
            _SPLIT_BUFFERS[name] = (qbuf, sbuf)
        qbuf, sbuf = _SPLIT_BUFFERS[name]
        x = k.tensor(np.random.default_rng(1).standard_normal((1, kd)).astype(np.float32))
        out = k.empty((1, n))
        gx, gy = k._grid(-(-n // rows_per_group))
        group = k.host.create_bind_group(pipeline, {0: qbuf, 1: sbuf, 2: x.buffer, 3: out.buffer,
                                                    4: k._uniform(n, kd, gx)})
        seq = [Dispatch(pipeline, group, (gx, gy, 1))] * reps
        wall, encode, gpu = time_seq(k, seq)
        s = gpu if gpu is not None else wall
        y = k.read(out)
        ref = refs.get(name)
        label = "split-layout" if shader == "q4split_matvec.wgsl" else shader.split(".")[0]
        out_rows.append({"variant": label + (f"+{probe}" if probe else ""), "shape": name, "M": 1, "N": n, "K": kd,
                         "us": round(s * 1e6, 1), "wall_us": round(wall * 1e6, 1),
                         "weight_gbs": round(n * kd // 32 * 18 / s / 1e9, 1),
                         "same_bits_as_first": None if ref is None else bool(np.array_equal(ref, y)),
                         "max_rel_vs_first": None if ref is None else
                         float(np.abs(ref - y).max() / max(np.abs(ref).max(), 1e-30))})
        print(json.dumps(out_rows[-1]), file=sys.stderr, flush=True)
    return out_rows


_SPLIT_BUFFERS: dict = {}  # shape name -> (quants, scales) buffers, shared by the probes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", default="checks=all,checks=bounds,checks=none",
                    help="comma-separated; '+' joins the parts of one variant: shader defines, and "
                         "checks=all|bounds|none (the host's runtime checks); 'base' = none of them")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--m", type=int, default=800, help="rows of X for the tiled kernel (encoder frames)")
    ap.add_argument("--decoder-gemm", action="store_true",
                    help="the tiled kernel on the decoder's layer shapes (the prompt prefill: --m 39) "
                         "instead of the encoder's")
    ap.add_argument("--only", choices=("matmul", "matvec"), default=None)
    ap.add_argument("--fused", action="store_true",
                    help="also the decode step's fused forms (norm, swiglu, norm + ada)")
    ap.add_argument("--split", action="store_true",
                    help="also the split-layout matvec experiment (scripts/experiments/)")
    ap.add_argument("--split-words", default="",
                    help="comma-separated variants of the word-slot split-layout experiment "
                         "(scripts/experiments/q4split_words.wgsl), e.g. base,SLOT2,SLOT4+ROWS8")
    a = ap.parse_args()
    host = WgpuHost()
    k = Kernels(host)
    rng = np.random.default_rng(0)
    cases = []
    if a.only != "matvec":
        gemm_shapes = DECODER[:4] if a.decoder_gemm else ENCODER
        cases += [(name, n, kd, a.m) for name, n, kd in gemm_shapes]
    if a.only != "matmul":
        cases += [(name, n, kd, 1) for name, n, kd in DECODER]
        if a.fused:
            shapes = {name: (n, kd) for name, n, kd in DECODER}
            cases += [(f"{name}+{mode}",) + shapes[name] + (1,) for name, mode in FUSED]
    weights = {name: k.upload_weight(Q4Tensor((n, kd), random_q4_raw(name, (n, kd), 0)))
               for name, n, kd, _ in cases if "+" not in name}
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    rows, ref = [], {}
    for v in variants:
        tokens = [t for t in v.split("+") if t != "base"]
        host.shader_checks = DEFAULT_SHADER_CHECKS
        for t in tokens:
            if t.startswith("checks="):
                host.shader_checks = t.split("=", 1)[1]
        host._pipelines.clear()  # fresh pipelines: the checks apply when a shader is compiled
        k = Kernels(host)
        k.extra_defines = frozenset(t for t in tokens if "=" not in t)
        for name, n, kd, m in cases:
            base, _, mode = name.partition("+")
            (wall, encode, gpu), y = bench_shape(k, weights[base], m, a.reps, np.random.default_rng(1), mode)
            s = gpu if gpu is not None else wall
            same = None
            if name in ref:
                same = bool(np.array_equal(ref[name], y))
            else:
                ref[name] = y
            nbytes = n * kd // 32 * 18
            rows.append({"variant": v, "shape": name, "M": m, "N": n, "K": kd,
                         "us": round(s * 1e6, 1), "wall_us": round(wall * 1e6, 1),
                         "encode_us": round(encode * 1e6, 1), "weight_gbs": round(nbytes / s / 1e9, 1),
                         "tflops": round(2 * m * n * kd / s / 1e12, 2), "same_bits_as_first": same})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    if a.split:
        host.shader_checks = DEFAULT_SHADER_CHECKS
        host._pipelines.clear()
        for probe in ("", "PROBE_NO_DEQUANT", "PROBE_NO_X"):
            rows += split_layout_rows(Kernels(host), rows, a.reps, ref, probe)
    if a.split_words:
        host.shader_checks = DEFAULT_SHADER_CHECKS
        host._pipelines.clear()
        for v in (t.strip() for t in a.split_words.split(",") if t.strip()):
            defines = "" if v == "base" else v
            rows += split_layout_rows(Kernels(host), rows, a.reps, ref, defines, "q4split_words.wgsl",
                                      8 if "ROWS8" in defines.split("+") else 4)
    print(json.dumps({"adapter": host.adapter_name, "reps": a.reps, "rows": rows}))


if __name__ == "__main__":
    main()
