"""Streaming chunker: turns audio arriving in pieces into model steps (ASR spec 11, point 1).

The conceptual padded stream is S = 40,960 zeros (32 left-pad tokens) + real audio (+ at the end
the right pad of padding.py). Audio token p covers S[1280p, 1280p + 1280) and needs mel frames
8p .. 8p+7, the last of which reads S up to 1280(p + 1) + 40: a 40-sample look-ahead.

Steps:

* the first (prompt) step covers tokens 0 .. P-1 with P = 32 + delay_tokens + 1 (39 at 480 ms:
  BOS + 32 pads + 6 delay pads), so it needs 1280 P + 40 - 40,960 = 1280 (delay_tokens + 1) + 40
  real samples (9,000 at 480 ms) -> 8 P mel frames (312);
* every further 1,280 real samples complete one more token -> a step of 1 token (8 mel frames);
* `finish()` appends the right pad (align + (delay_tokens + 11) tokens of zeros) and returns the
  remaining steps, so the tokens of all steps are exactly 0 .. N-1 with N = padding.num_positions.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import AudioStreamingConfig
from .mel import StreamingMel
from .padding import left_pad_samples, right_pad_samples


@dataclass(frozen=True)
class ChunkStep:
    """One unit of work for the model.

    token_start, token_end: the audio tokens (= decoder positions) this step covers, [start, end).
    mel: float32 [num_mel_bins, 8 * (token_end - token_start)]; column c is mel frame
        8 * token_start + c of the padded stream, so columns 8i .. 8i+7 belong to token
        token_start + i. Identical to the matching columns of the offline `log_mel`.
    is_prompt: True for the first step (the prompt's 1 + 32 + delay_tokens positions).
    is_final: True for the last step of the stream (only after `finish`).
    """

    token_start: int
    token_end: int
    mel: np.ndarray
    is_prompt: bool
    is_final: bool = False

    @property
    def n_tokens(self) -> int:
        return self.token_end - self.token_start

    @property
    def frame_start(self) -> int:
        """Index of the first mel frame (column 0 of `mel`) in the whole padded stream."""
        return self.token_start * (self.mel.shape[1] // max(self.n_tokens, 1))


class StreamingChunker:
    """Accumulates real 16 kHz mono audio and hands out `ChunkStep`s as soon as they can be computed.

    push(samples) -> list of new steps (possibly empty); finish(delay_ms=None) -> the remaining
    steps, the last marked is_final. `delay_ms` (None: cfg.transcription_delay_ms) fixes the prompt
    length and the right pad.
    """

    def __init__(self, cfg: AudioStreamingConfig | None = None, delay_ms: float | None = None):
        self.cfg = cfg or AudioStreamingConfig()
        self.delay_ms = delay_ms
        self.frames_per_token = self.cfg.audio_length_per_tok  # 8
        self.prompt_tokens = self.cfg.n_left_pad_tokens + self.cfg.num_delay_tokens(delay_ms) + 1
        self.real_samples = 0
        self.tokens_done = 0  # tokens handed out in steps so far
        self.finished = False
        self._mel = StreamingMel(self.cfg)
        self._frames = [self._mel.push(np.zeros(left_pad_samples(self.cfg), dtype=np.float32))]

    @property
    def samples_for_first_step(self) -> int:
        """Real samples needed before the prompt step: 1280 (delay_tokens + 1) + 40 (9,000)."""
        return self._samples_for_tokens(self.prompt_tokens)

    def _samples_for_tokens(self, n_tokens: int) -> int:
        """Real samples after which tokens 0 .. n_tokens-1 are computable (look-ahead included)."""
        look_ahead = self.cfg.window_size // 2 - self.cfg.hop_length  # 40 samples
        return n_tokens * self.cfg.raw_audio_length_per_tok + look_ahead - left_pad_samples(self.cfg)

    def push(self, samples) -> list[ChunkStep]:
        """Add real audio (float32 [n], 16 kHz mono); return the steps it completes."""
        if self.finished:
            raise RuntimeError("StreamingChunker.push after finish()")
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"push expects mono samples [n], got shape {x.shape}")
        self.real_samples += x.shape[0]
        self._frames.append(self._mel.push(x))
        return self._take_steps(final=False)

    def finish(self, delay_ms: float | None = None) -> list[ChunkStep]:
        """End of stream: append the right pad and return all remaining steps.

        `delay_ms` may repeat the constructor's delay (None = that delay); the prompt length
        already depends on it, so a different one is an error.
        """
        if self.finished:
            raise RuntimeError("StreamingChunker.finish called twice")
        if delay_ms is not None and self.cfg.num_delay_tokens(delay_ms) != self.cfg.num_delay_tokens(
                self.delay_ms):
            raise ValueError(f"finish(delay_ms={delay_ms}) differs from the delay the prompt was "
                             f"built for ({self.delay_ms} ms); pass it to StreamingChunker()")
        self.finished = True
        right_pad = right_pad_samples(self.real_samples, self.cfg, self.delay_ms)
        self._frames.append(self._mel.finish(right_pad))
        return self._take_steps(final=True)

    def _take_steps(self, final: bool) -> list[ChunkStep]:
        """Cut the pending mel frames into steps: the prompt step first, then one token each."""
        pending = np.concatenate(self._frames, axis=1)  # frames not yet handed out, in order
        steps = []
        while True:
            n_tokens = self.prompt_tokens if self.tokens_done == 0 else 1
            n_frames = n_tokens * self.frames_per_token
            if pending.shape[1] < n_frames:
                break
            start = self.tokens_done
            steps.append(ChunkStep(start, start + n_tokens, pending[:, :n_frames].copy(),
                                   is_prompt=(start == 0)))
            pending = pending[:, n_frames:]
            self.tokens_done = start + n_tokens
        self._frames = [pending]
        if final:
            # The padded stream is a whole number of tokens and at least the prompt long, so
            # nothing may be left over.
            assert pending.shape[1] == 0, pending.shape
            if steps:
                last = steps[-1]
                steps[-1] = ChunkStep(last.token_start, last.token_end, last.mel,
                                      last.is_prompt, is_final=True)
        return steps
