"""One entry point for every form a model can come in.

`open_model(path)` accepts
  * a Mistral directory: `params.json`, `consolidated.safetensors` (BF16), `tekken.json`
    (+ `voice_embedding/*.pt` for TTS);
  * a single `.gguf` (ours carry params and tokenizer as metadata; the community ASR file carries
    none, so the published params are assumed and a `tekken.json` must sit beside it);
  * a directory of byte shards (`shard-aa`, `shard-ab`, ... as `split -b 512m` makes) of one GGUF,
    optionally with a `manifest.json` (written by `voxtral shard`: names, sizes, sha256). When the
    manifest is there, names and sizes are checked on open (cheap: a stat per shard) and
    `open_model(..., verify=True)` / `verify_shards(dir)` also check every sha256.
It checks every tensor the model needs against the layout table before any math runs, so a wrong
or incomplete file fails with a message naming the tensor, not with a shape error deep in a matmul.
"""
from __future__ import annotations

import hashlib
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

# Byte-shard manifest (written by `voxtral shard`, read here, by the server and by the browser loader):
# {"format": "gguf-shards", "source", "total_size", "sha256" (whole file, optional),
#  "shards": [{"name", "size", "sha256"}, ...]} with the shards in stream order.
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "gguf-shards"


def detect_kind(params: dict) -> str:
    if not isinstance(params, dict):
        raise ModelFormatError(f"params.json must hold a JSON object, not {type(params).__name__}")
    mm = params.get("multimodal", {})
    if not isinstance(mm, dict):
        raise ModelFormatError("params.json: 'multimodal' must be a JSON object")
    if "whisper_model_args" in mm:
        return "asr"
    if "audio_model_args" in mm:
        return "tts"
    raise ModelFormatError("params.json describes neither Voxtral Realtime (ASR) nor Voxtral TTS "
                           "(no multimodal.whisper_model_args / audio_model_args)")


MAX_LAYERS = 1024  # a params.json asking for more is corrupt (the real models have 26..32)


def _check_counts(node, where: str = "params.json") -> None:
    """Layer counts (every `*n_layers*` key, every `*_lengths_str` list) must be small whole
    numbers: the layout loops over them, so a corrupt 10^9 would exhaust memory before any check."""
    if isinstance(node, dict):
        for k, v in node.items():
            here = f"{where}: {k}"
            if "n_layers" in str(k) and not (isinstance(v, int) and not isinstance(v, bool)
                                             and 0 <= v <= MAX_LAYERS):
                raise ModelFormatError(f"{here} = {str(v)[:40]} is not a layer count (0 .. {MAX_LAYERS})")
            if str(k).endswith("_lengths_str"):
                parts = str(v).split(",")
                if len(parts) > 64 or not all(p.strip().isdigit() and int(p) <= MAX_LAYERS for p in parts):
                    raise ModelFormatError(f"{here} = {str(v)[:40]!r} is not a list of layer counts")
            _check_counts(v, here)


def expected_shapes(kind: str, params: dict) -> dict[str, tuple[int, ...]]:
    _check_counts(params)
    try:
        return asr_tensor_shapes(params) if kind == "asr" else tts_tensor_shapes(params)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        what = f"missing key {e}" if isinstance(e, KeyError) else f"{type(e).__name__}: {str(e)[:120]}"
        raise ModelFormatError(f"params.json does not describe a Voxtral {kind.upper()} model ({what})") from None


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
    except (ValueError, UnicodeDecodeError, RecursionError) as e:  # ValueError: JSONDecodeError and kin
        raise ModelFormatError(f"{path} is not valid JSON ({str(e)[:120]})") from None
    except IsADirectoryError:
        raise ModelFormatError(f"{what} is a directory, not a file: {path}") from None


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
        params = _json_value(md[KEY_PARAMS], f"{path}: GGUF metadata {KEY_PARAMS}")
        kind = detect_kind(params)
        if md.get(KEY_KIND) not in (None, kind):
            raise ModelFormatError(f"{path}: GGUF metadata {KEY_KIND}={str(md.get(KEY_KIND))[:20]!r} "
                                   f"but its params describe {'an ASR' if kind == 'asr' else 'a TTS'} model")
    elif any(n.startswith(ASR_PREFIX) for n in gg.tensors):
        # The community Q4 file carries no metadata the Rust loader read: assume the published
        # ASR hyper-parameters (its tensor shapes are checked against them below).
        from voxtral.presets import asr_params
        params, kind = asr_params("full"), "asr"
    else:
        raise ModelFormatError(f"{path}: GGUF has no {KEY_PARAMS} metadata and no Voxtral tensor names")
    if KEY_TEKKEN in md:
        tekken = _json_value(md[KEY_TEKKEN], f"{path}: GGUF metadata {KEY_TEKKEN}")
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


def _json_value(text, what: str):
    if not isinstance(text, str):
        raise ModelFormatError(f"{what} is not a string")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ModelFormatError(f"{what} is not valid JSON ({str(e)[:120]})") from None


def _as_f32(t):
    return t.dequantize() if hasattr(t, "dequantize") else t


