"""Voxtral Realtime ASR on the numpy backend vs transformers' VoxtralRealtimeForConditionalGeneration.

Tiny random models (several seeds, two shapes with 2 and 4 query heads per kv head, delays of 160,
480 and 720 ms) are converted to the Mistral layout (hf_asr_oracle.py) and run through our code.
Checked: encoder and adapter outputs, every generate() step's logits, greedy tokens, streaming ≡
offline (also beyond the 750-frame encoder window), and bounded KV memory with tiny windows.
"""
from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch

import hf_asr_oracle as O
from voxtral.backends import NumpyOps, erf
from voxtral.config import ASRConfig
from voxtral.models.asr import ASRModel, ASRStream, prompt_ids, token_times, transcribe
from voxtral.models.layers import KVCache, cached_attention

F32_TOL = 1e-4  # relative (max |Δ| / max |ref|), float32 vs HF float32
F64_TOL = 2e-6  # float64 vs HF "float64": its RMSNorm, softmax and RoPE angles still run in float32
EOS = 2

GQA2 = O.TinyShape("gqa2")  # 4 q heads / 2 kv heads
GQA4 = O.TinyShape("gqa4", enc_dim=48, enc_heads=3, enc_layers=1, dec_dim=64, dec_heads=4,
                   dec_kv_heads=1, dec_head_dim=16, dec_hidden=160, vocab=1100)  # 4 q heads / 1 kv
# very small model for long clips; LONG keeps the real windows, SMALL_WINDOWS bounds the caches hard
LONG = O.TinyShape("long", enc_dim=32, enc_heads=2, enc_hidden=64, enc_layers=1, dec_dim=32,
                   dec_heads=2, dec_kv_heads=1, dec_head_dim=16, dec_hidden=64, dec_layers=1,
                   vocab=1050)
SMALL_WINDOWS = O.TinyShape("small_windows", enc_dim=32, enc_heads=2, enc_hidden=64, enc_layers=2,
                            enc_window=20, dec_dim=32, dec_heads=4, dec_kv_heads=2, dec_head_dim=16,
                            dec_hidden=64, dec_layers=2, dec_window=12, vocab=1050)

# (shape, seed, delay_ms, signal)
CASES = [
    (GQA2, 0, 480, "noise"),
    (GQA2, 1, 160, "vowels"),
    (GQA4, 2, 720, "noise"),
    (GQA4, 3, 480, "vowels"),
    (GQA2, 9, 720, "espeak"),
    (GQA4, 5, 160, "wav"),
]
CASE_IDS = [f"{s.name}-seed{seed}-{ms}ms-{sig}" for s, seed, ms, sig in CASES]


def rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def signal(kind: str, seed: int) -> np.ndarray:
    if kind == "noise":
        return O.noise(2.5, seed)
    if kind == "vowels":
        return O.vowels(2.5, seed)
    if kind == "espeak":
        audio = O.espeak("Hello world, this is a streaming speech test.")
        if audio is None:
            pytest.skip("espeak-ng is not installed")
        return audio
    if kind == "wav":
        d = O.shared_audio_dir()
        if d is None or not (d / "test_speech.wav").exists():
            pytest.skip("shared/data/audio/test_speech.wav is not in this checkout")
        return O.read_wav_mono16k(d / "test_speech.wav")
    raise ValueError(kind)


@pytest.fixture(scope="module")
def oracle():
    """(shape, seed) -> (HF float32 model, Mistral-layout weights, ASRConfig); built once per module."""
    cache = {}

    def get(shape: O.TinyShape, seed: int):
        key = (shape, seed)
        if key not in cache:
            hf = O.build_hf_model(shape, seed)
            cache[key] = (hf, O.mistral_weights(hf, shape), ASRConfig.from_params(O.mistral_params(shape)))
        return cache[key]

    return get


def stream_in_steps(model, mel, delay_ms, first_frames=None, step=8):
    """Push mel as a live stream would: the prompt's frames first, then `step` frames at a time."""
    st = ASRStream(model, delay_ms, keep_logits=True)
    first = st.mel_frames_needed_for_first_token if first_frames is None else first_frames
    per_push = [st.push_mel(mel[:, :first])]
    for s in range(first, mel.shape[1], step):
        per_push.append(st.push_mel(mel[:, s:s + step]))
    return st, per_push


