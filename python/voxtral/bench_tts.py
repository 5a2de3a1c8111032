"""`voxtral bench tts`: the whole TTS pipeline on a random model, timed part by part.

Builds (or reuses, under models/bench/) a random Q4 GGUF of the chosen preset (`voxtral bench asr`
shares the folder and the builder), loads it on the chosen backend, warms it up (weights uploaded,
pipelines compiled), then speaks a fixed text for exactly N frames and reports:

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

import numpy as np

BENCH_TEXT = ("The quick brown fox jumps over the lazy dog. Voxtral speaks this sentence as a benchmark, "
              "frame by frame.")


def bench_model_path(preset: str) -> str:
    from voxtral.bench import bench_model_path as shared
    return shared("tts", preset)


def _sync_time(ops, t) -> float:
    """Wall time now, after everything recorded so far has run (numpy: nothing is pending)."""
    if hasattr(ops, "host") and hasattr(ops, "flush"):
        ops.flush()
        wait = getattr(ops.host, "wait", None)
        if wait is not None:
            wait()
    return time.perf_counter() - t


def run_tts_bench(preset: str = "tiny", frames: int = 50, backend: str = "auto", model: str | None = None,
                  euler_steps: int | None = None, voice: str | None = None, seed: int = 0) -> dict:
    from voxtral.models.tts.codec import StreamingCodec
    from voxtral.models.tts.flow_matching import END_AUDIO
    from voxtral.models.tts.prompt import build_tts_prompt, prompt_embeddings
    from voxtral.tts_pipeline import TTSPipeline, make_ops
    from voxtral.weights.loader import open_model

    if frames < 1:
        raise ValueError("frames must be >= 1")
    path = model or bench_model_path(preset)
    t0 = time.perf_counter()
    ops, backend_name, note = make_ops(backend)
    pipe = TTSPipeline(open_model(path), ops=ops)
    cfg, m = pipe.config, pipe.model
    steps = cfg.euler_steps if euler_steps is None else int(euler_steps)
    voice = voice or pipe.voices()[0].name
    voice_rows = pipe.voice(voice)
    ids = build_tts_prompt(pipe.tokenizer, BENCH_TEXT, voice_rows)
    rng = np.random.default_rng(seed)

    def prompt():
        return prompt_embeddings(ops, m.backbone.tok_embeddings, ids, voice_rows, cfg.audio_token_id)

    # Warm-up: every weight uploaded, every pipeline compiled, the bind groups of a regular step built.
    caches = m.backbone.new_caches(ops)
    h = ops.rows(m.backbone(ops, prompt(), np.arange(len(ids)), caches), len(ids) - 1, len(ids))
    warm = []
    for t in range(2):
        s = m.head.semantic_code(ops, h)
        a = m.head.acoustic_codes(ops, h, rng.standard_normal(cfg.n_acoustic_codebook), steps)
        codes = np.concatenate([[2 if s == END_AUDIO else s], a]).astype(np.int64)
        warm.append(codes)
        h = m.backbone(ops, m.frame_embedding(codes), [len(ids) + t], caches)
    m.codec(ops, np.stack(warm * 3))
    _sync_time(ops, t0)
    load_s = time.perf_counter() - t0
    del caches, h

    # The timed run.
    rng = np.random.default_rng(seed)
    codec = StreamingCodec(m.codec, ops)
    t_all = time.perf_counter()
    caches = m.backbone.new_caches(ops)
    cache_s = _sync_time(ops, t_all)
    t_pre = time.perf_counter()
    hidden = m.backbone(ops, prompt(), np.arange(len(ids)), caches)
    h = ops.rows(hidden, len(ids) - 1, len(ids))
    prefill_s = _sync_time(ops, t_pre)
    backbone_s = fm_s = codec_s = 0.0
    first_audio_s = None
    samples = 0
    ended_at = None
    for t in range(frames):
        t1 = time.perf_counter()
        if t > 0:
            h = m.backbone(ops, m.frame_embedding(codes), [len(ids) + t - 1], caches)
        s = m.head.semantic_code(ops, h)  # the readback of the argmax closes the backbone step
        backbone_s += time.perf_counter() - t1
        if s == END_AUDIO:
            ended_at = t if ended_at is None else ended_at
            s = 2  # keep going: a bench times N frames
        t2 = time.perf_counter()
        a = m.head.acoustic_codes(ops, h, rng.standard_normal(cfg.n_acoustic_codebook), steps)
        fm_s += time.perf_counter() - t2
        codes = np.concatenate([[s], a]).astype(np.int64)
        t3 = time.perf_counter()
        chunk = codec.push(codes)
        codec_s += time.perf_counter() - t3
        if chunk is not None:
            samples += len(chunk)
            if first_audio_s is None:
                first_audio_s = time.perf_counter() - t_all
    t3 = time.perf_counter()
    tail = codec.flush()
    codec_s += time.perf_counter() - t3
    samples += 0 if tail is None else len(tail)
    total_s = time.perf_counter() - t_all
    if first_audio_s is None and tail is not None:  # fewer frames than the first streaming chunk
        first_audio_s = total_s
    audio_s = samples / cfg.sampling_rate

    host = getattr(ops, "host", None)
    gpu = None
    if host is not None:
        gpu = {"adapter": getattr(host, "adapter_name", "?"),
               "features": sorted(getattr(host, "features", ())),
               "subgroups": bool(getattr(ops.k, "use_subgroups", False)),
               "shader_f16": bool(getattr(ops.k, "use_shader_f16", False)),
               "buffers_mb": round(getattr(host, "allocated_bytes", 0) / 2**20, 1),
               "submits": getattr(ops, "submits", None)}
    gen_s = backbone_s + fm_s
    return {
        "bench": "tts", "preset": preset, "model": path, "backend": backend_name, "backend_note": note,
        "voice": voice, "prompt_tokens": len(ids), "euler_steps": steps, "frames": frames,
        "end_audio_at": ended_at, "audio_s": round(audio_s, 3),
        "load_s": round(load_s, 3), "kv_cache_alloc_ms": round(cache_s * 1e3, 2),
        "prefill_ms": round(prefill_s * 1e3, 2),
        "backbone_ms_per_frame": round(backbone_s / frames * 1e3, 3),
        "fm_ms_per_frame": round(fm_s / frames * 1e3, 3),
        "codec_ms_per_frame": round(codec_s / frames * 1e3, 3),
        "frames_per_s": round(frames / gen_s, 2) if gen_s else None,
        "first_audio_s": None if first_audio_s is None else round(first_audio_s, 3),
        "total_s": round(total_s, 3),
        # RTF as everywhere in this project (and the ASR bench): wall seconds per audio second,
        # < 1 is faster than real time
        "rtf": round(total_s / audio_s, 4) if audio_s else None,
        "peak_host_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "gpu": gpu,
    }


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
        description="Speak a fixed text for N frames with a random Q4 model (built once under "
                    "models/bench/) and report load time, prefill, backbone, flow-matching and codec "
                    "ms per frame, frames/s, RTF (wall seconds per audio second), peak host memory "
                    "and the GPU adapter.")
    t.add_argument("--preset", choices=["tiny", "full"], default="tiny")
    t.add_argument("--frames", type=int, default=50, help="frames to generate (12.5 per second of audio; default 50)")
    t.add_argument("--backend", choices=["auto", "webgpu", "numpy"], default="auto")
    t.add_argument("--euler-steps", type=int, default=None, help="flow-matching Euler steps (default: 7)")
    t.add_argument("--model", help="use this model instead of generating one under models/bench/")
    t.add_argument("--json", action="store_true", help="print the figures as JSON")
    t.set_defaults(func=_cmd_bench_tts)
