"""TTSPipeline: reproducibility by seed, streaming callback, limits, errors, long-text splitting."""
import numpy as np
import pytest

from voxtral.errors import VoxtralError
from voxtral.models.tts import text as tts_text
from voxtral.models.tts.generate import generate_frames
from voxtral.models.tts.prompt import build_tts_prompt, prompt_embeddings
from voxtral.models.tts.text import normalize_text, prompt_texts, split_sentences
from voxtral.testmodel import make_test_model
from voxtral.tts_pipeline import TTSPipeline
from voxtral.weights.loader import open_model

MODEL_SEED = 0  # (voice, seed) pairs below give multi-second outputs on this model
TEXT = "Hello world, this is a test."


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    return TTSPipeline(open_model(make_test_model("tts", str(tmp_path_factory.mktemp("tts")), seed=MODEL_SEED)))


def test_seeded_runs_are_reproducible(pipe):
    a = pipe.synthesize(TEXT, "ar_male", seed=1, max_seconds=3)
    b = pipe.synthesize(TEXT, "ar_male", seed=1, max_seconds=3)
    c = pipe.synthesize(TEXT, "ar_male", seed=2, max_seconds=3)
    assert len(a.frames) > 10
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.audio, b.audio)
    assert a.frames.shape != c.frames.shape or not np.array_equal(a.frames, c.frames)
    assert a.sample_rate == 24000 and a.audio.dtype == np.float32
    assert len(a.audio) == 1920 * len(a.frames)
    assert a.timings["frames"] == len(a.frames) and a.timings["audio_s"] == pytest.approx(a.seconds, abs=1e-3)


def test_streaming_callback_concatenates_to_audio(pipe):
    chunks = []
    s = pipe.synthesize(TEXT, "ar_male", seed=1, on_audio=chunks.append)
    assert s.segments[0]["ended"] and len(s.frames) > 30
    assert [len(c) // 1920 for c in chunks][:6] == [5, 5, 5, 5, 5, 25]
    assert np.array_equal(np.concatenate(chunks), s.audio)
    assert s.timings["first_audio_s"] is not None


def test_settings_change_the_result(pipe):
    base = pipe.synthesize(TEXT, "fr_female", seed=0, max_seconds=1)
    fewer = pipe.synthesize(TEXT, "fr_female", seed=0, max_seconds=1, euler_steps=3)
    alpha = pipe.synthesize(TEXT, "fr_female", seed=0, max_seconds=1, cfg_alpha=1.0)
    assert len(base.frames) == 13  # ceil(1 s · 12.5)
    # The semantic code of frame 0 does not depend on the ODE; the acoustic codes do.
    assert fewer.frames[0, 0] == base.frames[0, 0] and not np.array_equal(fewer.frames[:, 1:], base.frames[:, 1:])
    assert not np.array_equal(alpha.frames[:, 1:], base.frames[:, 1:])
    assert base.info["euler_steps"] == 7 and fewer.info["euler_steps"] == 3 and alpha.info["cfg_alpha"] == 1.0


def test_pipeline_equals_the_loop(pipe):
    """synthesize = prompt + generate_frames + codec (normalisation aside)."""
    s = pipe.synthesize(TEXT, "neutral_female", seed=1, max_seconds=2)
    ids = build_tts_prompt(pipe.tokenizer, TEXT, "neutral_female")
    voice = pipe.voice("neutral_female")
    x = prompt_embeddings(pipe.ops, pipe.model.backbone.tok_embeddings, ids, voice, 24)
    gen = generate_frames(pipe.model, x, np.random.default_rng(1), max_frames=25)
    assert np.array_equal(gen.frames, s.frames)
    assert np.abs(pipe.model.codec(pipe.ops, gen.frames) - s.audio).max() < 2e-5


def test_long_text_is_split_into_sentence_prompts(pipe, monkeypatch):
    monkeypatch.setattr(tts_text, "SINGLE_PROMPT_MAX_TOKENS", 12)
    monkeypatch.setattr("voxtral.tts_pipeline.prompt_texts",
                        lambda text, count: prompt_texts(text, count, max_tokens=12))
    text = "The first sentence is here. A second one follows! And is there a third?"
    s = pipe.synthesize(text, "it_male", seed=4, max_seconds=6)
    assert [seg["text"] for seg in s.segments] == split_sentences(text)
    assert sum(seg["frames"] for seg in s.segments) == len(s.frames) <= 75
    assert len(s.audio) == 1920 * len(s.frames)


def test_errors(pipe, tmp_path):
    with pytest.raises(VoxtralError, match="empty"):
        pipe.synthesize("  \n ", "ar_male")
    with pytest.raises(VoxtralError, match="too long.*10000"):
        pipe.synthesize("a" * 10001, "ar_male")
    with pytest.raises(VoxtralError, match="unknown voice 'bob'; valid voices: casual_female"):
        pipe.synthesize("Hi.", "bob")
    asr = open_model(make_test_model("asr", str(tmp_path / "asr"), seed=1))
    with pytest.raises(VoxtralError, match="not a TTS model"):
        TTSPipeline(asr)


def test_zero_frame_budget(pipe):
    s = pipe.synthesize(TEXT, "ar_male", max_seconds=0)
    assert s.audio.shape == (0,) and s.frames.shape == (0, 37)


def test_text_helpers():
    assert normalize_text("  Hello\n\n  world  ") == "Hello world."
    assert normalize_text("Ready?") == "Ready?" and normalize_text('He said "go."') == 'He said "go."'
    assert split_sentences("One. Two! Three? «Four.» Five") == ["One.", "Two!", "Three?", "«Four.»", "Five"]
    assert split_sentences("第一句。第二句！") == ["第一句。", "第二句！"]
    assert split_sentences("नमस्ते। कैसे हो?") == ["नमस्ते।", "कैसे हो?"]
    count = lambda s: len(s.split())  # noqa: E731
    assert prompt_texts("a b c. d e.", count, max_tokens=10) == ["a b c. d e."]
    assert prompt_texts("a b c. d e.", count, max_tokens=3) == ["a b c.", "d e."]
    assert prompt_texts("a b c d e f g, h i.", count, max_tokens=3) == ["a b c", "d e f", "g, h i."]
