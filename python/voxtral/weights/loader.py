"""One entry point for every form a model can come in.

`open_model(path)` accepts
  * a Mistral directory: `params.json`, `consolidated.safetensors` (BF16), `tekken.json`
    (+ `voice_embedding/*.pt` for TTS);
  * a single `.gguf` (ours carry params and tokenizer as metadata; the community ASR file carries
    none, so the published params are assumed and a `tekken.json` must sit beside it);
  * a directory of byte shards (`shard-aa`, `shard-ab`, ... as `split -b 512m` makes) of one GGUF.
It checks every tensor the model needs against the layout table before any math runs, so a wrong
or incomplete file fails with a message naming the tensor, not with a shape error deep in a matmul.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Iterator

from voxtral.errors import MissingTensorError, ModelFormatError, TensorShapeError, VoxtralError
from voxtral.layout import ASR_PREFIX, asr_tensor_shapes, tts_tensor_shapes

# GGUF metadata keys written by this project (make-test-model, quantize).
KEY_KIND = "voxtral.kind"
KEY_PARAMS = "voxtral.params_json"
KEY_TEKKEN = "voxtral.tekken_json"
VOICE_PREFIX = "voice_embedding."  # TTS voices packed as GGUF tensors: voice_embedding.<name>


def detect_kind(params: dict) -> str:
    mm = params.get("multimodal", {})
    if "whisper_model_args" in mm:
        return "asr"
    if "audio_model_args" in mm:
        return "tts"
    raise ModelFormatError("params.json describes neither Voxtral Realtime (ASR) nor Voxtral TTS "
                           "(no multimodal.whisper_model_args / audio_model_args)")


def expected_shapes(kind: str, params: dict) -> dict[str, tuple[int, ...]]:
    return asr_tensor_shapes(params) if kind == "asr" else tts_tensor_shapes(params)


@dataclass
class ModelFiles:
    """A model located and checked: config, tokenizer JSON and a tensor store.

    Tensors are read on demand (`tensor(name)`) or one at a time (`iter_tensors()`, phase 2),
    so opening a model costs only its header.
    """

    kind: str  # "asr" | "tts"
    format: str  # "mistral" | "gguf" | "shards"
    path: str
    params: dict
    tekken: dict | None
    shapes: dict[str, tuple[int, ...]]
    _reader: Any = field(repr=False)
    voices: dict[str, Any] = field(default_factory=dict, repr=False)  # name -> loader callable

    def tensor(self, name: str):
        """float32 ndarray, or a Q4Tensor for Q4_0 tensors of a GGUF."""
        if name not in self.shapes and name not in self._reader_names():
            raise MissingTensorError(f"{self.path}: no tensor named {name!r}")
        return self._reader.tensor(name)

    def _reader_names(self):
        r = self._reader
        return r.tensors if hasattr(r, "tensors") else r.names

    def iter_tensors(self, names=None) -> Iterator[tuple[str, Any]]:
        """Phase 2: yield (name, value) one at a time; the caller keeps what it needs."""
        wanted = list(self.shapes) if names is None else list(names)
        if hasattr(self._reader, "iter_tensors") and self.format != "mistral":
            for info, value in self._reader.iter_tensors(wanted):
                yield info.name, value
        else:
            for n in wanted:
                yield n, self._reader.tensor(n)

    def tensor_type(self, name: str) -> str:
        if self.format == "mistral":
            return str(self._reader.dtype(name))
        return self._reader.tensors[name].ggml_type.name

    def tokenizer(self, backend: str = "auto"):
        from voxtral.tokenizer import Tekken
        if self.tekken is None:
            raise ModelFormatError(f"{self.path}: no tokenizer (tekken.json) found with this model")
        return Tekken.from_dict(self.tekken, backend=backend)

    def voice(self, name: str):
        """A TTS voice embedding, float32 [N, dim]."""
        if name not in self.voices:
            known = ", ".join(sorted(self.voices)) or "none"
            raise VoxtralError(f"unknown voice {name!r}; this model has: {known}")
        return self.voices[name]()

    def weights(self) -> dict[str, Any]:
        """All tensors in a dict (loads everything: for the numpy backend and tests)."""
        return dict(self.iter_tensors())


def _check_tensors(path: str, have: dict[str, tuple[int, ...]], need: dict[str, tuple[int, ...]]):
    missing = [n for n in need if n not in have]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise MissingTensorError(f"{path}: missing tensor {missing[0]!r}{more}; expected shape "
                                 f"{list(need[missing[0]])}")
    for n, shape in need.items():
        if tuple(have[n]) != tuple(shape):
            raise TensorShapeError(f"{path}: tensor {n!r} has shape {list(have[n])}, expected "
                                   f"{list(shape)}")


def _read_json(path: str, what: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ModelFormatError(f"{what} not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFormatError(f"{path} is not valid JSON ({e})") from None


def _open_mistral_dir(path: str) -> ModelFiles:
    from voxtral.weights.safetensors import SafetensorsFile
    params = _read_json(os.path.join(path, "params.json"), "params.json")
    kind = detect_kind(params)
    st_path = os.path.join(path, "consolidated.safetensors")
    if not os.path.exists(st_path):
        raise ModelFormatError(f"{path}: has params.json but no consolidated.safetensors")
    reader = SafetensorsFile(st_path)
    tek_path = os.path.join(path, "tekken.json")
    tekken = _read_json(tek_path, "tekken.json") if os.path.exists(tek_path) else None
    need = expected_shapes(kind, params)
    _check_tensors(st_path, {n: reader.shape(n) for n in reader.names}, need)
    mf = ModelFiles(kind, "mistral", path, params, tekken, need, reader)
    vdir = os.path.join(path, "voice_embedding")
    if kind == "tts" and os.path.isdir(vdir):
        from voxtral.weights.torch_pt import read_pt_tensor
        for fn in sorted(os.listdir(vdir)):
            if fn.endswith(".pt"):
                mf.voices[fn[:-3]] = (lambda p=os.path.join(vdir, fn): read_pt_tensor(p))
    return mf


def _model_from_gguf(gg, path: str, fmt: str, side_dir: str) -> ModelFiles:
    md = gg.metadata
    if KEY_PARAMS in md:
        params = json.loads(md[KEY_PARAMS])
        kind = md.get(KEY_KIND) or detect_kind(params)
    elif any(n.startswith(ASR_PREFIX) for n in gg.tensors):
        # The community Q4 file carries no metadata the Rust loader read: assume the published
        # ASR hyper-parameters (its tensor shapes are checked against them below).
        from voxtral.presets import asr_params
        params, kind = asr_params("full"), "asr"
    else:
        raise ModelFormatError(f"{path}: GGUF has no {KEY_PARAMS} metadata and no Voxtral tensor names")
    if KEY_TEKKEN in md:
        tekken = json.loads(md[KEY_TEKKEN])
    else:
        tp = os.path.join(side_dir, "tekken.json")
        tekken = _read_json(tp, "tekken.json") if os.path.exists(tp) else None
    need = expected_shapes(kind, params)
    _check_tensors(path, {n: t.shape for n, t in gg.tensors.items()}, need)
    mf = ModelFiles(kind, fmt, path, params, tekken, need, gg)
    for n in gg.tensors:
        if n.startswith(VOICE_PREFIX):
            mf.voices[n[len(VOICE_PREFIX):]] = (lambda n=n: _as_f32(gg.tensor(n)))
    return mf


def _as_f32(t):
    return t.dequantize() if hasattr(t, "dequantize") else t


def open_model(path: str | os.PathLike) -> ModelFiles:
    """Open any supported model form (see module docstring) and check its tensor table."""
    from voxtral.weights.gguf import open_gguf
    from voxtral.weights.sources import ShardedBytes, shard_sources_from_dir
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelFormatError(f"model path does not exist: {path}")
    if os.path.isfile(path):
        if path.endswith(".json"):
            return open_model(os.path.dirname(path) or ".")
        return _model_from_gguf(open_gguf(path), path, "gguf", os.path.dirname(path))
    if os.path.exists(os.path.join(path, "params.json")):
        return _open_mistral_dir(path)
    ggufs = sorted(f for f in os.listdir(path) if f.endswith(".gguf"))
    if len(ggufs) == 1:
        p = os.path.join(path, ggufs[0])
        return _model_from_gguf(open_gguf(p), p, "gguf", path)
    if len(ggufs) > 1:
        raise ModelFormatError(f"{path}: several .gguf files ({', '.join(ggufs)}); name one")
    try:
        sources = shard_sources_from_dir(path)
    except ModelFormatError as e:
        raise ModelFormatError(
            f"{path}: not a model directory (no params.json, no .gguf, and no byte shards: {e})"
        ) from None
    return _model_from_gguf(open_gguf(ShardedBytes(sources)), path, "shards", path)
