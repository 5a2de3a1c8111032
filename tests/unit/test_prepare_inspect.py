"""`voxtral inspect`: every model form, text and JSON, and broken models reported, not crashed on."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from voxtral.errors import VoxtralError
from voxtral.prepare.inspect import format_text, inspect_path
from voxtral.prepare.quantize import quantize_model
from voxtral.prepare.shard import shard_gguf
from voxtral.testmodel import make_test_model, random_tensor
from voxtral.weights.safetensors import write_safetensors_bf16

SEED = int(np.random.default_rng().integers(0, 2**31))


@pytest.fixture(scope="module")
def forms(tmp_path_factory):
    base = tmp_path_factory.mktemp("inspect")
    src = make_test_model("tts", str(base / "tts"), seed=SEED)
    g = quantize_model(src, str(base / "q" / "tts.gguf"))["path"]
    shard_gguf(g, str(base / "shards"), 300_000)
    return {"mistral": src, "gguf": g, "shards": str(base / "shards"),
            "safetensors": os.path.join(src, "consolidated.safetensors")}


@pytest.mark.parametrize("form", ["mistral", "gguf", "shards", "safetensors"])
def test_each_form(forms, form):
    info = inspect_path(forms[form])
    assert info["ok"] and info["problems"] == [] and info["format"] == form
    assert info["n_tensors"] >= 161
    if form != "safetensors":
        assert info["kind"] == "tts" and info["layout"] == "ok" and len(info["voices"]) == 20
        assert info["config"]["codec"]["dim"] == 32 and info["tokenizer"]["version"] == "v7"
    if form in ("gguf", "shards"):
        assert set(info["types"]) == {"Q4_0", "F32"} and info["n_tensors"] == 181  # + 20 voice tensors
        assert info["metadata"]["voxtral.kind"] == "tts" and info["metadata"]["voxtral.tekken_json"].startswith("<")
    else:
        assert info["types"] == {"BF16": 161}
    json.dumps(info)  # JSON-able
    text = format_text(info, tensors=True)
    assert "status:     OK" in text and "audio_tokenizer.output_proj" in text


def test_shard_details(forms):
    sh = inspect_path(forms["shards"])["shards"]
    assert sh["names_sizes"] == "ok" and sh["sha256"] == "ok"
    assert all(r["status"] == "ok" for r in sh["shards"]) and len(sh["shards"]) >= 5


def test_broken_models_are_reported(forms, tmp_path):
    # a Mistral directory whose safetensors lacks a tensor
    d = tmp_path / "broken"
    d.mkdir()
    for f in ("params.json", "tekken.json"):
        (d / f).write_bytes(open(os.path.join(forms["mistral"], f), "rb").read())
    from voxtral.weights.loader import open_model
    shapes = dict(open_model(forms["mistral"]).shapes)
    shapes.pop("norm.weight")
    write_safetensors_bf16(str(d / "consolidated.safetensors"),
                           {n: random_tensor(n, s, SEED) for n, s in shapes.items()})
    info = inspect_path(str(d))
    assert not info["ok"] and info["layout"] == "failed"
    assert any("missing tensor 'norm.weight'" in p for p in info["problems"])
    assert "PROBLEMS" in format_text(info)
    # a truncated GGUF: the container error is reported
    g = tmp_path / "cut.gguf"
    g.write_bytes(open(forms["gguf"], "rb").read()[:200_000])
    info = inspect_path(str(g))
    assert not info["ok"] and any("past the end" in p or "truncated" in p for p in info["problems"])
    with pytest.raises(VoxtralError, match="no such file"):
        inspect_path(str(tmp_path / "nothing"))
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(VoxtralError, match="not a GGUF"):
        inspect_path(str(tmp_path / "x.txt"))


def test_cli(forms, tmp_path):
    r = subprocess.run([sys.executable, "-m", "voxtral", "inspect", forms["gguf"], "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["ok"] and {t["name"] for t in info["tensors"]} >= {"norm.weight", "voice_embedding.casual_male"}
    r = subprocess.run([sys.executable, "-m", "voxtral", "inspect", forms["mistral"], "--tensors"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "tensor table" in r.stdout and "BF16" in r.stdout
    r = subprocess.run([sys.executable, "-m", "voxtral", "inspect", str(tmp_path / "none")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "no such file" in r.stderr
