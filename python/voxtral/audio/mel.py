"""Log-mel spectrogram of the padded waveform (ASR spec 4.3), offline and streaming.

Both paths compute the same thing as HF `VoxtralRealtimeFeatureExtractor` / vLLM:

1. periodic Hann window of n_fft = window_size = 400 samples;
2. STFT with hop 160, centred: the signal is extended by 200 samples on each side by reflection
   (without repeating the edge sample), frame f covers extended samples [160f, 160f + 400),
   i.e. original samples [160f - 200, 160f + 200); 201 one-sided bins;
3. power |X|^2;
4. the last frame is dropped: T = floor(L / 160) frames (= 8N with the padding of padding.py);
5. mel = Slaney-scale, Slaney-normalised triangular filters (computed in float64, applied in
   float32) @ power;
6. log10(max(mel, 1e-10)), floored at global_log_mel_max - 8, then (v + 4) / 4.

The result is float32 [num_mel_bins, T] (mel bins along rows, time along columns).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..config import AudioStreamingConfig

LOG_FLOOR = 1e-10  # mel power floor before log10
LOG_DYNAMIC_RANGE = 8.0  # log10 units kept below global_log_mel_max
_FRAMES_PER_BLOCK = 2048  # frames transformed at once: bounds memory on long clips


# ------------------------------------------------------------------------------ filter bank


def hertz_to_mel_slaney(freq):
    """Slaney mel scale: linear (3 mel per 200 Hz) below 1 kHz, logarithmic above."""
    freq = np.asarray(freq, dtype=np.float64)
    mels = 3.0 * freq / 200.0
    log_region = freq >= 1000.0
    return np.where(log_region, 15.0 + np.log(np.maximum(freq, 1e-300) / 1000.0) * (27.0 / np.log(6.4)), mels)


def mel_to_hertz_slaney(mels):
    """Inverse of `hertz_to_mel_slaney`."""
    mels = np.asarray(mels, dtype=np.float64)
    freq = 200.0 * mels / 3.0
    log_region = mels >= 15.0
    return np.where(log_region, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mels - 15.0)), freq)


def mel_filter_bank(
    num_frequency_bins: int = 201,
    num_mel_bins: int = 128,
    min_frequency: float = 0.0,
    max_frequency: float = 8000.0,
    sampling_rate: int = 16000,
) -> np.ndarray:
    """Triangular Slaney mel filters, float64 [num_frequency_bins, num_mel_bins].

    Same as mistral-common `mel_filter_bank` and HF `mel_filter_bank(norm="slaney",
    mel_scale="slaney")`: filter m rises from centre c_m to c_{m+1} and falls to c_{m+2}, with
    centres equally spaced in mel between min and max frequency, and is scaled by
    2 / (c_{m+2} - c_m) so every filter has the same area.
    """
    fft_freqs = np.linspace(0.0, sampling_rate / 2.0, num_frequency_bins)
    mel_points = np.linspace(hertz_to_mel_slaney(min_frequency), hertz_to_mel_slaney(max_frequency),
                             num_mel_bins + 2)
    centres = mel_to_hertz_slaney(mel_points)  # c_0 .. c_{M+1}
    widths = np.diff(centres)
    rel = fft_freqs[:, None] - centres[None, :]  # f_k - c_m, [bins, M+2]
    rising = rel[:, :-2] / widths[:-1]  # (f_k - c_m) / (c_{m+1} - c_m)
    falling = -rel[:, 2:] / widths[1:]  # (c_{m+2} - f_k) / (c_{m+2} - c_{m+1})
    filters = np.maximum(0.0, np.minimum(rising, falling))
    filters *= 2.0 / (centres[2:] - centres[:-2])  # Slaney area normalisation
    return filters


@lru_cache(maxsize=8)
def _filters_for(sampling_rate: int, n_fft: int, num_mel_bins: int, dtype_name: str) -> np.ndarray:
    bank = mel_filter_bank(n_fft // 2 + 1, num_mel_bins, 0.0, sampling_rate / 2.0, sampling_rate)
    bank = bank.astype(dtype_name)  # float64 design, float32 use (as the references do)
    bank.flags.writeable = False
    return bank


@lru_cache(maxsize=8)
def hann_window(n: int, dtype_name: str = "float32") -> np.ndarray:
    """Periodic Hann window w[i] = 0.5 - 0.5 cos(2 pi i / n) (torch.hann_window's default)."""
    w = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(dtype_name)
    w.flags.writeable = False
    return w


# ------------------------------------------------------------------------------- core math


def _log_mel_of_frames(frames: np.ndarray, cfg: AudioStreamingConfig, dtype) -> np.ndarray:
    """frames [k, n_fft] (already-extended signal windows) -> normalised log-mel [num_mel_bins, k]."""
    dtype_name = np.dtype(dtype).name
    spectrum = np.fft.rfft(frames * hann_window(cfg.window_size, dtype_name), axis=-1)
    power = spectrum.real * spectrum.real + spectrum.imag * spectrum.imag  # |X|^2, [k, bins]
    mel = power.astype(dtype, copy=False) @ _filters_for(cfg.sampling_rate, cfg.window_size,
                                                        cfg.num_mel_bins, dtype_name)
    log_mel_values = np.log10(np.maximum(mel, dtype.type(LOG_FLOOR)))
    log_mel_values = np.maximum(log_mel_values, dtype.type(cfg.global_log_mel_max - LOG_DYNAMIC_RANGE))
    return ((log_mel_values + dtype.type(4.0)) / dtype.type(4.0)).T


def _log_mel_of_extended(extended: np.ndarray, first_frame: int, n_frames: int,
                         cfg: AudioStreamingConfig, dtype, out: np.ndarray) -> None:
    """Frames [first_frame, first_frame + n_frames) of an extended signal (frame f starts at
    extended[hop * (f - first_frame)]) written into out[:, :n_frames], a block at a time."""
    hop, n_fft = cfg.hop_length, cfg.window_size
    windows = np.lib.stride_tricks.sliding_window_view(extended, n_fft)[::hop]  # no copy
    for b in range(0, n_frames, _FRAMES_PER_BLOCK):
        e = min(n_frames, b + _FRAMES_PER_BLOCK)
        out[:, b:e] = _log_mel_of_frames(windows[b:e], cfg, dtype)


def log_mel(padded_audio, cfg: AudioStreamingConfig | None = None, dtype=np.float32) -> np.ndarray:
    """Log-mel spectrogram [num_mel_bins, floor(L / hop)] of the (already padded) waveform.

    `dtype` float32 (default, like the references) or float64 (for checking).
    """
    cfg = cfg or AudioStreamingConfig()
    dtype = np.dtype(dtype)
    x = np.asarray(padded_audio, dtype=dtype)
    if x.ndim != 1:
        raise ValueError(f"log_mel expects mono samples [L], got shape {x.shape}")
    n_frames = x.shape[0] // cfg.hop_length  # the centred STFT has one more; it is dropped
    out = np.empty((cfg.num_mel_bins, n_frames), dtype=dtype)
    if n_frames == 0:
        return out
    half = cfg.window_size // 2
    extended = np.pad(x, half, mode="reflect")  # x[half..1] | x | x[L-2..L-1-half]
    _log_mel_of_extended(extended, 0, n_frames, cfg, dtype, out)
    return out


# -------------------------------------------------------------------------------- streaming


class StreamingMel:
    """Incremental log-mel over a stream pushed in pieces of any size; equals `log_mel` of the
    whole stream frame for frame.

    The stream S is what `log_mel` would be given: for the model, S = 40,960 zeros (the left pad)
    + the real audio + at the end the right pad (`finish(right_pad_samples)` appends those zeros).

    Frame g covers S[160g - 200, 160g + 200). At the start those indices below 0 are the
    reflection S[1..200] (the offline centring; for the model's stream, which starts with zeros,
    that is just zeros). A frame is produced only once all its samples exist, i.e. once
    len(S) >= 160g + 200 (and >= 201 for the reflection); `finish` adds the right reflection and
    produces the frames up to T = floor(len(S) / 160) - 1, dropping the last one as `log_mel` does.

    `push` and `finish` return float32 [num_mel_bins, k] with the k new frames, in order;
    `frames_done` counts the frames returned so far.
    """

    def __init__(self, cfg: AudioStreamingConfig | None = None, dtype=np.float32):
        self.cfg = cfg or AudioStreamingConfig()
        self.dtype = np.dtype(dtype)
        self.frames_done = 0
        self.samples_pushed = 0  # len(S) so far
        self.finished = False
        self._half = self.cfg.window_size // 2
        # Before the left reflection can be built (needs half + 1 samples) `_buffer` holds S from
        # index 0; afterwards it holds the extended stream E = reflect | S from E index
        # hop * frames_done, i.e. exactly the samples the next frame starts with.
        self._buffer = np.zeros(0, dtype=self.dtype)
        self._extended = False

    def _empty(self) -> np.ndarray:
        return np.zeros((self.cfg.num_mel_bins, 0), dtype=self.dtype)

    def push(self, samples) -> np.ndarray:
        """Append samples of S; return the frames that became computable."""
        if self.finished:
            raise RuntimeError("StreamingMel.push after finish()")
        x = np.asarray(samples, dtype=self.dtype).reshape(-1)
        self.samples_pushed += x.shape[0]
        self._buffer = np.concatenate([self._buffer, x])
        if not self._extended:
            if self._buffer.shape[0] <= self._half:
                return self._empty()
            reflection = self._buffer[self._half : 0 : -1]  # S[200], ..., S[1]
            self._buffer = np.concatenate([reflection, self._buffer])
            self._extended = True
        # Frame g is ready when len(S) >= hop*g + half, i.e. g <= (len(S) - half) / hop.
        ready = (self.samples_pushed - self._half) // self.cfg.hop_length + 1
        return self._emit(ready)

    def finish(self, right_pad_samples: int = 0) -> np.ndarray:
        """Append `right_pad_samples` zeros, end the stream, return the remaining frames."""
        if self.finished:
            raise RuntimeError("StreamingMel.finish called twice")
        if right_pad_samples < 0:
            raise ValueError(f"right_pad_samples must be >= 0, got {right_pad_samples}")
        tail = self.push(np.zeros(int(right_pad_samples), dtype=self.dtype))
        self.finished = True
        total = self.samples_pushed // self.cfg.hop_length  # T, the offline frame count
        if not self._extended:  # a stream too short to reflect: do what log_mel does
            rest = log_mel(self._buffer, self.cfg, self.dtype)[:, self.frames_done :]
            self.frames_done = total
            return np.concatenate([tail, rest], axis=1)
        # Right reflection S[L-2], ..., S[L-1-half]; the buffer still holds those samples.
        reflection = self._buffer[-2 : -2 - self._half : -1]
        self._buffer = np.concatenate([self._buffer, reflection])
        return np.concatenate([tail, self._emit(total)], axis=1)

    def _emit(self, ready: int) -> np.ndarray:
        """Compute frames frames_done .. ready-1 and drop the samples no later frame needs."""
        n_new = ready - self.frames_done
        if n_new <= 0:
            return self._empty()
        out = np.empty((self.cfg.num_mel_bins, n_new), dtype=self.dtype)
        _log_mel_of_extended(self._buffer, self.frames_done, n_new, self.cfg, self.dtype, out)
        self.frames_done = ready
        self._buffer = self._buffer[n_new * self.cfg.hop_length :].copy()
        return out
