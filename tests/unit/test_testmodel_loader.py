"""make-test-model outputs load through `open_model` in every format with identical tensors.

The references are independent of the loader: the generator's own per-tensor RNG (`random_tensor`),
the `gguf` package's reference Q4_0 quantizer and `gguf.GGUFReader`, and torch for the voice files.
"""
import json
import os
import shutil

import numpy as np
import pytest

from voxtral.errors import MissingTensorError, ModelFormatError, TensorShapeError
from voxtral.testmodel import make_test_model, random_tensor, random_voice, write_mistral_dir
from voxtral.weights.loader import open_model
from voxtral.weights.q4 import Q4Tensor

SEED = int(np.random.default_rng().integers(0, 2**31))


@pytest.fixture(scope="module", params=["asr", "tts"])
def models(request, tmp_path_factory):
    kind = request.param
    base = tmp_path_factory.mktemp(kind)
    paths = {
        "mistral": make_test_model(kind, str(base / "mistral"), seed=SEED, fmt="mistral"),
        "gguf": make_test_model(kind, str(base / "gguf"), seed=SEED, fmt="gguf"),
        # tiny shards so tensors (and the header) cross shard boundaries
        "shards": make_test_model(kind, str(base / "shards"), seed=SEED, fmt="shards", shard_bytes=100_003),
    }
    return kind, paths


def test_formats_load_with_expected_tensors(models):
    kind, paths = models
    m = open_model(paths["mistral"])
    g = open_model(paths["gguf"])
    s = open_model(paths["shards"])
    assert (m.kind, g.kind, s.kind) == (kind, kind, kind)
    assert (m.format, g.format, s.format) == ("mistral", "gguf", "shards")
    assert m.params == g.params == s.params
    assert len(os.listdir(paths["shards"])) > 3, "shards were not split"
    n_q4 = 0
    for name, shape in m.shapes.items():
        src = random_tensor(name, shape, SEED)  # the generator's value, BF16-exact
        a = m.tensor(name)
        assert a.dtype == np.float32 and a.shape == shape
        assert np.array_equal(a, src), f"{name} (seed {SEED}): BF16 safetensors differs"
        b, c = g.tensor(name), s.tensor(name)
        if isinstance(b, Q4Tensor):
            n_q4 += 1
            import gguf
            ref = gguf.quants.quantize(src, gguf.GGMLQuantizationType.Q4_0)
            assert np.array_equal(b.raw, ref), f"{name}: Q4 bytes differ from gguf's quantizer"
            assert np.array_equal(c.raw, b.raw), f"{name}: shards differ from the single GGUF"
            deq = b.dequantize()
            # Q4_0 error bound: one step |d| = max|block|/8 per element.
            blocks = np.abs(src).reshape(shape[0], -1, 32).max(axis=2)
            bound = np.repeat(blocks / 8, 32, axis=1) * 1.001 + 1e-6
            assert np.all(np.abs(deq - src) <= bound), f"{name}: Q4 error above one quantization step"
        else:
            assert np.array_equal(b, src) and np.array_equal(c, src), f"{name}: F32 tensor differs"
    assert n_q4 > 5


def test_against_gguf_reader(models):
    """Our GGUF view (names, PyTorch-order shapes, raw bytes) equals gguf's own reader."""
    import gguf
    kind, paths = models
    path = paths["gguf"]
    ref = gguf.GGUFReader(path)
    ours = open_model(path)
    for t in ref.tensors:
        assert tuple(int(v) for v in reversed(t.shape)) == tuple(ours._reader.tensors[t.name].shape)
        assert ours._reader.read_raw(t.name) == t.data.tobytes()


def test_tokenizer_and_voices(models):
    kind, paths = models
    for fmt in ("mistral", "gguf", "shards"):
        mf = open_model(paths[fmt])
        tok = mf.tokenizer()
        assert tok.bos_id == 1 and tok.eos_id == 2
        if kind == "asr":
            assert tok.special_id("[STREAMING_PAD]") == 32
        else:
            assert tok.special_id("[NEXT_AUDIO_TEXT]") == 36
            assert len(mf.voices) == 20
            v = mf.voice("ar_male")
            assert v.shape == (67, mf.params["dim"])
            assert np.array_equal(v, random_voice("ar_male", 67, mf.params["dim"], SEED))


def test_voice_pt_files_read_by_torch(models):
    torch = pytest.importorskip("torch")
    kind, paths = models
    if kind != "tts":
        pytest.skip("voices are TTS only")
    p = os.path.join(paths["mistral"], "voice_embedding", "casual_female.pt")
    t = torch.load(p, weights_only=True)
    assert t.dtype == torch.bfloat16 and tuple(t.shape) == (214, open_model(paths["mistral"]).params["dim"])
    assert np.array_equal(t.float().numpy(), open_model(paths["mistral"]).voice("casual_female"))


def _rewrite_without(src_dir, dst_dir, drop=None, reshape=None):
    """Copy a Mistral test model, dropping or mis-shaping one tensor."""
    from voxtral.weights.safetensors import SafetensorsFile
    from voxtral.weights.safetensors import write_safetensors_bf16_stream
    shutil.copytree(src_dir, dst_dir)
    st = SafetensorsFile(os.path.join(src_dir, "consolidated.safetensors"))
    shapes = {n: tuple(st.shape(n)) for n in st.names if n != drop}
    if reshape:
        shapes[reshape] = (shapes[reshape][0] + 1,) + shapes[reshape][1:]
    write_safetensors_bf16_stream(os.path.join(dst_dir, "consolidated.safetensors"), shapes,
                                  lambda n, s: np.zeros(s, np.float32))


def test_missing_and_misshaped_tensors(tmp_path):
    src = write_mistral_dir("asr", str(tmp_path / "ok"), __import__("voxtral.presets").presets.asr_params("tiny"), 1)
    name = "layers.1.attention.wk.weight"
    _rewrite_without(src, str(tmp_path / "missing"), drop=name)
    with pytest.raises(MissingTensorError, match=r"layers\.1\.attention\.wk\.weight"):
        open_model(tmp_path / "missing")
    _rewrite_without(src, str(tmp_path / "shape"), reshape=name)
    with pytest.raises(TensorShapeError, match=r"layers\.1\.attention\.wk\.weight.*expected"):
        open_model(tmp_path / "shape")


def test_not_a_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFormatError, match="not a model directory"):
        open_model(tmp_path / "empty")
    with pytest.raises(ModelFormatError, match="does not exist"):
        open_model(tmp_path / "nope")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "params.json").write_text("{not json")
    with pytest.raises(ModelFormatError, match="not valid JSON"):
        open_model(bad)


def test_missing_shard(models, tmp_path):
    kind, paths = models
    d = tmp_path / "s"
    shutil.copytree(paths["shards"], d)
    os.remove(d / "shard-ab")
    with pytest.raises(ModelFormatError, match="shard-ab"):
        open_model(d)


def test_cli_make_and_tokenize(tmp_path, capsys):
    from voxtral.cli import main
    assert main(["make-test-model", "asr", str(tmp_path / "m"), "--format", "gguf", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["tokenize", "--model", str(tmp_path / "m"), "Hello world"]) == 0
    ids = json.loads(capsys.readouterr().out)
    tok = open_model(tmp_path / "m").tokenizer()
    assert tok.decode(ids) == "Hello world" and all(1000 <= i < 2048 for i in ids)
    assert main(["tokenize", "--model", str(tmp_path / "nowhere"), "x"]) == 2
    assert "does not exist" in capsys.readouterr().err
