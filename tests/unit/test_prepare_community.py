"""GGUFs written independently with the `gguf` package in the community layout (ASR spec 3.2) load
and run like the project's own: same names, dims reversed, Q4_0 for 2-D weights, F32 or F16 for the
rest, no project metadata beyond what tiny dimensions force on us."""
import json
import math
import os

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from voxtral.audio import log_mel, pad_for_offline  # noqa: E402
from voxtral.backends import NumpyOps  # noqa: E402
from voxtral.config import ASRConfig  # noqa: E402
from voxtral.layout import asr_tensor_shapes  # noqa: E402
from voxtral.models.asr.model import ASRModel  # noqa: E402
from voxtral.models.asr.transcribe import transcribe  # noqa: E402
from voxtral.prepare.inspect import format_text, inspect_path  # noqa: E402
from voxtral.prepare.quantize import quantize_model  # noqa: E402
from voxtral.presets import asr_params  # noqa: E402
from voxtral.testmodel import make_test_model, model_tekken  # noqa: E402
from voxtral.weights.loader import KEY_PARAMS, open_model  # noqa: E402

SEED = int(np.random.default_rng().integers(0, 2**31))
Q4 = gguf.GGMLQuantizationType.Q4_0


def _is_q4(name, shape):  # the community file's rule, restated: every 2-D weight
    return len(shape) == 2


def write_community_gguf(path, src_dir, float_dtype):
    """The community layout through gguf's ordinary (non-streaming) API, from the BF16 files."""
    src = open_model(src_dir)
    w = gguf.GGUFWriter(path, arch="voxtral-realtime")
    # Tiny dims cannot be guessed (the loader assumes the published ones), so params ride along;
    # the tokenizer stays beside the file as in the community repo.
    w.add_string(KEY_PARAMS, json.dumps(src.params))
    for name, shape in src.shapes.items():
        x = src.tensor(name)
        if _is_q4(name, shape):
            w.add_tensor(name, gguf.quants.quantize(x, Q4), raw_dtype=Q4)
        else:
            w.add_tensor(name, x.astype(float_dtype))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with open(os.path.join(os.path.dirname(path), "tekken.json"), "w") as f:
        json.dump(src.tekken, f)
    return path


def _run(mf, audio):
    cfg = ASRConfig.from_params(mf.params, mf.tokenizer().audio_config)
    model = ASRModel(cfg, mf.weights(), NumpyOps())
    mel = log_mel(pad_for_offline(audio, cfg.audio), cfg.audio)
    return transcribe(model, mel).tokens, model.audio_embeddings(mel)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    base = tmp_path_factory.mktemp("community")
    src = make_test_model("asr", str(base / "bf16"), seed=SEED)
    ours = quantize_model(src, str(base / "ours" / "q4.gguf"))["path"]
    out = {"src": src, "ours": ours}
    for tag, dt in (("f32", np.float32), ("f16", np.float16)):
        os.makedirs(base / tag)
        out[tag] = write_community_gguf(str(base / tag / "voxtral-q4.gguf"), src, dt)
    return out


def test_independent_file_loads_like_ours(models):
    ours, f32, f16 = (open_model(models[k]) for k in ("ours", "f32", "f16"))
    assert f32.tekken == ours.tekken, "tokenizer found beside the file"
    for name in ours.shapes:
        assert f32._reader.read_raw(name) == ours._reader.read_raw(name), name
        assert f16.tensor_type(name) in ("Q4_0", "F16")
        if f16.tensor_type(name) == "F16":
            np.testing.assert_array_equal(f16.tensor(name), ours.tensor(name).astype(np.float16).astype(np.float32))


def test_independent_file_runs(models):
    t = np.arange(int(2.5 * 16000)) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 1.1 * t) > 0)).astype(np.float32)
    audio += 0.01 * np.random.default_rng(SEED).standard_normal(len(audio)).astype(np.float32)
    tok_ours, emb_ours = _run(open_model(models["ours"]), audio)
    tok_f32, emb_f32 = _run(open_model(models["f32"]), audio)
    assert tok_f32 == tok_ours and np.array_equal(emb_f32, emb_ours)
    tok_f16, emb_f16 = _run(open_model(models["f16"]), audio)  # F16 norms/biases/convs: tiny drift
    assert isinstance(tok_f16, list)
    assert np.linalg.norm(emb_f16 - emb_ours) / np.linalg.norm(emb_ours) < 2e-2


def test_full_size_metadata_free_file(tmp_path):
    """A full-size file exactly like the community one: no metadata but general.*, F16 non-Q4
    tensors, tekken.json beside it. Written sparse (header + a hole), so it costs no disk or time;
    the loader assumes the published params, checks all 711 shapes, and the byte totals match the
    spec's."""
    p = asr_params("full")
    shapes = asr_tensor_shapes(p)
    path = str(tmp_path / "voxtral-q4.gguf")
    w = gguf.GGUFWriter(path, arch="voxtral-realtime")
    data = 0
    for name, shape in shapes.items():
        if _is_q4(name, shape):
            nb = math.prod(shape) // 32 * 18
            w.add_tensor_info(name, (*shape[:-1], shape[-1] // 32 * 18), np.dtype(np.uint8), nb, raw_dtype=Q4)
        else:
            nb = 2 * math.prod(shape)
            w.add_tensor_info(name, shape, np.dtype(np.float16), nb)
        data += -(-nb // 32) * 32
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    header = w.fout[0].tell()
    w.close()
    os.truncate(path, -(-header // 32) * 32 + data)
    with open(tmp_path / "tekken.json", "w") as f:
        json.dump(model_tekken("asr", p), f)
    mf = open_model(path)
    assert mf.kind == "asr" and mf.params == p and len(mf.shapes) == 711
    assert mf.tensor("norm.weight").shape == (3072,)
    info = inspect_path(path)
    assert info["ok"], info["problems"]
    assert info["n_tensors"] == 711 and info["parameters"] == 4_429_679_360  # ASR spec 3.1
    q4_bytes = sum(r["nbytes"] for r in info["tensors"] if r["type"] == "Q4_0")
    assert q4_bytes == 2_488_393_728  # ASR spec 3.2 total
    assert info["data_bytes"] - q4_bytes == 2 * 5_868_288  # the non-quantized params as F16
    text = format_text(info)
    assert "ASR" in text and "711" in text and "status:     OK" in text
