"""`voxtral bench asr` and its shared core (voxtral.asr_bench) on the numpy backend: the in-memory
random model is byte-identical to the GGUF `write_gguf(quantize_random=True)` writes, every figure is present, and
the tokens of both passes are those of the offline reference decode of the same model and clip."""
from __future__ import annotations

import json

import numpy as np
import pytest

from voxtral.asr_bench import bench_clip, random_asr_model
from voxtral.audio import log_mel, pad_for_offline
from voxtral.backends import NumpyOps
from voxtral.cli import main
from voxtral.models.asr.model import ASRModel
from voxtral.models.asr.transcribe import transcribe
from voxtral.presets import asr_params
from voxtral.testmodel import write_gguf
from voxtral.weights.loader import open_model

EOS = 2


@pytest.mark.parametrize("seed", [0, int(np.random.default_rng().integers(1, 1000))])
def test_in_memory_model_equals_the_random_gguf(tmp_path, seed):
    _, weights = random_asr_model("tiny", seed)
    path = write_gguf("asr", str(tmp_path / "m.gguf"), asr_params("tiny"), seed, quantize_random=True)
    from_file = open_model(path).weights()
    assert set(from_file) == set(weights)
    for name, v in weights.items():
        f = from_file[name]
        if hasattr(v, "raw"):
            assert np.array_equal(f.raw, v.raw), name
        else:
            assert np.array_equal(f, v), name


def test_bench_cli_json_and_tokens_match_the_reference(capsys):
    seconds = 2.0
    assert main(["bench", "asr", "--preset", "tiny", "--seconds", str(seconds), "--backend", "numpy", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    for key in ("load_s", "encoder_ms", "prefill_ms", "decode_ms_per_step", "steps_per_s", "bytes_per_step",
                "achieved_gbs", "rtf", "stream_rtf", "peak_host_mb", "adapter"):
        assert r[key] is not None and (not isinstance(r[key], (int, float)) or r[key] > 0), key
    assert r["backend"] == "numpy" and r["audio_s"] == seconds
    # 39 prompt positions (BOS + 38 pads at 480 ms); one decode step per remaining position
    assert r["decode_steps"] == r["positions"] - 39
    # the reference: the offline greedy loop on the spec's padding + log-mel of the same clip
    cfg, weights = random_asr_model("tiny")
    model = ASRModel(cfg, {n: (w.dequantize() if hasattr(w, "dequantize") else w) for n, w in weights.items()},
                     NumpyOps())
    ref = transcribe(model, log_mel(pad_for_offline(bench_clip(seconds), cfg.audio), cfg.audio)).tokens
    assert r["stream_tokens"] == ref  # the live path in 80 ms pieces stops at EOS like the reference
    n = len(ref)
    assert r["offline_tokens"][:n] == ref  # the timed pass ignores EOS: the same tokens, then more
    assert r["stream_eos"] == (n < len(r["offline_tokens"]))
    if r["stream_eos"]:
        assert r["offline_tokens"][n] == EOS
    assert len(r["offline_tokens"]) == r["decode_steps"] + 1  # the prefill decides the first token


def test_bench_text_report(capsys):
    assert main(["bench", "asr", "--preset", "tiny", "--seconds", "1", "--backend", "numpy", "--no-stream"]) == 0
    out = capsys.readouterr().out
    assert "ms/step" in out and "RTF" in out and "streaming" not in out
