"""`voxtral make-test-model`: random-weight models in the exact published file formats.

Everything is tested on these: the Mistral layout (params.json with the real keys, BF16
`consolidated.safetensors` with the real names, a tekken.json with the real special tokens and
audio block, TTS voices as `voice_embedding/<name>.pt`), the Q4_0 GGUF written with the `gguf`
package, and byte shards of it as `split -b` makes them.

The values come from `voxtral.random_weights` (one RNG stream per tensor, so the same seed gives the
same tensors in every format and in any order). Weights are scaled like a trained network
(std ~gain/sqrt(fan_in), norms near 1) so that greedy decoding produces varied tokens, and rounded
to BF16 so the BF16 file and an f32 reference hold identical values. The GGUF's Q4_0 tensors are
the quantization (ggml's reference quantizer) of exactly those BF16 values, at every preset: the
full-size ASR GGUF is the Q4 form of the full-size Mistral directory of the same seed. Values are
drawn and quantized in pieces of ~1M, so memory stays at the largest Q4 tensor (~230 MB) plus a
few MB: the full ASR GGUF (2.5 GB) took 105 s with a 356 MB peak on one core of a small VM.
"""
from __future__ import annotations

import json
import math
import os
import tempfile

import numpy as np

from voxtral.layout import is_q4_candidate
from voxtral.prepare.shard import DEFAULT_SHARD_BYTES, split_file  # noqa: F401 (split_file re-exported)
from voxtral.presets import asr_params, tts_params
from voxtral.errors import VoxtralError
from voxtral.random_weights import model_shapes, random_q4_raw, random_tensor, random_tensor_rows, random_voice
from voxtral.weights.loader import KEY_KIND, KEY_PARAMS, KEY_TEKKEN, VOICE_PREFIX
from voxtral.weights.safetensors import write_safetensors_bf16_stream
from voxtral.weights.q4 import BLOCK_BYTES, QK
from voxtral.weights.torch_pt import write_pt_bf16


def model_params(kind: str, preset: str) -> dict:
    return asr_params(preset) if kind == "asr" else tts_params(preset)


def model_tekken(kind: str, params: dict) -> dict:
    from voxtral.tokenizer.build import TTS_VOICE_ROWS, build_tekken_json
    voices = TTS_VOICE_ROWS if kind == "tts" else None
    return build_tekken_json(vocab_size=params["vocab_size"], kind=kind, voices=voices)


def voice_rows() -> dict[str, int]:
    from voxtral.tokenizer.build import TTS_VOICE_ROWS
    return dict(TTS_VOICE_ROWS)


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, leave=False)


def write_mistral_dir(kind: str, out_dir: str, params: dict, seed: int, progress: bool = False) -> str:
    os.makedirs(out_dir, exist_ok=True)
    shapes = model_shapes(kind, params)
    with open(os.path.join(out_dir, "params.json"), "w") as f:
        json.dump(params, f, indent=2)
    with open(os.path.join(out_dir, "tekken.json"), "w") as f:
        json.dump(model_tekken(kind, params), f, ensure_ascii=False)
    bar = _progress(2 * sum(math.prod(s) for s in shapes.values()), "safetensors", progress)
    write_safetensors_bf16_stream(os.path.join(out_dir, "consolidated.safetensors"), shapes,
                                  lambda n, s: random_tensor(n, s, seed), progress=bar)
    if bar is not None:
        bar.close()
    if kind == "tts":
        vdir = os.path.join(out_dir, "voice_embedding")
        os.makedirs(vdir, exist_ok=True)
        for name, rows in voice_rows().items():
            write_pt_bf16(os.path.join(vdir, f"{name}.pt"), random_voice(name, rows, params["dim"], seed),
                          archive=name)
    return out_dir


