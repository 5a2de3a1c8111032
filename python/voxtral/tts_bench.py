"""The timed passes of `voxtral bench tts`, shared by the CLI and the page's benchmark mode.

Browser-safe (numpy + the standard library). `random_tts_model` builds a random model of a preset's
size in memory, loaded tensor by tensor through `ops.load_weights` (on WebGPU straight to the GPU;
the codec's tensors stay on the host, as in TTSPipeline); `time_tts` speaks a prompt for exactly N
frames - prompt -> backbone -> semantic code -> flow matching -> frame embedding -> backbone ... ->
streaming codec - with a synchronising readback closing each part, so each part's time is the wall
time until its result is on the host. A random model may emit [END_AUDIO] at any frame; the bench
replaces it by the first semantic code and goes on, so every run times N frames.
"""
from __future__ import annotations

import time

import numpy as np

from .layout import TTS_CODEC_PREFIX

BENCH_TEXT = ("The quick brown fox jumps over the lazy dog. Voxtral speaks this sentence as a benchmark, "
              "frame by frame.")
BENCH_VOICE_ROWS = 50  # rows of the in-memory model's random voice (the real presets have 16-120+)


def random_tts_model(ops, preset: str, seed: int = 0):
    """(config, TTSModel, voice rows [N, dim], prompt ids) of a random model of the preset's size.

    No tokenizer is needed: the prompt has the real layout (BOS, BEGIN_AUDIO, one AUDIO placeholder
    per voice row, NEXT_AUDIO_TEXT, text, REPEAT_AUDIO_TEXT, BEGIN_AUDIO) with the config's special
    ids where it names them and the text as byte values above the special range: a random model
    does not care which ids the text has, only how many."""
    from .config import TTSConfig
    from .models.tts.model import TTSModel
    from .presets import tts_params
    from .random_weights import model_shapes, random_voice, random_weights

    params = tts_params(preset)
    cfg = TTSConfig.from_params(params)
    weights = ops.load_weights(random_weights("tts", params, seed), model_shapes("tts", params),
                               host_prefixes=(TTS_CODEC_PREFIX,))
    model = TTSModel(cfg, weights, ops)
    voice = random_voice("bench", BENCH_VOICE_ROWS, cfg.backbone.dim, seed)
    return cfg, model, voice, bench_prompt(cfg, BENCH_VOICE_ROWS, BENCH_TEXT)


def bench_prompt(cfg, n_voice_rows: int, text: str) -> list[int]:
    """Prompt ids with the TTS layout (see random_tts_model); text ids = 1000 + UTF-8 bytes."""
    audio, begin = cfg.audio_token_id, cfg.begin_audio_token_id
    next_text, repeat_text = begin + 11, begin + 10  # any special-range ids: the model is random
    text_ids = [1000 + b for b in text.encode("utf-8")]
    return ([cfg.bos_token_id, begin] + [audio] * n_voice_rows + [next_text] + text_ids
            + [repeat_text, begin])


def _sync_time(ops, t) -> float:
    """Wall time now, after everything recorded so far has run (numpy: nothing is pending)."""
    if hasattr(ops, "host") and hasattr(ops, "flush"):
        ops.flush()
        wait = getattr(ops.host, "wait", None)
        if wait is not None:
            wait()
    return time.perf_counter() - t


def time_tts(ops, model, ids, voice_rows, frames: int = 50, euler_steps: int | None = None,
             seed: int = 0) -> dict:
    """Warm-up, then N timed frames of `model` on the prompt `ids` with `voice_rows`: the figures of
    `voxtral bench tts` (ms are per frame) plus the semantic codes spoken."""
    from .models.tts.codec import StreamingCodec
    from .models.tts.flow_matching import END_AUDIO
    from .models.tts.prompt import prompt_embeddings

    if frames < 1:
        raise ValueError("frames must be >= 1")
    cfg, m = model.config, model
    steps = cfg.euler_steps if euler_steps is None else int(euler_steps)
    rng = np.random.default_rng(seed)

    def prompt():
        return prompt_embeddings(ops, m.backbone.tok_embeddings, ids, voice_rows, cfg.audio_token_id)

    # Warm-up: every weight uploaded, every pipeline compiled, the bind groups of a regular step built.
    t0 = time.perf_counter()
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
    warmup_s = _sync_time(ops, t0)
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
    semantic = []
    for t in range(frames):
        t1 = time.perf_counter()
        if t > 0:
            h = m.backbone(ops, m.frame_embedding(codes), [len(ids) + t - 1], caches)
        s = m.head.semantic_code(ops, h)  # the readback of the argmax closes the backbone step
        backbone_s += time.perf_counter() - t1
        if s == END_AUDIO:
            ended_at = t if ended_at is None else ended_at
            s = 2  # keep going: a bench times N frames
        semantic.append(int(s))
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
    gen_s = backbone_s + fm_s
    return {
        "prompt_tokens": len(ids), "euler_steps": steps, "frames": frames,
        "end_audio_at": ended_at, "audio_s": round(audio_s, 3), "warmup_s": round(warmup_s, 3),
        "kv_cache_alloc_ms": round(cache_s * 1e3, 2),
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
        "semantic_codes": semantic,
    }
