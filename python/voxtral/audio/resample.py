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
from fractions import Fraction
from functools import lru_cache

import numpy as np

KAISER_BETA = 5.0  # scipy.signal.resample_poly's default window ('kaiser', 5.0)
HALF_LEN_PER_RATE = 10  # scipy: half_len = 10 * max(up, down)
_SEGMENT_SAMPLES = 1 << 18  # input samples touched per block (~2 MB of float64)
MAX_RATIO_TERM = 4096  # larger up/down terms are approximated (practical_ratio): filter <= 82k taps


def _integer_rate(rate, name: str) -> int:
    if isinstance(rate, bool) or not float(rate).is_integer() or rate <= 0:
        raise ValueError(f"{name} must be a positive whole number of Hz, got {rate!r}")
    return int(rate)


def reduced_ratio(orig_rate: int, new_rate: int) -> tuple[int, int]:
    """(up, down) = new_rate/orig_rate in lowest terms."""
    g = math.gcd(orig_rate, new_rate)
    return new_rate // g, orig_rate // g


def practical_ratio(orig_rate: int, new_rate: int) -> tuple[int, int]:
    """reduced_ratio, unless a term exceeds MAX_RATIO_TERM: then the nearest ratio with terms that
    small. Every common rate (8k .. 384k, 11025 and its multiples) reduces exactly; an odd rate
    such as 22051 Hz would need a 441k-tap filter, and is resampled at a ratio off by < 1 ppm."""
    up, down = reduced_ratio(orig_rate, new_rate)
    if max(up, down) <= MAX_RATIO_TERM:
        return up, down
    ratio = Fraction(new_rate, orig_rate)
    limit = MAX_RATIO_TERM if ratio <= 1 else max(1, int(MAX_RATIO_TERM / ratio))
    while True:
        f = ratio.limit_denominator(limit)
        if f.numerator == 0:
            f = Fraction(1, limit)
        if max(f.numerator, f.denominator) <= MAX_RATIO_TERM or limit == 1:
            return f.numerator, f.denominator
        limit //= 2


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


def _window_start(j: int, up: int, down: int, half_len: int, n_taps_per_phase: int) -> int:
    """First input index of output j's window (may be negative)."""
    return (j * down + half_len) // up - n_taps_per_phase + 1


def _outputs(segment: np.ndarray, seg_lo: int, j0: int, j1: int, up: int, down: int,
             out: np.ndarray) -> None:
    """out[0 : j1-j0] = outputs j0 .. j1-1, from `segment` (float64) = input samples seg_lo ..
    (zeros standing in outside the signal). Blocks of whole periods are `up` strided
    matrix-vector products (outputs j and j+up share a phase; their windows are `down` apart)."""
    half_len = HALF_LEN_PER_RATE * max(up, down)
    bank = _polyphase_bank(up, down)
    k = bank.shape[1]
    windows = np.lib.stride_tricks.sliding_window_view(segment, k)
    for r in range(min(up, j1 - j0)):
        j = j0 + r
        phase = (j * down + half_len) % up
        rows = windows[_window_start(j, up, down, half_len, k) - seg_lo :: down][: len(range(r, j1 - j0, up))]
        out[r : j1 - j0 : up] = rows @ bank[phase]


