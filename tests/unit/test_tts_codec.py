"""Codec building blocks against torch (independent definitions) and streaming against the
whole-utterance decode (TTS spec 10: a window re-decode with >= 21 frames of left context equals
the full decode; the chunk schedule is 5 frames until 25 are out, then 25)."""
import numpy as np
import pytest

from voxtral.backends import NumpyOps
from voxtral.config import TTSConfig
from voxtral.models.tts.codec import (MIN_CONTEXT_FRAMES, CodecDecoder, StreamingCodec, alibi_slopes,
                                      fold_weight_norm, pad_left, semantic_table)
from voxtral.models.tts.flow_matching import fsq_codes, fsq_values
from voxtral.presets import tts_params
from voxtral.testmodel import make_test_model
from voxtral.weights.loader import open_model

torch = pytest.importorskip("torch")
F = torch.nn.functional
SEED = int(np.random.default_rng().integers(0, 2**31))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    mf = open_model(make_test_model("tts", str(tmp_path_factory.mktemp("tts")), seed=SEED))
    return mf.weights(), TTSConfig.from_params(mf.params, mf.tokenizer().audio_config)


def random_codes(cfg, n, rng):
    return np.concatenate([rng.integers(2, cfg.semantic_codebook_size + 2, (n, 1)),
                           rng.integers(2, 23, (n, cfg.n_acoustic_codebook))], axis=1)


def test_config_windows_slopes_and_rates():
    cfg = TTSConfig.from_params(tts_params("full"))
    assert cfg.codec.windows == (2, 4, 8, 16)
    assert cfg.codec.samples_per_frame == 1920 and cfg.codec.latent_dim == 292
    assert cfg.codebook_offsets[:3] == (0, 8194, 8217) and cfg.codebook_offsets[-1] == 8194 + 23 * 35
    assert np.allclose(alibi_slopes(8), [1, 1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64, 1 / 128])
    assert np.allclose(alibi_slopes(4), [1, 1 / 4, 1 / 16, 1 / 64])


def test_weight_norm_fold_vs_torch():
    rng = np.random.default_rng(SEED)
    g = rng.uniform(0.5, 1.5, (6, 1, 1)).astype(np.float32)
    v = rng.standard_normal((6, 5, 3)).astype(np.float32)
    for module in (torch.nn.Conv1d(5, 6, 3, bias=False), torch.nn.ConvTranspose1d(6, 5, 3, bias=False)):
        wn = torch.nn.utils.parametrizations.weight_norm(module)  # dim 0: out (Conv1d) / in (ConvTranspose1d)
        with torch.no_grad():
            wn.parametrizations.weight.original0.copy_(torch.from_numpy(g))
            wn.parametrizations.weight.original1.copy_(torch.from_numpy(v))
        assert np.abs(fold_weight_norm(g, v, np.float64) - wn.weight.detach().double().numpy()).max() < 1e-6


def test_semantic_table_clamps_usage():
    s = np.ones((3, 2), np.float32)
    u = np.array([2.0, 0.0, 1e-7], np.float32)
    assert np.allclose(semantic_table(s, u, np.float64), [[0.5, 0.5], [1e5, 1e5], [1e5, 1e5]])


def test_conv_ops_and_pads_vs_torch():
    rng = np.random.default_rng(SEED)
    ops = NumpyOps(np.float64)
    x = rng.standard_normal((9, 4))  # [T, C_in]
    xt = torch.from_numpy(x.T[None])  # [1, C_in, T]
    w = rng.standard_normal((5, 4, 3))
    for mode, n in (("replicate", 2), ("reflect", 6)):
        ours = ops.conv1d(pad_left(ops, x, n, mode), w[:, :, :1] if n == 6 else w, None, 1, 0)
        ref = F.conv1d(F.pad(xt, (n, 0), mode=mode), torch.from_numpy(w[:, :, :1] if n == 6 else w))
        assert np.allclose(ours, ref[0].numpy().T, atol=1e-12), mode
    wt = rng.standard_normal((4, 5, 4))  # ConvTranspose1d layout [in, out, k]
    ours = ops.conv_transpose1d(x, wt, 2)
    ref = F.conv_transpose1d(xt, torch.from_numpy(wt), stride=2)[0].numpy().T
    assert ours.shape == ref.shape == (2 * 8 + 4, 5) and np.allclose(ours, ref, atol=1e-12)


def test_fsq_round_trip_and_ties():
    x = np.array([-3.0, -1.0, -0.75, -0.05, 0.0, 0.049, 0.95, 1.0, 7.0])
    codes = fsq_codes(x, 21)
    # clamp first; -0.75 -> 2.5 levels -> 2 (half to even); -0.05 -> 9.5 -> 10; 0.95 -> 19.5 -> 20
    assert codes.tolist() == [2, 2, 4, 12, 12, 12, 22, 22, 22]
    assert np.allclose(fsq_values(codes, 21), [-1, -1, -0.8, 0, 0, 0, 1, 1, 1])
    grid = np.linspace(-1, 1, 21)
    assert np.array_equal(fsq_codes(grid, 21), np.arange(2, 23))


def test_codec_cuts_at_end_audio(tiny):
    W, cfg = tiny
    ops = NumpyOps(np.float64)
    dec = CodecDecoder(cfg.codec, W, np.float64)
    codes = random_codes(cfg, 8, np.random.default_rng(SEED))
    end = codes.copy()
    end[5, 0] = 1
    assert np.array_equal(dec(ops, end), dec(ops, codes[:5]))
    assert dec(ops, codes[:0]).shape == (0,)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 2e-5)])
def test_streaming_equals_whole_utterance(tiny, dtype, tol):
    W, cfg = tiny
    ops = NumpyOps(dtype)
    dec = CodecDecoder(cfg.codec, W, dtype)
    codes = random_codes(cfg, 67, np.random.default_rng(SEED))
    whole = dec(ops, codes)
    stream = StreamingCodec(dec, ops)
    chunks = [c for c in (stream.push(f) for f in codes) if c is not None]
    chunks.append(stream.flush())
    assert stream.flush() is None
    spf = cfg.samples_per_frame
    assert [len(c) // spf for c in chunks] == [5, 5, 5, 5, 5, 25, 17]  # the reference schedule
    got = np.concatenate(chunks)
    assert got.shape == whole.shape == (67 * spf,)
    assert np.abs(got - whole).max() < tol, f"seed {SEED}"


def test_context_must_cover_the_receptive_field(tiny):
    W, cfg = tiny
    ops = NumpyOps(np.float64)
    dec = CodecDecoder(cfg.codec, W, np.float64)
    with pytest.raises(ValueError, match="context"):
        StreamingCodec(dec, ops, context=MIN_CONTEXT_FRAMES - 1)
    codes = random_codes(cfg, 50, np.random.default_rng(SEED))
    whole = dec(ops, codes)
    spf = cfg.samples_per_frame
    for ctx in (MIN_CONTEXT_FRAMES, 25):  # one window [30 - ctx, 50): frames 30..49 exact
        got = dec(ops, codes[30 - ctx:])[ctx * spf:]
        assert np.abs(got - whole[30 * spf:]).max() < 1e-10
    # Without context the window start pads (replicate / reflect) leak into the kept frames.
    assert np.abs(dec(ops, codes[30:]) - whole[30 * spf:]).max() > 1e-6
