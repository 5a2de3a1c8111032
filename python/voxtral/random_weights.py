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


def random_tensor(name: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """A BF16-representable float32 tensor with trained-network-like scale for its role."""
    rng = _rng(seed, name)
    if name.endswith("cluster_usage"):
        x = rng.uniform(1.0, 100.0, size=shape)  # EMA counts: positive
    elif name.endswith("embedding_sum"):
        x = rng.standard_normal(shape) * 5.0
    elif name.endswith("original0"):
        x = rng.uniform(0.5, 1.5, size=shape)  # weight-norm gains: positive
    elif name.endswith(("attention_scale", "ffn_scale")):
        x = 0.1 + 0.05 * rng.standard_normal(shape)  # LayerScale
    elif len(shape) == 1 and "norm" in name:
        x = 1.0 + 0.1 * rng.standard_normal(shape)
    elif len(shape) == 1:
        x = 0.05 * rng.standard_normal(shape)  # biases
    else:
        fan_in = int(np.prod(shape[1:]))
        x = rng.standard_normal(shape) * (_gain(name) / math.sqrt(fan_in))
    return bf16_bits_to_f32(f32_to_bf16_bits(x.astype(np.float32))).reshape(shape)


def random_q4_raw(name: str, shape: tuple[int, int], seed: int) -> np.ndarray:
    """Random Q4_0 blocks directly (full-size models, where quantizing 4.4 B floats would take long).

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
    of random blocks (exactly what `write_gguf(..., quantize_random=True)` stores), the rest as
    float32 arrays. One tensor at a time, so a caller can upload and drop each."""
    for name, shape in model_shapes(kind, params).items():
        if is_q4_candidate(name, shape):
            yield name, Q4Tensor(shape, random_q4_raw(name, shape, seed))
        else:
            yield name, random_tensor(name, shape, seed)