# ------------------------------------------------------------------------------ ops vs torch
def test_erf_matches_math_erf():
    x = np.concatenate([np.linspace(-30, 30, 120001), [0.0, 0.46875, -0.46875, 4.0, -4.0]])
    ref = np.array([math.erf(v) for v in x])
    assert np.abs(erf(x) - ref).max() <= 4.5e-16
    assert erf(x.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-15), (np.float32, 2e-6)])
def test_gelu_matches_torch_exact_gelu(dtype, tol):
    x = np.concatenate([np.linspace(-12, 12, 48001), np.random.default_rng(0).standard_normal(4096) * 3])
    x = x.astype(dtype)
    ours = NumpyOps(dtype).gelu(x)
    ref = torch.nn.functional.gelu(torch.tensor(x)).numpy()
    assert ours.dtype == dtype
    assert np.abs(ours - ref).max() <= tol  # absolute: torch's f32 1 + erf cancels for x < -3
    exact = np.array([0.5 * float(v) * math.erfc(-float(v) / math.sqrt(2.0)) for v in x])
    big = np.abs(exact) > 1e-3
    ulp = 1.2e-7 if dtype == np.float32 else 1e-12
    assert (np.abs(ours - exact)[big] / np.abs(exact)[big]).max() <= ulp
    calm = x > -0.5  # 1 + erf >= 0.6: no cancellation, torch is accurate here too
    assert (np.abs(ours - ref)[calm] / np.maximum(np.abs(ref)[calm], 1e-30)).max() <= 3 * ulp


def test_rope_interleaved_equals_hf_split_half_on_permuted_rows():
    from transformers.models.voxtral_realtime.modeling_voxtral_realtime import (
        VoxtralRealtimeRotaryEmbedding, apply_rotary_pos_emb)
    n_heads, hd, m = 3, 16, 40
    cfg = O.hf_config(O.TinyShape("rope", enc_heads=n_heads, enc_head_dim=hd, enc_dim=n_heads * hd)).audio_config
    rot = VoxtralRealtimeRotaryEmbedding(cfg)
    rng = np.random.default_rng(0)
    pos = np.sort(rng.choice(60000, m, replace=False))  # large absolute positions (f32 angles)
    x_hf = rng.standard_normal((m, n_heads * hd)).astype(np.float32)
    t = torch.tensor(x_hf).view(1, m, n_heads, hd).transpose(1, 2)
    cos, sin = rot(t, torch.tensor(pos)[None])
    ref_hf = apply_rotary_pos_emb(t, t, cos, sin)[0].transpose(1, 2).reshape(m, -1).numpy()
    to_mistral = lambda a: O.hf_rows_to_mistral(a.T, n_heads).T  # noqa: E731  (columns = q rows)
    ours = NumpyOps().rope_interleaved(to_mistral(x_hf), pos, n_heads, hd, 1e6)
    assert rel(ours, to_mistral(ref_hf)) < 1e-6


