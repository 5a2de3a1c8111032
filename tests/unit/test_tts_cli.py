"""`voxtral speak` end to end on generated models in every model form.

The WAVs are checked with the standard library's `wave` reader (independent of our writer); the
streamed file must be byte-identical to the plain one (the pipeline always decodes through the
streaming codec, so both runs compute the same samples; the stream writer must then produce the
same bytes as `encode_wav`)."""
import json
import os
import subprocess
import sys
import wave

import numpy as np
import pytest

from voxtral.cli import main
from voxtral.models.tts.prompt import build_tts_prompt
from voxtral.testmodel import make_test_model
from voxtral.weights.loader import open_model

MODEL_SEED = 0  # ar_male with noise seed 1 speaks for several seconds on this model (mistral form)
TEXT = "Hello world, this is a test."


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    base = tmp_path_factory.mktemp("tts")
    return {fmt: make_test_model("tts", str(base / fmt), seed=MODEL_SEED, fmt=fmt, shard_bytes=150_001)
            for fmt in ("mistral", "gguf", "shards")}


def read(path):
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 24000)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


@pytest.mark.parametrize("fmt", ["mistral", "gguf", "shards"])
def test_speak_writes_a_24khz_wav(models, tmp_path, fmt, capsys):
    out = tmp_path / f"{fmt}.wav"
    rc = main(["speak", TEXT, "--voice", "ar_male", "--seed", "1", "--model", models[fmt], "--out", str(out),
               "--max-seconds", "2", "--backend", "numpy"])
    assert rc == 0
    pcm = read(out)
    assert len(pcm) % 1920 == 0 and len(pcm) <= 25 * 1920
    if fmt == "mistral":
        assert len(pcm) == 25 * 1920 and np.abs(pcm).max() > 100
    assert "wrote" in capsys.readouterr().err


def test_stream_equals_plain(models, tmp_path):
    args = ["speak", TEXT, "--voice", "ar_male", "--seed", "1", "--model", models["mistral"], "--quiet",
            "--backend", "numpy"]
    assert main(args + ["--out", str(tmp_path / "plain.wav")]) == 0
    assert main(args + ["--out", str(tmp_path / "stream.wav"), "--stream"]) == 0
    plain, stream = (tmp_path / "plain.wav").read_bytes(), (tmp_path / "stream.wav").read_bytes()
    assert len(plain) > 44 + 30 * 3840  # > 30 frames
    assert plain == stream


def test_settings_reach_the_model(models, tmp_path):
    def run(*extra):
        out = tmp_path / "x.wav"
        assert main(["speak", TEXT, "--voice", "ar_male", "--model", models["mistral"], "--out", str(out),
                     "--max-seconds", "1", "--quiet", "--backend", "numpy", *extra]) == 0
        return read(out)
    base = run("--seed", "1")  # (WebGPU vs numpy: tests/shaders/test_tts_webgpu.py)
    assert not np.array_equal(base, run("--seed", "2"))
    assert not np.array_equal(base, run("--seed", "1", "--euler-steps", "2"))
    assert not np.array_equal(base, run("--seed", "1", "--cfg-scale", "1.0"))
    assert np.array_equal(base, run("--seed", "1"))


def test_list_voices(models, capsys):
    assert main(["speak", "--list-voices", "--model", models["gguf"]]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["voice", "language", "rows"] and len(lines) == 21
    assert lines[1].split() == ["casual_female", "English", "214"]
    assert ["ar_male", "Arabic", "67"] in [ln.split() for ln in lines]


def test_tokenize_voice_prints_the_prompt(models, capsys):
    assert main(["tokenize", "Hello.", "--voice", "ar_male", "--model", models["mistral"]]) == 0
    ids = json.loads(capsys.readouterr().out)
    assert ids == build_tts_prompt(open_model(models["mistral"]).tokenizer(), "Hello.", "ar_male")
    assert ids[:2] == [1, 25] and ids.count(24) == 67 and ids[-2:] == [35, 25]


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "voxtral", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def test_errors_exit_2_without_traceback(models, tmp_path):
    asr = make_test_model("asr", str(tmp_path / "asr"), seed=1)
    cases = [
        (["speak", "", "--model", models["gguf"]], "empty"),
        (["speak", "Hi.", "--voice", "darth_vader", "--model", models["gguf"]], "valid voices: ar_male, casual_female"),
        (["speak", "x" * 10001, "--model", models["gguf"]], "too long"),
        (["speak", "Hi.", "--model", asr], "not a TTS model"),
        (["speak", "--list-voices", "--model", asr], "not a TTS model"),
        (["speak", "--model", models["gguf"]], "no text given"),
        (["speak", "Hi.", "--model", str(tmp_path / "nowhere")], "does not exist"),
    ]
    for args, message in cases:
        r = run_cli(*args, "--out", str(tmp_path / "e.wav"))
        assert r.returncode == 2, (args[:3], r.stderr)
        assert "Traceback" not in r.stderr and message in r.stderr, (args[:3], r.stderr)
        assert r.stderr.strip().startswith("voxtral: error:") and len(r.stderr.strip().splitlines()) == 1


def test_demo_model_when_no_weights(tmp_path):
    env = dict(os.environ, VOXTRAL_MODELS=str(tmp_path / "models"))
    r = run_cli("speak", TEXT, "--voice", "fr_female", "--max-seconds", "0.5", "--out",
                str(tmp_path / "demo.wav"), env=env)
    assert r.returncode == 0, r.stderr
    assert "RANDOM-WEIGHT DEMO MODEL" in r.stderr and "noise" in r.stderr
    assert "mistralai/Voxtral-4B-TTS-2603" in r.stderr
    assert os.path.exists(tmp_path / "models" / "demo-tts-tiny" / "params.json")
    read(tmp_path / "demo.wav")
