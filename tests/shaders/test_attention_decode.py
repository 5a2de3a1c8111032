"""attention_decode.wgsl (Kernels.attn_decode = "v2", the default; VOXTRAL_ATTN_DECODE=v1: off) against the float64
numpy reference of test_kernels.py, on fresh random inputs (seeds as in test_kernels.py).

The kernel replaces `attention` for a few query rows; each test checks which entry point ran, so a
case that silently fell back to the old kernel cannot pass as a test of the new one. On lavapipe
(8-lane subgroups) the butterflies use both of the kernel's paths: shuffles for partners 1-4 lanes
apart and workgroup memory for 8 and 16 (a 32-lane device only shuffles).
"""
from __future__ import annotations


import numpy as np
import pytest

from voxtral.backends.webgpu import Kernels
from kernel_helpers import max_rel, seed_of
from test_kernels import NAN_BITS, attention_chunks

# bounds as test_kernels.py's attention tests: f32 cache 5e-6 normwise; f16 cache 2e-3
BOUND = {"f32": 5e-6, "f16": 2e-3}


def _entries(k: Kernels, seq: list) -> list[str]:
    names = {id(p): key[1] for key, p in k._pipelines.items()}
    return [names[id(d.pipeline)] for d in seq]


def _decode_steps(host, *, kv_dtype, n_heads, n_kv, hd, window, capacity, chunks, seed,
                  shader_f16=False, min_split_keys=None, decode="v2", use_subgroups=None,
                  defines=()):
    """test_kernels.attention_chunks with the decode kernel's switches. Returns (worst normwise
    error over the chunks, {rows: attention entry points of that chunk size's list})."""
    k = Kernels(host, use_shader_f16=shader_f16, use_subgroups=use_subgroups)
    k.attn_decode, k.attn_decode_min_gqa = decode, 1
    k.attn_rows = False  # prefill chunks through `attention` here (attention_rows: test_kernels.py)
    if defines:
        k.extra_defines = frozenset(defines)
    if min_split_keys:
        k.attn_min_split_keys = min_split_keys
        k.attn_decode_min_split_keys = min_split_keys  # many segments, empty ones included
    worst, seqs = attention_chunks(k, kv_dtype=kv_dtype, n_heads=n_heads, n_kv=n_kv, hd=hd,
                                   window=window, capacity=capacity, chunks=chunks, seed=seed)
    used = {rows: [e for e in _entries(k, seq) if e.startswith("attention")] for rows, seq in seqs.items()}
    return worst, used


def _needs_subgroups(host):
    if not host.has_subgroups:
        pytest.skip("adapter has no subgroups")


@pytest.mark.parametrize("kv_dtype,shader_f16", [("f32", False), ("f16", False), ("f16", True)],
                         ids=["f32", "f16-packed", "f16-shader"])
@pytest.mark.parametrize("gqa", [1, 4])
@pytest.mark.parametrize("hd", [32, 64, 128])
@pytest.mark.parametrize("rows", [1, 3])
def test_attention_decode_ring_and_window(host, kv_dtype, shader_f16, gqa, hd, rows, record_error):
    """Decode steps of 1 or 3 rows with the window (20) smaller than the context and the ring
    (capacity 26) wrapped several times: positions run to ~60-90."""
    _needs_subgroups(host)
    if shader_f16 and not host.has_shader_f16:
        pytest.skip("adapter has no shader-f16")
    seed = seed_of("attn_decode", kv_dtype, shader_f16, gqa, hd, rows)
    n_steps = 60 if rows == 1 else 30
    err, used = _decode_steps(host, kv_dtype=kv_dtype, shader_f16=shader_f16, n_heads=2 * gqa,
                              n_kv=2, hd=hd, window=20, capacity=26, chunks=[rows] * n_steps,
                              seed=seed)
    assert used == {rows: ["attention_decode", "attention_decode_combine"]}, used
    record_error(f"attention_decode ({kv_dtype} kv)", err)
    assert err < BOUND[kv_dtype], f"seed={seed} err={err:.3g}"


