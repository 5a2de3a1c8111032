"""Text in, 24 kHz speech out: the glue the CLI (and later the browser worker) shares.

`TTSPipeline` binds a checked model (`open_model`), its tokenizer, the voices and an ops backend.
Audio is always decoded through the streaming codec (a window re-decode with >= 21 frames of left
context, TTS spec 10), so a streamed run and a plain run compute the same samples, and long
utterances never decode their whole latent at once (the reference's offline path decodes 375-frame
chunks without context instead, which leaves seams: spec pitfall 28).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from voxtral.config import TTSConfig
from voxtral.backends.select import BACKENDS  # noqa: F401
from voxtral.backends.select import make_ops as select_ops
from voxtral.errors import VoxtralError
from voxtral.layout import TTS_CODEC_PREFIX
from voxtral.models.tts.codec import StreamingCodec
from voxtral.models.tts.generate import MAX_CONTEXT, generate_frames
from voxtral.models.tts.model import TTSModel
from voxtral.models.tts.prompt import build_tts_prompt, prompt_embeddings, voice_row_counts
from voxtral.models.tts.text import check_text, normalize_text, prompt_texts
from voxtral.models.tts.voices import VoiceInfo, is_voice_path, load_voice, voice_language


FM_MATVEC_ROWS = 8  # Q4 linears of up to this many rows use matvecs on the GPU (the FM batch is 6)


def make_ops(backend: str = "auto"):
    """(ops, backend name, note) as for ASR (`voxtral.backends.select`), with the TTS settings."""
    ops, name, note = select_ops(backend)
    return prepare_ops(ops), name, note


def prepare_ops(ops):
    """TTS settings of a GPU backend: the backbone cache needs at most the reference context (4096
    positions, prompt + frames), not the ASR decoder's longer default ring; and the flow-matching
    head's 6-row Q4 matmuls (3 tokens x cond/uncond) run as row-chunked matvecs."""
    if getattr(ops, "name", "") == "webgpu":
        ops.unbounded_cache_rows = MAX_CONTEXT
        ops.matvec_split_rows = FM_MATVEC_ROWS
    return ops


@dataclass
class Speech:
    audio: np.ndarray  # float32 [n] at `sample_rate`, nominally in [-1, 1] (not clipped)
    sample_rate: int
    frames: np.ndarray  # [T, 37] codes (+2 offset) of all segments, in order
    segments: list[dict] = field(default_factory=list)  # per prompt: text, prompt_len, frames, ended
    timings: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sample_rate


