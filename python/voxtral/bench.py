"""`voxtral bench asr`: the whole ASR pipeline on a random model, timed.

Builds (or reuses, under models/bench/) a random Q4 GGUF of the chosen preset, loads it on the
chosen backend, transcribes a generated clip offline, and reports load time, encoder time, decode
time per step, steps/s, bytes moved per decode step (weights + KV reads), the achieved bandwidth
and its fraction of the adapter's, RTF, and peak host and GPU memory.

Decoding ignores EOS (a random model may emit it at any step) so every position of the clip is a
timed step. Timings are wall clock around synchronised work (the last token is read back).
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time

import numpy as np

# Memory bandwidth (GB/s) of adapters we know by name; `--bandwidth-gbs` overrides.
KNOWN_BANDWIDTH_GBS = {"H100 80GB HBM3": 3350.0, "H100 PCIe": 2000.0, "H200": 4800.0, "A100": 2039.0}


def bench_model_path(kind: str, preset: str, models_dir: str = "models") -> str:
    from voxtral.testmodel import make_test_model
    out = os.path.join(models_dir, "bench", f"{kind}-{preset}")
    path = os.path.join(out, f"voxtral-{kind}-q4.gguf")
    if not os.path.exists(path):
        print(f"voxtral bench: generating a random {preset} {kind.upper()} model in {out} ...", file=sys.stderr)
        make_test_model(kind, out, seed=0, fmt="gguf", preset=preset, progress=sys.stderr.isatty())
    return path


def bench_clip(seconds: float, seed: int = 0) -> np.ndarray:
    """Speech-like test signal: a gliding harmonic voice with syllable gating plus noise, 16 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    f0 = 130 + 40 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    voice = sum(np.sin(k * phase) / k for k in range(1, 16))
    gate = (np.sin(2 * np.pi * 3.1 * t) > -0.2).astype(np.float64)
    return (0.15 * voice * gate + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def _nbytes(w) -> int:
    return int(w.raw.nbytes) if hasattr(w, "raw") else int(np.asarray(w).nbytes)


def decoder_bytes_per_step(weights: dict, cfg, n_positions: int) -> int:
    """Bytes a decode step must read: every decoder weight once (layers, final norm, the tied
    LM head = the Q4 embedding table) plus the KV rows attended (f32)."""
    from voxtral.layout import ASR_PREFIX
    w = sum(_nbytes(v) for k, v in weights.items() if k.startswith("layers.") and "ada_rms" not in k)
    w += _nbytes(weights["norm.weight"]) + _nbytes(weights[ASR_PREFIX + "tok_embeddings.weight"])
    d = cfg.decoder
    keys = min(n_positions, d.sliding_window or n_positions)
    kv = d.n_layers * 2 * keys * d.n_kv_heads * d.head_dim * 4
    return w + kv


def run_asr_bench(preset: str = "tiny", seconds: float = 16.0, backend: str = "auto",
                  bandwidth_gbs: float | None = None, model: str | None = None) -> dict:
    from voxtral.asr_pipeline import make_ops
    from voxtral.audio import log_mel, pad_for_offline
    from voxtral.config import ASRConfig
    from voxtral.models.asr.model import ASRModel
    from voxtral.models.asr.transcribe import DecoderSession
    from voxtral.weights.loader import open_model

    path = model or bench_model_path("asr", preset)
    t0 = time.perf_counter()
    ops, backend_name, note = make_ops(backend)
    mf = open_model(path)
    tok = mf.tokenizer()
    cfg = ASRConfig.from_params(mf.params, tok.audio_config)
    weights = mf.weights()
    m = ASRModel(cfg, weights, ops)
    audio = bench_clip(seconds)
    mel = log_mel(pad_for_offline(audio, cfg.audio), cfg.audio)
    # Warm-up on a short piece: uploads every weight, compiles every pipeline, builds bind groups.
    warm = mel[:, : 8 * 48]
    emb = m.audio_embeddings(warm)
    s = DecoderSession(m, m.delay_tokens(), eos_id=-1)
    s.feed(emb)
    ops.to_host(emb)
    load_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    emb = m.audio_embeddings(mel)  # [N, dim]
    ops.to_host(ops.rows(emb, emb.shape[0] - 1, emb.shape[0]))
    encoder_s = time.perf_counter() - t1

    session = DecoderSession(m, m.delay_tokens(), eos_id=-1)
    n_prompt = len(session.prompt)
    t2 = time.perf_counter()
    session.feed(ops.rows(emb, 0, n_prompt))
    prefill_s = time.perf_counter() - t2
    t3 = time.perf_counter()
    session.feed(ops.rows(emb, n_prompt, emb.shape[0]))
    decode_s = time.perf_counter() - t3
    steps = emb.shape[0] - n_prompt

    step_s = decode_s / max(steps, 1)
    nbytes = decoder_bytes_per_step(weights, cfg, emb.shape[0])
    host = getattr(ops, "host", None)
    adapter = getattr(host, "adapter_name", "cpu (numpy)")
    bw = bandwidth_gbs
    if bw is None:
        bw = next((v for k, v in KNOWN_BANDWIDTH_GBS.items() if k in adapter), None)
    gbs = nbytes / step_s / 1e9
    total_s = encoder_s + prefill_s + decode_s
    return {
        "bench": "asr", "preset": preset, "model": path, "backend": backend_name, "backend_note": note,
        "adapter": adapter, "audio_s": round(seconds, 3), "positions": int(emb.shape[0]),
        "load_s": round(load_s, 3), "encoder_ms": round(encoder_s * 1e3, 2),
        "prefill_ms": round(prefill_s * 1e3, 2), "decode_steps": int(steps),
        "decode_ms_per_step": round(step_s * 1e3, 3), "steps_per_s": round(1 / step_s, 2),
        "bytes_per_step": int(nbytes), "achieved_gbs": round(gbs, 2),
        "bandwidth_gbs": bw, "roofline_fraction": round(gbs / bw, 4) if bw else None,
        "rtf": round(total_s / seconds, 4),
        "peak_host_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "gpu_allocated_mb": round(getattr(host, "allocated_bytes", 0) / 2**20, 1) if host else None,
        "submits": getattr(ops, "submits", None),
    }


def _print_report(r: dict) -> None:
    lines = [
        f"ASR bench: preset {r['preset']}, backend {r['backend']} on {r['adapter']}",
        f"  load (open + upload + warm-up)  {r['load_s']:.2f} s",
        f"  audio {r['audio_s']} s -> {r['positions']} positions",
        f"  encoder (whole clip)            {r['encoder_ms']:.1f} ms",
        f"  decoder prefill (39 positions)  {r['prefill_ms']:.1f} ms",
        f"  decode                          {r['decode_ms_per_step']:.3f} ms/step, {r['steps_per_s']:.1f} steps/s",
        f"  bytes per step                  {r['bytes_per_step'] / 1e9:.3f} GB -> {r['achieved_gbs']:.1f} GB/s"
        + (f" ({100 * r['roofline_fraction']:.1f}% of {r['bandwidth_gbs']:.0f} GB/s)" if r["roofline_fraction"] else ""),
        f"  RTF                             {r['rtf']:.3f}",
        f"  peak host memory                {r['peak_host_mb']:.0f} MB"
        + (f", GPU buffers {r['gpu_allocated_mb']:.0f} MB" if r["gpu_allocated_mb"] is not None else ""),
    ]
    if r.get("backend_note"):
        lines.append(f"  note: {r['backend_note']}")
    print("\n".join(lines))


def _cmd_bench_asr(args) -> int:
    r = run_asr_bench(args.preset, args.seconds, args.backend, args.bandwidth_gbs, args.model)
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        _print_report(r)
    return 0


def register(sub) -> None:
    b = sub.add_parser("bench", help="benchmarks (ASR, TTS) on random models",
                       description="Time the pipelines on random-weight models of the real or a tiny size.")
    subs = b.add_subparsers(dest="bench_kind", metavar="KIND")
    a = subs.add_parser("asr", help="speech-to-text: load, encoder, decode steps/s, GB/s, RTF",
                        description="Transcribe a generated clip with a random Q4 model and report "
                                    "load time, encoder ms, decode ms/step, steps/s, bytes per step, "
                                    "GB/s and roofline fraction, RTF, peak memory.")
    a.add_argument("--preset", choices=["tiny", "full"], default="tiny")
    a.add_argument("--seconds", type=float, default=16.0, help="length of the generated clip")
    a.add_argument("--backend", choices=["auto", "webgpu", "numpy"], default="auto")
    a.add_argument("--bandwidth-gbs", type=float, default=None,
                   help="the adapter's memory bandwidth when it is not known by name")
    a.add_argument("--model", help="use this model instead of generating one under models/bench/")
    a.add_argument("--json", action="store_true", help="print the figures as JSON")
    a.set_defaults(func=_cmd_bench_asr)
    try:
        from voxtral.bench_tts import add_tts_bench
    except ImportError:
        pass
    else:
        add_tts_bench(subs)
    b.set_defaults(func=lambda args: (b.print_help(), 1)[1])
