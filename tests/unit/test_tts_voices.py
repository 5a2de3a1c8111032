"""Voice presets through the one code path the pipeline uses (`TTSPipeline.voice` / `load_voice`):
`.pt` files of the Mistral directory, GGUF tensors, byte shards, and the raw float32 `.bin` files of
the real voices (../shared/data/voices, optional). References: the test-model generator's own
values and torch.load for the .pt layout; TTS spec 4.3 for the row counts."""
import os
from pathlib import Path

import numpy as np
import pytest

from voxtral.errors import ModelFormatError, VoxtralError
from voxtral.models.tts.prompt import prompt_embeddings
from voxtral.models.tts.voices import load_voice, read_voice_bin, voice_language
from voxtral.testmodel import make_test_model, random_voice
from voxtral.tokenizer import TTS_VOICE_ROWS
from voxtral.tts_pipeline import TTSPipeline
from voxtral.weights.loader import open_model

SEED = int(np.random.default_rng().integers(0, 2**31))
REAL_VOICES = Path(__file__).resolve().parents[3] / "shared" / "data" / "voices"


@pytest.fixture(scope="module")
def pipes(tmp_path_factory):
    base = tmp_path_factory.mktemp("tts")
    out = {}
    for fmt in ("mistral", "gguf", "shards"):
        mf = open_model(make_test_model("tts", str(base / fmt), seed=SEED, fmt=fmt, shard_bytes=200_003))
        out[fmt] = TTSPipeline(mf)
    return out


def test_voices_identical_across_formats(pipes):
    dim = pipes["mistral"].config.backbone.dim
    for name, rows in TTS_VOICE_ROWS.items():
        ref = random_voice(name, rows, dim, SEED)  # the generator's values (BF16-exact)
        for fmt, pipe in pipes.items():
            v = pipe.voice(name)
            assert v.dtype == np.float32 and v.shape == (rows, dim), (fmt, name)
            assert np.array_equal(v, ref), f"{fmt} {name} (seed {SEED})"


def test_voice_listing(pipes):
    for pipe in pipes.values():
        voices = pipe.voices()
        assert [v.name for v in voices][:3] == ["casual_female", "casual_male", "cheerful_female"]
        assert {v.name: v.rows for v in voices} == TTS_VOICE_ROWS
        langs = {v.name: v.language for v in voices}
        assert langs["neutral_male"] == "English" and langs["hi_female"] == "Hindi" and langs["nl_male"] == "Dutch"
    assert voice_language("pt_male") == "Portuguese"


def test_voice_files_and_errors(pipes, tmp_path):
    pipe = pipes["mistral"]
    dim = pipe.config.backbone.dim
    rows = pipe.voice("fr_male")
    pt = os.path.join(pipe.files.path, "voice_embedding", "fr_male.pt")
    assert np.array_equal(pipe.voice(pt), rows)  # a .pt path
    b = tmp_path / "fr_male.bin"
    rows.astype("<f4").tofile(b)
    assert np.array_equal(pipe.voice(str(b)), rows)  # a raw f32 .bin path
    rows[:-1].astype("<f4").tofile(tmp_path / "fr_female.bin")  # wrong count for the preset name
    with pytest.raises(ModelFormatError, match="96 rows.*97"):
        pipe.voice(str(tmp_path / "fr_female.bin"))
    (tmp_path / "odd.bin").write_bytes(b"\0" * (4 * dim + 4))
    with pytest.raises(ModelFormatError, match="not a whole number"):
        pipe.voice(str(tmp_path / "odd.bin"))
    with pytest.raises(VoxtralError, match=r"unknown voice 'robot'.*casual_female, casual_male"):
        pipe.voice("robot")
    with pytest.raises(ModelFormatError, match="shape"):
        pipe.voice(np.zeros((4, dim + 1), np.float32))


def test_prompt_embeddings_place_voice_rows(pipes):
    pipe = pipes["gguf"]
    ops, tok = pipe.ops, pipe.tokenizer
    voice = pipe.voice("ar_male")
    ids = [1, 25] + [24] * 67 + [36, 1100, 1200, 35, 25]
    x = prompt_embeddings(ops, pipe.model.backbone.tok_embeddings, ids, voice, 24)
    table = ops.weight(pipe.model.backbone.tok_embeddings)
    assert np.array_equal(x[2:69], voice)
    assert np.allclose(x[:2], table[[1, 25]]) and np.allclose(x[69:], table[[36, 1100, 1200, 35, 25]])
    with pytest.raises(VoxtralError, match="67 \\[AUDIO\\] placeholders but the voice has 66"):
        prompt_embeddings(ops, pipe.model.backbone.tok_embeddings, ids, voice[:66], 24)


@pytest.mark.skipif(not REAL_VOICES.is_dir(), reason=f"real voice files not present ({REAL_VOICES})")
def test_real_voice_bins():
    """The 20 published voices as raw f32 [N, 3072]: rows match tekken.json's voice table (spec 4.3),
    every value is BF16-representable, and the last row (the end-of-audio frame) is shared."""
    files = sorted(REAL_VOICES.glob("*.bin"))
    assert {f.stem for f in files} == set(TTS_VOICE_ROWS)
    last = []
    for f in files:
        v = load_voice(str(f), 3072, expected_rows=TTS_VOICE_ROWS)  # the pipeline's code path
        assert v.shape == (TTS_VOICE_ROWS[f.stem], 3072)
        assert np.array_equal(v, read_voice_bin(str(f), 3072))
        assert not np.any(v.view(np.uint32) & 0xFFFF), f"{f.stem}: not BF16 values"
        last.append(v[-1])
    last = np.stack(last)
    assert np.abs(last - last[0]).max() < 0.01
