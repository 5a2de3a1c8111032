"""Where the time of the full-size ASR model goes on the GPU (run on the GPU machine).

On one in-memory random model (loaded to the GPU like a model file): the recorded decode step
replayed back to back (no host work between submits), whole and by kernel family; then the
decoder prefill's and the whole-clip encoder's dispatches, recorded as they are submitted and
replayed likewise. Prints one JSON object: `voxtral bench asr`'s offline figures plus
"decode_profile", "session_profile", "prefill_profile" and "encoder_profile".

Usage: python scripts/profile_asr.py [--preset full] [--seconds 16] [--steps 50]
                                     [--variants base,attn=v2] [--attn-groups 256,512]
"""
import argparse
import collections
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from voxtral.asr_bench import add_roofline, bench_model, time_asr  # noqa: E402
from voxtral.backends.webgpu.ops import WebGPUOps  # noqa: E402
from voxtral.models.asr.model import ASRModel  # noqa: E402
from voxtral.models.asr.transcribe import DecoderSession  # noqa: E402


def timed(ops, seq, n):
    ops.host.run(seq)
    ops.host.wait()
    t = time.perf_counter()
    for _ in range(n):
        ops.host.run(seq)
    ops.host.wait()
    return (time.perf_counter() - t) / n * 1e3


def gpu_ms(ops, seq, digits: int):
    """GPU time of one replay of `seq` by timestamp queries (None where the adapter has none)."""
    s = ops.host.gpu_time_s(seq) if hasattr(ops.host, "gpu_time_s") else None
    return round(s * 1e3, digits) if s is not None else None


def replay_by_family(ops, dispatches, reps: int, digits: int) -> tuple[float, dict]:
    """(ms of the whole list, {kernel family: {dispatches, ms, gpu_ms}}), each replayed `reps`
    times: "ms" is wall time per replay (host encoding + GPU), "gpu_ms" the GPU's own time."""
    names = {id(p): f"{k[0]}:{k[1]}" for k, p in ops.k._pipelines.items()}
    fam = collections.defaultdict(list)
    for d in dispatches:
        fam[names.get(id(d.pipeline), "?")].append(d)
    families = {name: {"dispatches": len(ds), "ms": round(timed(ops, ds, reps), digits),
                       "gpu_ms": gpu_ms(ops, ds, digits)}
                for name, ds in sorted(fam.items(), key=lambda kv: -len(kv[1]))}
    return round(timed(ops, dispatches, reps), digits), families


def host_encoding_ms(ops, dispatches, reps: int = 20) -> dict | None:
    """Host time of one submit of `dispatches` on the native host, by phase: the Python loop of
    wgpu-native calls (record), ending the pass, finishing the encoder, submitting."""
    host = ops.host
    if not hasattr(host, "_encode_raw") or host._raw is None:
        return None
    phases = collections.defaultdict(float)
    for _ in range(reps):
        t0 = time.perf_counter()
        encoder = host.device.create_command_encoder()
        cpass = encoder.begin_compute_pass()
        t1 = time.perf_counter()
        host._encode_raw(cpass, dispatches)
        t2 = time.perf_counter()
        cpass.end()
        t3 = time.perf_counter()
        buf = encoder.finish()
        t4 = time.perf_counter()
        host.queue.submit([buf])
        t5 = time.perf_counter()
        for name, dt in (("begin", t1 - t0), ("record", t2 - t1), ("end_pass", t3 - t2),
                         ("finish", t4 - t3), ("submit", t5 - t4)):
            phases[name] += dt
        host.wait()
    return {name: round(v / reps * 1e3, 3) for name, v in phases.items()}


def profile_step(ops, cfg, weights, steps: int, context: int = 300) -> dict:
    """The recorded step after `context` positions, replayed: whole and per kernel family; and
    the tokens the session decoded over those positions (to compare kernel variants)."""
    m = ASRModel(cfg, weights, ops)
    emb = ops.asarray(np.random.default_rng(0).standard_normal((context + 8, cfg.decoder.dim))
                      .astype(np.float32) * 0.1)
    s = DecoderSession(m, 6, eos_id=-1)
    tokens = s.feed(ops.rows(emb, 0, context))
    g = s._graph
    total, families = replay_by_family(ops, g.dispatches, steps, 3)
    return {"dispatches": len(g.dispatches), "gpu_step_ms": total, "families": families,
            "timestamp_step_ms": gpu_ms(ops, g.dispatches, 3),
            "host_encoding_ms": host_encoding_ms(ops, g.dispatches), "tokens": [int(t) for t in tokens]}


