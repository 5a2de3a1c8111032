"""log_mel (numpy) against the HF oracle `VoxtralRealtimeFeatureExtractor` (transformers 5.24).

Each input is padded as in ASR spec 4.2 (pad_for_offline) before both. Tolerance 1e-4 max abs,
checked against two oracles:

* HF's own code path run in float64 with torch (`_hf_pipeline_float64`, same calls as
  `_torch_extract_fbank_features`): ours (float32) must be within 1e-4 (measured <= 3e-5);
* the float32 feature extractor itself: within 1e-4 plus that extractor's own float32 error
  (its distance to the float64 path). That error is ~1e-6 on speech and noise but reaches
  ~1.7e-4 on full-scale square waves, whose spectra span many decades between harmonics, so
  float32 rounding in either implementation shows in the quiet bins.

Random inputs are fresh each run; the seed is in every failure message (set VOXTRAL_TEST_SEED to
replay one).
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
torch = pytest.importorskip("torch")

CFG = AudioStreamingConfig()
TOLERANCE = 1e-4
SHARED_AUDIO = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "audio"


@pytest.fixture(scope="module")
def extractor():
    return transformers.VoxtralRealtimeFeatureExtractor()


@pytest.fixture
def seed():
    return int(os.environ.get("VOXTRAL_TEST_SEED", secrets.randbits(32)))


def _hf_pipeline_float64(extractor, padded):
    """HF's feature extraction steps (torch.stft, |X|^2, drop last frame, mel, log10, floor,
    scale) in float64."""
    x = torch.from_numpy(padded.astype(np.float64))
    window = torch.hann_window(extractor.n_fft, dtype=torch.float64)
    stft = torch.stft(x, extractor.n_fft, extractor.hop_length, window=window, center=True, return_complex=True)
    power = stft[..., :-1].abs() ** 2
    mel = torch.from_numpy(np.asarray(extractor.mel_filters, dtype=np.float64)).T @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, torch.tensor(CFG.global_log_mel_max - 8.0, dtype=torch.float64))
    return ((log_spec + 4.0) / 4.0).numpy()


def _compare(extractor, audio, what):
    padded = pad_for_offline(audio, CFG)
    ours = log_mel(padded, CFG)
    ref32 = extractor(padded, sampling_rate=16000, return_tensors="np").input_features[0]
    ref64 = _hf_pipeline_float64(extractor, padded)
    assert ours.dtype == np.float32
    assert ours.shape == ref32.shape == ref64.shape == (128, len(padded) // 160), what
    err64 = float(np.abs(ours - ref64).max())
    assert err64 < TOLERANCE, f"{what}: max |ours - HF float64 path| = {err64:.3g}"
    hf_own_error = float(np.abs(ref32 - ref64).max())
    err32 = float(np.abs(ours - ref32).max())
    assert err32 < TOLERANCE + hf_own_error, (
        f"{what}: max |ours - HF extractor| = {err32:.3g} (HF float32 vs float64: {hf_own_error:.3g})")
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
