#!/usr/bin/env python3
"""Side-by-side baseline for `voxtral bench asr`: the same clip through HF transformers.

Builds `VoxtralRealtimeForConditionalGeneration` with random weights at the real size
(`--preset full`, from `voxtral.presets.asr_params`) or the tiny test size, directly on the target
device in the target dtype, and times greedy decoding of `voxtral.bench.bench_clip` the way the
oracle tests run the HF model (tests/oracle/hf_asr_oracle.py): spec padding, the HF feature
extractor's mel, prompt BOS + STREAMING_PAD x (32 + delay), and
`generate(input_ids, input_features, num_delay_tokens, do_sample=False)`.

Timed (wall clock; CUDA synchronised before every clock read):
  build     construct + random fill on the device (HF's own init skipped, no CPU copy)
  mel       padding + HF feature extractor (numpy on the CPU, as in the oracle) + upload
  encoder   `get_audio_features` on the whole clip (encoder + adapter). A standalone figure:
            generate() does not use it, it runs the encoder incrementally inside its steps
  generate  prefill (time to the first token) + decode. Each HF decode step also runs the
            streaming encoder on its 4 new frames, so HF's ms/token covers encoder + decoder
RTF = generate seconds / audio seconds (encoder + prefill + decode, like our bench; mel apart).
EOS does not stop decoding: every audio position after the prompt is decoded (16 s -> 210 new
tokens, our bench's step count), which is also the most HF's generate allows for a clip.

From a checkout, on the GPU machine: `python scripts/bench_transformers.py --preset full --json`.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the bench machine has no internet: never ask the hub

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

import torch  # noqa: E402

DELAY_MS = 480  # the model's default delay (6 tokens), as in our bench
EOS_ID = 2
DTYPES = {"bf16": torch.bfloat16, "f32": torch.float32}


# ------------------------------------------------------------------------------------ config
def hf_config_from_params(params: dict):
    """Mistral params.json -> VoxtralRealtimeConfig, field for field as hf_asr_oracle.hf_config."""
    from transformers import VoxtralRealtimeConfig

    mm = params["multimodal"]["whisper_model_args"]
    enc, audio = mm["encoder_args"], mm["encoder_args"]["audio_encoding_args"]
    # transformers hard-codes the ADA bottleneck and gives the encoder as many kv heads as q heads
    if params.get("ada_rms_norm_t_cond_dim", 32) != 32:
        raise ValueError("transformers hard-codes ada_rms_norm_t_cond_dim = 32")
    if enc.get("n_kv_heads", enc["n_heads"]) != enc["n_heads"]:
        raise ValueError("transformers' audio encoder has no GQA: n_kv_heads must equal n_heads")
    # RoPE always explicit: a config without it falls back to theta 1e4
    enc_rope = {"rope_type": "default", "rope_theta": float(enc["rope_theta"])}
    dec_rope = {"rope_type": "default", "rope_theta": float(params["rope_theta"])}
    # mel frames per audio token = samples per token / hop = 16000 / 12.5 / 160 = 8
    frames_per_tok = round(audio["sampling_rate"] / audio["frame_rate"] / audio["hop_length"])
    return VoxtralRealtimeConfig(
        audio_config=dict(hidden_size=enc["dim"], intermediate_size=enc["hidden_dim"],
                          num_hidden_layers=enc["n_layers"], num_attention_heads=enc["n_heads"],
                          head_dim=enc["head_dim"], num_mel_bins=audio["num_mel_bins"],
                          sliding_window=enc["sliding_window"], rms_norm_eps=enc["norm_eps"],
                          rope_parameters=enc_rope),
        text_config=dict(vocab_size=params["vocab_size"], hidden_size=params["dim"],
                         intermediate_size=params["hidden_dim"], num_hidden_layers=params["n_layers"],
                         num_attention_heads=params["n_heads"], num_key_value_heads=params["n_kv_heads"],
                         head_dim=params["head_dim"], sliding_window=params["sliding_window"],
                         rms_norm_eps=params["norm_eps"], rope_parameters=dec_rope,
                         tie_word_embeddings=bool(params.get("tied_embeddings", True))),
        downsample_factor=mm["downsample_args"]["downsample_factor"],
        audio_length_per_tok=frames_per_tok, default_num_delay_tokens=6)


def preset_params(preset: str) -> dict:
    from voxtral.presets import asr_params
    return asr_params(preset)


# ------------------------------------------------------------------------------ random model
def _no_hf_init():
    """Skip HF's weight init: fill() overwrites every parameter anyway (minutes at 4B on a CPU)."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:
        try:
            from transformers.modeling_utils import no_init_weights
        except ImportError:
            return contextlib.nullcontext()
    return no_init_weights()


@contextlib.contextmanager
def _default_dtype(dtype):
    # Layers allocate in the default dtype, so bf16 weights come out directly (no f32 copy first).
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def construct(config, device: str, dtype):
    """The model allocated on `device` ('meta' works: shapes only) in `dtype`, weights unfilled."""
    from transformers import VoxtralRealtimeForConditionalGeneration
    config.dtype = dtype
    with torch.device(device), _default_dtype(dtype), _no_hf_init():
        model = VoxtralRealtimeForConditionalGeneration(config)
    model.tie_weights()  # HF ties inside init_weights, which no_init_weights skipped
    return model.eval()


