"""The microphone worklet (web/capture-worklet.js) without a browser: its resampler and its pieces.

The page asks for a 16 kHz AudioContext, but a browser that refuses that rate runs the worklet at
the device's rate (48 kHz, 44.1 kHz) and the worklet's own windowed-sinc resampler converts. The
headless e2e tests run Chromium at 16 kHz, so that path is checked here: the worklet runs in a Node
`vm` context with a stub AudioWorkletProcessor, is fed a sum of random sines in 128-frame render
quanta, and its output must equal the same sines evaluated at the 16 kHz sample times (a known
value, not another resampler), well inside the pass band. The pieces must be 1280 samples with the
RMS and peak of their samples, and "flush" must deliver the last partial piece.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NODE = shutil.which("node") or shutil.which("nodejs")

pytestmark = pytest.mark.skipif(NODE is None, reason="needs Node.js (scripts/setup.sh installs npm, which brings it)")

QUANTUM = 128  # frames per AudioWorklet process() call

# Loads the worklet with `sampleRate` = argv rate, feeds the input (float32 file; 2 channels when
# asked) in render quanta, flushes, and writes every posted message (samples as lists) as JSON.
HARNESS = r"""
const fs = require('fs');
const vm = require('vm');
const [workletPath, inputPath, rate, channels, outPath] = process.argv.slice(2);
const raw = fs.readFileSync(inputPath);
const x = new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4);
let registered = null;
const posted = [];
class AudioWorkletProcessor {
  constructor() { this.port = { postMessage: (m) => posted.push(m), onmessage: null }; }
}
const ctx = { AudioWorkletProcessor, sampleRate: Number(rate), console,
              registerProcessor: (name, cls) => { registered = cls; } };
vm.createContext(ctx);
vm.runInContext(fs.readFileSync(workletPath, 'utf8'), ctx, { filename: 'capture-worklet.js' });
const p = new registered({ processorOptions: { pieceSamples: 1280 } });
const nch = Number(channels);
for (let off = 0; off < x.length; off += 128) {
  const q = x.subarray(off, Math.min(x.length, off + 128));
  // two channels: the signal split as (x + d, x - d), whose average is x again
  const chans = nch === 1 ? [Float32Array.from(q)]
    : [Float32Array.from(q, (v, i) => v + 0.25 * Math.sin(i)), Float32Array.from(q, (v, i) => v - 0.25 * Math.sin(i))];
  p.process([chans]);
}
p.port.onmessage({ data: 'flush' });
fs.writeFileSync(outPath, JSON.stringify(posted.map((m) => m.samples
  ? { samples: Array.from(m.samples), rms: m.rms, peak: m.peak } : m)));
"""

RNG = np.random.default_rng()


def _run(tmp_path, x: np.ndarray, rate: int, channels: int = 1) -> list[dict]:
    inp, out, harness = tmp_path / "in.f32", tmp_path / "out.json", tmp_path / "harness.js"
    inp.write_bytes(x.astype(np.float32).tobytes())
    harness.write_text(HARNESS)
    r = subprocess.run([NODE, str(harness), os.path.join(ROOT, "web", "capture-worklet.js"), str(inp), str(rate),
                        str(channels), str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(out.read_text())


def _sines(rate: int, seconds: float, top_hz: float):
    """x(t) = sum of 5 sines with random frequencies up to top_hz, amplitudes and phases, sampled at
    `rate`; and the same function, to evaluate at any times."""
    f = RNG.uniform(100, top_hz, 5)
    a = RNG.uniform(0.02, 0.15, 5)
    ph = RNG.uniform(0, 2 * np.pi, 5)

    def at(t: np.ndarray) -> np.ndarray:
        return (a * np.sin(2 * np.pi * f * t[:, None] + ph)).sum(axis=1)

    return at(np.arange(int(seconds * rate)) / rate), at


@pytest.mark.parametrize("rate,channels", [(48000, 1), (44100, 2)])
def test_resampled_pieces_equal_the_signal_at_16khz(tmp_path, rate, channels):
    # up to 4 kHz (speech's band): flat there (over 75 dB seen); the filter rolls off towards its
    # 7.2 kHz cutoff (0.45 * 16 kHz), where sines near 5 kHz already come out ~45 dB down in error
    x, at = _sines(rate, 1.7, top_hz=4000.0)
    msgs = _run(tmp_path, x, rate, channels)
    assert msgs[-1] == {"flushed": True}
    pieces = msgs[:-1]
    assert all(len(m["samples"]) == 1280 for m in pieces[:-1]) and 0 < len(pieces[-1]["samples"]) <= 1280
    for m in pieces:  # the level meter's figures are those of the piece's own samples
        s = np.asarray(m["samples"])
        assert m["rms"] == pytest.approx(np.sqrt(np.mean(s * s)), rel=1e-5)
        assert m["peak"] == pytest.approx(np.abs(s).max(), rel=1e-6)
    y = np.concatenate([m["samples"] for m in pieces])
    # output j is the input at time j / 16000: count as the rate ratio says, less the filter's
    # look-ahead that has not arrived by the end (a few ms)
    n_expected = len(x) * 16000 / rate
    assert n_expected - 40 <= len(y) <= n_expected + 1
    want = at(np.arange(len(y)) / 16000)
    inner = slice(40, len(y))  # the first outputs see the zeros before the first sample
    err = y[inner] - want[inner]
    snr_db = 10 * np.log10(np.mean(want[inner] ** 2) / np.mean(err ** 2))
    print(f"{rate} Hz: SNR {snr_db:.1f} dB")
    assert snr_db > 60, f"{rate} Hz: {snr_db:.1f} dB"


def test_16khz_passes_through_in_pieces(tmp_path):
    x = RNG.uniform(-0.5, 0.5, 16000 + int(RNG.integers(1, 1280))).astype(np.float32)
    msgs = _run(tmp_path, x, 16000)
    y = np.concatenate([m["samples"] for m in msgs[:-1]])
    assert y.astype(np.float32).tobytes() == x.tobytes()  # no resampler: the samples themselves
    assert [len(m["samples"]) for m in msgs[:-2]] == [1280] * (len(x) // 1280)
