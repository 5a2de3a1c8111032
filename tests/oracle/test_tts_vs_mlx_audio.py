"""Flow-matching head, codec decoder and the whole generation loop against mlx-audio 0.6.2
(`mlx_audio.tts.models.voxtral_tts`, run on the CPU with mlx[cpu]) on tiny random-weight models.

Where mlx-audio 0.6.2 deviates from the reference (vLLM-Omni, TTS spec 12.1) the test follows the
spec and says so here:

* ALiBi slopes: mlx-audio uses textbook ALiBi (r, r², …, starting at r = 2^(-8/n)); the reference
  codec uses 1, r, r², … (vLLM-Omni `get_alibi_slopes`, spec 8.4). The tests patch mlx-audio's
  `_get_alibi_slopes` with the reference formula (`test_alibi_slopes_deviation` pins the difference).
* Streaming: mlx-audio re-decodes chunks with 16 frames of context, fewer than the 21 the codec's
  receptive field needs (spec 10), so its streamed audio is not the whole-utterance audio. Our
  streaming is tested against our whole-utterance decode instead (tests/unit/test_tts_codec.py);
  here the whole-utterance mlx audio is the reference for our (always streamed) output.
* The "[AUDIO] kick" that spec 12.1 lists for mlx-audio is gone in 0.6.2 (its generate() now uses the
  prefill's last hidden state for frame 0, like the reference), so the generation loop is compared
  as is.

Numerics: the FM head runs in float64 on both sides (mlx forms its time embedding in float32, as
the reference does; so do we). Its codes are compared as they are; for the continuous ODE result
before FSQ rounding (1e-10), mlx's float32-accurate exp/sigmoid/rsqrt in softmax, SiLU and RMSNorm
are swapped for exact float64 ones written here, and mlx is given our time embedding (checked first
to equal its own to float32 rounding). mlx has no float64 convolution, so for the float64 codec run the
test swaps in float64 conv1d / conv_transpose1d primitives written here from PyTorch's definitions
(every other part of mlx's codec, padding and trimming included, is mlx-audio's own code); its
attention softmax still runs in float32, which bounds the agreement at ~1e-7.
"""
from pathlib import Path

import numpy as np
import pytest

from voxtral.backends import NumpyOps
from voxtral.config import TTSConfig
from voxtral.models.tts.codec import CodecDecoder, alibi_slopes
from voxtral.models.tts.flow_matching import FlowMatchingHead, euler_timesteps, time_embedding
from voxtral.testmodel import make_test_model
from voxtral.tts_pipeline import TTSPipeline
from voxtral.weights.loader import open_model

mx = pytest.importorskip("mlx.core")
nn = pytest.importorskip("mlx.nn")
ah = pytest.importorskip("mlx_audio.tts.models.voxtral_tts.acoustic_head")
at = pytest.importorskip("mlx_audio.tts.models.voxtral_tts.audio_tokenizer")
vt = pytest.importorskip("mlx_audio.tts.models.voxtral_tts.voxtral_tts")

SEED = int(np.random.default_rng().integers(0, 2**31))
E2E_MODEL_SEED = 0  # the end-to-end cases below were picked for non-trivial lengths on this model
E2E_CASES = [("ar_male", 1), ("fr_female", 0), ("neutral_female", 1)]  # (voice, noise seed)
E2E_TEXT = "Hello world, this is a test."


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    mf = open_model(make_test_model("tts", str(tmp_path_factory.mktemp("tts")), seed=SEED))
    return mf, mf.weights(), TTSConfig.from_params(mf.params, mf.tokenizer().audio_config)


@pytest.fixture
def reference_slopes(monkeypatch):
    monkeypatch.setattr(at, "_get_alibi_slopes", lambda n: mx.array(alibi_slopes(n), dtype=mx.float32))


def _load(module, weights, prefix, dtype=None):
    ws = [(k[len(prefix):], mx.array(v)) for k, v in weights.items() if k.startswith(prefix)]
    module.load_weights(ws, strict=False)
    from mlx.utils import tree_flatten
    have = {k for k, _ in tree_flatten(module.parameters())}
    missing = {k for k, _ in ws} - have
    assert not missing, f"mlx module has no parameter for {sorted(missing)[:3]}"
    if dtype is not None:
        module.set_dtype(dtype)
    return module