def _block_outputs(down: int, up: int) -> int:
    """Outputs computed per block: whole periods touching about _SEGMENT_SAMPLES inputs."""
    return up * max(1, _SEGMENT_SAMPLES // down)


def _resample_1d(x: np.ndarray, up: int, down: int) -> np.ndarray:
    n_in = x.shape[0]
    n_out = output_length(n_in, up, down)
    out = np.empty(n_out, dtype=np.float32)
    if n_out == 0:
        return out
    half_len = HALF_LEN_PER_RATE * max(up, down)
    k = _polyphase_bank(up, down).shape[1]
    block = _block_outputs(down, up)
    for j0 in range(0, n_out, block):
        j1 = min(n_out, j0 + block)
        seg_lo = _window_start(j0, up, down, half_len, k)
        seg_hi = _window_start(j1 - 1, up, down, half_len, k) + k
        # Input segment in float64, zeros outside the signal (scipy's padtype='constant').
        segment = np.zeros(seg_hi - seg_lo, dtype=np.float64)
        src_lo, src_hi = max(seg_lo, 0), min(seg_hi, n_in)
        if src_hi > src_lo:
            segment[src_lo - seg_lo : src_hi - seg_lo] = x[src_lo:src_hi]
        _outputs(segment, seg_lo, j0, j1, up, down, out[j0:j1])
    return out


class StreamingResampler:
    """`resample` for audio that arrives in pieces (a long file read block by block, a live feed).

    push(x) returns the outputs the input so far determines; finish() returns the rest. The
    concatenated outputs equal `resample(whole input, orig_rate, new_rate)` (same filter, same
    length, same alignment), while memory stays at one filter length plus the piece pushed.
    """

    def __init__(self, orig_rate, new_rate):
        orig_rate = _integer_rate(orig_rate, "orig_rate")
        new_rate = _integer_rate(new_rate, "new_rate")
        self.up, self.down = practical_ratio(orig_rate, new_rate)
        self.identity = self.up == self.down
        self.half_len = HALF_LEN_PER_RATE * max(self.up, self.down)
        self.k = 1 if self.identity else _polyphase_bank(self.up, self.down).shape[1]
        self.n_in = 0  # input samples received
        self.j = 0  # next output index
        # held input, float64, starting at absolute input index buf_lo (negative = leading zeros)
        self.buf_lo = 0 if self.identity else min(0, self._start(0))
        self.buf = np.zeros(-self.buf_lo, dtype=np.float64)
        self.finished = False

    def _start(self, j: int) -> int:
        return _window_start(j, self.up, self.down, self.half_len, self.k)

    def _ready(self, n_in: int) -> int:
        """How many outputs the first n_in inputs determine (their windows end before n_in)."""
        top = self.up * n_in - 1 - self.half_len
        return top // self.down + 1 if top >= 0 else 0

    def push(self, x) -> np.ndarray:
        if self.finished:
            raise RuntimeError("StreamingResampler.push after finish()")
        x = np.asarray(x).reshape(-1)
        self.n_in += x.shape[0]
        if self.identity:
            self.j += x.shape[0]
            return x.astype(np.float32, copy=True)
        self.buf = np.concatenate([self.buf, x.astype(np.float64)])
        return self._emit(self._ready(self.n_in))

    def finish(self) -> np.ndarray:
        if self.finished:
            raise RuntimeError("StreamingResampler.finish called twice")
        self.finished = True
        if self.identity:
            return np.zeros(0, dtype=np.float32)
        n_out = output_length(self.n_in, self.up, self.down)
        if n_out > self.j:  # zeros after the signal, as far as the last window reaches
            need = self._start(n_out - 1) + self.k - (self.buf_lo + self.buf.shape[0])
            if need > 0:
                self.buf = np.concatenate([self.buf, np.zeros(need, dtype=np.float64)])
        return self._emit(n_out)

    def _emit(self, j_end: int) -> np.ndarray:
        j0 = self.j
        out = np.empty(max(0, j_end - j0), dtype=np.float32)
        block = _block_outputs(self.down, self.up)
        for b0 in range(j0, j_end, block):
            b1 = min(j_end, b0 + block)
            lo = self._start(b0) - self.buf_lo
            hi = self._start(b1 - 1) + self.k - self.buf_lo
            _outputs(self.buf[lo:hi], self._start(b0), b0, b1, self.up, self.down, out[b0 - j0:b1 - j0])
        self.j = max(j0, j_end)
        drop = self._start(self.j) - self.buf_lo  # inputs no later output needs
        if drop > 0:
            self.buf = self.buf[drop:].copy()
            self.buf_lo += drop
        return out


def resample(x, orig_rate, new_rate) -> np.ndarray:
    """Resample `x` ([n] or [n, channels]) from `orig_rate` to `new_rate` Hz; returns float32.

    Output length ceil(n * new/orig) (after reducing the ratio; see practical_ratio for odd rates);
    equal rates return a float32 copy.
    Channels of a 2-D input are resampled independently.
    """
    orig_rate = _integer_rate(orig_rate, "orig_rate")
    new_rate = _integer_rate(new_rate, "new_rate")
    x = np.asarray(x)
    if x.ndim not in (1, 2):
        raise ValueError(f"resample expects [n] or [n, channels] samples, got shape {x.shape}")
    up, down = practical_ratio(orig_rate, new_rate)
    if up == down:
        return np.array(x, dtype=np.float32, copy=True)
    if x.ndim == 1:
        return _resample_1d(x, up, down)
    columns = [_resample_1d(x[:, c], up, down) for c in range(x.shape[1])]
    if not columns:
        return np.zeros((output_length(x.shape[0], up, down), 0), dtype=np.float32)
    return np.stack(columns, axis=1)
