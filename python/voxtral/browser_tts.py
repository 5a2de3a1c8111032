"""The Python side of the browser's text-to-speech tab (web/worker.js, TTS section).

Runs inside Pyodide (numpy + standard library only), next to the speech-to-text `browser.Session`.
worker.js hands over the TTS model's shards (JS Uint8Arrays, read one tensor at a time), then asks
for speech: `speak` runs `TTSPipeline.synthesize` and passes every audio chunk to a JS callback as
soon as the streaming codec emits it (float32 little-endian bytes + a JSON line of live figures),
so the page plays while the model is still generating. The finished utterance is kept as a WAV
(`voxtral.audio.wav.encode_wav`, the bytes `voxtral speak` writes for the same samples).

The backend is "numpy", or "webgpu" with the kernels the worker's WebGPU set-up self-tested
(`browser.Session.kernels`).
"""
from __future__ import annotations

import json
import time

import numpy as np

from voxtral.browser import NO_SIDE_DIR, as_source
from voxtral.errors import ModelFormatError, VoxtralError
from voxtral.models.tts.text import MAX_TEXT_CHARS
from voxtral.tts_pipeline import TTSPipeline
from voxtral.weights.gguf import open_gguf
from voxtral.weights.loader import _model_from_gguf
from voxtral.weights.sources import ShardedBytes


class TTSSession:
    """One loaded TTS model (a worker holds one, beside its ASR Session)."""

    def __init__(self):
        self.pipe: TTSPipeline | None = None
        self.wav: bytes = b""

    def load(self, shards, name: str = "model", backend: str = "numpy", tekken_json: str | None = None,
             kernels=None) -> str:
        """shards: the TTS GGUF's byte pieces in order. Returns JSON: name, backend, load_s, the
        voices (name, language, rows), sample_rate, the default euler_steps / cfg_alpha."""
        t0 = time.perf_counter()
        sources = [as_source(b) for b in shards]
        if not sources:
            raise ModelFormatError("no shards were given")
        mf = _model_from_gguf(open_gguf(ShardedBytes(sources)), name, "shards", NO_SIDE_DIR)
        if mf.tekken is None and tekken_json:
            mf.tekken = json.loads(tekken_json)
        if mf.kind != "tts":
            raise VoxtralError(f"{name} is an {mf.kind.upper()} model; the speech tab needs a TTS model")
        ops = None
        if backend == "webgpu":
            if kernels is None:
                raise VoxtralError("the WebGPU backend is not set up (its self-test did not pass)")
            from voxtral.backends.webgpu.ops import WebGPUOps
            ops = WebGPUOps(kernels=kernels)
        self.pipe = None  # the previous model's memory first
        self.pipe = TTSPipeline(mf, backend="numpy" if ops is None else backend, ops=ops)
        self.pipe.load_s = time.perf_counter() - t0
        self.wav = b""
        cfg, p = self.pipe.config, mf.params
        return json.dumps({
            "name": name, "kind": "tts", "backend": self.pipe.backend, "load_s": round(self.pipe.load_s, 4),
            "voices": [{"name": v.name, "language": v.language, "rows": v.rows} for v in self.pipe.voices()],
            "sample_rate": cfg.sampling_rate, "frame_rate": cfg.frame_rate, "euler_steps": cfg.euler_steps,
            "cfg_alpha": cfg.cfg_alpha, "dim": p.get("dim"), "n_layers": p.get("n_layers"),
            "max_text_chars": MAX_TEXT_CHARS})

    def speak(self, text: str, voice: str, euler_steps=None, seed=0, on_chunk=None, max_seconds=None,
              cfg_alpha=None) -> str:
        """Synthesize; on_chunk(float32 bytes, figures JSON) gets each audio chunk as it is decoded
        (figures: audio_s and wall_s so far, speed = audio seconds per wall second, frames).
        Returns JSON: seconds, frames, sample_rate, timings, info, segments."""
        if self.pipe is None:
            raise VoxtralError("no TTS model is loaded")
        t0 = time.perf_counter()
        done = {"samples": 0}
        rate = self.pipe.config.sampling_rate

        def emit(chunk):
            done["samples"] += len(chunk)
            if on_chunk is None:
                return
            wall = time.perf_counter() - t0
            audio_s = done["samples"] / rate
            figures = {"audio_s": round(audio_s, 4), "wall_s": round(wall, 4),
                       "speed": round(audio_s / wall, 4) if wall > 0 else None,
                       "frames": done["samples"] // self.pipe.config.samples_per_frame}
            on_chunk(np.ascontiguousarray(chunk, dtype="<f4").tobytes(), json.dumps(figures))

        steps = None if euler_steps is None else int(euler_steps)
        limit = None if max_seconds in (None, 0) else float(max_seconds)
        speech = self.pipe.synthesize(str(text), str(voice), steps, cfg_alpha, int(seed), on_audio=emit,
                                      max_seconds=limit)
        from voxtral.audio.wav import encode_wav
        self.wav = encode_wav(speech.audio, speech.sample_rate)
        wall = time.perf_counter() - t0
        return json.dumps({"seconds": round(speech.seconds, 4), "frames": int(len(speech.frames)),
                           "sample_rate": speech.sample_rate, "wall_s": round(wall, 4),
                           "speed": round(speech.seconds / wall, 4) if wall > 0 else None,
                           "timings": speech.timings, "info": speech.info, "segments": speech.segments},
                          ensure_ascii=False)

    def last_wav(self) -> bytes:
        """The WAV (24 kHz mono PCM16) of the last `speak`."""
        return self.wav