def mlx_fm(cfg: TTSConfig, weights, steps: int, alpha: float):
    fm = cfg.flow
    args = ah.AcousticTransformerArgs(
        input_dim=cfg.backbone.dim, dim=fm.dim, n_layers=fm.n_layers, head_dim=fm.head_dim,
        hidden_dim=fm.hidden_dim, n_heads=fm.n_heads, n_kv_heads=fm.n_kv_heads, norm_eps=fm.norm_eps,
        semantic_codebook_size=cfg.semantic_codebook_size, acoustic_codebook_size=cfg.acoustic_codebook_size,
        n_acoustic_codebook=cfg.n_acoustic_codebook, n_denoising_steps=steps + 1, cfg_alpha=alpha)
    w64 = {k: v.astype(np.float64) for k, v in weights.items()}
    return _load(ah.FlowMatchingAudioTransformer(args), w64, "acoustic_transformer.", mx.float64)


def f64(x) -> "mx.array":
    """A float64 mlx array (mx.array of a float64 ndarray would give float32)."""
    return mx.array(np.asarray(x, dtype=np.float64), dtype=mx.float64)


FM_CASES = [(7, 1.2), (3, 1.0), (4, 2.0)]  # (Euler steps, CFG alpha)


@pytest.mark.parametrize("steps,alpha", FM_CASES)
def test_flow_matching_codes_identical(tiny, monkeypatch, steps, alpha):
    """Semantic code and 36 FSQ codes per frame, same backbone hidden and same noise, float64."""
    mf, weights, cfg = tiny
    ref = mlx_fm(cfg, weights, steps, alpha)
    ops = NumpyOps(np.float64)
    head = FlowMatchingHead(cfg, weights)
    rng = np.random.default_rng(SEED)
    noise = {}
    monkeypatch.setattr(mx.random, "normal", lambda shape, *a, **k: f64(noise["x"].reshape(shape)))
    sem_seen = set()
    for f in range(40):
        h = rng.standard_normal((1, cfg.backbone.dim)) * rng.uniform(0.5, 4.0)
        noise["x"] = rng.standard_normal(cfg.n_acoustic_codebook)
        want = np.array(ref.decode_one_frame(f64(h)))[0]
        got_s = head.semantic_code(ops, ops.asarray(h))
        got_a = head.acoustic_codes(ops, ops.asarray(h), noise["x"], steps, alpha)
        assert got_s == want[0], f"frame {f}: semantic {got_s} vs {want[0]} (seed {SEED})"
        assert np.array_equal(got_a, want[1:]), f"frame {f}: acoustic codes differ (seed {SEED})"
        sem_seen.add(got_s)
    assert len(sem_seen) > 5, "the semantic head should pick varied codes on random hiddens"


# mlx evaluates exp, sigmoid and rsqrt on float64 arrays only to float32 accuracy (mx.exp: ~1e-7
# relative), so for the ODE comparison below its three nonlinearities are swapped for exact float64
# ones (numpy, written here from their definitions); everything else is mlx-audio's own code.
def _softmax_f64(x, axis=-1, **_):
    a = np.array(x)
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return f64(e / e.sum(axis=axis, keepdims=True))


def _silu_f64(x):
    a = np.array(x)
    return f64(a / (1.0 + np.exp(-a)))


def _rms_norm_f64(x, weight, eps):
    a = np.array(x)
    return f64(a / np.sqrt((a * a).mean(axis=-1, keepdims=True) + eps) * np.array(weight))


FM_STATE_TOL = 1e-10  # max |Δ| of the ODE's final state x (|x| ~ 1), float64 on both sides