@pytest.mark.parametrize("min_split_keys", [None, 1, 5], ids=["auto-split", "split1", "split5"])
@pytest.mark.parametrize("kv_dtype", ["f32", "f16"])
@pytest.mark.parametrize("n_heads,n_kv,hd,chunks,window,capacity", [
    (8, 2, 128, [100] * 3 + [1] * 3, 600, 700),  # prefill (old kernel), then decode over 300+ keys
    (16, 2, 128, [1] * 40, 64, 64),              # gqa 8: two head blocks per kv head
    (6, 2, 96, [2] * 25, 300, 40),               # gqa 3 (a part-filled block), idle lanes (24 vec4)
    (4, 2, 64, [4] * 20, 24, 27),                # streaming chunks: ring = window + 3, wraps
    (2, 2, 64, [4] * 10, 300, 16),               # ring smaller than the window: only what it holds
    (4, 4, 16, [1] * 80, 70, 75),                # head_dim 16: 8 keys per lane team step
])
def test_attention_decode_shapes_and_splits(host, min_split_keys, kv_dtype, n_heads, n_kv, hd,
                                            chunks, window, capacity, record_error):
    _needs_subgroups(host)
    seed = seed_of("attn_decode_split", kv_dtype, min_split_keys, n_heads, n_kv, hd, chunks, window,
                   capacity)
    err, used = _decode_steps(host, kv_dtype=kv_dtype, n_heads=n_heads, n_kv=n_kv, hd=hd,
                              window=window, capacity=capacity, chunks=chunks, seed=seed,
                              min_split_keys=min_split_keys)
    for rows, entries in used.items():
        want = (["attention_decode", "attention_decode_combine"] if rows <= 4
                else ["attention", "attention_combine"])
        assert entries == want, (rows, entries)
    record_error(f"attention_decode ({kv_dtype} kv)", err)
    assert err < BOUND[kv_dtype], f"seed={seed} err={err:.3g}"


@pytest.mark.parametrize("target", [64, 100000], ids=["target64", "max-splits"])
def test_attention_decode_combine_many_segments(host, target, monkeypatch, record_error):
    """attention_decode_combine over 32 segments (one chunk) and over 256 (the host's cap: more
    than its 128 lanes, 8 chunks; 600 keys make 200 segments of 3 and leave 56 empty)."""
    _needs_subgroups(host)
    from voxtral.backends.webgpu import kernels as kernels_module
    monkeypatch.setattr(kernels_module, "ATTN_DECODE_TARGET_GROUPS", target)
    seed = seed_of("attn_decode_many", target)
    err, used = _decode_steps(host, kv_dtype="f32", n_heads=8, n_kv=2, hd=64, window=600,
                              capacity=650, chunks=[100] * 6 + [1] * 3 + [2] * 2, seed=seed,
                              min_split_keys=1)
    assert used[1] == used[2] == ["attention_decode", "attention_decode_combine"], used
    k = Kernels(host)
    k.attn_decode, k.attn_decode_min_split_keys, k.attn_decode_min_gqa = "v2", 1, 1
    g = k.empty((1, 8 * 64))
    seq: list = []
    k.attention(seq, g, k.kv_cache(650, 128), k.kv_cache(650, 128), k.empty((1,), "u32"), g,
                8, 2, 64, 600)
    assert seq[0].workgroups == (2, 1, 256 if target > 1000 else 32), seq[0].workgroups
    record_error("attention_decode (f32 kv)", err)
    assert err < BOUND["f32"], f"seed={seed} err={err:.3g}"


def test_attention_decode_switch_from_environment(host, monkeypatch):
    monkeypatch.setenv("VOXTRAL_ATTN_DECODE", "v2")
    k = Kernels(host)
    assert k.attn_decode == "v2"
    assert k.uses_attention_decode(1) == k.uses_attention_decode(4) == host.has_subgroups
    assert not k.uses_attention_decode(5) and not k.uses_attention_decode(1, gqa=1)
    monkeypatch.setenv("VOXTRAL_ATTN_DECODE", "v1")
    assert not Kernels(host).uses_attention_decode(1)
    monkeypatch.setenv("VOXTRAL_ATTN_DECODE", "all")  # also 1:1 heads
    assert Kernels(host).uses_attention_decode(1, gqa=1) == host.has_subgroups
    monkeypatch.delenv("VOXTRAL_ATTN_DECODE")
    assert Kernels(host).attn_decode == "v2"  # the default


@pytest.mark.parametrize("defines", [("DECODE_B2",), ("DECODE_B8",)], ids="+".join)
def test_attention_decode_shader_variants(host, defines, record_error):
    """The shader's variants for A/B timing (VOXTRAL_SHADER_DEFINES): 2 or 8 key steps per
    iteration instead of 4."""
    _needs_subgroups(host)
    seed = seed_of("attn_decode_variant", defines)
    err, used = _decode_steps(host, kv_dtype="f16", n_heads=8, n_kv=2, hd=128, window=50,
                              capacity=60, chunks=[1] * 70 + [3] * 5, seed=seed, min_split_keys=3,
                              defines=defines)
    assert used == {r: ["attention_decode", "attention_decode_combine"] for r in (1, 3)}, used
    assert err < BOUND["f16"], f"seed={seed} err={err:.3g}"


@pytest.mark.parametrize("decode,use_subgroups", [("v2", False), ("", True), ("v1", True)],
                         ids=["v2-no-subgroups", "off", "other-value"])
