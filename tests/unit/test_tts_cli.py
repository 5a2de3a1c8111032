"""`voxtral speak` end to end on generated models in every model form.

The WAVs are checked with the standard library's `wave` reader (independent of our writer); the
streamed file must be byte-identical to the plain one (the pipeline always decodes through the
streaming codec, so both runs compute the same samples; the stream writer must then produce the
same bytes as `encode_wav`)."""
import json
import os
import re
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


def buffered_env() -> dict:
    """The environment without PYTHONUNBUFFERED, so that a pipe gets Python's default block
    buffering, as a user's pipe would: output arrives early only if the CLI flushes it."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}


def _small_pipe():
    """(read fd, write fd) of a pipe, shrunk to 16 KiB where Linux allows, and its capacity."""
    r, w = os.pipe()
    try:
        import fcntl
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 16384)
        size = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)
    except (ImportError, AttributeError, OSError):
        size = 65536  # Linux's default; other systems' are not larger
    return r, w, size


def test_stream_to_stdout_arrives_in_chunks_during_generation(models, tmp_path):
    """`speak --stream --out -` (the way to play live; a file given to --out appears complete at the
    end) writes the WAV header, then each decoded chunk, while generating. stdout and stderr share
    one pipe here, so the order of the bytes is the order of the writes: the first 0.40 s chunk
    (5 frames, `--stream`'s help) comes before the CLI's progress line for it, and both before the
    rest of the audio. When that first line arrives the process must still be running: the audio
    still to come is larger than the pipe, which nobody reads meanwhile, so the process cannot
    have finished (no sleeping or timing involved)."""
    args = ["speak", TEXT, "--voice", "ar_male", "--seed", "1", "--model", models["mistral"], "--backend", "numpy"]
    assert main(args + ["--quiet", "--out", str(tmp_path / "plain.wav")]) == 0
    plain = (tmp_path / "plain.wav").read_bytes()
    r, w, pipe_size = _small_pipe()
    p = subprocess.Popen([sys.executable, "-m", "voxtral", *args, "--stream", "--out", "-"],
                         stdout=w, stderr=w, stdin=subprocess.DEVNULL, env=buffered_env())
    os.close(w)
    data, line = b"", re.compile(rb"voxtral: ([\d.]+) s of audio after [\d.]+ s\n")
    try:
        while not line.search(data, 44):
            chunk = os.read(r, 4096)
            assert chunk, f"no progress line before the end: {data[-300:]!r}"
            data += chunk
        running = p.poll() is None
        read_then = len(data)
        while chunk := os.read(r, 65536):
            data += chunk
    finally:
        os.close(r)
        p.wait(timeout=300)
    assert p.returncode == 0, data[-500:]
    # the header of a WAV streamed to a pipe: sizes 0xFFFFFFFF ("until the end")
    assert data[:4] == b"RIFF" and data[4:8] == b"\xff" * 4 and data[36:44] == b"data\xff\xff\xff\xff"
    assert data[8:36] == plain[8:36]
    # split the stream into PCM pieces and the progress lines that follow each one
    pcm, pos, reported = [], 44, []
    for m in line.finditer(data, 44):
        pcm.append(data[pos:m.start()])
        reported.append(float(m.group(1)))
        pos = m.end()
    final = re.compile(rb"voxtral: wrote stdout: ([\d.]+) s of 24 kHz audio \((\d+) frames\)").match(data, pos)
    assert final and data[final.end():].count(b"\n") == 1, data[pos:]
    assert len(pcm[0]) == 5 * 1920 * 2 and reported[0] == 0.4  # the first chunk: 5 frames of 1920 samples
    assert len(pcm) >= 3 and reported == sorted(reported)
    sizes = np.cumsum([len(c) for c in pcm])
    assert list(sizes) == [round(s * 24000) * 2 for s in reported]  # each line after its audio
    assert b"".join(pcm) == plain[44:]  # the same samples as the plain run
    assert float(final.group(1)) == reported[-1] and int(final.group(2)) * 1920 * 2 == sizes[-1]
    # when the first line came, more than a pipe's worth of audio was still to be written
    assert len(data) - read_then > pipe_size
    assert running, "the process had finished before its first chunk was read"
