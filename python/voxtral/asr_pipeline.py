"""Audio in, transcript out: the glue the CLI and the browser worker share.

`ASRPipeline` binds a checked model (`open_model`), the tokenizer and an ops backend. Files and
live audio both go through the streaming chunker and `ASRStream` (streaming equals offline token for
token, ASR spec 11), which gives progress and incremental text for free.
"""
from __future__ import annotations

import time

import numpy as np

from voxtral.audio import StreamingChunker
from voxtral.backends.select import BACKENDS, make_ops  # noqa: F401  (re-exported for callers)
from voxtral.config import ASRConfig
from voxtral.errors import AudioFormatError, VoxtralError
from voxtral.models.asr.model import ASRModel
from voxtral.models.asr.transcribe import ASRStream, token_times
from voxtral.transcript import Transcript, group_words

FEED_SECONDS = 1.0  # audio handed to the chunker per piece when transcribing a whole file


class ASRPipeline:
    """`ops`, when given, is used as is (e.g. WebGPU ops over the browser's self-tested kernels);
    `backend` then only names it."""

    def __init__(self, model_files, backend: str = "numpy", weights=None, ops=None):
        if model_files.kind != "asr":
            raise VoxtralError(f"{model_files.path} is a {model_files.kind.upper()} model, not speech-to-text")
        t0 = time.perf_counter()
        self.files = model_files
        self.tokenizer = model_files.tokenizer()
        self.config = ASRConfig.from_params(model_files.params, self.tokenizer.audio_config)
        if ops is not None:
            self.ops, self.backend, self.backend_note = ops, backend, None
        else:
            self.ops, self.backend, self.backend_note = make_ops(backend)
        if weights is None:  # tensor by tensor: a GPU backend keeps no host copy of the model
            weights = self.ops.load_weights(model_files.iter_tensors(), model_files.shapes)
        self.model = ASRModel(self.config, weights, self.ops)
        self.ids = {"bos_id": self.tokenizer.bos_id, "eos_id": self.tokenizer.eos_id,
                    "pad_id": self.tokenizer.special_id("[STREAMING_PAD]")}
        self.load_s = time.perf_counter() - t0

    def live(self, delay_ms: float | None = None) -> "LiveTranscription":
        return LiveTranscription(self, delay_ms)

    def transcribe(self, audio: np.ndarray, delay_ms: float | None = None, on_text=None,
                   progress=None) -> Transcript:
        """audio: float32 mono 16 kHz. on_text(str) receives text as it is decided;
        progress(done_s, total_s) is called after each piece."""
        step = int(FEED_SECONDS * self.config.audio.sampling_rate)
        pieces = (audio[i:i + step] for i in range(0, len(audio), step))
        return self.transcribe_pieces(pieces, len(audio) / self.config.audio.sampling_rate, delay_ms,
                                      on_text, progress)

    def transcribe_pieces(self, pieces, total_s: float | None = None, delay_ms: float | None = None,
                          on_text=None, progress=None) -> Transcript:
        """Like `transcribe`, for audio that arrives as an iterable of float32 mono 16 kHz pieces
        (e.g. `WavReader.stream`: a long file read from disk in constant memory)."""
        live = self.live(delay_ms)
        rate = self.config.audio.sampling_rate
        done = 0
        for piece in pieces:
            text = live.push(piece)
            done += len(piece)
            if on_text and text:
                on_text(text)
            if progress:
                progress(done / rate, total_s if total_s is not None else done / rate)
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
        if x.ndim != 1:
            raise AudioFormatError(f"expected mono samples [n], got an array of shape {x.shape}")
        if not np.isfinite(x).all():
            # NaN / inf would spread through the mel and every later decoder step: refuse the
            # piece (the stream stays usable) rather than transcribe noise.
            raise AudioFormatError(f"the audio holds NaN or infinite samples (the first at sample "
                                   f"{int(np.argmin(np.isfinite(x)))} of this piece of {len(x)}); "
                                   "they were not transcribed")
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
        return Transcript(text, list(res.tokens), group_words(self.pieces, self.audio_s), timings, info)