@pytest.mark.parametrize("n_heads,n_kv,window", [(4, 4, None), (4, 2, 5), (8, 2, 3), (4, 1, None)])
def test_attention_matches_torch_sdpa(n_heads, n_kv, window):
    hd, m = 8, 13
    rng = np.random.default_rng(n_heads * 10 + n_kv)
    q = rng.standard_normal((m, n_heads * hd))
    k = rng.standard_normal((m, n_kv * hd))
    v = rng.standard_normal((m, n_kv * hd))
    pos = np.arange(100, 100 + m)
    allowed = pos[None, :] <= pos[:, None]
    if window is not None:
        allowed &= pos[None, :] > pos[:, None] - window
    tq = torch.tensor(q).view(m, n_heads, hd).transpose(0, 1)
    tk = torch.tensor(k).view(m, n_kv, hd).transpose(0, 1).repeat_interleave(n_heads // n_kv, 0)
    tv = torch.tensor(v).view(m, n_kv, hd).transpose(0, 1).repeat_interleave(n_heads // n_kv, 0)
    ref = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=torch.tensor(allowed))
    ref = ref.transpose(0, 1).reshape(m, -1).numpy()
    ops = NumpyOps(np.float64)
    ours = ops.attention(q, k, v, pos, pos, n_heads, n_kv, hd, window)
    assert np.abs(ours - ref).max() < 1e-12
    perm = rng.permutation(m)  # keys in ring-buffer (storage) order: masks go by position only
    shuffled = ops.attention(q, k[perm], v[perm], pos, pos[perm], n_heads, n_kv, hd, window)
    assert np.abs(shuffled - ref).max() < 1e-12


@pytest.mark.parametrize("stride,left_pad", [(1, 2), (2, 1), (2, 0)])
def test_conv1d_matches_torch(stride, left_pad):
    rng = np.random.default_rng(stride)
    x = rng.standard_normal((20, 5))  # [T, C_in]
    w = rng.standard_normal((7, 5, 3))
    b = rng.standard_normal(7)
    ref = torch.nn.functional.conv1d(torch.nn.functional.pad(torch.tensor(x.T)[None], (left_pad, 0)),
                                     torch.tensor(w), torch.tensor(b), stride=stride)[0].numpy().T
    ours = NumpyOps(np.float64).conv1d(x, w, b, stride, left_pad)
    assert ours.shape == ref.shape and np.abs(ours - ref).max() < 1e-12


class FakeQ4:
    """Stands in for voxtral.weights.q4.Q4Tensor: counts dequantizations and row reads."""

    def __init__(self, dense):
        self.dense, self.shape, self.n_dequant, self.rows_read = dense, dense.shape, 0, []

    def dequantize(self):
        self.n_dequant += 1
        return self.dense.astype(np.float32)

    def row(self, i):
        self.rows_read.append(i)
        return self.dense[i].astype(np.float32)


def test_quantized_weights_dequantize_once_and_rows_on_demand():
    rng = np.random.default_rng(0)
    ops = NumpyOps()
    table = FakeQ4(rng.standard_normal((50, 8)).astype(np.float32))
    emb = ops.embedding_rows(table, [3, 7, 3])
    assert table.n_dequant == 0 and table.rows_read == [3, 7, 3]
    np.testing.assert_array_equal(emb, table.dense[[3, 7, 3]])
    x = rng.standard_normal((2, 8)).astype(np.float32)
    for _ in range(3):
        y = ops.linear(x, table)
    assert table.n_dequant == 1
    np.testing.assert_allclose(y, x @ table.dense.T, rtol=1e-6)


def test_q4_weights_run_like_their_dequantized_values(oracle):
    """Every matrix as a real Q4Tensor (dequantized once, embedding rows on demand) gives the same
    outputs as the dense dequantized weights."""
    q4 = pytest.importorskip("voxtral.weights.q4")
    shape, seed, delay_ms, kind = CASES[0]
    _, weights, cfg = oracle(shape, seed)
    quant = {k: (q4.Q4Tensor.quantize(v) if v.ndim == 2 else v) for k, v in weights.items()}
    dense = {k: (v.dequantize() if isinstance(v, q4.Q4Tensor) else v) for k, v in quant.items()}
    mel = O.hf_mel(O.pad_offline(signal(kind, seed), cfg.audio.num_delay_tokens(delay_ms)))
    a = transcribe(ASRModel(cfg, quant), mel, delay_ms, return_logits=True)
    b = transcribe(ASRModel(cfg, dense), mel, delay_ms, return_logits=True)
    assert a.tokens == b.tokens
    assert rel(np.stack(a.logits), np.stack(b.logits)) < 1e-6


@pytest.mark.parametrize("window", [12, 100, None])
def test_kv_ring_attention_equals_full_attention(window):
    """A ring of window + chunk - 1 rows (grown lazily) gives the same outputs as attending over
    all keys; window None keeps an unbounded cache."""
    base = ASRConfig.from_params(O.mistral_params(SMALL_WINDOWS)).decoder  # GQA 2
    cfg = dataclasses.replace(base, sliding_window=window)
    ops = NumpyOps(np.float64)
    rng = np.random.default_rng(1)
    width, qwidth, chunk = cfg.n_kv_heads * cfg.head_dim, cfg.n_heads * cfg.head_dim, 3
    cap = None if window is None else window + chunk - 1
    ring = KVCache(ops, width, capacity=cap)
    ks, vs = [], []
    for step in range(60):
        pos = np.arange(step * chunk, (step + 1) * chunk)
        q, k, v = rng.standard_normal((chunk, qwidth)), rng.standard_normal((chunk, width)), rng.standard_normal((chunk, width))
        ks.append(k), vs.append(v)
        out = cached_attention(ops, cfg, q, k, v, pos, ring)
        allk = np.concatenate(ks)
        ref = ops.attention(q, allk, np.concatenate(vs), pos, np.arange(len(allk)), cfg.n_heads,
                            cfg.n_kv_heads, cfg.head_dim, cfg.sliding_window)
        assert np.abs(out - ref).max() < 1e-12
        assert cap is None or ring.n_slots <= cap
    assert ring.n_slots == (cap if cap is not None else 256)  # 180 rows: 64 -> 128 -> 256


def test_token_times_convention():
    cfg = ASRConfig.from_params(O.mistral_params(GQA2))
    # delay 6: the first token (output index k = 0) is decided at position 38 -> word end ≈ -80 ms
    t = token_times([38, 39, 50], delay_tokens=6, cfg=cfg)
    np.testing.assert_allclose(t, [-0.08, 0.0, 0.88])


# ------------------------------------------------------------------------ model vs transformers
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_matches_transformers_float32(oracle, case):
    shape, seed, delay_ms, kind = case
    hf, weights, cfg = oracle(shape, seed)
    delay = cfg.audio.num_delay_tokens(delay_ms)
    assert delay == {160: 2, 480: 6, 720: 9}[delay_ms]
    mel = O.hf_mel(O.pad_offline(signal(kind, seed), delay))  # [128, 8N]
    n_pos = mel.shape[1] // 8
    prompt = prompt_ids(cfg, delay)
    model = ASRModel(cfg, weights, NumpyOps(np.float32))

    enc_hf, audio_hf = O.hf_audio(hf, mel)
    enc = model.encode(mel)
    assert enc.shape == (4 * n_pos, shape.enc_dim)
    assert rel(enc, enc_hf) < F32_TOL
    assert rel(model.adapter(model.ops, enc), audio_hf) < F32_TOL

    res = transcribe(model, mel, delay_ms, return_logits=True)
    hf_new, hf_logits = O.hf_generate(hf, prompt, mel, delay)
    ours = res.tokens + ([EOS] if res.eos else [])
    assert ours[:len(hf_new)] == hf_new  # HF stops one step earlier (N - L new tokens)
    if not res.eos:
        assert len(hf_new) == n_pos - len(prompt) and len(res.tokens) == n_pos - len(prompt) + 1
    assert rel(np.stack(res.logits)[:len(hf_logits)], hf_logits) < F32_TOL
    assert res.positions == list(range(len(prompt) - 1, len(prompt) - 1 + len(res.tokens)))
    assert len(set(res.tokens)) >= 3, f"degenerate greedy output {res.tokens}"

    # streaming: prompt frames (8·L) first, then one 8-frame step per token
    st, per_push = stream_in_steps(model, mel, delay_ms)
    assert st.tokens == res.tokens and st.positions == res.positions and st.result.eos == res.eos
    assert per_push[0] == res.tokens[:1] and all(len(p) <= 1 for p in per_push)
    assert rel(np.stack(st.result.logits), np.stack(res.logits)) < 1e-5


@pytest.mark.parametrize("case", [CASES[0], CASES[2]], ids=[CASE_IDS[0], CASE_IDS[2]])
def test_matches_transformers_float64(oracle, case):
    shape, seed, delay_ms, kind = case
    hf32, weights, cfg = oracle(shape, seed)
    hf = copy.deepcopy(hf32).double()
    delay = cfg.audio.num_delay_tokens(delay_ms)
    mel = O.hf_mel(O.pad_offline(signal(kind, seed), delay))
    model = ASRModel(cfg, weights, NumpyOps(np.float64))
    enc_hf, audio_hf = O.hf_audio(hf, mel)
    enc = model.encode(mel)
    assert enc.dtype == np.float64
    assert rel(enc, enc_hf) < F64_TOL
    assert rel(model.adapter(model.ops, enc), audio_hf) < F64_TOL
    res = transcribe(model, mel, delay_ms, return_logits=True)
    hf_new, hf_logits = O.hf_generate(hf, prompt_ids(cfg, delay), mel, delay)
    assert (res.tokens + [EOS] * res.eos)[:len(hf_new)] == hf_new
    assert rel(np.stack(res.logits)[:len(hf_logits)], hf_logits) < F64_TOL


def test_streaming_accepts_irregular_pushes(oracle):
    shape, seed, delay_ms, kind = CASES[1]
    _, weights, cfg = oracle(shape, seed)
    mel = O.hf_mel(O.pad_offline(signal(kind, seed), cfg.audio.num_delay_tokens(delay_ms)))
    model = ASRModel(cfg, weights)
    offline = transcribe(model, mel, delay_ms)
    st = ASRStream(model, delay_ms)
    rng, s = np.random.default_rng(0), 0
    while s < mel.shape[1]:
        n = int(rng.integers(0, 40))
        st.push_mel(mel[:, s:s + n])
        s += n
    assert st.tokens == offline.tokens


def test_long_clip_streaming_equals_offline_beyond_encoder_window(oracle):
    """> 750 encoder frames: the 750-frame window and the encoder KV ring are exercised."""
    hf, weights, cfg = oracle(LONG, 7)
    audio = np.concatenate([O.vowels(6.5, 7), O.noise(6.5, 7, level=0.05)])
    delay = cfg.audio.num_delay_tokens(480)
    mel = O.hf_mel(O.pad_offline(audio, delay))
    n_pos = mel.shape[1] // 8
    assert 4 * n_pos > LONG.enc_window + 50
    model = ASRModel(cfg, weights, NumpyOps(np.float32))

    enc_hf, audio_hf = O.hf_audio(hf, mel)
    enc = model.encode(mel)
    assert rel(enc, enc_hf) < F32_TOL and rel(model.adapter(model.ops, enc), audio_hf) < F32_TOL
    res = transcribe(model, mel, 480, return_logits=True)
    hf_new, hf_logits = O.hf_generate(hf, prompt_ids(cfg, delay), mel, delay)
    assert (res.tokens + [EOS] * res.eos)[:len(hf_new)] == hf_new
    assert rel(np.stack(res.logits)[:len(hf_logits)], hf_logits) < F32_TOL
    assert len(set(res.tokens)) >= 3

    st, _ = stream_in_steps(model, mel, 480)
    assert st.tokens == res.tokens and st.positions == res.positions
    assert rel(np.stack(st.result.logits), np.stack(res.logits)) < 1e-5
    # encoder ring full at window + 4 frames per step - 1; decoder storage grew only to the clip
    slots = st.kv_slots()
    assert slots["encoder"] == LONG.enc_window + 3 and slots["decoder"] <= 2 * n_pos

    # the window has teeth here: a full-causal encoder is measurably different
    full = ASRModel(dataclasses.replace(cfg, encoder=dataclasses.replace(cfg.encoder, sliding_window=None)),
                    weights, NumpyOps(np.float32))
    assert rel(full.encode(mel), enc_hf) > 100 * F32_TOL


def test_long_stream_has_bounded_kv_memory(oracle):
    """Tiny windows (encoder 20 frames, decoder 12 positions) on a clip ~10x longer: the KV rings
    never grow, and every step's logits equal a direct windowed reference (HF full-sequence
    forward with the same sliding-window masks, teacher-forced on our tokens)."""
    hf, weights, cfg = oracle(SMALL_WINDOWS, 8)
    audio = O.vowels(5.0, 8)
    delay = cfg.audio.num_delay_tokens(480)
    mel = O.hf_mel(O.pad_offline(audio, delay))
    prompt = prompt_ids(cfg, delay)
    model = ASRModel(cfg, weights, NumpyOps(np.float32))

    st = ASRStream(model, 480, keep_logits=True)
    bound = {"encoder": SMALL_WINDOWS.enc_window + 3, "decoder": SMALL_WINDOWS.dec_window}
    first = st.mel_frames_needed_for_first_token
    st.push_mel(mel[:, :first])
    for s in range(first, mel.shape[1], 8):
        st.push_mel(mel[:, s:s + 8])
        slots = st.kv_slots()
        assert slots["encoder"] <= bound["encoder"] and slots["decoder"] <= bound["decoder"]
    assert len(st.tokens) > 4 * SMALL_WINDOWS.dec_window
    assert len(set(st.tokens)) >= 3

    ids = prompt + st.tokens[:-1]  # teacher forcing: the token decided at p-1 is fed at p
    ref = O.hf_teacher_logits(hf, ids, mel, delay)[len(prompt) - 1:]
    ours = np.stack(st.result.logits)[:len(ref)]
    assert rel(ours, ref) < F32_TOL
    assert list(ref.argmax(-1)) == st.tokens[:len(ref)]
    assert transcribe(model, mel, 480).tokens == st.tokens
