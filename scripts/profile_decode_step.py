"""Break a replayed full-size decode step down by kernel family (run on the GPU machine).

Replays the recorded step graph back to back (no host work in between) and then each kernel
family alone, timing N submits with one wait at the end: GPU-bound time per step and per family.
Usage: python scripts/profile_decode_step.py [--preset full] [--steps 50]
"""
import argparse
import collections
import time

import numpy as np

from voxtral.backends.webgpu.ops import WebGPUOps
from voxtral.bench import bench_model_path
from voxtral.config import ASRConfig
from voxtral.models.asr.model import ASRModel
from voxtral.models.asr.transcribe import DecoderSession
from voxtral.weights.loader import open_model


def timed(ops, seq, n):
    ops.host.run(seq)
    ops.host.wait()
    t = time.perf_counter()
    for _ in range(n):
        ops.host.run(seq)
    ops.host.wait()
    return (time.perf_counter() - t) / n * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="full")
    ap.add_argument("--steps", type=int, default=50)
    a = ap.parse_args()
    mf = open_model(bench_model_path("asr", a.preset))
    cfg = ASRConfig.from_params(mf.params, mf.tokenizer().audio_config)
    ops = WebGPUOps()
    m = ASRModel(cfg, mf.weights(), ops)
    emb = ops.asarray(np.random.default_rng(0).standard_normal((400, cfg.decoder.dim)).astype(np.float32) * 0.1)
    s = DecoderSession(m, 6, eos_id=-1)
    s.feed(ops.rows(emb, 0, 300))  # 300 positions of context
    g = s._graph
    names = {id(p): f"{k[0]}:{k[1]}" for k, p in ops.k._pipelines.items()}
    fam = collections.defaultdict(list)
    for d in g.dispatches:
        fam[names.get(id(d.pipeline), "?")].append(d)
    print(f"dispatches per step: {len(g.dispatches)}")
    print(f"whole step (GPU-bound, back to back): {timed(ops, g.dispatches, a.steps):.3f} ms")
    for name, ds in sorted(fam.items(), key=lambda kv: -len(kv[1])):
        print(f"  {name:40s} {len(ds):4d} dispatches  {timed(ops, ds, a.steps):.3f} ms")


if __name__ == "__main__":
    main()
