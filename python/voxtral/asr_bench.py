"""The ASR benchmark itself, shared by `voxtral bench asr` (native) and the page's benchmark mode
(`index.html?bench=asr`, inside Pyodide): numpy + standard library only.

Two passes over one generated clip:
  * offline: the whole clip's encoder at once, the decoder prefill, then one timed decode step per
    remaining position (EOS ignored: a random model may emit it at any step);
  * streaming: the clip pushed in 80 ms pieces as a microphone delivers it (incremental encoder,
    one decoder step per piece, real EOS), which gives the live RTF and the tokens to compare
    across hosts (the page's against the CLI's for the same model and audio).
Timings are wall clock around synchronised work (the last token or row is read back).
"""
from __future__ import annotations

import time

import numpy as np

from voxtral.audio import StreamingChunker, log_mel, pad_for_offline
from voxtral.config import ASRConfig
from voxtral.layout import ASR_PREFIX
from voxtral.models.asr.model import ASRModel
from voxtral.models.asr.transcribe import ASRStream, DecoderSession
from voxtral.presets import asr_params
from voxtral.random_weights import model_shapes, random_weights

PIECE_S = 0.08  # one audio token: what the page's microphone path hands over at a time

# Memory bandwidth (GB/s) of adapters we know by name; `--bandwidth-gbs` overrides.
KNOWN_BANDWIDTH_GBS = {"H100 80GB HBM3": 3350.0, "H100 PCIe": 2000.0, "H200": 4800.0, "A100": 2039.0}


def bench_clip(seconds: float, seed: int = 0) -> np.ndarray:
    """Speech-like test signal: a gliding harmonic voice with syllable gating plus noise, 16 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    f0 = 130 + 40 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    voice = sum(np.sin(k * phase) / k for k in range(1, 16))
    gate = (np.sin(2 * np.pi * 3.1 * t) > -0.2).astype(np.float64)
    return (0.15 * voice * gate + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def random_asr_model(preset: str, seed: int = 0) -> tuple[ASRConfig, dict]:
    """A random Q4 model of the preset's size in memory: random Q4 blocks drawn directly
    (`random_weights`; seconds at full size, also inside Pyodide; as a file:
    `testmodel.write_gguf(..., quantize_random=True)`), not the quantized BF16 weights
    `voxtral make-test-model asr --format gguf` writes (minutes at full size). The same sizes and
    types, so the same bytes per step."""
    params = asr_params(preset)
    return ASRConfig.from_params(params), dict(random_weights("asr", params, seed))


def bench_model(ops, preset: str, seed: int = 0) -> tuple[ASRConfig, dict]:
    """`random_asr_model` loaded the way a model file is: tensor by tensor through
    `ops.load_weights` (straight to the GPU on WebGPU: in the browser the wasm heap stays small)."""
    params = asr_params(preset)
    return ASRConfig.from_params(params), ops.load_weights(random_weights("asr", params, seed),
                                                           model_shapes("asr", params))


def _nbytes(w) -> int:
    """Bytes of a weight as stored: Q4 blocks (host or GPU-resident) or a dense array."""
    return int(w.raw.nbytes) if hasattr(w, "raw") else int(w.nbytes)


def decoder_bytes_per_step(weights: dict, cfg: ASRConfig, n_positions: int) -> int:
    """Bytes a decode step must read: every decoder weight once (layers, final norm, the tied
    LM head = the Q4 embedding table) plus the KV rows attended (f32)."""
    w = sum(_nbytes(v) for k, v in weights.items() if k.startswith("layers.") and "ada_rms" not in k)
    w += _nbytes(weights["norm.weight"]) + _nbytes(weights[ASR_PREFIX + "tok_embeddings.weight"])
    d = cfg.decoder
    keys = min(n_positions, d.sliding_window or n_positions)
    kv = d.n_layers * 2 * keys * d.n_kv_heads * d.head_dim * 4
    return w + kv


def stream_pass(model: ASRModel, audio: np.ndarray) -> dict:
    """The clip through the live path in 80 ms pieces; tokens as decided (EOS ends it)."""
    cfg = model.config.audio
    piece = int(round(PIECE_S * cfg.sampling_rate))
    chunker = StreamingChunker(cfg)
    stream = ASRStream(model)
    t0 = time.perf_counter()
    for i in range(0, len(audio), piece):
        steps = chunker.push(audio[i:i + piece])
        if steps and not stream.done:
            stream.push_mel(np.concatenate([s.mel for s in steps], axis=1))
    steps = chunker.finish()
    if steps and not stream.done:
        stream.push_mel(np.concatenate([s.mel for s in steps], axis=1))
    wall = time.perf_counter() - t0
    return {"stream_s": round(wall, 4), "stream_rtf": round(wall / (len(audio) / cfg.sampling_rate), 4),
            "stream_tokens": [int(t) for t in stream.tokens], "stream_eos": bool(stream.result.eos)}


def time_asr(ops, cfg: ASRConfig, weights: dict, seconds: float, stream: bool = True) -> dict:
    """Warm-up, then the offline and (optionally) streaming passes. Returns the figures; the
    caller adds what it knows about the host (backend, adapter, memory, load time)."""
    m = ASRModel(cfg, weights, ops)
    audio = bench_clip(seconds)
    mel = log_mel(pad_for_offline(audio, cfg.audio), cfg.audio)
    # Warm-up on a short piece: uploads every weight, compiles every pipeline, builds bind groups,
    # records the decode step (handed on to the timed session with the caches).
    t0 = time.perf_counter()
    emb = m.audio_embeddings(mel[:, : 8 * 48])
    s = DecoderSession(m, m.delay_tokens(), eos_id=-1)
    s.feed(emb)
    ops.to_host(emb)
    warmup_s = time.perf_counter() - t0
    del s  # hands its caches and recorded decode step on, as a server's finished session does

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
    total_s = encoder_s + prefill_s + decode_s
    out = {
        "audio_s": round(seconds, 3), "positions": int(emb.shape[0]), "warmup_s": round(warmup_s, 3),
        "encoder_ms": round(encoder_s * 1e3, 2), "prefill_ms": round(prefill_s * 1e3, 2),
        "decode_steps": int(steps), "decode_ms_per_step": round(step_s * 1e3, 3),
        "steps_per_s": round(1 / step_s, 2), "bytes_per_step": int(nbytes),
        "achieved_gbs": round(nbytes / step_s / 1e9, 2), "rtf": round(total_s / seconds, 4),
        "offline_tokens": [int(t) for t in session.result.tokens],
    }
    if stream:
        del session  # (as above)
        out.update(stream_pass(m, audio))
    return out


def add_roofline(r: dict, adapter: str, bandwidth_gbs: float | None = None) -> dict:
    bw = bandwidth_gbs
    if bw is None:
        bw = next((v for k, v in KNOWN_BANDWIDTH_GBS.items() if k in adapter), None)
    r["adapter"] = adapter
    r["bandwidth_gbs"] = bw
    r["roofline_fraction"] = round(r["achieved_gbs"] / bw, 4) if bw else None
    return r