def read_manifest(path: str | os.PathLike) -> dict | None:
    """The parsed `manifest.json` of a shard directory (None if there is none), schema-checked."""
    mp = os.path.join(os.fspath(path), MANIFEST_NAME)
    if not os.path.exists(mp):
        return None
    m = _read_json(mp, MANIFEST_NAME)
    try:
        ok = (m.get("format") == MANIFEST_FORMAT and isinstance(m["shards"], list) and m["shards"]
              and all(isinstance(e["name"], str) and isinstance(e["size"], int) and isinstance(e["sha256"], str)
                      # plain names only: a manifest must not point outside its directory
                      and e["name"] == os.path.basename(e["name"]) not in ("", ".", "..")
                      for e in m["shards"]))
    except (AttributeError, KeyError, TypeError):
        ok = False
    if not ok:
        raise ModelFormatError(f"{mp}: not a shard manifest (expected format {MANIFEST_FORMAT!r} and a "
                               f"non-empty list of shards with name, size and sha256)")
    return m


def check_manifest(path: str | os.PathLike, manifest: dict | None = None) -> dict:
    """Names and sizes of the shards against the manifest: a stat per shard, no reading.

    Catches a missing, truncated, extended or extra shard before any byte is parsed (a shifted
    byte stream would otherwise surface as a confusing GGUF error, or not at all)."""
    path = os.fspath(path)
    m = manifest if manifest is not None else read_manifest(path)
    if m is None:
        raise ModelFormatError(f"{path}: no {MANIFEST_NAME} (make one with `voxtral shard`)")
    names = [e["name"] for e in m["shards"]]
    for e in m["shards"]:
        p = os.path.join(path, e["name"])
        if not os.path.isfile(p):
            raise ModelFormatError(f"{path}: shard {e['name']!r} listed in {MANIFEST_NAME} is missing "
                                   f"({len(names)} shards expected: {names[0]} .. {names[-1]})")
        size = os.path.getsize(p)
        if size != e["size"]:
            what = "truncated or incomplete download" if size < e["size"] else "extra bytes appended"
            raise ModelFormatError(f"{path}: shard {e['name']!r} is {size} bytes but {MANIFEST_NAME} says "
                                   f"{e['size']} ({what}); download or re-create it")
    total = sum(e["size"] for e in m["shards"])
    if "total_size" in m and m["total_size"] != total:
        raise ModelFormatError(f"{path}/{MANIFEST_NAME}: total_size {m['total_size']} is not the sum of "
                               f"the shard sizes ({total})")
    from voxtral.weights.sources import shard_sources_from_dir
    found = [os.path.basename(s.path) for s in shard_sources_from_dir(path)]
    if found != names:
        extra = [n for n in found if n not in names]
        raise ModelFormatError(f"{path}: the shard files on disk ({', '.join(found)}) are not the ones "
                               f"{MANIFEST_NAME} lists ({', '.join(names)})"
                               + (f"; unexpected: {', '.join(extra)}" if extra else ""))
    return m


def file_sha256(path: str, progress=None, block: int = 8 << 20) -> str:
    """sha256 of a file read in 8 MiB blocks; `progress.update(nbytes)` per block when given."""
    h = hashlib.sha256()
    buf = bytearray(block)
    view = memoryview(buf)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
            if progress is not None:
                progress.update(n)
    return h.hexdigest()


def verify_shards(path: str | os.PathLike, progress=None) -> dict:
    """`check_manifest` plus the sha256 of every shard (reads every byte: ~1 s per GB).

    Raises ModelFormatError naming the first corrupted shard; returns the manifest."""
    path = os.fspath(path)
    m = check_manifest(path)
    for e in m["shards"]:
        got = file_sha256(os.path.join(path, e["name"]), progress)
        if got != e["sha256"].lower():
            raise ModelFormatError(f"{path}: shard {e['name']!r} is corrupted: sha256 {got} but "
                                   f"{MANIFEST_NAME} says {e['sha256']}; download or re-create it")
    return m


def open_model(path: str | os.PathLike, verify: bool = False) -> ModelFiles:
    """Open any supported model form (see module docstring) and check its tensor table.

    verify: for a shard directory with a manifest, also check every shard's sha256."""
    from voxtral.weights.gguf import open_gguf
    from voxtral.weights.sources import ShardedBytes, shard_sources_from_dir
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelFormatError(f"model path does not exist: {path}")
    if os.path.isfile(path):
        if path.endswith(".json"):
            return open_model(os.path.dirname(path) or ".", verify)
        return _model_from_gguf(open_gguf(path), path, "gguf", os.path.dirname(path))
    if os.path.exists(os.path.join(path, "params.json")):
        return _open_mistral_dir(path)
    ggufs = sorted(f for f in os.listdir(path) if f.endswith(".gguf"))
    if len(ggufs) == 1:
        p = os.path.join(path, ggufs[0])
        return _model_from_gguf(open_gguf(p), p, "gguf", path)
    if len(ggufs) > 1:
        raise ModelFormatError(f"{path}: several .gguf files ({', '.join(ggufs)}); name one")
    manifest = read_manifest(path)
    if manifest is not None:
        # before listing the shards, so a missing one is named from the manifest
        if verify:
            verify_shards(path)
        else:
            check_manifest(path, manifest)
    try:
        sources = shard_sources_from_dir(path)
    except ModelFormatError as e:
        raise ModelFormatError(
            f"{path}: not a model directory (no params.json, no .gguf, and no byte shards: {e})"
        ) from None
    return _model_from_gguf(open_gguf(ShardedBytes(sources)), path, "shards", path)