# Std of each matrix = gain / sqrt(fan_in), first matching name fragment wins. As in the oracle, a
# livelier conv stem and decoder keep a random model's greedy output from collapsing onto one
# token; timing does not care, but the tests compare ids and want them to vary.
GAINS = (("embedder.", 1.5), ("language_model.layers.", 1.5), ("embed_tokens", 1.0), ("", 0.5))


@torch.no_grad()
def fill_random(model, seed: int) -> None:
    """In place, on the model's device: matrices ~ N(0, (gain/√fan_in)²), norms 1 + 0.1·N, biases 0.05·N."""
    torch.manual_seed(seed)
    for name, p in model.named_parameters():  # a tied LM head is listed once
        if "norm" in name and p.dim() == 1:
            p.normal_(1.0, 0.1)
        elif p.dim() > 1:
            fan_in = math.prod(p.shape[1:])  # [out, in] linears, [out, in, k] convs
            p.normal_(0.0, next(g for key, g in GAINS if key in name) / math.sqrt(fan_in))
        else:
            p.normal_(0.0, 0.05)


def build_model(preset: str, device: str, dtype, seed: int = 0):
    model = construct(hf_config_from_params(preset_params(preset)), device, dtype)
    fill_random(model, seed)
    return model


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() lists tied tensors once


# -------------------------------------------------------------------------------------- inputs
def asr_config(preset: str):
    from voxtral.config import ASRConfig
    return ASRConfig.from_params(preset_params(preset))


def clip_inputs(cfg, seconds: float):
    """(prompt ids, mel [128, 8N] float32, delay tokens) for the bench clip, as the oracle builds them."""
    from transformers import VoxtralRealtimeFeatureExtractor

    from voxtral.audio import pad_for_offline
    from voxtral.models.asr import prompt_ids
    try:  # the bench's module moved; either checkout has the same clip
        from voxtral.asr_bench import bench_clip
    except ImportError:
        from voxtral.bench import bench_clip
    delay = cfg.audio.num_delay_tokens(DELAY_MS)
    padded = pad_for_offline(bench_clip(seconds), cfg.audio)  # spec 4.2, = the oracle's pad_offline
    mel = VoxtralRealtimeFeatureExtractor()(padded, sampling_rate=16000, return_tensors="np").input_features[0]
    return prompt_ids(cfg, delay), mel, delay


# -------------------------------------------------------------------------------------- timing
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _TokenClock:
    """generate() streamer that timestamps each put: first the prompt, then one call per new token.

    generate moves every token to the CPU before calling put, so a timestamp here is taken after
    that step's GPU work finished; the only added cost is that 1-token copy."""

    def __init__(self):
        self.times: list[float] = []

    def put(self, value):
        self.times.append(time.perf_counter())

    def end(self):
        pass


def greedy_config(model, max_new_tokens: int, ignore_eos: bool = True):
    """The model's generation config, greedy, for exactly `max_new_tokens` when EOS is ignored.

    Everything goes in the config (transformers 5 warns about a config plus loose kwargs), and EOS
    is unset here: an eos_token_id=None kwarg would fall back to the model's default (2)."""
    gc = model.generation_config.__class__.from_dict(model.generation_config.to_dict())
    gc.do_sample = False
    gc.max_new_tokens = max_new_tokens  # HF still clamps to the clip: N - len(prompt) at most
    if ignore_eos:
        gc.eos_token_id = None
    return gc


def hf_greedy(model, prompt, mel_t, delay: int, max_new_tokens: int, ignore_eos: bool = True,
              streamer=None) -> list[int]:
    """The oracle's generate call (hf_asr_oracle.hf_generate), for a fixed number of new tokens."""
    ids = torch.tensor([prompt], device=mel_t.device)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = model.generate(input_ids=ids, input_features=mel_t, num_delay_tokens=delay,
                             generation_config=greedy_config(model, max_new_tokens, ignore_eos),
                             streamer=streamer)
    return out[0, len(prompt):].tolist()