def profile_session(ops, cfg, weights, steps: int = 20) -> dict:
    """A fresh decoder session's phases, wall ms: the prompt's prefill, the first decode step
    (which records the step graph: bind groups for the session's new caches), the steady steps;
    with the top functions by cumulative time of the prefill and of the first step (cProfile)."""
    import cProfile
    import io
    import pstats
    m = ASRModel(cfg, weights, ops)
    emb = ops.asarray(np.random.default_rng(1).standard_normal((64 + steps, cfg.decoder.dim))
                      .astype(np.float32) * 0.1)
    s = DecoderSession(m, m.delay_tokens(), eos_id=-1)
    n = len(s.prompt)
    out = {"prompt_rows": n}

    def phase(name, a, b):
        prof = cProfile.Profile()
        t = time.perf_counter()
        prof.enable()
        s.feed(ops.rows(emb, a, b))
        prof.disable()
        out[name + "_ms"] = round((time.perf_counter() - t) * 1e3, 2)
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(14)
        out[name + "_top"] = [ln.strip() for ln in buf.getvalue().splitlines()
                              if ln.strip() and ln.strip()[0].isdigit()][:14]

    phase("prefill", 0, n)
    phase("first_step", n, n + 1)
    t = time.perf_counter()
    s.feed(ops.rows(emb, n + 1, n + 1 + steps))
    out["steady_step_ms"] = round((time.perf_counter() - t) * 1e3 / steps, 3)
    return out


def apply_variant(k, spec: str) -> None:
    """Kernel switches of a variant spec: '+'-joined attn=NAME (Kernels.attn_decode) and shader
    defines (Kernels.extra_defines, e.g. a `// #if NAME` branch under test); 'base' = the defaults."""
    from voxtral.backends.webgpu.kernels import Kernels
    fresh = Kernels(k.host)
    k.attn_decode = getattr(fresh, "attn_decode", None)
    k.extra_defines = fresh.extra_defines
    for t in spec.split("+"):
        name, _, value = t.partition("=")
        if name == "attn":
            k.attn_decode = value
        elif name != "base" and not value:
            k.extra_defines = k.extra_defines | {name}
        elif name != "base":
            raise SystemExit(f"unknown variant part {t!r}")


def record_dispatches(ops, work) -> list:
    """The dispatches `work()` submits (it runs as usual), in order, for replaying."""
    recorded = []
    run = ops.host.run

    def recording_run(seq, copies=()):
        recorded.extend(seq)
        return run(seq, copies)

    ops.host.run = recording_run
    try:
        work()
    finally:
        ops.host.run = run
    return recorded


def profile_encoder(ops, cfg, weights, seconds: float, reps: int = 3) -> dict:
    """The whole-clip encoder's dispatches (recorded as they are submitted), replayed whole and by
    kernel family: where the encoder's time goes."""
    from voxtral.asr_bench import bench_clip
    from voxtral.audio import log_mel, pad_for_offline
    m = ASRModel(cfg, weights, ops)
    mel = log_mel(pad_for_offline(bench_clip(seconds), cfg.audio), cfg.audio)
    ops.to_host(m.audio_embeddings(mel[:, :8 * 48]))  # warm-up: pipelines, uploads

    def whole_clip():
        emb = m.audio_embeddings(mel)
        ops.to_host(ops.rows(emb, emb.shape[0] - 1, emb.shape[0]))

    recorded = record_dispatches(ops, whole_clip)
    total, families = replay_by_family(ops, recorded, reps, 2)
    return {"dispatches": len(recorded), "gpu_ms": total, "families": families}


