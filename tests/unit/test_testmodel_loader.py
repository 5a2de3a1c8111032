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


def test_wide_model_gguf_is_the_quantization_of_its_bf16_weights(tmp_path, monkeypatch):
    """At full width too (dim >= 1024 once selected random Q4 blocks), the GGUF's Q4_0 tensors are
    gguf's quantization of the BF16 tensors the Mistral form of the same seed holds, and its F32
    tensors are those values. The GGUF is drawn in pieces of a few rows (here ~2 rows of 1024
    columns, so pieces never align with the tensors), the Mistral form whole."""
    import gguf
    from voxtral import random_weights
    from voxtral.presets import asr_params
    from voxtral.testmodel import write_gguf
    params = asr_params("tiny")
    params.update({"dim": 1024, "n_layers": 1})
    seed = int(np.random.default_rng().integers(0, 2**31))
    write_mistral_dir("asr", str(tmp_path / "m"), params, seed)
    monkeypatch.setattr(random_weights, "_CHUNK_ELEMS", 2 * 1024 + 96)
    write_gguf("asr", str(tmp_path / "g.gguf"), params, seed)
    m, g = open_model(tmp_path / "m"), open_model(tmp_path / "g.gguf")
    assert g.params["dim"] == 1024
    n_q4 = 0
    for name in m.shapes:
        bf16, q = m.tensor(name), g.tensor(name)
        if isinstance(q, Q4Tensor):
            n_q4 += 1
            assert np.array_equal(q.raw, gguf.quants.quantize(bf16, gguf.GGMLQuantizationType.Q4_0)), name
        else:
            assert np.array_equal(q, bf16), name
    assert n_q4 > 5


def test_random_tensor_in_pieces_equals_one_draw(monkeypatch):
    """random_tensor draws in pieces (bounded memory); the values must not depend on the piece
    size, or the formats (and seeds written before) would disagree."""
    from voxtral import random_weights
    from voxtral.presets import asr_params, tts_params
    seed = int(np.random.default_rng().integers(0, 2**31))
    shapes = {**random_weights.model_shapes("asr", asr_params("tiny")),
              **random_weights.model_shapes("tts", tts_params("tiny"))}
    whole = {n: random_tensor(n, s, seed) for n, s in shapes.items()}  # every tiny tensor fits one piece
    assert max(int(np.prod(s)) for s in shapes.values()) <= random_weights._CHUNK_ELEMS
    monkeypatch.setattr(random_weights, "_CHUNK_ELEMS", 999)
    for n, s in shapes.items():
        assert np.array_equal(random_tensor(n, s, seed), whole[n]), n


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


def _cli(*args):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "voxtral", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args,message", [
    (["--format", "shards", "--shard-bytes", "foo"], "bad size 'foo'"),
    (["--format", "shards", "--shard-bytes", "0"], "must be positive"),
    (["--out", "/proc/x"], "cannot write the test model to /proc/x"),
    (["--out", "/proc/x", "--format", "gguf"], "cannot write the test model to /proc/x"),
    (["--out", "{file}/sub", "--format", "shards"], "cannot write the test model to {file}/sub"),
])
def test_cli_make_test_model_user_errors(tmp_path, args, message):
    """A bad --shard-bytes or an unwritable OUT_DIR: one line and exit status 2, no traceback."""
    (tmp_path / "afile").write_text("x")
    out = str(tmp_path / "m")
    if args[0] == "--out":
        out, args = args[1].format(file=tmp_path / "afile"), args[2:]
    r = _cli("make-test-model", "asr", out, "--quiet", *args)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("voxtral: error: "), r.stderr
    assert message.format(file=tmp_path / "afile") in lines[0], r.stderr


def test_cli_shard_bytes_takes_the_shard_command_sizes(tmp_path):
    """--shard-bytes reads sizes as `voxtral shard --max-bytes` does (K/M/G binary)."""
    r = _cli("make-test-model", "asr", str(tmp_path / "m"), "--format", "shards", "--shard-bytes", "100K",
             "--quiet")
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["shard_bytes"] == 102400
    assert all(s["size"] == 102400 for s in manifest["shards"][:-1]) and len(manifest["shards"]) > 2


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
