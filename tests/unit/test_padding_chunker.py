"""Streaming padding (ASR spec 4.2), StreamingMel (spec 11.1) and the StreamingChunker.

Random inputs are fresh each run; the seed is in every failure message (set VOXTRAL_TEST_SEED
to replay one).
"""
import math
import os
import secrets

import numpy as np
import pytest

from voxtral.audio import (
    StreamingChunker,
    StreamingMel,
    log_mel,
    num_positions,
    pad_for_offline,
    padded_length,
    right_pad_samples,
)
from voxtral.config import AudioStreamingConfig

CFG = AudioStreamingConfig()


@pytest.fixture
def seed():
    return int(os.environ.get("VOXTRAL_TEST_SEED", secrets.randbits(32)))


def _speechlike(rng, n):
    """Noise with a slowly varying envelope and some silent stretches (not just stationary noise)."""
    levels = rng.uniform(0, 0.5, n // 1600 + 1)
    levels[rng.uniform(size=levels.shape) < 0.2] = 0  # digital silence in 20% of the 100 ms blocks
    envelope = np.repeat(levels, 1600)[:n]
    return (rng.standard_normal(n) * envelope).astype(np.float32)


# ------------------------------------------------------------------------------- padding


def test_spec_example():
    n = 48_123
    assert right_pad_samples(n, CFG) == 22_277
    assert padded_length(n, CFG) == 111_360
    assert num_positions(n, CFG) == 87
    padded = pad_for_offline(np.ones(n, np.float32), CFG)
    assert padded.dtype == np.float32 and padded.shape == (111_360,)
    assert not padded[:40_960].any() and padded[40_960 : 40_960 + n].all() and not padded[40_960 + n :].any()
    assert log_mel(padded, CFG).shape == (128, 8 * 87)


def test_formulas(seed):
    rng = np.random.default_rng(seed)
    for n in [0, 1, 1279, 1280, 1281, *rng.integers(0, 10**6, 20)]:
        n = int(n)
        for delay_ms, delay_tokens in [(80, 1), (480, 6), (2400, 30)]:
            assert CFG.num_delay_tokens(delay_ms) == delay_tokens
            N = num_positions(n, CFG, delay_ms)
            assert N == 32 + math.ceil(n / 1280) + delay_tokens + 1 + 10, f"seed={seed} n={n}"
            assert padded_length(n, CFG, delay_ms) == 1280 * N
            assert len(pad_for_offline(np.zeros(n), CFG, delay_ms)) == 1280 * N


def test_padding_equals_mistral_common(seed):
    audio_mod = pytest.importorskip("mistral_common.tokens.tokenizers.audio")
    rng = np.random.default_rng(seed)
    for delay_ms in [80.0, 480.0, 2400.0]:
        config = audio_mod.AudioConfig(
            sampling_rate=16000, frame_rate=12.5,
            encoding_config=audio_mod.AudioSpectrogramConfig(num_mel_bins=128, hop_length=160, window_size=400),
            transcription_format=audio_mod.TranscriptionFormat.STREAMING,
            transcription_delay_ms=delay_ms, streaming_look_ahead_ms=2.5, streaming_look_back_ms=52.5,
            streaming_n_left_pad_tokens=32,
        )
        encoder = audio_mod.AudioEncoder(config, audio_mod.SpecialAudioIDs(None, None, None, None, None))
        assert config.get_num_delay_tokens() == CFG.num_delay_tokens(delay_ms)
        assert config.n_right_pad_tokens() == CFG.n_right_pad_tokens(delay_ms)
        for n in [1, 1280, 48_123, int(rng.integers(1, 200_000))]:
            x = rng.uniform(-1, 1, n).astype(np.float32)
            ref = encoder.pad(x, 16000)
            np.testing.assert_array_equal(pad_for_offline(x, CFG, delay_ms), ref,
                                          err_msg=f"seed={seed} n={n} delay={delay_ms}")


# --------------------------------------------------------------------------- StreamingMel


def _feed_randomly(streamer, signal, rng, max_piece):
    pieces, i = [], 0
    while i < len(signal):
        k = int(rng.integers(0, max_piece))  # zero-length pushes included
        pieces.append(streamer.push(signal[i : i + k]))
        i += k
    return pieces


@pytest.mark.parametrize("max_piece", [2, 700, 20_000])
def test_streaming_mel_equals_offline(max_piece, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3 * 16000, 7 * 16000)) if max_piece > 2 else int(rng.integers(16000, 20000))
    audio = _speechlike(rng, n)
    padded = pad_for_offline(audio, CFG)
    offline = log_mel(padded, CFG)
    mel = StreamingMel(CFG)
    right = right_pad_samples(n, CFG)
    pieces = _feed_randomly(mel, padded[: len(padded) - right], rng, max_piece)
    pieces.append(mel.finish(right))
    streamed = np.concatenate(pieces, axis=1)
    assert streamed.shape == offline.shape, f"seed={seed}"
    np.testing.assert_allclose(streamed, offline, rtol=0, atol=1e-6, err_msg=f"seed={seed} max_piece={max_piece}")


