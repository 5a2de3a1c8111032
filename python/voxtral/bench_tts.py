"""`voxtral bench tts`: the whole TTS pipeline on a random model, timed part by part.

Builds a random Q4 model of the chosen preset in memory (voxtral.tts_bench, shared with the page's
`?bench=tts`; `--model` times a model folder instead), loads it on the chosen backend tensor by
tensor, warms it up (weights uploaded, pipelines compiled), then speaks a fixed text for exactly N
frames and reports:

  load time (open + build + warm-up), prompt prefill, per frame: backbone step (+ semantic head),
  flow-matching head (all Euler steps, CFG batched), streaming codec; frames/s, RTF (wall seconds
  per audio second, < 1: faster than real time), peak host memory, the GPU adapter and its buffers.

The loop is `generate_frames`' own (prompt -> backbone -> semantic code -> flow matching -> frame
embedding -> backbone ...) with a synchronising readback closing each part, so each part's time is
the wall time until its result is on the host. A random model may emit [END_AUDIO] at any frame;
the bench replaces it by the first semantic code and goes on, so every run times N frames.
"""
from __future__ import annotations

import json
import resource
import time


def run_tts_bench(preset: str = "tiny", frames: int = 50, backend: str = "auto", model: str | None = None,
                  euler_steps: int | None = None, voice: str | None = None, seed: int = 0) -> dict:
    """The bench on a random model of the preset's size built in memory (no files, no tokenizer:
    voxtral.tts_bench), or on the model at `model` (its tokenizer, its first or the named voice)."""
    from voxtral.models.tts.prompt import build_tts_prompt
    from voxtral.tts_bench import BENCH_TEXT, random_tts_model, time_tts
    from voxtral.tts_pipeline import TTSPipeline, make_ops

    if frames < 1:
        raise ValueError("frames must be >= 1")
    t0 = time.perf_counter()
    ops, backend_name, note = make_ops(backend)
    if model is None:
        _, m, voice_rows, ids = random_tts_model(ops, preset, seed)
        path, voice = f"random {preset} (in memory)", "random"
    else:
        from voxtral.weights.loader import open_model
        pipe = TTSPipeline(open_model(model), ops=ops)
        m, path = pipe.model, model
        voice = voice or pipe.voices()[0].name
        voice_rows = pipe.voice(voice)
        ids = build_tts_prompt(pipe.tokenizer, BENCH_TEXT, voice_rows)
    build_s = time.perf_counter() - t0
    r = time_tts(ops, m, ids, voice_rows, frames, euler_steps, seed)
    r = {"bench": "tts", "preset": preset, "model": path, "backend": backend_name, "backend_note": note,
         "voice": voice, "load_s": round(build_s + r["warmup_s"], 3), **r}
    r["peak_host_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    host = getattr(ops, "host", None)
    gpu = None
    if host is not None:
        gpu = {"adapter": getattr(host, "adapter_name", "?"),
               "features": sorted(getattr(host, "features", ())),
               "subgroups": bool(getattr(ops.k, "use_subgroups", False)),
               "shader_f16": bool(getattr(ops.k, "use_shader_f16", False)),
               "buffers_mb": round(getattr(host, "allocated_bytes", 0) / 2**20, 1),
               "submits": getattr(ops, "submits", None)}
    r["gpu"] = gpu
    return r


def _print_report(r: dict) -> None:
    lines = [
        f"TTS bench: preset {r['preset']}, backend {r['backend']}"
        + (f" on {r['gpu']['adapter']}" if r["gpu"] else " (CPU)"),
        f"  model                           {r['model']}",
        f"  load (open + build + warm-up)   {r['load_s']:.2f} s",
        f"  prompt                          {r['prompt_tokens']} positions (voice {r['voice']}), "
        f"prefill {r['prefill_ms']:.1f} ms (+ KV caches {r['kv_cache_alloc_ms']:.1f} ms)",
        f"  per frame ({r['frames']} frames, {r['euler_steps']} Euler steps)",
        f"    backbone + semantic head      {r['backbone_ms_per_frame']:.2f} ms",
        f"    flow-matching head            {r['fm_ms_per_frame']:.2f} ms",
        f"    codec (streaming)             {r['codec_ms_per_frame']:.2f} ms",
        f"  frames/s (generation)           {r['frames_per_s']:.2f}  (real time needs 12.5)",
        f"  audio {r['audio_s']:.2f} s in {r['total_s']:.2f} s: RTF {r['rtf']:.3f} wall s per audio s "
        f"({'faster' if r['rtf'] < 1 else 'slower'} than real time); first audio after {r['first_audio_s']} s",
        f"  peak host memory                {r['peak_host_mb']:.0f} MB",
    ]
    if r["gpu"]:
        g = r["gpu"]
        lines.append(f"  GPU buffers {g['buffers_mb']:.0f} MB; subgroups {g['subgroups']}, shader-f16 "
                     f"{g['shader_f16']}; {g['submits']} submits")
    if r.get("end_audio_at") is not None:
        lines.append(f"  note: the random model said [END_AUDIO] at frame {r['end_audio_at']}; the bench went on")
    if r.get("backend_note"):
        lines.append(f"  note: {r['backend_note']}")
    print("\n".join(lines))


def _cmd_bench_tts(args) -> int:
    r = run_tts_bench(args.preset, args.frames, args.backend, args.model, args.euler_steps)
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        _print_report(r)
    return 0


def add_tts_bench(bench_subparsers) -> None:
    """Register `voxtral bench tts` under the `bench` command's sub-commands."""
    t = bench_subparsers.add_parser(
        "tts", help="text-to-speech: load, backbone / flow-matching / codec ms per frame, frames/s, RTF",
        description="Speak a fixed text for N frames with a random Q4 model (built in memory; "
                    "--model: a model folder instead) and report load time, prefill, backbone, flow-matching and codec "
                    "ms per frame, frames/s, RTF (wall seconds per audio second), peak host memory "
                    "and the GPU adapter.")
    t.add_argument("--preset", choices=["tiny", "full"], default="tiny")
    t.add_argument("--frames", type=int, default=50, help="frames to generate (12.5 per second of audio; default 50)")
    t.add_argument("--backend", choices=["auto", "webgpu", "numpy"], default="auto")
    t.add_argument("--euler-steps", type=int, default=None, help="flow-matching Euler steps (default: 7)")
    t.add_argument("--model", help="time this model folder (its tokenizer and first voice) instead of "
                                    "a random one built in memory")
    t.add_argument("--json", action="store_true", help="print the figures as JSON")
    t.set_defaults(func=_cmd_bench_tts)