class TTSPipeline:
    def __init__(self, model_files, backend: str = "numpy", weights=None, ops=None):
        """backend: auto | webgpu | numpy | numpy64; or pass a ready `ops` object (e.g. a
        WebGPUOps sharing one device), whose `name` then names the backend."""
        if model_files.kind != "tts":
            raise VoxtralError(f"{model_files.path} is a speech-to-text (ASR) model, not a TTS model "
                               "(expected mistralai/Voxtral-4B-TTS-2603 or a conversion of it)")
        t0 = time.perf_counter()
        self.files = model_files
        self.tokenizer = model_files.tokenizer()
        self.config = TTSConfig.from_params(model_files.params, self.tokenizer.audio_config)
        if ops is not None:
            self.ops, self.backend, self.backend_note = prepare_ops(ops), getattr(ops, "name", backend), None
        else:
            self.ops, self.backend, self.backend_note = make_ops(backend)
        if weights is None:  # tensor by tensor: a GPU backend keeps no host copy of the Q4 matrices
            # (the codec folds its weights on the host, so its tensors stay there)
            weights = self.ops.load_weights(model_files.iter_tensors(), model_files.shapes,
                                            host_prefixes=(TTS_CODEC_PREFIX,))
        self.model = TTSModel(self.config, weights, self.ops)
        self.load_s = time.perf_counter() - t0

    # ---------------------------------------------------------------------------------- voices
    def voices(self) -> list[VoiceInfo]:
        """The presets this model ships (embedding present), in the params.json order."""
        table = voice_row_counts(self.tokenizer)
        order = self.files.params["multimodal"].get("audio_tokenizer_args", {}).get("voice") or {}
        names = sorted(self.files.voices, key=lambda n: (order.get(n, len(order)), n))
        out = []
        for n in names:
            rows = table[n] if n in table else int(self.files.voice(n).shape[0])
            out.append(VoiceInfo(n, voice_language(n), rows))
        return out

    def voice(self, voice) -> np.ndarray:
        """Voice rows float32 [N, dim]: a preset name, a .pt/.bin/.npy file, or an array."""
        if isinstance(voice, str) and not is_voice_path(voice) and voice not in self.files.voices:
            known = ", ".join(v.name for v in self.voices()) or "none"
            raise VoxtralError(f"unknown voice {voice!r}; valid voices: {known}")
        return load_voice(voice, self.config.backbone.dim, self.files, voice_row_counts(self.tokenizer))

    # -------------------------------------------------------------------------------- synthesis
    def synthesize(self, text: str, voice, euler_steps: int | None = None, cfg_alpha: float | None = None,
                   seed: int = 0, on_audio=None, max_seconds: float | None = None,
                   normalize: bool = True) -> Speech:
        """Speak `text` with `voice`. euler_steps (default 7) and cfg_alpha (default 1.2) are the
        flow-matching settings; `seed` seeds the per-frame noise (same seed, same audio).
        on_audio(chunk float32) receives audio as it is decoded; the chunks concatenate to
        `Speech.audio`. max_seconds caps the generated audio (default: 2048 frames per prompt)."""
        t_start = time.perf_counter()
        check_text(text)
        text = normalize_text(text) if normalize else text
        steps = self.config.euler_steps if euler_steps is None else int(euler_steps)
        alpha = self.config.cfg_alpha if cfg_alpha is None else float(cfg_alpha)
        if steps < 1:
            raise VoxtralError(f"euler steps must be at least 1 (got {steps})")
        voice_rows = self.voice(voice)  # [N, dim]
        budget = None if max_seconds is None else max(0, math.ceil(max_seconds * self.config.frame_rate))
        rng = np.random.default_rng(seed)
        tok = self.tokenizer
        texts = prompt_texts(text, lambda s: len(tok.encode(s)))

        chunks: list[np.ndarray] = []
        segments, all_frames = [], []
        stats = {"prefill_s": 0.0, "decode_s": 0.0, "codec_s": 0.0, "first_audio_s": None}

        def emit(chunk):
            if chunk is None or chunk.size == 0:
                return
            chunks.append(chunk)
            if stats["first_audio_s"] is None:
                stats["first_audio_s"] = time.perf_counter() - t_start
            if on_audio is not None:
                on_audio(chunk)

        for piece in texts:
            if budget is not None and budget <= 0:
                break
            ids = build_tts_prompt(tok, piece, voice_rows)
            prompt = prompt_embeddings(self.ops, self.model.backbone.tok_embeddings, ids, voice_rows,
                                       self.config.audio_token_id)
            codec = StreamingCodec(self.model.codec, self.ops)  # each prompt is its own utterance

            def on_frame(codes, codec=codec):
                t0 = time.perf_counter()
                chunk = codec.push(codes)
                stats["codec_s"] += time.perf_counter() - t0
                emit(chunk)

            gen = generate_frames(self.model, prompt, rng, budget, steps, alpha, on_frame)
            t0 = time.perf_counter()
            tail = codec.flush()
            stats["codec_s"] += time.perf_counter() - t0
            emit(tail)
            stats["prefill_s"] += gen.prefill_s
            stats["decode_s"] += gen.decode_s
            if budget is not None:
                budget -= len(gen.frames)
            all_frames.append(gen.frames)
            segments.append({"text": piece, "prompt_len": gen.prompt_len, "frames": int(len(gen.frames)),
                             "ended": gen.ended})

        audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
        frames = np.concatenate(all_frames) if all_frames else np.zeros((0, self.config.n_codebooks), np.int64)
        total = time.perf_counter() - t_start
        audio_s = len(audio) / self.config.sampling_rate
        timings = {
            "load_s": round(self.load_s, 4),
            "prefill_s": round(stats["prefill_s"], 4),
            # generation excludes the codec work done inside the frame callbacks
            "generate_s": round(stats["decode_s"] - stats["codec_s"] + stats["prefill_s"], 4),
            "codec_s": round(stats["codec_s"], 4),
            "total_s": round(total, 4),
            "first_audio_s": None if stats["first_audio_s"] is None else round(stats["first_audio_s"], 4),
            "audio_s": round(audio_s, 4),
            "rtf": round(total / audio_s, 4) if audio_s else None,
            "frames": int(len(frames)),
        }
        info = {"model": self.files.path, "model_format": self.files.format, "backend": self.backend,
                "voice": voice if isinstance(voice, str) else "<array>", "seed": seed,
                "euler_steps": steps, "cfg_alpha": alpha, "text": text}
        return Speech(audio.astype(np.float32, copy=False), self.config.sampling_rate, frames, segments,
                      timings, info)
