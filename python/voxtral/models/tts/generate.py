"""The per-frame generation loop (TTS spec 7.1), as the reference runs it.

    h_0 = backbone(prompt)[last]            the trailing [BEGIN_AUDIO]: no extra "[AUDIO] kick" step
    for t = 0 …:
        s_t = semantic(h_t);  stop if s_t == [END_AUDIO]   (that frame is not emitted, fed or decoded)
        a_t = flow_matching(h_t, fresh noise)
        emit (s_t, a_t);  h_t+1 = backbone(frame_embedding(s_t, a_t)) at position P + t
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .flow_matching import END_AUDIO
from .model import TTSModel

# Reference serving limits (TTS spec 9): max_tokens 2048 frames (163.8 s), max_model_len 4096
# positions for prompt + generated frames.
MAX_FRAMES_PER_PROMPT = 2048
MAX_CONTEXT = 4096


@dataclass
class Generation:
    frames: np.ndarray  # [T, 37] int64 codes with the +2 offset
    ended: bool  # True if [END_AUDIO] stopped it (False: the frame limit did)
    prompt_len: int
    prefill_s: float
    decode_s: float


def frame_limit(prompt_len: int, max_frames: int | None = None) -> int:
    """Frames one prompt may generate: the reference's 2048, the 4096-position context, and the
    caller's cap (whichever is smallest)."""
    n = min(MAX_FRAMES_PER_PROMPT, MAX_CONTEXT - prompt_len)
    if max_frames is not None:
        n = min(n, int(max_frames))
    return max(0, n)


def generate_frames(model: TTSModel, prompt, rng: np.random.Generator, max_frames: int | None = None,
                    euler_steps: int | None = None, cfg_alpha: float | None = None,
                    on_frame=None) -> Generation:
    """prompt: prefill embeddings [P, dim] (backend tensor). rng draws each frame's 36 noise values
    (standard normal, scale 1.0), so a seed reproduces a run. on_frame(codes [37]) sees each frame
    as soon as it exists (streaming)."""
    ops, backbone, head = model.ops, model.backbone, model.head
    p_len = int(prompt.shape[0])
    limit = frame_limit(p_len, max_frames)
    n_ac = model.config.n_acoustic_codebook
    t0 = time.perf_counter()
    caches = backbone.new_caches(ops)
    h = backbone(ops, prompt, np.arange(p_len), caches)  # [P, dim]
    h = ops.rows(h, p_len - 1, p_len)  # [1, dim]: frame 0 comes from the final [BEGIN_AUDIO]
    t1 = time.perf_counter()
    frames, ended = [], False
    for t in range(limit):
        s = head.semantic_code(ops, h)
        if s == END_AUDIO:
            ended = True
            break
        a = head.acoustic_codes(ops, h, rng.standard_normal(n_ac), euler_steps, cfg_alpha)  # [36]
        codes = np.concatenate([[s], a]).astype(np.int64)  # [37]
        frames.append(codes)
        if on_frame is not None:
            on_frame(codes)
        if t + 1 < limit:  # the last allowed frame needs no successor
            h = backbone(ops, model.frame_embedding(codes), [p_len + t], caches)
    n_cols = 1 + n_ac
    out = np.stack(frames) if frames else np.zeros((0, n_cols), dtype=np.int64)
    return Generation(out, ended, p_len, t1 - t0, time.perf_counter() - t1)
