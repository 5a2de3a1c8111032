"""log_mel (numpy) against the HF oracle `VoxtralRealtimeFeatureExtractor` (transformers 5.24).

Each input is padded as in ASR spec 4.2 (pad_for_offline) before both; the tolerance is 1e-4 max
abs (both compute in float32; measured differences are a few 1e-6). Random inputs are fresh each
run; the seed is in every failure message (set VOXTRAL_TEST_SEED to replay one).
"""
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from voxtral.audio import StreamingChunker, load_audio, log_mel, mel_filter_bank, pad_for_offline  # noqa: E402
from voxtral.config import AudioStreamingConfig  # noqa: E402

transformers = pytest.importorskip("transformers")

CFG = AudioStreamingConfig()
TOLERANCE = 1e-4
SHARED_AUDIO = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "audio"


@pytest.fixture(scope="module")
def extractor():
    return transformers.VoxtralRealtimeFeatureExtractor()


@pytest.fixture
def seed():
    return int(os.environ.get("VOXTRAL_TEST_SEED", secrets.randbits(32)))


def _compare(extractor, audio, what):
    padded = pad_for_offline(audio, CFG)
    ours = log_mel(padded, CFG)
    ref = extractor(padded, sampling_rate=16000, return_tensors="np").input_features[0]
    assert ours.dtype == np.float32
    assert ours.shape == ref.shape == (128, len(padded) // 160), what
    err = float(np.abs(ours - ref).max())
    assert err < TOLERANCE, f"{what}: max |ours - HF| = {err:.3g}"
    return ours


def test_white_noise(extractor, seed):
    rng = np.random.default_rng(seed)
    for scale in [1e-4, 0.1, 0.5]:
        n = int(rng.integers(16000, 48000))
        _compare(extractor, (rng.standard_normal(n) * scale).astype(np.float32),
                 f"seed={seed} white noise scale={scale} n={n}")


def test_silence(extractor):
    ours = _compare(extractor, np.zeros(20_000, np.float32), "silence")
    np.testing.assert_array_equal(ours, np.float32(-0.625))  # (log10 floor -6.5 + 4) / 4


def test_clipping_square_wave(extractor, seed):
    rng = np.random.default_rng(seed)
    period = int(rng.integers(8, 200))
    n = int(rng.integers(20_000, 40_000))
    square = np.where((np.arange(n) // (period // 2 or 1)) % 2 == 0, 1.0, -1.0).astype(np.float32)
    _compare(extractor, square, f"seed={seed} square period={period}")


@pytest.mark.parametrize("n", [1, 100])
def test_very_short_inputs(extractor, seed, n):
    rng = np.random.default_rng(seed)
    _compare(extractor, rng.uniform(-1, 1, n).astype(np.float32), f"seed={seed} n={n}")


def test_espeak_speech(extractor, tmp_path):
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.skip("espeak-ng binary not found (apt-get install espeak-ng) to synthesise real speech")
    wav = tmp_path / "speech.wav"
    subprocess.run([espeak, "-w", str(wav), "The quick brown fox jumps over the lazy dog. Testing one two three."],
                   check=True, capture_output=True, timeout=60)
    audio = load_audio(wav, 16000)  # espeak-ng writes 22,050 Hz: exercises read_wav + resample
    assert len(audio) > 16000
    _compare(extractor, audio, "espeak-ng speech")


def _shared_clip(prefix):
    if not SHARED_AUDIO.is_dir():
        pytest.skip("needs ../shared/data (optional real speech)")
    matches = sorted(SHARED_AUDIO.glob(f"{prefix}_*.wav"))
    if not matches:
        pytest.skip(f"needs ../shared/data (optional real speech): no {prefix}_*.wav in {SHARED_AUDIO}")
    return matches[0]


@pytest.mark.parametrize("prefix", ["5s", "15s"])
def test_shared_real_speech(extractor, prefix):
    path = _shared_clip(prefix)
    audio = load_audio(path, 16000)
    ours = _compare(extractor, audio, path.name)
    if prefix == "5s":  # the streaming path gives the same frames on real speech too
        chunker = StreamingChunker(CFG)
        steps = []
        for i in range(0, len(audio), 1234):
            steps += chunker.push(audio[i : i + 1234])
        steps += chunker.finish()
        streamed = np.concatenate([s.mel for s in steps], axis=1)
        np.testing.assert_allclose(streamed, ours, rtol=0, atol=1e-6)


def test_filter_bank_equals_mistral_common_and_hf(extractor):
    ours = mel_filter_bank(201, 128, 0.0, 8000.0, 16000)
    assert ours.shape == (201, 128) and ours.dtype == np.float64
    mc_audio = pytest.importorskip("mistral_common.audio")
    np.testing.assert_allclose(ours, mc_audio.mel_filter_bank(201, 128, 0.0, 8000.0, 16000), rtol=0, atol=1e-15)
    np.testing.assert_allclose(ours, extractor.mel_filters, rtol=0, atol=1e-15)