@pytest.mark.parametrize("steps,alpha", FM_CASES)
def test_flow_matching_ode_state_float64(tiny, monkeypatch, steps, alpha):
    """The continuous result of the Euler + CFG solve (`acoustic_values`, before FSQ rounding)
    against mlx's x_t, per frame, in float64.

    The codes above are coarse: FSQ rounds x to 21 levels, so an error that moves x by less than a
    level's width mostly goes unseen (a CFG weight off by 1e-3 passed them). Here what is left is
    float64 rounding (~1e-15 measured); a CFG weight off by 1e-6 already exceeds the tolerance.
    Both sides must see the same time embedding for that: mlx evaluates cos/sin in float32, we
    evaluate them in float64 of the same float32 argument, a 1-ulp difference (~4e-8, checked
    first) that the network would carry into x at ~1e-7; mlx is given ours."""
    mf, weights, cfg = tiny
    ref = mlx_fm(cfg, weights, steps, alpha)
    ops = NumpyOps(np.float64)
    head = FlowMatchingHead(cfg, weights)
    ts = euler_timesteps(steps)[:-1]
    theirs = np.array(ref._time_embedding(mx.array(ts.astype(np.float32))))
    assert np.abs(theirs - time_embedding(ts, cfg.flow.dim)).max() < 2e-7

    monkeypatch.setattr(ah.TimeEmbedding, "__call__",
                        lambda self, t: f64(time_embedding(np.array(t).reshape(-1), cfg.flow.dim)))
    monkeypatch.setattr(mx, "softmax", _softmax_f64)
    monkeypatch.setattr(nn, "silu", _silu_f64)
    monkeypatch.setattr(mx.fast, "rms_norm", _rms_norm_f64)
    noise = {}
    monkeypatch.setattr(mx.random, "normal", lambda shape, *a, **k: f64(noise["x"].reshape(shape)))
    # decode_one_frame's first mx.clip receives the ODE result x_t (it then clips it to [-1, 1] and
    # rounds it to the FSQ levels): record that argument
    real_clip, seen_x = mx.clip, []
    monkeypatch.setattr(mx, "clip", lambda x, *a, **k: seen_x.append(np.array(x)) or real_clip(x, *a, **k))
    rng = np.random.default_rng(SEED + 2)
    worst = 0.0
    for f in range(20):
        h = rng.standard_normal((1, cfg.backbone.dim)) * rng.uniform(0.5, 4.0)
        noise["x"] = rng.standard_normal(cfg.n_acoustic_codebook)
        seen_x.clear()
        ref.decode_one_frame(f64(h))
        want = seen_x[0]
        assert want.dtype == np.float64 and want.shape == (1, cfg.n_acoustic_codebook)
        got = np.asarray(ops.to_host(head.acoustic_values(ops, ops.asarray(h), noise["x"], steps, alpha)))
        err = float(np.abs(got - want).max())
        assert err <= FM_STATE_TOL, f"frame {f}: ODE state max |Δ| {err:.3g} (seed {SEED})"
        assert np.abs(want).max() > 0.1
        worst = max(worst, err)
    print(f"steps {steps}, alpha {alpha}: ODE state max |Δ| vs mlx {worst:.3g}")


def _conv1d_f64(x, w, stride=1, padding=0):
    """PyTorch Conv1d (cross-correlation) in mlx's channels-last layout: x (B, L, Cin), w (Cout, K, Cin)."""
    assert padding == 0
    _, length, c_in = x.shape
    c_out, k, _ = w.shape
    n = (length - k) // stride + 1
    cols = mx.stack([x[:, j:j + (n - 1) * stride + 1:stride, :] for j in range(k)], axis=2)  # (B, n, K, Cin)
    return cols.reshape(x.shape[0], n, k * c_in) @ w.reshape(c_out, k * c_in).T


def _conv_transpose1d_f64(x, w, stride=1, padding=0):
    """PyTorch ConvTranspose1d, untrimmed: x (B, T, Cin), w (Cout, K, Cin) -> (B, (T-1)·s + K, Cout)."""
    assert padding == 0
    b, t, _ = x.shape
    c_out, k, _ = w.shape
    out = mx.zeros((b, (t - 1) * stride + k, c_out), dtype=x.dtype)
    for j in range(k):
        out = out.at[:, j:j + (t - 1) * stride + 1:stride, :].add(x @ w[:, j, :].T)
    return out


def mlx_codec(mf, weights, dtype):
    a = mf.params["multimodal"]["audio_tokenizer_args"]
    args = at.AudioTokenizerArgs(**{k: v for k, v in a.items() if k in at.AudioTokenizerArgs.__dataclass_fields__})
    return _load(at.VoxtralTTSAudioTokenizer(args), weights, "audio_tokenizer.", dtype)


def random_codes(cfg: TTSConfig, n: int, rng) -> np.ndarray:
    sem = rng.integers(2, cfg.semantic_codebook_size + 2, (n, 1))
    ac = rng.integers(2, cfg.acoustic_codebook_size + 2, (n, cfg.n_acoustic_codebook))
    return np.concatenate([sem, ac], axis=1)


