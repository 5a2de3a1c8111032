"""One ASR model as Mistral BF16 and as Q4_0 GGUF: the GGUF is exactly the BF16 model after the
Q4_0 round trip, as the `gguf` package (ggml's reference quantizer in Python) computes it.

References independent of the code under test: the `safetensors` package (through torch, which
reads BF16) for the BF16 values, `gguf.GGUFReader` for which tensors the file stores as Q4_0, and
`gguf.quants.quantize` / `dequantize` for the round trip. Two GGUFs are checked: the one
`voxtral quantize` makes from the BF16 directory (our quantizer and writer), and make-test-model's
(written from the generator's floats by another path).

Then the model run from the GGUF (Q4Tensor weights, as the CLI loads them) must give the very same
encoder, adapter, logits and tokens as the BF16 model run on the round-tripped weights: all the
difference between BF16 and Q4 is the rounding of the weights. The BF16-vs-Q4 gap itself is
printed and only loosely bounded (it is a property of the random tiny model, not of our code).
"""
import os

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

from voxtral.audio import log_mel, pad_for_offline  # noqa: E402
from voxtral.backends import NumpyOps  # noqa: E402
from voxtral.config import ASRConfig  # noqa: E402
from voxtral.models.asr.model import ASRModel  # noqa: E402
from voxtral.models.asr.transcribe import transcribe  # noqa: E402
from voxtral.prepare.quantize import quantize_model  # noqa: E402
from voxtral.testmodel import make_test_model  # noqa: E402
from voxtral.weights.loader import open_model  # noqa: E402
from voxtral.weights.q4 import Q4Tensor  # noqa: E402

SEED = int(np.random.default_rng().integers(0, 2**31))
Q4 = gguf.GGMLQuantizationType.Q4_0


@pytest.fixture(scope="module")
def forms(tmp_path_factory):
    print(f"model and clip seed {SEED}")
    base = tmp_path_factory.mktemp("forms")
    src = make_test_model("asr", str(base / "bf16"), seed=SEED)
    quantized = str(base / "quantized.gguf")
    quantize_model(src, quantized, "asr")
    generated = make_test_model("asr", str(base / "generated"), seed=SEED, fmt="gguf")
    return src, {"voxtral-quantize": quantized, "make-test-model": generated}


def bf16_values(src: str) -> dict[str, np.ndarray]:
    """consolidated.safetensors read by the safetensors package, BF16 widened to float32."""
    t = safetensors_torch.load_file(os.path.join(src, "consolidated.safetensors"))
    return {k: v.to(torch.float32).numpy() for k, v in t.items()}


def gguf_round_trip(x: np.ndarray) -> np.ndarray:
    return gguf.quants.dequantize(gguf.quants.quantize(x, Q4), Q4).reshape(x.shape)


def q4_names(path: str) -> set[str]:
    return {t.name for t in gguf.GGUFReader(path).tensors if t.tensor_type == Q4}


def clip(seconds: float = 3.0, sr: int = 16000) -> np.ndarray:
    """Vowel-like harmonics with pauses and a little noise, fresh per run."""
    rng = np.random.default_rng(SEED)
    t = np.arange(int(seconds * sr)) / sr
    f0 = rng.uniform(100, 200) + 30 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 12)) * 0.2 * (np.sin(2 * np.pi * 1.3 * t) > -0.3)
    return (x + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.mark.parametrize("form", ["voxtral-quantize", "make-test-model"])
def test_q4_matrices_are_the_gguf_round_trip_of_bf16(forms, form):
    src, paths = forms
    ref = bf16_values(src)
    mf = open_model(paths[form])
    q4 = q4_names(paths[form])
    assert set(mf.shapes) == set(ref)
    # ASR spec 3.2: every 2-D matrix (linears, embedding, adapter, ADA projections) is Q4_0
    assert q4 == {n for n, x in ref.items() if x.ndim == 2}
    for name, w in mf.weights().items():
        if name in q4:
            assert isinstance(w, Q4Tensor), name
            got, want = w.dequantize(), gguf_round_trip(ref[name])
        else:
            got, want = w, ref[name]  # norms, biases, convolutions: F32, the BF16 values exactly
        assert got.dtype == np.float32 and got.shape == want.shape, name
        assert got.tobytes() == want.tobytes(), f"{name} (seed {SEED})"


@pytest.mark.parametrize("form", ["voxtral-quantize", "make-test-model"])
def test_gguf_model_equals_bf16_model_on_round_tripped_weights(forms, form):
    src, paths = forms
    ref = bf16_values(src)
    mf = open_model(paths[form])
    q4 = q4_names(paths[form])
    cfg = ASRConfig.from_params(mf.params, mf.tokenizer().audio_config)
    rounded = {n: (gguf_round_trip(x) if n in q4 else x) for n, x in ref.items()}
    ours = ASRModel(cfg, mf.weights(), NumpyOps())  # Q4Tensor weights, as the CLI runs them
    want = ASRModel(cfg, rounded, NumpyOps())
    mel = log_mel(pad_for_offline(clip(), cfg.audio), cfg.audio)

    enc = ours.encode(mel)
    assert np.array_equal(enc, want.encode(mel)), f"encoder (seed {SEED})"
    adapted = ours.audio_embeddings(mel)
    assert np.array_equal(adapted, want.audio_embeddings(mel)), f"adapter (seed {SEED})"
    a = transcribe(ours, mel, return_logits=True)
    b = transcribe(want, mel, return_logits=True)
    assert a.tokens == b.tokens and a.eos == b.eos, f"tokens (seed {SEED})"
    assert np.array_equal(np.stack(a.logits), np.stack(b.logits)), f"logits (seed {SEED})"
    assert len(a.logits) > 10

    # For information: the unrounded BF16 model. Q4_0 moves each weight by up to half a step of
    # its 32-weight block (~7% of the block's spread, rms) and the tiny random model compounds that
    # over its layers: 0.13..0.32 relative (normwise) over 20 seeds. The bound only catches a
    # gross mismatch (e.g. wrong tensors); the exact checks above pin the difference down.
    bf16 = ASRModel(cfg, ref, NumpyOps())
    for what, x, y in (("encoder", bf16.encode(mel), enc), ("adapter", bf16.audio_embeddings(mel), adapted)):
        r = float(np.linalg.norm(x - y) / np.linalg.norm(x))
        print(f"{form}: BF16 vs Q4 {what} relative difference {r:.3f} (seed {SEED})")
        assert 1e-3 < r < 0.5, (what, r, SEED)
