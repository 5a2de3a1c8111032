"""Band-limited sample-rate conversion in pure numpy (runs in Pyodide).

`resample(x, orig_rate, new_rate)` is a rational polyphase FIR resampler with the same filter,
output length and time alignment as `scipy.signal.resample_poly(x, up, down)` with its defaults
(window ('kaiser', 5.0), zero padding outside the signal), so both agree to float rounding:

* the ratio new/orig is reduced to up/down by their gcd;
* the anti-alias low-pass is a Kaiser(beta=5)-windowed sinc with cutoff 1/max(up, down) of the
  Nyquist rate of the up-sampled signal and 2*half_len+1 taps, half_len = 10*max(up, down), scaled
  to unit DC gain and then by `up` (to make up for the up-sampling zeros);
* output sample j sits at input time j*down/up:
  y[j] = sum_n x[n] * h[half_len + j*down - n*up]   (taps outside 0..2*half_len are zero).

The work is done in blocks of output samples, so memory stays at a few MB whatever the length.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

KAISER_BETA = 5.0  # scipy.signal.resample_poly's default window ('kaiser', 5.0)
HALF_LEN_PER_RATE = 10  # scipy: half_len = 10 * max(up, down)
_SEGMENT_SAMPLES = 1 << 18  # input samples touched per block (~2 MB of float64)


def _integer_rate(rate, name: str) -> int:
    if isinstance(rate, bool) or not float(rate).is_integer() or rate <= 0:
        raise ValueError(f"{name} must be a positive whole number of Hz, got {rate!r}")
    return int(rate)


def reduced_ratio(orig_rate: int, new_rate: int) -> tuple[int, int]:
    """(up, down) = new_rate/orig_rate in lowest terms."""
    g = math.gcd(orig_rate, new_rate)
    return new_rate // g, orig_rate // g


@lru_cache(maxsize=16)
def lowpass_taps(up: int, down: int) -> np.ndarray:
    """The windowed-sinc anti-alias filter (float64, length 2*half_len+1), gain `up` at DC.

    Same design as scipy `firwin(2*half_len+1, 1/max(up, down), window=('kaiser', 5.0)) * up`.
    """
    max_rate = max(up, down)
    half_len = HALF_LEN_PER_RATE * max_rate
    cutoff = 1.0 / max_rate  # relative to the Nyquist rate of the up-sampled stream
    offsets = np.arange(2 * half_len + 1, dtype=np.float64) - half_len
    ideal = cutoff * np.sinc(cutoff * offsets)  # ideal low-pass impulse response
    taps = ideal * np.kaiser(2 * half_len + 1, KAISER_BETA)  # symmetric Kaiser window
    taps /= taps.sum()  # unit gain at DC, as firwin(scale=True) does for a low-pass
    taps *= up
    taps.flags.writeable = False
    return taps


@lru_cache(maxsize=16)
def _polyphase_bank(up: int, down: int) -> np.ndarray:
    """Taps regrouped by phase and reversed: bank[p, i] multiplies x[n_hi - K + 1 + i].

    For output j let t = j*down + half_len, n_hi = t // up and phase p = t % up; the inputs that
    reach it are x[n_hi - k] with tap h[p + k*up], k = 0..K-1. Reversing k turns that into a dot
    product with the contiguous input window x[n_hi-K+1 .. n_hi].
    """
    taps = lowpass_taps(up, down)
    n_per_phase = -(-len(taps) // up)  # K
    padded = np.zeros(n_per_phase * up, dtype=np.float64)
    padded[: len(taps)] = taps
    bank = padded.reshape(n_per_phase, up).T[:, ::-1].copy()  # [up, K]
    bank.flags.writeable = False
    return bank


def output_length(n_in: int, up: int, down: int) -> int:
    """ceil(n_in * up / down): the number of output samples (scipy's convention)."""
    return -(-n_in * up // down)


def _resample_1d(x: np.ndarray, up: int, down: int) -> np.ndarray:
    n_in = x.shape[0]
    n_out = output_length(n_in, up, down)
    out = np.empty(n_out, dtype=np.float32)
    if n_out == 0:
        return out
    half_len = HALF_LEN_PER_RATE * max(up, down)
    bank = _polyphase_bank(up, down)
    n_taps_per_phase = bank.shape[1]

    def window_start(j):  # first input index of output j's window (may be negative)
        return (j * down + half_len) // up - n_taps_per_phase + 1

    # Outputs j and j+up share a phase and their windows are `down` inputs apart, so a block of
    # whole periods is `up` strided matrix-vector products.
    rows_per_phase = max(1, _SEGMENT_SAMPLES // down)
    block = up * rows_per_phase
    for j0 in range(0, n_out, block):
        j1 = min(n_out, j0 + block)
        seg_lo = window_start(j0)
        seg_hi = window_start(j1 - 1) + n_taps_per_phase
        # Input segment in float64, zeros outside the signal (scipy's padtype='constant').
        segment = np.zeros(seg_hi - seg_lo, dtype=np.float64)
        src_lo, src_hi = max(seg_lo, 0), min(seg_hi, n_in)
        if src_hi > src_lo:
            segment[src_lo - seg_lo : src_hi - seg_lo] = x[src_lo:src_hi]
        windows = np.lib.stride_tricks.sliding_window_view(segment, n_taps_per_phase)
        for r in range(min(up, j1 - j0)):
            j = j0 + r
            phase = (j * down + half_len) % up
            rows = windows[window_start(j) - seg_lo :: down][: len(range(r, j1 - j0, up))]
            out[j0 + r : j1 : up] = rows @ bank[phase]
    return out


def resample(x, orig_rate, new_rate) -> np.ndarray:
    """Resample `x` ([n] or [n, channels]) from `orig_rate` to `new_rate` Hz; returns float32.

    Output length ceil(n * new/orig) (after reducing the ratio); equal rates return a float32 copy.
    Channels of a 2-D input are resampled independently.
    """
    orig_rate = _integer_rate(orig_rate, "orig_rate")
    new_rate = _integer_rate(new_rate, "new_rate")
    x = np.asarray(x)
    if x.ndim not in (1, 2):
        raise ValueError(f"resample expects [n] or [n, channels] samples, got shape {x.shape}")
    up, down = reduced_ratio(orig_rate, new_rate)
    if up == down:
        return np.array(x, dtype=np.float32, copy=True)
    if x.ndim == 1:
        return _resample_1d(x, up, down)
    columns = [_resample_1d(x[:, c], up, down) for c in range(x.shape[1])]
    if not columns:
        return np.zeros((output_length(x.shape[0], up, down), 0), dtype=np.float32)
    return np.stack(columns, axis=1)
