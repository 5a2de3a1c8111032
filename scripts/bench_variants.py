"""A/B of the decode-step kernel options on one in-memory random model (run on the GPU machine).

For each variant (fused norm/SwiGLU prologues on or off, 4 or 1 Q4 blocks per lane in flight) a
fresh WebGPUOps runs `voxtral bench asr`'s offline pass on the same weights, then the recorded
decode step is replayed back to back (no host work between submits) as a whole and by kernel
family: GPU-bound ms per step, the dispatch count, and where the time goes; for the last variant
the whole-clip encoder's dispatches likewise.
Prints one JSON object per variant (the same fields as `voxtral bench asr --json` plus "profile").

Usage: python scripts/bench_variants.py [--preset full] [--seconds 16] [--steps 50] [--only NAME]
"""
import argparse
import collections
import gc
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from voxtral.asr_bench import add_roofline, random_asr_model, time_asr  # noqa: E402
from voxtral.backends.webgpu.ops import WebGPUOps  # noqa: E402
from voxtral.models.asr.model import ASRModel  # noqa: E402
from voxtral.models.asr.transcribe import DecoderSession  # noqa: E402

VARIANTS = {  # name: (fuse_prologues, matvec_unroll)
    "base": (False, False),
    "unroll4": (False, True),
    "fused": (True, False),
    "fused+unroll4": (True, True),
}


def timed(ops, seq, n):
    ops.host.run(seq)
    ops.host.wait()
    t = time.perf_counter()
    for _ in range(n):
        ops.host.run(seq)
    ops.host.wait()
    return (time.perf_counter() - t) / n * 1e3


def profile_step(ops, cfg, weights, steps: int, context: int = 300) -> dict:
    """The recorded step after `context` positions, replayed: whole and per kernel family."""
    m = ASRModel(cfg, weights, ops)
    emb = ops.asarray(np.random.default_rng(0).standard_normal((context + 8, cfg.decoder.dim))
                      .astype(np.float32) * 0.1)
    s = DecoderSession(m, 6, eos_id=-1)
    s.feed(ops.rows(emb, 0, context))
    g = s._graph
    names = {id(p): f"{k[0]}:{k[1]}" for k, p in ops.k._pipelines.items()}
    fam = collections.defaultdict(list)
    for d in g.dispatches:
        fam[names.get(id(d.pipeline), "?")].append(d)
    out = {"dispatches": len(g.dispatches), "gpu_step_ms": round(timed(ops, g.dispatches, steps), 3),
           "families": {}}
    for name, ds in sorted(fam.items(), key=lambda kv: -len(kv[1])):
        out["families"][name] = {"dispatches": len(ds), "ms": round(timed(ops, ds, steps), 3)}
    return out


def profile_encoder(ops, cfg, weights, seconds: float, reps: int = 3) -> dict:
    """The whole-clip encoder's dispatches (recorded as they are submitted), replayed whole and by
    kernel family: where the encoder's time goes."""
    from voxtral.asr_bench import bench_clip
    from voxtral.audio import log_mel, pad_for_offline
    m = ASRModel(cfg, weights, ops)
    mel = log_mel(pad_for_offline(bench_clip(seconds), cfg.audio), cfg.audio)
    ops.to_host(m.audio_embeddings(mel[:, :8 * 48]))  # warm-up: pipelines, uploads
    recorded = []
    run = ops.host.run

    def recording_run(seq, copies=()):
        recorded.extend(seq)
        return run(seq, copies)

    ops.host.run = recording_run
    try:
        emb = m.audio_embeddings(mel)
        ops.to_host(ops.rows(emb, emb.shape[0] - 1, emb.shape[0]))
    finally:
        ops.host.run = run
    names = {id(p): f"{k[0]}:{k[1]}" for k, p in ops.k._pipelines.items()}
    fam = collections.defaultdict(list)
    for d in recorded:
        fam[names.get(id(d.pipeline), "?")].append(d)
    out = {"dispatches": len(recorded), "gpu_ms": round(timed(ops, recorded, reps), 2), "families": {}}
    for name, ds in sorted(fam.items(), key=lambda kv: -len(kv[1])):
        out["families"][name] = {"dispatches": len(ds), "ms": round(timed(ops, ds, reps), 2)}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="full")
    ap.add_argument("--seconds", type=float, default=16.0)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--only", action="append", choices=sorted(VARIANTS), help="run just these variants")
    ap.add_argument("--no-profile", action="store_true")
    a = ap.parse_args()
    t0 = time.perf_counter()
    cfg, weights = random_asr_model(a.preset)
    print(f"bench_variants: random {a.preset} model built in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    for name in a.only or VARIANTS:
        fuse, unroll = VARIANTS[name]
        ops = WebGPUOps()
        ops.fuse_prologues = fuse
        ops.k.matvec_unroll = unroll
        r = time_asr(ops, cfg, weights, a.seconds, stream=False)
        r = {"variant": name, "fuse_prologues": fuse, "matvec_unroll": unroll, **r}
        add_roofline(r, ops.host.adapter_name)
        r.pop("offline_tokens")
        if not a.no_profile:
            r["profile"] = profile_step(ops, cfg, weights, a.steps)
            if name == (a.only or list(VARIANTS))[-1]:  # encoder kernels do not vary: once
                r["encoder_profile"] = profile_encoder(ops, cfg, weights, a.seconds)
        print(json.dumps(r), flush=True)
        del ops
        gc.collect()


if __name__ == "__main__":
    main()