def profile_prefill(ops, cfg, weights, seconds: float, reps: int = 3) -> dict:
    """The decoder prefill's dispatches (the prompt's positions through every layer, then the
    first token), recorded as they are submitted and replayed whole and by kernel family."""
    from voxtral.asr_bench import bench_clip
    from voxtral.audio import log_mel, pad_for_offline
    m = ASRModel(cfg, weights, ops)
    mel = log_mel(pad_for_offline(bench_clip(seconds), cfg.audio), cfg.audio)
    emb = m.audio_embeddings(mel[:, :8 * 48])
    DecoderSession(m, m.delay_tokens(), eos_id=-1).feed(emb)  # warm-up: pipelines, bind groups
    session = DecoderSession(m, m.delay_tokens(), eos_id=-1)
    recorded = record_dispatches(ops, lambda: session.feed(ops.rows(emb, 0, len(session.prompt))))
    total, families = replay_by_family(ops, recorded, reps, 2)
    return {"rows": len(session.prompt), "dispatches": len(recorded), "gpu_ms": total, "families": families}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="full")
    ap.add_argument("--seconds", type=float, default=16.0)
    ap.add_argument("--steps", type=int, default=50, help="replays of the decode step")
    ap.add_argument("--attn-groups", default="",
                    help="comma-separated ATTN_TARGET_GROUPS values: the decode step's GPU time "
                         "with each (split-K attention tuning)")
    ap.add_argument("--variants", default="",
                    help="comma-separated kernel variants (see apply_variant), e.g. "
                         "base,attn=v2: the decode step with each, the "
                         "first one also for the offline bench and the encoder profile")
    ap.add_argument("--no-encoder", action="store_true", help="skip the encoder profile")
    a = ap.parse_args()
    ops = WebGPUOps()
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    if variants:
        apply_variant(ops.k, variants[0])
    t0 = time.perf_counter()
    cfg, weights = bench_model(ops, a.preset)
    print(f"profile_asr: random {a.preset} model built and uploaded in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)
    r = time_asr(ops, cfg, weights, a.seconds, stream=False)
    r.pop("offline_tokens")
    add_roofline(r, ops.host.adapter_name)
    r["decode_profile"] = profile_step(ops, cfg, weights, a.steps)
    r["session_profile"] = profile_session(ops, cfg, weights)
    r["prefill_profile"] = profile_prefill(ops, cfg, weights, a.seconds)
    if not a.no_encoder:
        r["encoder_profile"] = profile_encoder(ops, cfg, weights, a.seconds)
    if len(variants) > 1:
        r["variants"] = {}
        for v in variants:
            apply_variant(ops.k, v)
            p = profile_step(ops, cfg, weights, a.steps)
            r["variants"][v] = {"timestamp_step_ms": p["timestamp_step_ms"], "step_ms": p["gpu_step_ms"],
                                "dispatches": p["dispatches"],
                                "same_tokens_as_first": p["tokens"] == r["decode_profile"]["tokens"],
                                "families_gpu_ms": {f: d["gpu_ms"] for f, d in p["families"].items()}}
            print(v, json.dumps(r["variants"][v]), file=sys.stderr, flush=True)
        apply_variant(ops.k, variants[0])
    if a.attn_groups:
        # the split-K target of whichever decode attention runs (attention.wgsl's or
        # attention_decode.wgsl's); gpu_ms of its two dispatch families
        from voxtral.backends.webgpu import kernels as kernels_module
        name = "ATTN_DECODE_TARGET_GROUPS" if ops.k.uses_attention_decode(1) else "ATTN_TARGET_GROUPS"
        default = getattr(kernels_module, name)
        r["attn_groups"] = {}
        for n in (int(v) for v in a.attn_groups.split(",")):
            setattr(kernels_module, name, n)
            p = profile_step(ops, cfg, weights, a.steps)
            fam = {f.split(":")[1]: d["gpu_ms"] for f, d in p["families"].items() if f.startswith("attention")}
            r["attn_groups"][n] = {"timestamp_step_ms": p["timestamp_step_ms"],
                                   "attention_gpu_ms": fam.get("attention_decode", fam.get("attention")),
                                   "combine_gpu_ms": fam.get("attention_decode_combine",
                                                             fam.get("attention_combine"))}
        setattr(kernels_module, name, default)
    print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
