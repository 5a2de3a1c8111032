"""Speech-like test signals: numpy only, no recordings needed.

Random-weight test models decode pure tones or white noise to one repeated token; a signal whose
spectrum changes every syllable (harmonics of a random pitch shaped by three random formants)
makes their output vary, which the token-by-token comparisons need.
"""
from __future__ import annotations

import numpy as np

SYLLABLE_S = 0.25
PAUSE_PROBABILITY = 0.25


def harmonic_vowels(seconds: float, rng: np.random.Generator, sr: int = 16000) -> np.ndarray:
    """float32 [seconds * sr]: 250 ms syllables of harmonic vowels (random f0 in 90-220 Hz, three
    random formants, random harmonic phases) under a sin^2 envelope, a quarter of them silent;
    peak 0.3."""
    seg = int(SYLLABLE_S * sr)
    out = np.zeros(int(seconds * sr))                    # [n]
    t = np.arange(seg) / sr                              # [seg]
    env = np.sin(np.pi * np.arange(seg) / seg) ** 2      # [seg]
    for start in range(0, len(out) - seg + 1, seg):
        if rng.random() < PAUSE_PROBABILITY:
            continue  # a pause
        f0 = rng.uniform(90, 220)
        formants = (rng.uniform(300, 900), rng.uniform(900, 2500), rng.uniform(2400, 3500))
        sig = np.zeros(seg)
        for h in range(1, int(4000 / f0)):
            amp = sum(np.exp(-((h * f0 - f) / 120.0) ** 2) for f in formants) + 0.02
            sig += amp / np.sqrt(h) * np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 2 * np.pi))
        out[start:start + seg] = sig * env
    return (0.3 * out / max(np.abs(out).max(), 1e-9)).astype(np.float32)