def test_attention_decode_falls_back_to_the_old_kernel(host, decode, use_subgroups, record_error):
    """Without subgroups, or with the switch not "v2", decode steps run `attention`, still right."""
    if use_subgroups:
        _needs_subgroups(host)
    seed = seed_of("attn_decode_fallback", decode, use_subgroups)
    err, used = _decode_steps(host, kv_dtype="f32", n_heads=8, n_kv=2, hd=64, window=20,
                              capacity=26, chunks=[1] * 30 + [3] * 5, seed=seed, decode=decode,
                              use_subgroups=use_subgroups)
    assert used == {r: ["attention", "attention_combine"] for r in (1, 3)}, used
    assert err < BOUND["f32"], f"seed={seed} err={err:.3g}"


def test_attention_decode_agrees_with_old_kernel(host):
    """Both kernels on the decoder's shapes (32 heads, 8 kv heads, head_dim 128, f16 cache, 300
    keys): their outputs differ only by f32 rounding (other segments, other summation order)."""
    _needs_subgroups(host)
    seed = seed_of("attn_decode_ab")
    outs = []
    for decode in ("", "v2"):
        rng = np.random.default_rng(seed)
        k = Kernels(host)
        k.attn_decode, k.attn_decode_min_gqa = decode, 1
        n_heads, n_kv, hd, cap, window, n = 32, 8, 128, 512, 400, 300
        width = n_kv * hd
        kc, vc = k.kv_cache(cap, width, "f16"), k.kv_cache(cap, width, "f16")
        k.write(kc, rng.standard_normal((cap, width)).astype(np.float16))
        k.write(vc, rng.standard_normal((cap, width)).astype(np.float16))
        q = k.tensor(rng.standard_normal((1, n_heads * hd)).astype(np.float32))
        pos = k.tensor(np.array([n - 1], np.uint32))
        out = k.empty((1, n_heads * hd))
        k.fill_bits(out, NAN_BITS)
        seq: list = []
        k.attention(seq, q, kc, vc, pos, out, n_heads, n_kv, hd, window)
        assert _entries(k, seq)[0] == ("attention_decode" if decode else "attention")
        k.run(seq)
        outs.append(k.read(out))
    assert max_rel(outs[1], outs[0]) < 2e-6, f"seed={seed}"


# ------------------------------------------------------------------ the whole ASR test model
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from voxtral.config import ASRConfig
    from voxtral.testmodel import make_test_model
    from voxtral.weights.loader import open_model
    from kernel_helpers import SESSION_SEED

    path = make_test_model("asr", str(tmp_path_factory.mktemp("asr")), seed=SESSION_SEED,
                           fmt="gguf")
    mf = open_model(path)
    cfg = ASRConfig.from_params(mf.params, mf.tokenizer().audio_config)
    return cfg, mf.weights()


def test_asr_decode_tokens_equal_with_attention_decode(host, tiny):
    """The tiny ASR model's greedy decode gives the same tokens (step by step and as the replayed
    step graph) and nearly the same logits with the switch on as off, and runs attention_decode."""
    _needs_subgroups(host)
    from voxtral.audio import log_mel, pad_for_offline
    from voxtral.backends.webgpu.ops import WebGPUOps
    from voxtral.models.asr.model import ASRModel
    from voxtral.models.asr.transcribe import transcribe
    from kernel_helpers import SESSION_SEED

    cfg, w = tiny
    rng = np.random.default_rng(seed_of("asr_attn_decode"))
    t = np.arange(int(3.0 * 16000)) / 16000
    x = 0.2 * np.sin(2 * np.pi * (150 + 50 * np.sin(3 * t)) * t)
    x = x + 0.05 * rng.standard_normal(t.size)
    mel = log_mel(pad_for_offline(x.astype(np.float32), cfg.audio), cfg.audio)
    results = {}
    for decode in ("", "v2"):
        ops = WebGPUOps(host)
        ops.k.attn_decode, ops.k.attn_decode_min_gqa = decode, 1
        model = ASRModel(cfg, w, ops)
        # with logits kept every step is recorded afresh; without, one graph is replayed per token
        results[decode] = (transcribe(model, mel, return_logits=True),
                           transcribe(model, mel).tokens)
        used = {key[1] for key in ops.k._pipelines if key[0] == "attention_decode.wgsl"}
        assert used == ({"attention_decode", "attention_decode_combine"} if decode else set()), used
    (ref, ref_replayed), (got, got_replayed) = results[""], results["v2"]
    assert len(ref.tokens) > 5 and ref_replayed == ref.tokens, f"seed {SESSION_SEED}"
    assert got.tokens == ref.tokens and got_replayed == ref.tokens, f"seed {SESSION_SEED}"
    for a, b in zip(ref.logits, got.logits):
        assert np.abs(a - b).max() <= 1e-4 * np.abs(a).max(), f"seed {SESSION_SEED}"