def test_codec_waveform(tiny, reference_slopes, monkeypatch):
    mf, weights, cfg = tiny
    codes = random_codes(cfg, 40, np.random.default_rng(SEED))
    monkeypatch.setattr(mx, "conv1d", _conv1d_f64)
    monkeypatch.setattr(mx, "conv_transpose1d", _conv_transpose1d_f64)
    ref = np.array(mlx_codec(mf, weights, mx.float64).decode(mx.array(codes[None]))[0])
    assert ref.shape == (40 * cfg.samples_per_frame,)
    for dtype in (np.float64, np.float32):
        ours = CodecDecoder(cfg.codec, weights, dtype)(NumpyOps(dtype), codes)
        err = np.abs(ours - ref).max()
        assert err < 1e-5, f"{np.dtype(dtype).name}: max |Δ| {err:.3g} (seed {SEED})"
    assert np.abs(ref).max() > 0.1


def test_codec_waveform_float32_mlx(tiny, reference_slopes):
    """mlx's own float32 path, unpatched convolutions."""
    mf, weights, cfg = tiny
    codes = random_codes(cfg, 12, np.random.default_rng(SEED + 1))
    ref = np.array(mlx_codec(mf, weights, None).decode(mx.array(codes[None]))[0])
    ours = CodecDecoder(cfg.codec, weights, np.float32)(NumpyOps(np.float32), codes)
    assert np.abs(ours - ref).max() < 1e-5


def test_alibi_slopes_deviation():
    """Reference: 1, r, r², … (r = 2^(-8/n)); mlx-audio 0.6.2: r, r², … (textbook ALiBi)."""
    ours = alibi_slopes(8)
    assert np.allclose(ours, [2.0 ** -h for h in range(8)])
    theirs = np.array(at._get_alibi_slopes(8))
    assert np.allclose(theirs, ours * 0.5), "mlx-audio changed its slopes: revisit the patch above"


def mlx_tts_model(path, weights, mf):
    m = vt.Model(vt.ModelConfig.from_dict(mf.params))
    sw = m.sanitize({k: mx.array(v) for k, v in weights.items()})
    m.load_weights(list(sw.items()), strict=False)
    vt.Model.post_load_hook(m, Path(path))  # mistral-common tokenizer from the same tekken.json
    return m


def test_generation_loop_end_to_end(tmp_path, reference_slopes, monkeypatch):
    """mlx-audio's Model.generate (float32) vs TTSPipeline.synthesize (numpy float32): same prompt,
    same per-frame noise -> the same frames, frame by frame, the same stop, and the same audio."""
    path = make_test_model("tts", str(tmp_path / "m"), seed=E2E_MODEL_SEED)
    mf = open_model(path)
    weights = mf.weights()
    ref = mlx_tts_model(path, weights, mf)
    pipe = TTSPipeline(mf, backend="numpy", weights=weights)
    decode = ref.acoustic_transformer.decode_one_frame
    total = 0
    for voice, seed in E2E_CASES:
        ref._voice_embeddings[voice] = mx.array(mf.voice(voice))
        rng = np.random.default_rng(seed)  # the pipeline draws standard_normal(36) per frame likewise
        monkeypatch.setattr(mx.random, "normal",
                            lambda shape, *a, **k: mx.array(rng.standard_normal(shape).astype(np.float32)))
        frames = []
        monkeypatch.setattr(ref.acoustic_transformer, "decode_one_frame",
                            lambda h: frames.append(np.array(decode(h))[0]) or mx.array(frames[-1][None]))
        want_audio = np.array(list(ref.generate(E2E_TEXT, voice=voice, max_tokens=120))[-1].audio)
        want = np.stack(frames)
        assert want[-1, 0] == 1, "mlx run should end with END_AUDIO"
        speech = pipe.synthesize(E2E_TEXT, voice, seed=seed, normalize=False)
        assert speech.segments[0]["ended"]
        assert speech.frames.shape == (len(want) - 1, 37), f"{voice}: frame count differs"
        for i, (g, w) in enumerate(zip(speech.frames, want)):
            assert np.array_equal(g, w), f"{voice} seed {seed}: frame {i} differs"
        assert speech.audio.shape == want_audio.shape
        assert np.abs(speech.audio - want_audio).max() < 1e-5
        total += len(speech.frames)
    assert total > 100
