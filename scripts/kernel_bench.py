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
                                      [--reps 30] [--m 800] [--only matmul|matvec]
"""
import argparse
import json
import os
import sys
import time

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


def bench_shape(k: Kernels, weight, m: int, reps: int, rng) -> tuple[tuple, np.ndarray]:
    n, kdim = weight.rows, weight.cols
    x = k.tensor(rng.standard_normal((m, kdim)).astype(np.float32))  # [M, K]
    out = k.empty((m, n))                                              # [M, N]
    seq = []
    for _ in range(reps):
        k.linear(seq, x, weight, out)
    return time_seq(k, seq), k.read(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", default="checks=all,checks=bounds,checks=none",
                    help="comma-separated; '+' joins the parts of one variant: shader defines, and "
                         "checks=all|bounds|none (the host's runtime checks); 'base' = none of them")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--m", type=int, default=800, help="rows of X for the tiled kernel (encoder frames)")
    ap.add_argument("--only", choices=("matmul", "matvec"), default=None)
    a = ap.parse_args()
    host = WgpuHost()
    k = Kernels(host)
    rng = np.random.default_rng(0)
    cases = []
    if a.only != "matvec":
        cases += [(name, n, kd, a.m) for name, n, kd in ENCODER]
    if a.only != "matmul":
        cases += [(name, n, kd, 1) for name, n, kd in DECODER]
    weights = {name: k.upload_weight(Q4Tensor((n, kd), random_q4_raw(name, (n, kd), 0)))
               for name, n, kd, _ in cases}
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
            (wall, encode, gpu), y = bench_shape(k, weights[name], m, a.reps, np.random.default_rng(1))
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
    print(json.dumps({"adapter": host.adapter_name, "reps": a.reps, "rows": rows}))


if __name__ == "__main__":
    main()
