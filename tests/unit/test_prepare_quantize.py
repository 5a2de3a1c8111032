"""`voxtral quantize`: BF16 Mistral directory -> Q4_0 GGUF in the community layout.

References independent of the code under test: `gguf.GGUFReader` for the file structure,
`gguf.quants.quantize` for the Q4_0 bytes, the BF16 safetensors values for F32 tensors, and the
ASR spec 3.2 type table written out below by hand.
"""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from voxtral.audio import log_mel, pad_for_offline  # noqa: E402
from voxtral.backends import NumpyOps  # noqa: E402
from voxtral.config import ASRConfig  # noqa: E402
from voxtral.errors import ModelFormatError, VoxtralError  # noqa: E402
from voxtral.layout import ASR_ENC_PREFIX, ASR_PREFIX, asr_tensor_shapes  # noqa: E402
from voxtral.models.asr.model import ASRModel  # noqa: E402
from voxtral.models.asr.transcribe import transcribe  # noqa: E402
from voxtral.prepare import quantize as qmod  # noqa: E402
from voxtral.prepare.quantize import quantize_model, stores_q4  # noqa: E402
from voxtral.prepare.shard import split_file  # noqa: E402
from voxtral.testmodel import make_test_model, model_tekken, write_gguf  # noqa: E402
from voxtral.weights.loader import KEY_KIND, KEY_PARAMS, KEY_TEKKEN, VOICE_PREFIX, open_model  # noqa: E402
from voxtral.weights.q4 import Q4Tensor, dequantize_q4_0, quantize_q4_0  # noqa: E402

SEED = int(np.random.default_rng().integers(0, 2**31))
Q4 = gguf.GGMLQuantizationType.Q4_0


@pytest.fixture(scope="module")
def asr(tmp_path_factory):
    base = tmp_path_factory.mktemp("qasr")
    src = make_test_model("asr", str(base / "bf16"), seed=SEED)
    out = str(base / "voxtral-asr-q4.gguf")
    summary = quantize_model(src, out, "asr")
    return src, out, summary


@pytest.fixture(scope="module")
def tts(tmp_path_factory):
    base = tmp_path_factory.mktemp("qtts")
    src = make_test_model("tts", str(base / "bf16"), seed=SEED)
    out = str(base / "voxtral-tts-q4.gguf")
    return src, out, quantize_model(src, out, "tts")


def _community_type(name: str) -> str:
    """ASR spec 3.2's table, pattern by pattern."""
    if name.endswith(("conv.weight", "conv.bias")) or name.endswith("norm.weight") or name.endswith(".bias"):
        return "F32"
    return "Q4_0"  # embeddings, every attention/FFN linear, adapter, both ADA projections


def test_asr_file_follows_the_community_layout(asr):
    src, out, summary = asr
    r = gguf.GGUFReader(out)
    params = json.load(open(os.path.join(src, "params.json")))
    shapes = asr_tensor_shapes(params)
    names = [t.name for t in r.tensors]
    assert names == list(shapes), "same names as consolidated.safetensors, in its order"
    seen = set()
    for t in r.tensors:
        # ggml order: dims reversed relative to PyTorch ([out, in] is stored as [in, out])
        assert tuple(int(v) for v in t.shape) == tuple(reversed(shapes[t.name])), t.name
        assert t.tensor_type.name == _community_type(t.name), t.name
        assert t.data_offset % 32 == 0
        seen.add(t.tensor_type.name)
    assert seen == {"Q4_0", "F32"}
    assert r.tensors[names.index(ASR_PREFIX + "tok_embeddings.weight")].tensor_type == Q4
    assert r.tensors[names.index(ASR_ENC_PREFIX + "conv_layers.0.conv.weight")].tensor_type.name == "F32"
    assert r.tensors[names.index("layers.0.ada_rms_norm_t_cond.2.weight")].tensor_type == Q4
    # params.json and tekken.json travel verbatim as metadata
    md = {f.name: f for f in r.fields.values()}

    def text(key):
        f = md[key]
        return bytes(f.parts[f.data[0]]).decode()

    assert text(KEY_PARAMS) == open(os.path.join(src, "params.json"), encoding="utf-8").read()
    assert text(KEY_TEKKEN) == open(os.path.join(src, "tekken.json"), encoding="utf-8").read()
    assert text(KEY_KIND) == "asr" and text("general.architecture") == "voxtral-realtime"
    assert summary["tensors"] == len(shapes) and summary["q4"] == sum(_community_type(n) == "Q4_0" for n in shapes)


def test_asr_values_equal_reference_quantizer(asr):
    src, out, _ = asr
    bf16, q = open_model(src), open_model(out)
    assert q.params == bf16.params and q.tekken == bf16.tekken and q.kind == "asr"
    for name in bf16.shapes:
        x, y = bf16.tensor(name), q.tensor(name)
        if isinstance(y, Q4Tensor):
            assert np.array_equal(y.raw, gguf.quants.quantize(x, Q4)), name
        else:
            assert y.dtype == np.float32 and np.array_equal(x, y), name


