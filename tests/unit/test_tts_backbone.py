"""TTS backbone and generation loop against straightforward float64 references written here.

The backbone reference follows TTS spec 6 line by line (explicit per-head loops, interleaved-pair
RoPE as complex rotations, block-wise GQA, causal softmax). Its rotation table is complex64 like
Mistral's reference (`precompute_freqs_cis`: f32 angles, complex64 cos + i·sin); everything else
is float64.
The loop reference follows spec 7.1 / 7.6 with its own frame embedding (offsets from the formula
8194 + 23·(k-1), not from the config).
"""
import numpy as np
import pytest

from voxtral.backends import NumpyOps
from voxtral.config import TTSConfig
from voxtral.models.tts.generate import frame_limit, generate_frames
from voxtral.models.tts.model import AUDIO_CODEBOOK_EMBEDDINGS, TTSModel
from voxtral.models.tts.prompt import build_tts_prompt, prompt_embeddings
from voxtral.testmodel import make_test_model
from voxtral.weights.loader import open_model

SEED = int(np.random.default_rng().integers(0, 2**31))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    mf = open_model(make_test_model("tts", str(tmp_path_factory.mktemp("tts")), seed=SEED))
    return mf, mf.weights(), TTSConfig.from_params(mf.params, mf.tokenizer().audio_config)


def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope_interleaved(x, pos, theta):
    """x [S, H, hd]: pairs (2i, 2i+1) as complex numbers times e^{i·p·θ^(-2i/hd)}."""
    hd = x.shape[-1]
    inv = (1.0 / np.float32(theta) ** (np.arange(0, hd, 2, dtype=np.float32) / np.float32(hd))).astype(np.float32)
    ang = pos.astype(np.float32)[:, None] * inv[None, :]  # [S, hd/2]
    freqs_cis = np.exp(1j * ang.astype(np.float64)).astype(np.complex64)  # complex64, as Mistral's table
    z = (x[..., 0::2] + 1j * x[..., 1::2]) * freqs_cis.astype(np.complex128)[:, None, :]
    out = np.empty_like(x)
    out[..., 0::2], out[..., 1::2] = z.real, z.imag
    return out


