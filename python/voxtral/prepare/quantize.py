"""`voxtral quantize`: a published BF16 Mistral directory -> one Q4_0 GGUF.

The output uses the community ASR file's layout (ASR spec 3.2): the safetensors names unchanged,
dims reversed (the `gguf` writer does that), Q4_0 for every 2-D linear/embedding weight (ggml's
reference quantizer, byte-identical to `gguf.quants`), everything else F32. So a file made here
and the community's `voxtral-q4.gguf` go through the same loader path. On top of that it carries
what the community file lacks: params.json and tekken.json as metadata (KEY_PARAMS / KEY_TEKKEN,
verbatim) and, for TTS, the voice presets as F32 tensors `voice_embedding.<name>`.

Memory: the GGUF header needs only shapes, so it is written first; then each tensor is read from
the safetensors file in row chunks of ~4M values, quantized and appended. Peak memory is a few
chunks (tens of MB) however large the input (8.9 GB for ASR) or its largest tensor (the 805 MB
BF16 embedding) is. Reads use plain file reads rather than the reader's mmap, because touched
mmap pages count toward the process's resident memory until unmapped.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass

import numpy as np

from voxtral.errors import ModelFormatError, VoxtralError
from voxtral.layout import TTS_CODEC_PREFIX, is_q4_candidate
from voxtral.weights.loader import KEY_KIND, KEY_PARAMS, KEY_TEKKEN, VOICE_PREFIX, open_model
from voxtral.weights.q4 import BLOCK_BYTES, QK, quantize_q4_0
from voxtral.weights.sources import FileSource

ARCH = {"asr": "voxtral-realtime", "tts": "voxtral-tts"}  # general.architecture, as make-test-model
CHUNK_VALUES = 1 << 22  # values converted per step: 16 MB as float32
_ITEMSIZE = {"BF16": 2, "F16": 2, "F32": 4}

# TTS tensors stored Q4_0 besides the transformer layers' linears: the seed project's rules (TTS
# spec 11.1). The codec, the audio-codebook table (37 rows are summed per frame, so errors add), and
# the small precision-critical FM projections stay F32.
_TTS_Q4_EXTRA = frozenset({
    "mm_audio_embeddings.tok_embeddings.weight",
    "acoustic_transformer.llm_projection.weight",
    "acoustic_transformer.time_projection.weight",
    "acoustic_transformer.semantic_codebook_output.weight",
})


def stores_q4(kind: str, name: str, shape: tuple[int, ...]) -> bool:
    """Which tensors the GGUF holds as Q4_0 (the rest are F32)."""
    if not is_q4_candidate(name, shape):
        return False
    if kind == "asr":
        return True  # ASR spec 3.2: every 2-D weight, embedding and ADA projections included
    if name.startswith(TTS_CODEC_PREFIX):
        return False
    return name.startswith(("layers.", "acoustic_transformer.layers.")) or name in _TTS_Q4_EXTRA


@dataclass
class _Item:
    name: str
    shape: tuple[int, ...]
    q4: bool
    dtype: str = "F32"  # source dtype (safetensors) ...
    offset: int = 0  # ... and absolute byte offset in the safetensors file
    voice_path: str | None = None  # or a voice .pt file

    @property
    def values(self) -> int:
        return math.prod(self.shape)

    @property
    def out_nbytes(self) -> int:
        return self.values // QK * BLOCK_BYTES if self.q4 else 4 * self.values

    @property
    def src_nbytes(self) -> int:
        return self.values * _ITEMSIZE[self.dtype]


def _to_f32(raw: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "BF16":  # BF16 is the high half of an f32: exact
        wide = raw.view("<u2").astype(np.uint32)
        np.left_shift(wide, 16, out=wide)
        return wide.view(np.float32)
    if dtype == "F16":
        return raw.view("<f2").astype(np.float32)
    return raw.view("<f4").astype(np.float32, copy=False)


class _StreamedTensor:
    """Stands in for the ndarray `GGUFWriter.write_tensor_data` expects. That method only reads
    `.nbytes` (to check it against the tensor info and pad) and calls `.tofile(fout)`, so producing
    the bytes chunk by chunk here keeps the writer's own padding/offset bookkeeping while never
    materialising the whole tensor."""

    def __init__(self, item: _Item, src: FileSource | None, progress):
        self.item, self.src, self.progress = item, src, progress
        self.nbytes = item.out_nbytes

    def tofile(self, fout) -> None:
        written = 0
        for chunk in self._chunks():
            fout.write(memoryview(np.ascontiguousarray(chunk)).cast("B"))
            written += chunk.nbytes
        if written != self.nbytes:  # would shift every later tensor: never let it pass
            raise ModelFormatError(f"{self.item.name}: wrote {written} bytes, expected {self.nbytes}")

    def _read(self, first_value: int, count: int) -> np.ndarray:
        it = self.item
        size = _ITEMSIZE[it.dtype]
        raw = np.empty(count * size, dtype=np.uint8)
        self.src.read_into(it.offset + first_value * size, raw)
        if self.progress is not None:
            self.progress.update(raw.nbytes)
        return _to_f32(raw, it.dtype)

    def _chunks(self):
        it = self.item
        if it.voice_path is not None:
            from voxtral.weights.torch_pt import read_pt_tensor
            v = read_pt_tensor(it.voice_path)
            if self.progress is not None:
                self.progress.update(2 * v.size)
            yield v.astype("<f4", copy=False)
        elif it.q4:
            rows, cols = math.prod(it.shape[:-1]), it.shape[-1]
            step = max(1, CHUNK_VALUES // cols)  # whole rows: Q4 blocks never straddle a chunk
            for r0 in range(0, rows, step):
                n = min(step, rows - r0)
                yield quantize_q4_0(self._read(r0 * cols, n * cols).reshape(n, cols))
        else:
            for v0 in range(0, it.values, CHUNK_VALUES):
                yield self._read(v0, min(CHUNK_VALUES, it.values - v0)).astype("<f4", copy=False)


def _read_text(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise ModelFormatError(f"{what} not found: {path}") from None


def _a_kind(kind: str) -> str:
    return "an ASR" if kind == "asr" else "a TTS"


def plan(src_dir: str, kind: str | None = None):
    """Check the source and list what will be written: (model, items, params_text, tekken_text)."""
    from voxtral.weights.safetensors import SafetensorsFile
    if not os.path.isdir(src_dir):
        raise VoxtralError(f"{src_dir}: not a directory (give the Mistral model directory with params.json, "
                           f"consolidated.safetensors and tekken.json)")
    model = open_model(src_dir)  # checks every tensor name and shape against the layout
    if model.format != "mistral":
        raise VoxtralError(f"{src_dir} holds a {model.format} model, which is already quantized; quantize "
                           f"takes the BF16 Mistral directory (params.json + consolidated.safetensors)")
    if kind is not None and model.kind != kind:
        raise VoxtralError(f"{src_dir} is {_a_kind(model.kind)} model, not {kind.upper()}")
    if model.tekken is None:
        raise ModelFormatError(f"{src_dir}: no tekken.json; the GGUF must carry the tokenizer")
    st_path = os.path.join(src_dir, "consolidated.safetensors")
    st = SafetensorsFile(st_path)
    items = []
    for name, shape in model.shapes.items():
        # The reader validated the entry; its offsets are needed to read rows without the mmap.
        dtype, _, begin, _ = st._entries[name]
        if dtype not in _ITEMSIZE:
            raise ModelFormatError(f"{st_path}: tensor {name!r} is {dtype}; quantize reads BF16, F16 or F32")
        items.append(_Item(name, tuple(shape), stores_q4(model.kind, name, shape), dtype, st.data_start + begin))
    st.close()
    for name in sorted(model.voices):
        path = os.path.join(src_dir, "voice_embedding", name + ".pt")
        v = model.voice(name)  # small ([N, 3072] BF16); read now for its shape, again when written
        if v.ndim != 2 or v.shape[1] != model.params["dim"]:
            raise ModelFormatError(f"{path}: voice of shape {list(v.shape)}, expected [N, {model.params['dim']}]")
        items.append(_Item(VOICE_PREFIX + name, tuple(v.shape), False, "BF16", voice_path=path))
    params_text = _read_text(os.path.join(src_dir, "params.json"), "params.json")
    tekken_text = _read_text(os.path.join(src_dir, "tekken.json"), "tekken.json")
    return model, items, params_text, tekken_text


def quantize_model(src_dir: str, out_path: str, kind: str | None = None, progress: bool = False) -> dict:
    """Write the Q4_0 GGUF; returns a summary (counts, sizes, seconds)."""
    import gguf

    t0 = time.perf_counter()
    model, items, params_text, tekken_text = plan(src_dir, kind)
    out_dir = os.path.dirname(os.path.abspath(out_path))
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise VoxtralError(f"cannot create the folder {out_dir} for {out_path}: {e.strerror or e}") from None
    tmp = out_path + ".tmp"  # renamed when complete: an interrupted run leaves no half-written .gguf
    w = gguf.GGUFWriter(tmp, arch=ARCH[model.kind])
    w.add_name(os.path.basename(os.path.normpath(src_dir)))
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_0)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_string(KEY_KIND, model.kind)
    w.add_string(KEY_PARAMS, params_text)
    w.add_string(KEY_TEKKEN, tekken_text)
    Q4 = gguf.GGMLQuantizationType.Q4_0
    for it in items:
        if it.q4:
            # the writer takes Q4 tensors by their byte shape and converts it back to elements
            byte_shape = (*it.shape[:-1], it.shape[-1] // QK * BLOCK_BYTES)
            w.add_tensor_info(it.name, byte_shape, np.dtype(np.uint8), it.out_nbytes, raw_dtype=Q4)
        else:
            w.add_tensor_info(it.name, it.shape, np.dtype(np.float32), it.out_nbytes)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=sum(it.src_nbytes for it in items), unit="B", unit_scale=True,
                   desc=f"quantize {model.kind}", leave=False)
    src = FileSource(os.path.join(src_dir, "consolidated.safetensors"))
    try:
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        for it in items:
            w.write_tensor_data(_StreamedTensor(it, src, bar))
        w.close()
        os.replace(tmp, out_path)
    except BaseException as e:
        with contextlib.suppress(Exception):  # the original error is the one worth reporting
            w.close()
        with contextlib.suppress(OSError):
            if os.path.exists(tmp):
                os.remove(tmp)
        if isinstance(e, OSError):  # unwritable place, disk full, a vanished source: one line, no traceback
            where = out_path if e.filename in (None, tmp) else e.filename  # tmp: our name, not the user's
            raise VoxtralError(f"cannot quantize {src_dir} to {out_path}: {where}: {e.strerror or e}") from None
        raise
    finally:
        src.close()
        if bar is not None:
            bar.close()
    n_q4 = sum(it.q4 for it in items)
    return {"path": out_path, "kind": model.kind, "tensors": len(items), "q4": n_q4,
            "f32": len(items) - n_q4, "voices": len(model.voices), "bytes": os.path.getsize(out_path),
            "seconds": round(time.perf_counter() - t0, 2)}