def test_asr_equals_the_project_test_gguf(asr, tmp_path):
    """make-test-model's GGUF (written by another path, from the generator's floats) holds the very
    same tensors: files made either way load identically."""
    src, out, _ = asr
    ref = write_gguf("asr", str(tmp_path / "ref.gguf"), json.load(open(os.path.join(src, "params.json"))), SEED)
    a, b = open_model(out), open_model(ref)
    for name in a.shapes:
        assert a._reader.read_raw(name) == b._reader.read_raw(name), name
        assert a.tensor_type(name) == b.tensor_type(name)


def test_tts_types_and_voices(tts):
    src, out, summary = tts
    bf16, q = open_model(src), open_model(out)
    assert q.kind == "tts" and summary["voices"] == 20 == len(q.voices)
    for v in bf16.voices:  # voices become F32 tensors voice_embedding.<name>
        assert np.array_equal(q.voice(v), bf16.voice(v))
        assert q.tensor_type(VOICE_PREFIX + v) == "F32"
    n_q4 = 0
    for name, shape in bf16.shapes.items():
        t = q.tensor_type(name)
        assert (t == "Q4_0") == stores_q4("tts", name, shape)
        if name.startswith("audio_tokenizer.") or "codebook_embeddings" in name or "norm" in name:
            assert t == "F32", name  # codec, codebook table and norms stay full precision
        if t == "Q4_0":
            n_q4 += 1
            assert np.array_equal(q.tensor(name).raw, gguf.quants.quantize(bf16.tensor(name), Q4))
        else:
            assert np.array_equal(q.tensor(name), bf16.tensor(name))
    assert stores_q4("tts", "layers.0.attention.wq.weight", (4096, 3072))
    assert stores_q4("tts", "mm_audio_embeddings.tok_embeddings.weight", (131072, 3072))
    assert not stores_q4("tts", "acoustic_transformer.acoustic_codebook_output.weight", (36, 3072))
    assert not stores_q4("tts", "audio_tokenizer.decoder_blocks.1.layers.0.attention.wq.weight", (1024, 1024))
    assert n_q4 > 10


@pytest.mark.parametrize("kind", ["asr", "tts"])
def test_quantize_shard_load_round_trip(kind, request, tmp_path):
    """quantize -> shard -> load: the shards hold the GGUF's tensors (and TTS voices), which are
    gguf's Q4_0 of the BF16 source (F32 tensors and voices: its values)."""
    src, out, _ = request.getfixturevalue(kind)
    split_file(out, str(tmp_path / "shards"), 100_003)  # tensors and the header cross shard boundaries
    g, s = open_model(out), open_model(str(tmp_path / "shards"), verify=True)
    bf16 = open_model(src)
    assert s.format == "shards" and s.kind == kind and s.params == g.params == bf16.params
    assert s.tekken == g.tekken == bf16.tekken
    n_q4 = 0
    for name in bf16.shapes:
        a, b = g.tensor(name), s.tensor(name)
        assert type(a) is type(b)
        if isinstance(a, Q4Tensor):
            n_q4 += 1
            assert np.array_equal(a.raw, b.raw), name
            assert np.array_equal(b.raw, gguf.quants.quantize(bf16.tensor(name), Q4)), name
        else:
            assert np.array_equal(a, b) and np.array_equal(b, bf16.tensor(name)), name
    assert n_q4 > 10
    assert sorted(s.voices) == sorted(g.voices) == sorted(bf16.voices)
    assert (len(s.voices) == 20) if kind == "tts" else not s.voices
    for v in bf16.voices:
        assert np.array_equal(s.voice(v), bf16.voice(v)), v
    joined = b"".join(open(tmp_path / "shards" / e, "rb").read() for e in sorted(os.listdir(tmp_path / "shards"))
                      if e.startswith("shard-"))
    assert joined == open(out, "rb").read()


def _clip(seconds=3.0, sr=16000):
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 12)) * 0.2 * (np.sin(2 * np.pi * 1.3 * t) > -0.3)
    return (x + 0.01 * np.random.default_rng(SEED).standard_normal(len(t))).astype(np.float32)


def _model(mf, weights=None):
    cfg = ASRConfig.from_params(mf.params, mf.tokenizer().audio_config)
    return ASRModel(cfg, mf.weights() if weights is None else weights, NumpyOps()), cfg


def _tokens(model, cfg, audio):
    return transcribe(model, log_mel(pad_for_offline(audio, cfg.audio), cfg.audio)).tokens


