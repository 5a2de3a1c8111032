"""`voxtral bench asr`: the whole ASR pipeline on a random model, timed.

By default the model is generated in memory and loaded tensor by tensor (`voxtral.asr_bench.bench_model`:
random Q4 blocks drawn directly, so the page's benchmark mode, which builds the same model inside
Pyodide, runs on identical weights; `make-test-model --format gguf` files hold the quantized BF16
weights instead, of the same sizes and types); `--model PATH` times a model file instead.
The passes and figures are `voxtral.asr_bench.time_asr`'s; this adds the host's: backend, adapter,
roofline fraction, load time, peak host and GPU memory.
"""
from __future__ import annotations

import json
import resource
import time

from voxtral.asr_bench import add_roofline, bench_model, time_asr


def run_asr_bench(preset: str = "tiny", seconds: float = 16.0, backend: str = "auto",
                  bandwidth_gbs: float | None = None, model: str | None = None, stream: bool = True) -> dict:
    from voxtral.asr_pipeline import make_ops
    from voxtral.config import ASRConfig
    from voxtral.weights.loader import open_model

    t0 = time.perf_counter()
    ops, backend_name, note = make_ops(backend)
    if model:
        mf = open_model(model)
        cfg = ASRConfig.from_params(mf.params, mf.tokenizer().audio_config)
        weights = ops.load_weights(mf.iter_tensors(), mf.shapes)
    else:
        cfg, weights = bench_model(ops, preset)
    build_s = time.perf_counter() - t0
    r = time_asr(ops, cfg, weights, seconds, stream=stream)
    host = getattr(ops, "host", None)
    r = {"bench": "asr", "preset": preset if not model else None, "model": model or f"random {preset} (in memory)",
         "backend": backend_name, "backend_note": note, "load_s": round(build_s + r["warmup_s"], 3), **r}
    add_roofline(r, getattr(host, "adapter_name", "cpu (numpy)"), bandwidth_gbs)
    r["peak_host_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    r["gpu_allocated_mb"] = round(getattr(host, "allocated_bytes", 0) / 2**20, 1) if host else None
    r["submits"] = getattr(ops, "submits", None)
    return r


def json_report(r: dict) -> str:
    """One key per line, token lists kept on their line (readable in a README)."""
    return "{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in r.items()) + "\n}"


def _print_report(r: dict) -> None:
    lines = [
        f"ASR bench: {r['model']}, backend {r['backend']} on {r['adapter']}",
        f"  load (build + upload + warm-up) {r['load_s']:.2f} s",
        f"  audio {r['audio_s']} s -> {r['positions']} positions",
        f"  encoder (whole clip)            {r['encoder_ms']:.1f} ms",
        f"  decoder prefill (39 positions)  {r['prefill_ms']:.1f} ms",
        f"  decode                          {r['decode_ms_per_step']:.3f} ms/step, {r['steps_per_s']:.1f} steps/s",
        f"  bytes per step                  {r['bytes_per_step'] / 1e9:.3f} GB -> {r['achieved_gbs']:.1f} GB/s"
        + (f" ({100 * r['roofline_fraction']:.1f}% of {r['bandwidth_gbs']:.0f} GB/s)" if r["roofline_fraction"] else ""),
        f"  RTF (encoder + decoder)         {r['rtf']:.3f}",
        f"  peak host memory                {r['peak_host_mb']:.0f} MB"
        + (f", GPU buffers {r['gpu_allocated_mb']:.0f} MB" if r["gpu_allocated_mb"] is not None else ""),
    ]
    if "stream_rtf" in r:
        lines.append(f"  streaming in 80 ms pieces       RTF {r['stream_rtf']:.3f}, {len(r['stream_tokens'])} tokens"
                     + (" (ended by EOS)" if r["stream_eos"] else ""))
    if r.get("backend_note"):
        lines.append(f"  note: {r['backend_note']}")
    print("\n".join(lines))


def _cmd_bench_asr(args) -> int:
    r = run_asr_bench(args.preset, args.seconds, args.backend, args.bandwidth_gbs, args.model,
                      stream=not args.no_stream)
    if args.json:
        print(json_report(r))
    else:
        _print_report(r)
    return 0


def register(sub) -> None:
    b = sub.add_parser("bench", help="benchmarks (ASR, TTS) on random models",
                       description="Time the pipelines on random-weight models of the real or a tiny size.")
    subs = b.add_subparsers(dest="bench_kind", metavar="KIND")
    a = subs.add_parser("asr", help="speech-to-text: load, encoder, decode steps/s, GB/s, RTF",
                        description="Transcribe a generated clip with a random Q4 model (offline, then "
                                    "streamed in 80 ms pieces) and report load time, encoder ms, decode "
                                    "ms/step, steps/s, bytes per step, GB/s and roofline fraction, RTF "
                                    "(offline and streaming), peak memory.")
    a.add_argument("--preset", choices=["tiny", "full"], default="tiny")
    a.add_argument("--seconds", type=float, default=16.0, help="length of the generated clip")
    a.add_argument("--backend", choices=["auto", "webgpu", "numpy"], default="auto")
    a.add_argument("--bandwidth-gbs", type=float, default=None,
                   help="the adapter's memory bandwidth when it is not known by name")
    a.add_argument("--model", help="time this model file instead of a random one generated in memory")
    a.add_argument("--no-stream", action="store_true", help="skip the streaming pass (80 ms pieces)")
    a.add_argument("--json", action="store_true", help="print the figures as JSON")
    a.set_defaults(func=_cmd_bench_asr)
    try:
        from voxtral.bench_tts import add_tts_bench
    except ImportError:
        pass
    else:
        add_tts_bench(subs)
    b.set_defaults(func=lambda args: (b.print_help(), 1)[1])
