"""Random weights with a trained network's scale, tensor by tensor: the one generator behind
`voxtral make-test-model` (files) and the benchmarks (in memory, natively and in the browser).

numpy + standard library only (it runs inside Pyodide for the page's benchmark mode).
Each tensor comes from its own RNG stream seeded by (seed, crc32(name)), so the same seed gives the
same values in every format, in any order and on every platform (numpy's PCG64 is portable).
"""
from __future__ import annotations

import math
import zlib
from typing import Iterator

import numpy as np

from voxtral.layout import asr_tensor_shapes, is_q4_candidate, tts_tensor_shapes
from voxtral.weights.q4 import BLOCK_BYTES, QK, Q4Tensor
from voxtral.weights.safetensors import f32_to_bf16_bits
from voxtral.weights.torch_pt import bf16_bits_to_f32


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _gain(name: str) -> float:
    """std * sqrt(fan_in) of a weight matrix. A uniform 0.5 gives a nearly position-independent ASR
    model whose greedy output repeats one token; a livelier conv stem and decoder make it follow
    the audio (the same gains as the transformers oracle tests, tests/oracle/hf_asr_oracle.py)."""
    if "conv_layers" in name or name.startswith("layers."):
        return 1.5
    if "embeddings" in name:
        return 1.0
    return 0.5


# Values are drawn in pieces of about this many: the float64 draws and the BF16 rounding then need
# a few MB, not 8x the tensor (3.2 GB for the full ASR embedding). numpy's Generator draws each
# value from the stream in order, so pieces give exactly the values one whole-tensor draw gives.
_CHUNK_ELEMS = 1 << 20


def _draw(rng: np.random.Generator, name: str, shape: tuple[int, ...], n: int) -> np.ndarray:
    """The next n values (float64) of tensor `name`'s distribution, which depends on its role."""
    if name.endswith("cluster_usage"):
        return rng.uniform(1.0, 100.0, size=n)  # EMA counts: positive
    if name.endswith("embedding_sum"):
        return rng.standard_normal(n) * 5.0
    if name.endswith("original0"):
        return rng.uniform(0.5, 1.5, size=n)  # weight-norm gains: positive
    if name.endswith(("attention_scale", "ffn_scale")):
        return 0.1 + 0.05 * rng.standard_normal(n)  # LayerScale
    if len(shape) == 1 and "norm" in name:
        return 1.0 + 0.1 * rng.standard_normal(n)
    if len(shape) == 1:
        return 0.05 * rng.standard_normal(n)  # biases
    fan_in = int(np.prod(shape[1:]))
    return rng.standard_normal(n) * (_gain(name) / math.sqrt(fan_in))


def random_tensor_rows(name: str, shape: tuple[int, ...], seed: int) -> Iterator[tuple[int, np.ndarray]]:
    """`random_tensor` in pieces: (first row, float32 [r, shape[-1]]) over the rows of the tensor
    seen as [prod(shape[:-1]), shape[-1]], in order; the pieces together equal random_tensor."""
    cols = int(shape[-1])
    rows = math.prod(shape[:-1])
    step = max(1, _CHUNK_ELEMS // max(cols, 1))
    rng = _rng(seed, name)
    for r0 in range(0, rows, step):
        r = min(step, rows - r0)
        x = _draw(rng, name, shape, r * cols).astype(np.float32)
        yield r0, bf16_bits_to_f32(f32_to_bf16_bits(x)).reshape(r, cols)


def random_tensor(name: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """A BF16-representable float32 tensor with trained-network-like scale for its role."""
    cols = int(shape[-1])
    out = np.empty((math.prod(shape[:-1]), cols), dtype=np.float32)
    for r0, piece in random_tensor_rows(name, shape, seed):
        out[r0:r0 + piece.shape[0]] = piece
    return out.reshape(shape)


def random_q4_raw(name: str, shape: tuple[int, int], seed: int) -> np.ndarray:
    """Random Q4_0 blocks directly, for the benchmarks' in-memory models (`random_weights`): about
    100x faster than drawing 4.4 B floats and quantizing them, which matters most inside Pyodide.
    Not the quantization of `random_tensor` (`make-test-model --format gguf` writes that one).

    Uniform nibbles give values (n-8)*d with std ~4.6 d; d is set for the std random_tensor gives
    (gain/sqrt(fan_in)), so a Q4 model decodes like the float one of the same seed."""
    rows, cols = shape
    rng = _rng(seed, name)
    raw = np.empty((rows, cols // QK, BLOCK_BYTES), dtype=np.uint8)  # [rows, blocks, 2 scale + 16 nibble bytes]
    d = np.float16(_gain(name) / math.sqrt(cols) / 4.6)
    raw[:, :, 0:2] = np.frombuffer(d.tobytes(), dtype=np.uint8)
    raw[:, :, 2:] = rng.integers(0, 256, size=(rows, cols // QK, BLOCK_BYTES - 2), dtype=np.uint8)
    return raw.reshape(rows, cols // QK * BLOCK_BYTES)


def random_voice(name: str, rows: int, dim: int, seed: int) -> np.ndarray:
    """A voice preset [rows, dim]: like the real ones, frame embeddings of unit-ish scale."""
    x = _rng(seed, "voice." + name).standard_normal((rows, dim)).astype(np.float32)
    return bf16_bits_to_f32(f32_to_bf16_bits(x)).reshape(rows, dim)


def model_shapes(kind: str, params: dict) -> dict[str, tuple[int, ...]]:
    return asr_tensor_shapes(params) if kind == "asr" else tts_tensor_shapes(params)


def random_weights(kind: str, params: dict, seed: int = 0) -> Iterator[tuple[str, object]]:
    """(name, value) for every tensor of the model, in layout order: Q4_0 candidates as Q4Tensor
    of random blocks (`random_q4_raw`: what `write_gguf(..., quantize_random=True)` stores), the
    rest as float32 arrays (`random_tensor`). One tensor at a time, so a caller can upload and drop each."""
    for name, shape in model_shapes(kind, params).items():
        if is_q4_candidate(name, shape):
            yield name, Q4Tensor(shape, random_q4_raw(name, shape, seed))
        else:
            yield name, random_tensor(name, shape, seed)