def rope_half_split(x, pos, theta):
    """The NeoX/HF convention: the WRONG one for these weights (used to show the test can tell)."""
    hd = x.shape[-1]
    inv = 1.0 / theta ** (np.arange(0, hd, 2) / hd)
    ang = pos[:, None] * inv[None, :]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    a, b = x[..., : hd // 2], x[..., hd // 2:]
    return np.concatenate([a * c - b * s, a * s + b * c], axis=-1)


def reference_backbone(cfg: TTSConfig, W, x, rope=rope_interleaved):
    c = cfg.backbone
    W = {k: np.asarray(v, dtype=np.float64) for k, v in W.items() if k.startswith(("layers.", "norm."))}
    s_len = x.shape[0]
    pos = np.arange(s_len)
    group = c.n_heads // c.n_kv_heads
    for i in range(c.n_layers):
        p = f"layers.{i}."
        n = rmsnorm(x, W[p + "attention_norm.weight"], c.norm_eps)
        q = (n @ W[p + "attention.wq.weight"].T).reshape(s_len, c.n_heads, c.head_dim)
        k = (n @ W[p + "attention.wk.weight"].T).reshape(s_len, c.n_kv_heads, c.head_dim)
        v = (n @ W[p + "attention.wv.weight"].T).reshape(s_len, c.n_kv_heads, c.head_dim)
        q, k = rope(q, pos, c.rope_theta), rope(k, pos, c.rope_theta)
        o = np.zeros_like(q)
        for h in range(c.n_heads):
            kv = h // group  # block-wise GQA
            sc = q[:, h] @ k[:, kv].T / np.sqrt(c.head_dim)
            sc = np.where(np.tril(np.ones((s_len, s_len), bool)), sc, -np.inf)
            pr = np.exp(sc - sc.max(axis=1, keepdims=True))
            o[:, h] = (pr / pr.sum(axis=1, keepdims=True)) @ v[:, kv]
        x = x + o.reshape(s_len, -1) @ W[p + "attention.wo.weight"].T
        m = rmsnorm(x, W[p + "ffn_norm.weight"], c.norm_eps)
        g, u = m @ W[p + "feed_forward.w1.weight"].T, m @ W[p + "feed_forward.w3.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ W[p + "feed_forward.w2.weight"].T
    return rmsnorm(x, W["norm.weight"], c.norm_eps)


def test_backbone_prefill_vs_reference(tiny):
    mf, W, cfg = tiny
    model = TTSModel(cfg, W, NumpyOps(np.float64))
    tok = mf.tokenizer()
    ids = build_tts_prompt(tok, "Ein kurzer Satz, bitte.", "de_female")
    x = prompt_embeddings(model.ops, model.backbone.tok_embeddings, ids, mf.voice("de_female"), cfg.audio_token_id)
    ours = model.backbone(model.ops, x, np.arange(len(ids)))
    ref = reference_backbone(cfg, W, np.asarray(x))
    assert np.abs(ours - ref).max() < 1e-9, f"seed {SEED}"
    wrong = reference_backbone(cfg, W, np.asarray(x), rope=rope_half_split)
    assert np.abs(ours - wrong).max() > 1e-2, "half-split RoPE must give a different result"


def test_incremental_steps_equal_prefill(tiny):
    """Prefill P-6 rows, then 6 single-row steps through the KV cache == one full prefill."""
    mf, W, cfg = tiny
    ops = NumpyOps(np.float64)
    model = TTSModel(cfg, W, ops)
    x = ops.asarray(np.random.default_rng(SEED).standard_normal((40, cfg.backbone.dim)))
    full = model.backbone(ops, x, np.arange(40))
    caches = model.backbone.new_caches(ops)
    parts = [model.backbone(ops, x[:34], np.arange(34), caches)]
    parts += [model.backbone(ops, x[p:p + 1], [p], caches) for p in range(34, 40)]
    assert np.abs(np.concatenate(parts) - full).max() < 1e-12


def reference_loop(model: TTSModel, W, ids, voice, seed, max_frames):
    """Spec 7.1 written out: frame t's hidden is the backbone output at position P-1+t, frame 0
    from the prompt's trailing [BEGIN_AUDIO] (no [AUDIO] kick); the fed-back input is the sum of
    the 37 code rows only."""
    ops, cfg = model.ops, model.config
    table = np.asarray(W[AUDIO_CODEBOOK_EMBEDDINGS], dtype=np.float64)
    offsets = [0] + [cfg.semantic_codebook_size + 2 + 23 * (k - 1) for k in range(1, 37)]
    inputs = np.asarray(prompt_embeddings(ops, model.backbone.tok_embeddings, ids, voice, 24))
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(max_frames):
        h = model.backbone(ops, ops.asarray(inputs), np.arange(len(inputs)))[-1:]  # no cache: recompute all
        s = model.head.semantic_code(ops, h)
        if s == 1:
            break
        a = model.head.acoustic_codes(ops, h, rng.standard_normal(36))
        frames.append(np.concatenate([[s], a]))
        e = sum(table[off + c] for off, c in zip(offsets, frames[-1]))
        inputs = np.concatenate([inputs, e[None]])
    return np.array(frames).reshape(-1, 37)


@pytest.mark.parametrize("voice,seed", [("hi_male", 3), ("it_female", 8)])
def test_generation_loop_vs_reference(tiny, voice, seed):
    mf, W, cfg = tiny
    model = TTSModel(cfg, W, NumpyOps(np.float64))
    ids = build_tts_prompt(mf.tokenizer(), "Ciao a tutti.", voice)
    voice_rows = mf.voice(voice)
    x = prompt_embeddings(model.ops, model.backbone.tok_embeddings, ids, voice_rows, 24)
    seen = []
    gen = generate_frames(model, x, np.random.default_rng(seed), max_frames=30, on_frame=seen.append)
    ref = reference_loop(model, W, ids, voice_rows, seed, 30)
    assert np.array_equal(gen.frames, ref), f"seed {SEED}"
    assert np.array_equal(np.array(seen).reshape(-1, 37), gen.frames)
    assert gen.ended == (len(gen.frames) < 30) and gen.prompt_len == len(ids)
    if len(gen.frames):
        assert gen.frames[:, 0].min() >= 2 and gen.frames[:, 0].max() < cfg.semantic_codebook_size + 2
        assert gen.frames[:, 1:].min() >= 2 and gen.frames[:, 1:].max() <= 22


def test_frame_limit():
    assert frame_limit(100) == 2048
    assert frame_limit(3000) == 1096  # prompt + frames within the 4096-position context
    assert frame_limit(100, 7) == 7
    assert frame_limit(5000) == 0