def _timed(fn, device):
    _sync(device)
    t = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - t


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def run_bench(preset: str = "full", seconds: float = 16.0, device: str | None = None,
              dtype: str = "bf16", max_steps: int | None = None, seed: int = 0,
              warmup: bool = True) -> dict:
    """Build, warm up, time; the figures as a dict (`token_ids`: the generated ids)."""
    import transformers
    # transformers imports its model modules lazily (seconds): not part of build or mel time
    from transformers import VoxtralRealtimeFeatureExtractor, VoxtralRealtimeForConditionalGeneration  # noqa: F401
    t_wall = time.perf_counter()
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    tdtype = DTYPES[dtype]
    if dev.type == "cuda":
        torch.cuda.init()  # CUDA context creation is not model build time
        torch.cuda.reset_peak_memory_stats(dev)

    model, build_s = _timed(lambda: build_model(preset, str(dev), tdtype, seed), dev)

    cfg = asr_config(preset)
    t = time.perf_counter()
    prompt, mel, delay = clip_inputs(cfg, seconds)
    mel_t = torch.tensor(mel[None], dtype=tdtype, device=dev)
    _sync(dev)
    mel_s = time.perf_counter() - t

    n_pos = mel.shape[1] // cfg.audio.audio_length_per_tok  # decoder positions (8 mel frames each)
    # HF generate stops at max_length = N positions: N - len(prompt) new tokens at most.
    n_new = n_pos - len(prompt)
    if max_steps is not None:
        n_new = max(1, min(n_new, max_steps))

    encode = lambda: model.model.get_audio_features(input_features=mel_t)  # noqa: E731
    if warmup:  # kernels, cuBLAS handles, allocator pools: not part of any timed figure
        with torch.no_grad():
            encode()
        hf_greedy(model, prompt, mel_t, delay, min(4, n_new))
    with torch.no_grad():
        _, encoder_s = _timed(encode, dev)

    clock = _TokenClock()
    t0 = time.perf_counter()
    tokens, generate_s = _timed(lambda: hf_greedy(model, prompt, mel_t, delay, n_new, streamer=clock), dev)
    first = clock.times[1] if len(clock.times) > 1 else t0 + generate_s
    prefill_s = first - t0
    decode_steps = len(tokens) - 1  # the first token comes from the prefill
    decode_s = max(t0 + generate_s - first, 1e-9)
    step_s = decode_s / max(decode_steps, 1)

    return {
        "bench": "asr-transformers", "preset": preset, "device": str(dev),
        "device_name": device_name(dev), "dtype": dtype, "torch": torch.__version__,
        "transformers": transformers.__version__, "attn_implementation": model.config._attn_implementation,
        "params": count_params(model), "audio_s": round(seconds, 3), "positions": int(n_pos),
        "prompt_tokens": len(prompt), "build_s": round(build_s, 3), "mel_ms": round(mel_s * 1e3, 2),
        "encoder_ms": round(encoder_s * 1e3, 2), "prefill_ms": round(prefill_s * 1e3, 2),
        "new_tokens": len(tokens), "decode_steps": decode_steps,
        "decode_ms_per_token": round(step_s * 1e3, 3), "decode_tokens_per_s": round(1 / step_s, 2),
        "generate_s": round(generate_s, 4), "generate_tokens_per_s": round(len(tokens) / generate_s, 2),
        "processing_s": round(mel_s + generate_s, 4), "rtf": round(generate_s / seconds, 4),
        "wall_s": round(time.perf_counter() - t_wall, 3),
        "distinct_tokens": len(set(tokens)), "eos_emitted": tokens.count(EOS_ID),
        "peak_host_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated(dev) / 2**20, 1) if dev.type == "cuda" else None,
        "token_ids": tokens,
    }


# ------------------------------------------------------------------------------------------ CLI
def _report(r: dict) -> str:
    return "\n".join([
        f"transformers {r['transformers']} / torch {r['torch']}: preset {r['preset']}, {r['dtype']}, "
        f"{r['device_name']} ({r['attn_implementation']} attention)",
        f"  model             {r['params'] / 1e9:.3f} B params, built in {r['build_s']:.2f} s",
        f"  audio             {r['audio_s']} s -> {r['positions']} positions, prompt {r['prompt_tokens']}",
        f"  mel (CPU)         {r['mel_ms']:.1f} ms",
        f"  encoder (whole)   {r['encoder_ms']:.1f} ms   (standalone; generate encodes per step)",
        f"  prefill / TTFT    {r['prefill_ms']:.1f} ms",
        f"  decode            {r['decode_ms_per_token']:.3f} ms/token, {r['decode_tokens_per_s']:.1f} tokens/s"
        f" over {r['decode_steps']} steps",
        f"  generate          {r['generate_s']:.3f} s for {r['new_tokens']} tokens, RTF {r['rtf']:.4f}",
        f"  wall (all)        {r['wall_s']:.2f} s; peak host {r['peak_host_mb']:.0f} MB"
        + (f", peak GPU {r['peak_gpu_mb']:.0f} MB" if r["peak_gpu_mb"] is not None else ""),
    ])


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=["tiny", "full"], default="full")
    ap.add_argument("--seconds", type=float, default=16.0, help="length of the generated clip")
    ap.add_argument("--device", default=None, help="cuda | cpu | cuda:N (default: cuda if available)")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    ap.add_argument("--max-steps", type=int, default=None, help="decode at most this many new tokens")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    ap.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up runs")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (on a small CPU, 1 avoids numpy/OpenMP oversubscription)")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    a = parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    r = run_bench(a.preset, a.seconds, a.device, a.dtype, a.max_steps, a.seed, not a.no_warmup)
    shown = {k: v for k, v in r.items() if k != "token_ids"}
    print(json.dumps(shown) if a.json else _report(shown))
    return r


if __name__ == "__main__":
    main()