def test_streaming_mel_never_runs_ahead_of_samples(seed):
    """Frame g appears exactly when S[160g + 199] has been pushed (and not before)."""
    rng = np.random.default_rng(seed)
    stream = np.concatenate([np.zeros(40_960, np.float32), _speechlike(rng, 5000)])
    mel = StreamingMel(CFG)
    pushed = 0
    for k in rng.integers(1, 400, 400):
        k = int(min(k, len(stream) - pushed))
        new = mel.push(stream[pushed : pushed + k])
        pushed += k
        expected = (pushed - 200) // 160 + 1 if pushed > 200 else 0  # frames g with 160g+200 <= pushed
        assert mel.frames_done == expected, f"seed={seed} pushed={pushed}"
        assert new.shape[1] <= expected
        if pushed == len(stream):
            break


def test_streaming_mel_without_leading_silence_and_tiny_streams(seed):
    """Not the model's stream, but still identical to log_mel (reflection at both ends)."""
    rng = np.random.default_rng(seed)
    for n in [1, 150, 200, 201, 359, 360, 361, 5000]:
        x = rng.uniform(-1, 1, n).astype(np.float32)
        mel = StreamingMel(CFG)
        pieces = _feed_randomly(mel, x, rng, 97)
        pieces.append(mel.finish(0))
        np.testing.assert_allclose(np.concatenate(pieces, axis=1), log_mel(x, CFG), rtol=0, atol=1e-6,
                                   err_msg=f"seed={seed} n={n}")
    with pytest.raises(RuntimeError):
        mel.push(x)


# ------------------------------------------------------------------------------- chunker


def test_chunker_step_boundaries():
    chunker = StreamingChunker(CFG)
    assert chunker.samples_for_first_step == 9000 and chunker.prompt_tokens == 39
    assert chunker.push(np.zeros(8999, np.float32)) == []
    (first,) = chunker.push(np.zeros(1, np.float32))
    assert (first.token_start, first.token_end, first.is_prompt, first.is_final) == (0, 39, True, False)
    assert first.mel.shape == (128, 312) and first.frame_start == 0
    assert chunker.push(np.zeros(1279, np.float32)) == []
    (second,) = chunker.push(np.zeros(1, np.float32))
    assert (second.token_start, second.token_end, second.is_prompt) == (39, 40, False)
    assert second.mel.shape == (128, 8) and second.frame_start == 312
    steps = chunker.push(np.zeros(1280 * 3, np.float32))
    assert [(s.token_start, s.token_end) for s in steps] == [(40, 41), (41, 42), (42, 43)]


@pytest.mark.parametrize("delay_ms, first_samples, prompt", [(80, 2600, 34), (480, 9000, 39), (2400, 39_720, 63)])
def test_chunker_against_offline(delay_ms, first_samples, prompt, seed):
    """Steps appear as soon as their samples exist, cover tokens 0..N-1 once, and their mel frames
    are the offline log-mel of the padded clip."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2 * 16000, 5 * 16000))
    audio = _speechlike(rng, n)
    chunker = StreamingChunker(CFG, delay_ms=delay_ms)
    assert chunker.samples_for_first_step == first_samples and chunker.prompt_tokens == prompt

    def tokens_ready(real):  # tokens computable after `real` real samples (streaming rule)
        if real < first_samples:
            return 0
        return prompt + (real - first_samples) // 1280

    steps, pushed = [], 0
    while pushed < n:
        k = int(rng.integers(0, 3000))
        new = chunker.push(audio[pushed : pushed + k])
        pushed = min(n, pushed + k)
        steps += new
        handed_out = steps[-1].token_end if steps else 0
        assert handed_out == tokens_ready(pushed), f"seed={seed} pushed={pushed}"
    final = chunker.finish()
    steps += final
    N = num_positions(n, CFG, delay_ms)
    assert final and final[-1].is_final and not any(s.is_final for s in steps[:-1])
    assert steps[0].is_prompt and (steps[0].token_start, steps[0].token_end) == (0, prompt)
    assert all(s.n_tokens == 1 and not s.is_prompt for s in steps[1:])
    assert [s.token_start for s in steps[1:]] == list(range(prompt, N)), f"seed={seed}"
    assert len(steps) == 1 + N - prompt
    offline = log_mel(pad_for_offline(audio, CFG, delay_ms), CFG)
    streamed = np.concatenate([s.mel for s in steps], axis=1)
    assert streamed.shape == offline.shape == (128, 8 * N)
    np.testing.assert_allclose(streamed, offline, rtol=0, atol=1e-6, err_msg=f"seed={seed}")


def test_chunker_short_clip_and_misuse():
    chunker = StreamingChunker(CFG)
    assert chunker.push(np.zeros(100, np.float32)) == []
    steps = chunker.finish()
    N = num_positions(100, CFG)
    assert N == 50
    assert [(s.token_start, s.token_end) for s in steps] == [(0, 39)] + [(p, p + 1) for p in range(39, N)]
    with pytest.raises(RuntimeError):
        chunker.push(np.zeros(10, np.float32))
    with pytest.raises(RuntimeError):
        chunker.finish()
    with pytest.raises(ValueError):
        StreamingChunker(CFG).finish(delay_ms=80)
    with pytest.raises(ValueError):
        StreamingChunker(CFG).push(np.zeros((10, 2), np.float32))