def quantized_tensor(name: str, shape: tuple[int, int], seed: int) -> np.ndarray:
    """Raw Q4_0 blocks [rows, cols/32*18] of `random_tensor(name, shape, seed)`, quantized with
    gguf's reference quantizer piece by piece as the values are drawn (Q4_0 blocks run along rows,
    so pieces of whole rows quantize as the whole tensor would; the floats are never whole in memory)."""
    import gguf
    rows, cols = math.prod(shape[:-1]), shape[-1]
    out = np.empty((rows, cols // QK * BLOCK_BYTES), dtype=np.uint8)
    for r0, piece in random_tensor_rows(name, shape, seed):
        out[r0:r0 + piece.shape[0]] = gguf.quants.quantize(piece, gguf.GGMLQuantizationType.Q4_0)
    return out


def write_gguf(kind: str, path: str, params: dict, seed: int, progress: bool = False,
               quantize_random: bool = False) -> str:
    """Q4_0 GGUF: 2-D linear weights as the Q4_0 quantization of the BF16 weights
    `write_mistral_dir` writes for the same seed, the rest F32 (voices too).

    quantize_random: store the benchmarks' random Q4 blocks (`random_q4_raw`, what
    `random_weights` yields in memory) instead; not what `make-test-model` writes."""
    import gguf

    shapes = model_shapes(kind, params)
    w = gguf.GGUFWriter(path, arch="voxtral-realtime" if kind == "asr" else "voxtral-tts")
    w.add_string(KEY_KIND, kind)
    w.add_string(KEY_PARAMS, json.dumps(params))
    w.add_string(KEY_TEKKEN, json.dumps(model_tekken(kind, params), ensure_ascii=False))
    Q4 = gguf.GGMLQuantizationType.Q4_0
    plan = []  # (name, shape, is_q4)
    for name, shape in shapes.items():
        q4 = is_q4_candidate(name, shape)
        if q4:
            nbytes = shape[0] * shape[1] // 32 * 18
            w.add_tensor_info(name, (shape[0], shape[1] // 32 * 18), np.dtype(np.uint8), nbytes, raw_dtype=Q4)
        else:
            w.add_tensor_info(name, shape, np.dtype(np.float32), 4 * math.prod(shape))
        plan.append((name, shape, q4))
    if kind == "tts":
        for vname, rows in voice_rows().items():
            shape = (rows, params["dim"])
            w.add_tensor_info(VOICE_PREFIX + vname, shape, np.dtype(np.float32), 4 * rows * params["dim"])
            plan.append((VOICE_PREFIX + vname, shape, None))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    bar = _progress(sum(math.prod(s) for _, s, _ in plan), "gguf (elements)", progress)
    for name, shape, q4 in plan:
        if q4 is None:
            data = random_voice(name[len(VOICE_PREFIX):], shape[0], shape[1], seed)
        elif q4 and quantize_random:
            data = random_q4_raw(name, shape, seed)
        elif q4:
            data = quantized_tensor(name, shape, seed)
        else:
            data = random_tensor(name, shape, seed)
        w.write_tensor_data(np.ascontiguousarray(data))
        if bar is not None:
            bar.update(math.prod(shape))
    if bar is not None:
        bar.close()
    w.close()
    return path


def make_test_model(kind: str, out_dir: str, seed: int = 0, fmt: str = "mistral", preset: str = "tiny",
                    shard_bytes: int = DEFAULT_SHARD_BYTES, progress: bool = False) -> str:
    """Write a random-weight model; returns the path to give `--model`."""
    if kind not in ("asr", "tts"):
        raise ValueError(f"kind must be 'asr' or 'tts', not {kind!r}")
    params = model_params(kind, preset)
    try:
        return _write(kind, out_dir, params, seed, fmt, shard_bytes, progress)
    except OSError as e:  # an unwritable or full place is the user's to fix: one line, no traceback
        where = f" ({e.filename})" if e.filename and os.path.abspath(str(e.filename)) != os.path.abspath(out_dir) else ""
        raise VoxtralError(f"cannot write the test model to {out_dir}{where}: {e.strerror or e}") from None


def _write(kind: str, out_dir: str, params: dict, seed: int, fmt: str, shard_bytes: int, progress: bool) -> str:
    if fmt == "mistral":
        return write_mistral_dir(kind, out_dir, params, seed, progress)
    os.makedirs(out_dir, exist_ok=True)
    if fmt == "gguf":
        return write_gguf(kind, os.path.join(out_dir, f"voxtral-{kind}-q4.gguf"), params, seed, progress)
    if fmt == "shards":
        with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
            g = write_gguf(kind, os.path.join(tmp, f"voxtral-{kind}-q4.gguf"), params, seed, progress)
            split_file(g, out_dir, shard_bytes)
        return out_dir
    raise ValueError(f"format must be mistral, gguf or shards, not {fmt!r}")