def test_transcription_from_shards(asr, tmp_path):
    """Shards == GGUF token for token; BF16 differs only by the Q4 rounding: the BF16 weights put
    through the same Q4_0 round trip transcribe exactly like the shards, and the audio path agrees
    with the unrounded BF16 model to the quantization error."""
    src, out, _ = asr
    split_file(out, str(tmp_path / "shards"), 150_000)
    audio = _clip()
    g, s, b = open_model(out), open_model(str(tmp_path / "shards")), open_model(src)
    tok_g = _tokens(*_model(g), audio)
    tok_s = _tokens(*_model(s), audio)
    assert tok_s == tok_g, f"seed {SEED}"
    rounded = {n: (dequantize_q4_0(quantize_q4_0(w), w.shape) if g.tensor_type(n) == "Q4_0" else w)
               for n, w in b.weights().items()}
    assert _tokens(*_model(b, rounded), audio) == tok_s, f"seed {SEED}"
    # Unrounded BF16: the audio path differs by the Q4 error. Q4_0 perturbs each weight by ~7% of
    # its block's spread, and the tiny random model (gains 1.5) compounds that over its layers:
    # 0.13..0.32 relative over 20 seeds, hence the loose bound; the rounded model above pins the
    # difference on the rounding exactly. (Greedy tokens of a random model diverge quickly, so the
    # unrounded tokens are not compared.)
    mb, cfg = _model(b)
    mq, _ = _model(s)
    mr, _ = _model(b, rounded)
    mel = log_mel(pad_for_offline(audio, cfg.audio), cfg.audio)
    np.testing.assert_allclose(mr.audio_embeddings(mel), mq.audio_embeddings(mel), rtol=1e-4, atol=1e-5)
    for x, y in ((mb.encode(mel), mq.encode(mel)), (mb.audio_embeddings(mel), mq.audio_embeddings(mel))):
        rel = np.linalg.norm(x - y) / np.linalg.norm(x)
        assert 1e-3 < rel < 0.5, (rel, SEED)


