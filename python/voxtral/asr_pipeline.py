"""Audio in, transcript out: the glue the CLI and the browser worker share.

`ASRPipeline` binds a checked model (`open_model`), the tokenizer and an ops backend. Files and
live audio both go through the streaming chunker and `ASRStream` (streaming equals offline token for
token, ASR spec 11), which gives progress and incremental text for free.
"""
from __future__ import annotations

import time

import numpy as np

from voxtral.audio import StreamingChunker
from voxtral.config import ASRConfig
from voxtral.errors import VoxtralError
from voxtral.models.asr.model import ASRModel
from voxtral.models.asr.transcribe import ASRStream, token_times
from voxtral.transcript import Transcript, group_words

FEED_SECONDS = 1.0  # audio handed to the chunker per piece when transcribing a whole file


def make_ops(backend: str):
    if backend == "numpy":
        from voxtral.backends import NumpyOps
        return NumpyOps()
    if backend == "numpy64":
        from voxtral.backends import NumpyOps
        return NumpyOps(dtype=np.float64)
    raise VoxtralError(f"unknown backend {backend!r}")


class ASRPipeline:
    def __init__(self, model_files, backend: str = "numpy", weights=None):
        if model_files.kind != "asr":
            raise VoxtralError(f"{model_files.path} is a {model_files.kind.upper()} model, not speech-to-text")
        t0 = time.perf_counter()
        self.files = model_files
        self.tokenizer = model_files.tokenizer()
        self.config = ASRConfig.from_params(model_files.params, self.tokenizer.audio_config)
        self.backend = backend
        self.ops = make_ops(backend)
        self.model = ASRModel(self.config, weights if weights is not None else model_files.weights(), self.ops)
        self.ids = {"bos_id": self.tokenizer.bos_id, "eos_id": self.tokenizer.eos_id,
                    "pad_id": self.tokenizer.special_id("[STREAMING_PAD]")}
        self.load_s = time.perf_counter() - t0

    def live(self, delay_ms: float | None = None) -> "LiveTranscription":
        return LiveTranscription(self, delay_ms)

    def transcribe(self, audio: np.ndarray, delay_ms: float | None = None, on_text=None,
                   progress=None) -> Transcript:
        """audio: float32 mono 16 kHz. on_text(str) receives text as it is decided;
        progress(done_s, total_s) is called after each piece."""
        live = self.live(delay_ms)
        step = int(FEED_SECONDS * self.config.audio.sampling_rate)
        total_s = len(audio) / self.config.audio.sampling_rate
        for i in range(0, len(audio), step):
            text = live.push(audio[i:i + step])
            if on_text and text:
                on_text(text)
            if progress:
                progress(min(i + step, len(audio)) / self.config.audio.sampling_rate, total_s)
            if live.done:
                break
        text = live.finish()
        if on_text and text:
            on_text(text)
        return live.transcript()


class LiveTranscription:
    """Push 16 kHz audio as it arrives; get text as the model decides it; finish() flushes."""

    def __init__(self, pipe: ASRPipeline, delay_ms: float | None = None):
        self.pipe = pipe
        self.delay_ms = delay_ms
        self.chunker = StreamingChunker(pipe.config.audio, delay_ms)
        self.stream = ASRStream(pipe.model, delay_ms, **pipe.ids)
        self.decoder = pipe.tokenizer.streaming_decoder()
        self.pieces: list[tuple[str, float]] = []  # (text of one token, its time)
        self.audio_s = 0.0
        self.compute_s = 0.0
        self.first_token_s: float | None = None
        self._t0 = time.perf_counter()

    @property
    def done(self) -> bool:
        return self.stream.done

    def _run(self, steps) -> str:
        if not steps or self.stream.done:
            return ""
        t0 = time.perf_counter()
        mel = np.concatenate([s.mel for s in steps], axis=1)
        n_before = len(self.stream.tokens)
        self.stream.push_mel(mel)
        self.compute_s += time.perf_counter() - t0
        out = []
        tok = self.pipe.tokenizer
        times = token_times(self.stream.positions[n_before:], self.stream.delay_tokens, self.pipe.config)
        for t_id, t in zip(self.stream.tokens[n_before:], times):
            if self.first_token_s is None:
                self.first_token_s = time.perf_counter() - self._t0
            piece = "" if tok.is_special(t_id) else self.decoder.push(t_id)
            self.pieces.append((piece, float(t)))
            out.append(piece)
        return "".join(out)

    def push(self, samples) -> str:
        x = np.asarray(samples, dtype=np.float32)
        self.audio_s += len(x) / self.pipe.config.audio.sampling_rate
        return self._run(self.chunker.push(x))

    def finish(self) -> str:
        text = self._run(self.chunker.finish())
        tail = self.decoder.flush()
        if tail:
            self.pieces.append((tail, self.pieces[-1][1] if self.pieces else 0.0))
        return text + tail

    def transcript(self) -> Transcript:
        text = "".join(p for p, _ in self.pieces).strip()
        res = self.stream.result
        timings = {
            "load_s": round(self.pipe.load_s, 4),
            "audio_s": round(self.audio_s, 4),
            "compute_s": round(self.compute_s, 4),
            "rtf": round(self.compute_s / self.audio_s, 4) if self.audio_s else None,
            "steps": len(res.tokens) + (1 if res.eos else 0),
        }
        info = {"model": self.pipe.files.path, "model_format": self.pipe.files.format,
                "backend": self.pipe.backend, "delay_ms": self.delay_ms if self.delay_ms is not None
                else self.pipe.config.audio.transcription_delay_ms, "eos": res.eos}
        return Transcript(text, list(res.tokens), group_words(self.pieces), timings, info)