def test_cli_transcribe_from_quantized_shards(asr, tmp_path):
    src, out, _ = asr
    r = subprocess.run([sys.executable, "-m", "voxtral", "shard", out, "-o", str(tmp_path / "sh"), "--max-bytes",
                        "200K", "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    from voxtral.audio import write_wav
    write_wav(str(tmp_path / "a.wav"), _clip(), 16000)
    res = {}
    for k, p in (("gguf", out), ("shards", str(tmp_path / "sh"))):
        r = subprocess.run([sys.executable, "-m", "voxtral", "transcribe", str(tmp_path / "a.wav"), "--model", p,
                            "--format", "json", "--quiet"], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        res[k] = json.loads(r.stdout)["tokens"]
    assert res["gguf"] == res["shards"]


def test_errors(asr, tmp_path, monkeypatch):
    src, out, _ = asr
    with pytest.raises(VoxtralError, match="is an ASR model, not TTS"):
        quantize_model(src, str(tmp_path / "x.gguf"), "tts")
    with pytest.raises(VoxtralError, match="not a directory"):
        quantize_model(out, str(tmp_path / "x.gguf"), "asr")
    gdir = tmp_path / "gdir"
    gdir.mkdir()
    os.link(out, gdir / "m.gguf")
    with pytest.raises(VoxtralError, match="already quantized"):
        quantize_model(str(gdir), str(tmp_path / "x.gguf"))
    notek = tmp_path / "notek"
    notek.mkdir()
    for f in ("params.json", "consolidated.safetensors"):
        os.link(os.path.join(src, f), notek / f)
    with pytest.raises(ModelFormatError, match="no tekken.json"):
        quantize_model(str(notek), str(tmp_path / "x.gguf"))
    # a failure mid-write leaves neither the output nor its temporary file
    calls = {"n": 0}
    real = qmod.quantize_q4_0

    def failing(x):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("disk full")
        return real(x)

    monkeypatch.setattr(qmod, "quantize_q4_0", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        quantize_model(src, str(tmp_path / "y.gguf"))
    assert not os.path.exists(tmp_path / "y.gguf") and not os.path.exists(tmp_path / "y.gguf.tmp")


def test_cli_quantize(asr, tmp_path):
    src, out, _ = asr
    r = subprocess.run([sys.executable, "-m", "voxtral", "quantize", "asr", src, "-o", str(tmp_path / "c.gguf")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / "c.gguf") and "Q4_0" in r.stderr
    assert open(tmp_path / "c.gguf", "rb").read() == open(out, "rb").read(), "deterministic output"
    r = subprocess.run([sys.executable, "-m", "voxtral", "quantize", "tts", src, "-o", str(tmp_path / "d.gguf")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "not TTS" in r.stderr
    h = subprocess.run([sys.executable, "-m", "voxtral", "quantize", "--help"], capture_output=True, text=True)
    assert "Q4_0" in h.stdout and "SRC_DIR" in h.stdout


@pytest.mark.parametrize("where", ["/proc/x/y.gguf", "{file}/y.gguf", "{dir}"])
def test_cli_quantize_to_an_unwritable_place(asr, tmp_path, where):
    """One line and exit status 2 (no traceback): a folder that cannot be made, one under a file,
    and an output path that is a directory."""
    src, _, _ = asr
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    out = where.format(file=tmp_path / "afile", dir=tmp_path / "adir")
    r = subprocess.run([sys.executable, "-m", "voxtral", "quantize", "asr", src, "-o", out, "--quiet"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("voxtral: error: ") and out in lines[0], r.stderr
    assert not os.path.exists(out + ".tmp")


# ---------------------------------------------------------------------------------------------
# Peak memory on real-size tensors: the real [131072, 3072] embedding (805 MB BF16, 1.6 GB as
# float32) plus one encoder and one decoder layer at the real dimensions. Writing the whole 8.9 GB
# model takes minutes; scripts/measure_quantize_memory.py does that (result in its docstring).

def _write_real_size_subset(d):
    from voxtral.presets import asr_params
    p = asr_params("full")
    p["n_layers"] = 1
    p["multimodal"]["whisper_model_args"]["encoder_args"]["n_layers"] = 1
    shapes = asr_tensor_shapes(p)
    os.makedirs(d)
    json.dump(p, open(os.path.join(d, "params.json"), "w"))
    json.dump(model_tekken("asr", p), open(os.path.join(d, "tekken.json"), "w"))
    # BF16 data cut from one random block (drawing 570 M normals would dominate the test's time)
    rng = np.random.default_rng(SEED)
    block = rng.standard_normal(1 << 22).astype(np.float32)
    bits = (block.view(np.uint32) >> 16).astype("<u2").tobytes()
    header, off = {}, 0
    for n, s in shapes.items():
        nb = 2 * math.prod(s)
        header[n] = {"dtype": "BF16", "shape": list(s), "data_offsets": [off, off + nb]}
        off += nb
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    with open(os.path.join(d, "consolidated.safetensors"), "wb") as f:
        f.write(len(blob).to_bytes(8, "little") + blob)
        for i, (n, s) in enumerate(shapes.items()):
            left, k = 2 * math.prod(s), i * 7919 * 2  # start each tensor elsewhere in the block
            while left:
                piece = bits[k % len(bits):][:left]
                f.write(piece)
                left -= len(piece)
                k = 0
    return shapes


# VmHWM (peak resident set of this process image) rather than getrusage's ru_maxrss: Linux carries
# ru_maxrss across fork+exec, so a child of a big pytest process would report the parent's size.
_MEASURE = r"""
import json, sys
from voxtral.prepare.quantize import quantize_model

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])

base = status("VmRSS")
r = quantize_model(sys.argv[1], sys.argv[2], "asr")
print(json.dumps({"base_kb": base, "peak_kb": status("VmHWM"), **r}))
"""


def test_peak_memory_with_real_size_embedding(tmp_path):
    src = str(tmp_path / "subset")
    shapes = _write_real_size_subset(src)
    emb = ASR_PREFIX + "tok_embeddings.weight"
    assert shapes[emb] == (131072, 3072)
    largest_bf16 = 2 * max(math.prod(s) for s in shapes.values())
    out = str(tmp_path / "subset.gguf")
    r = subprocess.run([sys.executable, "-c", _MEASURE, src, out], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    peak = m["peak_kb"] * 1024
    print(f"\nquantize peak RSS {peak / 2**20:.0f} MiB (before: {m['base_kb'] / 1024:.0f} MiB); "
          f"largest tensor {largest_bf16 / 2**20:.0f} MiB BF16; {m['seconds']} s")
    # Streaming: the peak stays far below even one copy of the largest tensor (805 MB BF16) and its
    # float32 (1.6 GB) or Q4 (226 MB) forms.
    assert peak < 400 * 2**20 and peak < largest_bf16 / 2, m
    # spot-check the output: embedding rows and a decoder weight equal the reference quantizer's
    from voxtral.weights.safetensors import SafetensorsFile
    mf = open_model(out)
    st = SafetensorsFile(os.path.join(src, "consolidated.safetensors"))
    begin = st._entries[emb][2]
    bits = np.memmap(st.path, dtype="<u2", mode="r", offset=st.data_start + begin, shape=shapes[emb])
    rows = [0, 1, 65536, 131071]
    x = (bits[rows].astype(np.uint32) << 16).view(np.float32)
    assert np.array_equal(mf.tensor(emb).raw[rows], gguf.quants.quantize(x, Q4))
    w = "layers.0.feed_forward.w2.weight"
    assert np.array_equal(mf.tensor(w).raw, gguf.quants.quantize(st.tensor(w), Q4))
    del bits
    st.close()
