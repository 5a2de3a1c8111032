"""The WGSL kernels (shaders/*.wgsl) as Python methods, over any GPUHost.

Each kernel method appends one or more `Dispatch`es to a list the caller owns; `Kernels.run(list)`
submits them as one command encoder / compute pass. Because positions, token ids and the KV ring
live in GPU buffers, a decode step's list can be built once and re-run every step. Pipelines,
uniform parameter buffers and bind groups are created on first use and cached (creating a bind
group costs ~0.6 ms on lavapipe; reusing one costs nothing).

Host-agnostic: imports only numpy and the standard library (this module also runs in Pyodide).

Tensors
  GPUTensor  activations and small parameters: a buffer + shape + dtype ('f32', 'f16', 'u32',
             'i32'), optionally a 2-D view (`offset`, `row_stride`, in elements) into a wider
             matrix, e.g. the q/k/v column ranges of a fused QKV output.
  GPUWeight  a [N, K] matrix ('q4_0' raw GGUF bytes, 'f32', or 'f16' raw halves) stored as row
             blocks, each its own buffer no larger than maxStorageBufferBindingSize; matmuls and
             the embedding gather issue one dispatch per block.

Shader files may pull in a shared fragment with `// #include NAME.wgsl` (tile_gemm.wgsl: the
register-blocked tile product of the tiled kernels). Shader variants come from a tiny line preprocessor: `// #if NAME` / `// #if !NAME` / `// #else` /
`// #endif` on their own lines (nestable). Global names: SUBGROUPS (use subgroup shuffles),
SHADER_F16 (read f16 data as WGSL f16 instead of unpack2x16float; same bytes either way).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .host import Dispatch, GPUHost

SHADERS_ENV = "VOXTRAL_SHADERS_DIR"
DEFINES_ENV = "VOXTRAL_SHADER_DEFINES"
_MARKER_SHADER = "q4_matvec.wgsl"  # a file that identifies the shaders folder
Q4_BLOCK_BYTES = 18
Q4_BLOCK = 32
Q4_PAD_BYTES = 4   # the Q4 kernels read one word past an even block's end
MAX_M_MATVEC = 4   # q4_matvec keeps M accumulators per lane
MATVEC_ROWS_PER_GROUP = 4   # q4_matvec.wgsl ROWS
ATTN_MAX_HEAD_DIM = 128
ATTN_TARGET_GROUPS = 512     # split decode attention until about this many workgroups run
ATTN_MIN_SPLIT_KEYS = 256    # ... but give each split at least this many keys
# attention_decode.wgsl (the default; VOXTRAL_ATTN_DECODE=v1: off): a workgroup serves up to 4
# query heads of one kv head, so the decoder's decode step has 8 workgroups per key segment where
# `attention` has 32.
# More segments: shorter serial key walks, but a longer combine (its cost grows with the segment
# count). H100, decoder shapes, f16 cache, one row, attention + combine per layer (us), target 128
# (16 segments) / 256 (32): 300 keys 10.1/10.1, 1000 keys 11.8/11.3, 3000 keys 19.3/16.1, 8192
# keys 38.0/28.0 (old kernel: 14.1, 20.1, 38.3, 84.8); 512 (64 segments) gained < 1 us at 8192
# keys and lost 3.5 us at 300.
ATTN_DECODE_ENV = "VOXTRAL_ATTN_DECODE"
ATTN_ROWS_ENV = "VOXTRAL_ATTN_ROWS"
GEMM8_ENV = "VOXTRAL_GEMM8"
ATTN_ROWS_PER_GROUP = 16          # attention_rows.wgsl R
ATTN_DECODE_MAX_ROWS = 4          # query rows handed to attention_decode (decode, streaming chunks)
ATTN_DECODE_TARGET_GROUPS = 256
ATTN_DECODE_MIN_SPLIT_KEYS = 16   # one iteration of the 4 teams (B = 4) at head_dim 128
ATTN_DECODE_MAX_SPLITS = 256      # attention_decode_combine's MAX_SPLITS
WORKGROUP_INVOCATIONS = 256  # every kernel; the WebGPU default limit in browsers
# What the kernels need of a device: the WebGPU core defaults, which every core adapter offers
# (256-invocation workgroups; up to 8 storage buffers in one kernel, e.g. attention_local with
# ALiBi; ~10 KB of workgroup memory in attention_decode). A compatibility-mode adapter or a device
# made with lower limits falls short, and is told so by name instead of failing a shader compile.
REQUIRED_LIMITS = {
    "max_compute_invocations_per_workgroup": WORKGROUP_INVOCATIONS,
    "max_compute_workgroup_size_x": WORKGROUP_INVOCATIONS,
    "max_storage_buffers_per_shader_stage": 8,
    "max_compute_workgroup_storage_size": 16384,
}


def limit_shortfalls(limits: dict) -> list[str]:
    """'name has X, the kernels need Y' for each limit the device reports below REQUIRED_LIMITS
    (a limit it does not report is taken to be the WebGPU default)."""
    return [f"{name} is {int(limits[name])}, the kernels need {need}"
            for name, need in REQUIRED_LIMITS.items() if name in limits and int(limits[name]) < need]
_NP_DTYPES = {"f32": np.float32, "f16": np.float16, "u32": np.uint32, "i32": np.int32}
_ITEMSIZE = {"f32": 4, "f16": 2, "u32": 4, "i32": 4}


# ------------------------------------------------------------------------- shader sources
def find_shaders_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The folder holding the .wgsl files: `explicit`, else $VOXTRAL_SHADERS_DIR, else a `shaders`
    folder packaged inside the voxtral package, else the first `shaders/` found walking up from
    this file (the repository checkout)."""
    candidates = []
    if explicit is not None:
        candidates.append(Path(explicit))
    if os.environ.get(SHADERS_ENV):
        candidates.append(Path(os.environ[SHADERS_ENV]))
    here = Path(__file__).resolve().parent
    package_root = here.parents[1]  # .../voxtral
    candidates += [here / "shaders", package_root / "shaders"]
    candidates += [parent / "shaders" for parent in here.parents]
    for folder in candidates:
        if (folder / _MARKER_SHADER).is_file():
            return folder
    raise FileNotFoundError(f"no shaders folder with {_MARKER_SHADER} found; set {SHADERS_ENV}")


def expand_includes(source: str, folder: Path, _seen: frozenset = frozenset()) -> str:
    """Replace each `// #include NAME.wgsl` line by that file of `folder` (WGSL has no includes;
    the tiled kernels share their inner product this way). Nested includes allowed, cycles not."""
    out = []
    for line in source.splitlines():
        tag = line.strip()
        if tag.startswith("// #include "):
            name = tag[len("// #include "):].split()[0]
            if name in _seen:
                raise ValueError(f"include cycle through {name}")
            out.append(expand_includes((folder / name).read_text(encoding="utf-8"), folder, _seen | {name}))
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def preprocess(source: str, defines) -> str:
    """Keep or drop lines between `// #if [!]NAME`, `// #else`, `// #endif` (nestable)."""
    defines = set(defines)
    out = []
    stack: list[tuple[bool, bool]] = []  # (enclosing block active, this branch's condition)
    active = True
    for line_no, line in enumerate(source.splitlines(), 1):
        tag = line.strip()
        if tag.startswith("// #if "):
            name = tag[len("// #if "):].strip()
            cond = (name[1:] not in defines) if name.startswith("!") else (name in defines)
            stack.append((active, cond))
            active = active and cond
        elif tag == "// #else":
            if not stack:
                raise ValueError(f"line {line_no}: #else without #if")
            outer, cond = stack[-1]
            stack[-1] = (outer, not cond)
            active = outer and not cond
        elif tag == "// #endif":
            if not stack:
                raise ValueError(f"line {line_no}: #endif without #if")
            active = stack.pop()[0]
        elif active:
            out.append(line)
    if stack:
        raise ValueError("unterminated #if")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------- tensors
@dataclass
class GPUTensor:
    """A buffer viewed as a 2-D (or 1-D) array. offset/row_stride are in elements."""
    buffer: object
    shape: tuple
    dtype: str = "f32"
    offset: int = 0
    row_stride: int | None = None

    def __post_init__(self):
        self.shape = tuple(int(s) for s in self.shape)
        if self.row_stride is None:
            self.row_stride = self.shape[-1] if self.shape else 1

    @property
    def rows(self) -> int:
        return int(math.prod(self.shape[:-1])) if len(self.shape) > 1 else 1

    @property
    def cols(self) -> int:
        return self.shape[-1]

    @property
    def size(self) -> int:
        return int(math.prod(self.shape))

    @property
    def contiguous(self) -> bool:
        return self.offset == 0 and self.row_stride == self.cols

    def view_cols(self, start: int, stop: int) -> "GPUTensor":
        """Columns [start, stop) of every row (no copy)."""
        if not 0 <= start <= stop <= self.cols:
            raise ValueError(f"columns [{start}, {stop}) outside {self.cols}")
        return GPUTensor(self.buffer, (*self.shape[:-1], stop - start), self.dtype,
                         self.offset + start, self.row_stride)

    def view_elems(self, start: int, stop: int) -> "GPUTensor":
        """Elements [start, stop) of a 1-D tensor, e.g. one step's slot of a token-id buffer."""
        if len(self.shape) != 1 or not 0 <= start <= stop <= self.shape[0]:
            raise ValueError(f"elements [{start}, {stop}) outside {self.shape}")
        return GPUTensor(self.buffer, (stop - start,), self.dtype, self.offset + start)

    def view_rows(self, start: int, stop: int) -> "GPUTensor":
        """Rows [start, stop) of a 2-D tensor (no copy)."""
        if len(self.shape) != 2 or not 0 <= start <= stop <= self.shape[0]:
            raise ValueError(f"rows [{start}, {stop}) outside {self.shape}")
        return GPUTensor(self.buffer, (stop - start, self.cols), self.dtype,
                         self.offset + start * self.row_stride, self.row_stride)


@dataclass
class WeightBlock:
    buffer: object
    row_start: int
    n_rows: int


@dataclass
class GPUWeight:
    """A [N, K] weight matrix in row blocks that each fit one storage binding."""
    shape: tuple
    dtype: str  # 'q4_0', 'f32', 'f16'
    blocks: list[WeightBlock] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.shape[0]

    @property
    def cols(self) -> int:
        return self.shape[1]


def attention_splits(queries_x_heads: int, max_keys: int,
                     min_split_keys: int = ATTN_MIN_SPLIT_KEYS,
                     target_groups: int | None = None) -> tuple[int, int]:
    """(splits, keys per split) for split-K attention: one segment when the (query, head) pairs
    (workgroups per segment) already fill the GPU (prefill), several for one-token decode over a
    long window. target_groups defaults to ATTN_TARGET_GROUPS, read at call time (profile_asr.py
    --attn-groups sweeps it)."""
    target = ATTN_TARGET_GROUPS if target_groups is None else target_groups
    by_occupancy = -(-target // max(1, queries_x_heads))
    by_work = -(-max_keys // min_split_keys)
    splits = max(1, min(by_occupancy, by_work))
    return splits, -(-max_keys // splits)


def _same_view(a: GPUTensor, b: GPUTensor) -> bool:
    return a.buffer is b.buffer and a.offset == b.offset and a.row_stride == b.row_stride


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


# --------------------------------------------------------------------------------- kernels
class Kernels:
    """Compiles shaders/*.wgsl once and appends their dispatches to caller-owned lists.

    use_subgroups / use_shader_f16 default to what the device offers; max_binding_bytes lowers
    the row-block split size below the device's maxStorageBufferBindingSize (tests use it to
    exercise splits with small tensors).
    """

    def __init__(self, host: GPUHost, *, shaders_dir=None, use_subgroups: bool | None = None,
                 use_shader_f16: bool | None = None, max_binding_bytes: int | None = None):
        self.host = host
        short = limit_shortfalls(host.limits)
        if short:
            raise RuntimeError("the device's limits are too small: " + "; ".join(short))
        self.shaders_dir = find_shaders_dir(shaders_dir)
        self.use_subgroups = host.has_subgroups if use_subgroups is None else bool(use_subgroups)
        self.use_shader_f16 = host.has_shader_f16 if use_shader_f16 is None else bool(use_shader_f16)
        if self.use_subgroups and not host.has_subgroups:
            raise ValueError("use_subgroups=True but the device has no 'subgroups' feature")
        if self.use_shader_f16 and not host.has_shader_f16:
            raise ValueError("use_shader_f16=True but the device has no 'shader-f16' feature")
        limit = host.max_storage_binding
        self.max_binding_bytes = min(limit, max_binding_bytes) if max_binding_bytes else limit
        self.max_groups_per_dim = int(host.limits.get("max_compute_workgroups_per_dimension", 65535))
        self._sources: dict[str, str] = {}
        self._pipelines: dict[tuple, object] = {}
        self._uniforms: dict[bytes, object] = {}
        self._bind_groups: dict[tuple, tuple] = {}
        self._inv_freq: dict[tuple, GPUTensor] = {}
        self._argmax_scratch: dict[tuple, tuple] = {}
        self._scratches: dict[str, GPUTensor] = {}
        self.attn_min_split_keys = ATTN_MIN_SPLIT_KEYS  # tests lower it to force many segments
        # "v2" (the default): few-row attention by attention_decode.wgsl where it applies (see
        # attention()); VOXTRAL_ATTN_DECODE=v1 keeps `attention` for every row count, =all also
        # takes it for 1:1 heads (the streaming encoder step; an A/B switch)
        mode = os.environ.get(ATTN_DECODE_ENV) or "v2"
        self.attn_decode = "v2" if mode == "all" else mode
        self.attn_decode_min_split_keys = ATTN_DECODE_MIN_SPLIT_KEYS  # as attn_min_split_keys
        self.attn_decode_min_gqa = 1 if mode == "all" else 2  # (tests lower it too)
        # attention_rows.wgsl for many query rows (the offline encoder, prompts); see attention()
        self.attn_rows = os.environ.get(ATTN_ROWS_ENV, "1") != "0"
        # q4_gemm8.wgsl (8x8 outputs per invocation) for the many-row Q4 GEMMs instead of
        # q4_matmul.wgsl (4x4); VOXTRAL_GEMM8=1 (an A/B switch while it is measured; the GEMM8
        # define, as kernel_bench.py's variants name shader switches, selects it too)
        self.gemm8 = os.environ.get(GEMM8_ENV, "0") == "1"

    # ------------------------------------------------------------------ pipelines & binding
    def _source(self, filename: str) -> str:
        if filename not in self._sources:
            text = (self.shaders_dir / filename).read_text(encoding="utf-8")
            self._sources[filename] = expand_includes(text, self.shaders_dir)
        return self._sources[filename]

    # Shader variants under test (scripts/kernel_bench.py A/Bs them on the GPU machine): names
    # added to every pipeline's defines, e.g. VOXTRAL_SHADER_DEFINES=NAME1,NAME2 for a shader's
    # `// #if NAME1` branch. A variant that is kept becomes the code; its test checks its bits.
    extra_defines = frozenset(d for d in os.environ.get(DEFINES_ENV, "").replace(",", " ").split() if d)

    def _pipeline(self, filename: str, entry: str, flags=()):
        defines = set(flags) | set(self.extra_defines)
        if self.use_subgroups:
            defines.add("SUBGROUPS")
        if self.use_shader_f16:
            defines.add("SHADER_F16")
        key = (filename, entry, frozenset(defines))
        pipeline = self._pipelines.get(key)
        if pipeline is None:
            code = preprocess(self._source(filename), defines)
            directives = []
            if "SHADER_F16" in defines and ("<f16>" in code or "f16(" in code):
                directives.append("enable f16;")
            if self.host.needs_subgroups_directive and "subgroup" in code:
                directives.append("enable subgroups;")
            if directives:
                code = "\n".join(directives) + "\n" + code
            pipeline = self.host.create_pipeline(code, entry)
            self._pipelines[key] = pipeline
        return pipeline

    def _uniform(self, *fields) -> object:
        """A uniform buffer holding `fields` (ints as u32, floats as f32), shared by equal contents."""
        words = []
        for value in fields:
            if isinstance(value, float):
                words.append(int(np.float32(value).view(np.uint32)))
            else:
                words.append(int(value) & 0xFFFFFFFF)
        words += [0] * (-len(words) % 4)  # 16-byte multiple
        data = np.asarray(words, dtype=np.uint32).tobytes()
        buf = self._uniforms.get(data)
        if buf is None:
            buf = self.host.create_buffer(len(data), ("uniform", "copy_dst"), "params")
            self.host.write_buffer(buf, data)
            self._uniforms[data] = buf
        return buf

    def _bind(self, pipeline, bindings: dict[int, object]):
        """Bind group for {binding: buffer | GPUTensor}, whole buffers, cached by identity."""
        buffers = {b: (r.buffer if isinstance(r, GPUTensor) else r) for b, r in bindings.items()}
        key = (id(pipeline),) + tuple((b, id(buf)) for b, buf in sorted(buffers.items()))
        hit = self._bind_groups.get(key)
        if hit is None:
            group = self.host.create_bind_group(pipeline, buffers)
            hit = (group, pipeline, tuple(buffers.values()))  # the refs keep the ids unique
            self._bind_groups[key] = hit
        return hit[0]

    def clear_bind_groups(self) -> None:
        """Forget cached bind groups (they keep their buffers alive), e.g. after freeing a model."""
        self._bind_groups.clear()

    def _grid(self, n_groups: int) -> tuple[int, int]:
        """(x, y) workgroup counts covering n_groups, for shaders that linearise wx + wy*x."""
        x = max(1, min(n_groups, self.max_groups_per_dim))
        return x, max(1, -(-n_groups // x))

    @staticmethod
    def _append(seq: list, pipeline, group, x: int, y: int = 1, z: int = 1) -> None:
        seq.append(Dispatch(pipeline, group, (int(x), int(y), int(z))))

    def run(self, seq: list) -> None:
        """Submit a dispatch list (one encoder, one compute pass, one submit)."""
        self.host.run(seq)

    # ---------------------------------------------------------------------------- memory
    def empty(self, shape, dtype: str = "f32", label: str = "") -> GPUTensor:
        """A zero-filled tensor of `shape` (an int or a tuple)."""
        shape = (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)
        nbytes = int(math.prod(shape)) * _ITEMSIZE[dtype]
        return GPUTensor(self.host.create_buffer(nbytes, label=label), shape, dtype)

    def tensor(self, array, dtype: str | None = None, label: str = "") -> GPUTensor:
        """Upload a numpy array (dtype inferred: float -> 'f32', unsigned -> 'u32', int -> 'i32';
        'f16' stores IEEE halves, two per u32 word)."""
        array = np.asarray(array)
        if dtype is None:
            dtype = "f32" if array.dtype.kind == "f" else ("u32" if array.dtype.kind == "u" else "i32")
        t = self.empty(array.shape if array.ndim else (1,), dtype, label)
        self.write(t, array)
        return t

    def write(self, t: GPUTensor, array) -> None:
        _require(t.contiguous, "write() needs a contiguous tensor")
        data = np.ascontiguousarray(array, dtype=_NP_DTYPES[t.dtype]).reshape(-1)
        _require(data.size == t.size, f"{data.size} values for a tensor of {t.size}")
        self._write_padded(t.buffer, data.view(np.uint8))

    def _write_padded(self, buffer, raw: np.ndarray, offset: int = 0) -> None:
        # WebGPU writes must be a multiple of 4 bytes
        if raw.nbytes % 4:
            raw = np.concatenate([raw.reshape(-1), np.zeros(-raw.nbytes % 4, np.uint8)])
        if raw.nbytes:
            self.host.write_buffer(buffer, raw, offset)

    def fill_bits(self, t: GPUTensor, word: int = 0x7FC00000) -> None:
        """Overwrite the whole buffer with a 32-bit pattern (default: quiet NaN), e.g. to poison
        outputs in tests."""
        size = self.host.buffer_size(t.buffer)
        self.host.write_buffer(t.buffer, np.full(size // 4, word, dtype=np.uint32))

    def read(self, t: GPUTensor) -> np.ndarray:
        """Download a tensor (or view) as numpy; f16 comes back as float16. Native hosts only
        (in the browser readback is async)."""
        item = _ITEMSIZE[t.dtype]
        span = (t.rows - 1) * t.row_stride + t.cols if t.size else 0
        start = t.offset * item
        raw = self.host.read_buffer(t.buffer, start, span * item)
        flat = np.frombuffer(raw, dtype=_NP_DTYPES[t.dtype])
        rows = np.lib.stride_tricks.as_strided(
            flat, (t.rows, t.cols), (t.row_stride * item, item)) if t.size else flat
        return np.array(rows).reshape(t.shape)

    def upload_weight(self, w, dtype: str | None = None, label: str = "") -> GPUWeight:
        """A Q4Tensor (anything with .raw uint8 [rows, K/32*18] and .shape) or a 2-D float array
        ('f32' or 'f16' storage) -> GPUWeight split into row blocks that fit one binding."""
        if hasattr(w, "raw") and hasattr(w, "shape") and not isinstance(w, np.ndarray):
            shape = (int(math.prod(w.shape[:-1])), int(w.shape[-1]))
            raw = np.asarray(w.raw, dtype=np.uint8).reshape(shape[0], -1)
            dtype, row_bytes, pad = "q4_0", shape[1] // Q4_BLOCK * Q4_BLOCK_BYTES, Q4_PAD_BYTES
        else:
            dtype = dtype or "f32"
            _require(dtype in ("f32", "f16"), f"dense weights are 'f32' or 'f16', not {dtype!r}")
            arr = np.asarray(w)
            _require(arr.ndim == 2, f"a weight matrix must be 2-D, got {arr.shape}")
            shape = arr.shape
            raw = np.ascontiguousarray(arr, dtype=_NP_DTYPES[dtype]).view(np.uint8)
            raw = raw.reshape(shape[0], -1)
            row_bytes, pad = raw.shape[1], 0
        rows_per_block = (self.max_binding_bytes - pad) // row_bytes
        _require(rows_per_block >= 1, f"one row of {row_bytes} bytes exceeds the binding limit")
        weight = GPUWeight(tuple(shape), dtype)
        for r0 in range(0, shape[0], rows_per_block):
            r1 = min(shape[0], r0 + rows_per_block)
            buf = self.host.create_buffer((r1 - r0) * row_bytes + pad, label=label)
            self._write_padded(buf, np.ascontiguousarray(raw[r0:r1]).reshape(-1))
            weight.blocks.append(WeightBlock(buf, r0, r1 - r0))
        return weight

    upload_q4 = upload_weight

    def alloc_q4(self, rows: int, cols: int, label: str = "") -> GPUWeight:
        """An empty (zeroed) Q4_0 weight [rows, cols] in row blocks, to be filled with
        write_q4_rows: the load path writes each tensor (or each part of a fused Q/K/V) straight
        into place, so the bytes never need a host copy of the whole."""
        _require(cols % 64 == 0, f"Q4 rows on the GPU need K % 64 == 0 (u32-aligned rows), got {cols}")
        row_bytes = cols // Q4_BLOCK * Q4_BLOCK_BYTES
        rows_per_block = (self.max_binding_bytes - Q4_PAD_BYTES) // row_bytes
        _require(rows_per_block >= 1, f"one row of {row_bytes} bytes exceeds the binding limit")
        weight = GPUWeight((int(rows), int(cols)), "q4_0")
        for r0 in range(0, rows, rows_per_block):
            n = min(rows, r0 + rows_per_block) - r0
            weight.blocks.append(WeightBlock(self.host.create_buffer(n * row_bytes + Q4_PAD_BYTES, label=label),
                                             r0, n))
        return weight

    def write_q4_rows(self, weight: GPUWeight, row0: int, raw: np.ndarray) -> None:
        """Raw Q4_0 rows (uint8 [n, cols/32*18]) into rows [row0, row0 + n) of `weight`."""
        row_bytes = weight.cols // Q4_BLOCK * Q4_BLOCK_BYTES
        raw = np.asarray(raw, dtype=np.uint8).reshape(-1, row_bytes)
        _require(0 <= row0 and row0 + raw.shape[0] <= weight.rows,
                 f"rows [{row0}, {row0 + raw.shape[0]}) outside a weight of {weight.rows} rows")
        for b in weight.blocks:
            lo, hi = max(row0, b.row_start), min(row0 + raw.shape[0], b.row_start + b.n_rows)
            if lo < hi:
                part = np.ascontiguousarray(raw[lo - row0:hi - row0]).reshape(-1)
                self.host.write_buffer(b.buffer, part, (lo - b.row_start) * row_bytes)

    def kv_cache(self, capacity: int, width: int, dtype: str = "f32", label: str = "kv") -> GPUTensor:
        """A ring cache [capacity, width] ('f32' or 'f16' halves); slot of position p = p % capacity."""
        _require(dtype in ("f32", "f16"), f"kv cache dtype must be 'f32' or 'f16', not {dtype!r}")
        _require(width % 4 == 0, f"kv width {width} must be a multiple of 4")
        return self.empty((capacity, width), dtype, label)

    # ---------------------------------------------------------------------------- matmuls
    def linear(self, seq: list, x: GPUTensor, w: GPUWeight, out: GPUTensor,
               bias: GPUTensor | None = None, residual: GPUTensor | None = None) -> None:
        """out = [residual +] x·Wᵀ [+ bias]; residual may be `out` itself (fused in-place add).
        Q4 weights use q4_matvec for M <= 4 rows and the tiled q4_matmul above."""
        if w.dtype == "q4_0":
            if x.rows <= MAX_M_MATVEC:
                self.q4_matvec(seq, x, w, out, bias, residual)
            else:
                self.q4_matmul(seq, x, w, out, bias, residual)
        else:
            self.linear_dense(seq, x, w, out, bias, residual)

    def _linear_checks(self, x, w, out, bias, residual):
        _require(x.contiguous and x.dtype == "f32", "x must be a contiguous f32 tensor")
        _require(x.cols == w.cols, f"x has {x.cols} features, W expects {w.cols}")
        _require(out.dtype == "f32" and out.cols == w.rows and out.rows == x.rows,
                 f"out {out.shape} must be [{x.rows}, {w.rows}] f32")
        if bias is not None:
            _require(bias.contiguous and bias.size == w.rows, f"bias must have {w.rows} values")
        flags = set()
        if bias is not None:
            flags.add("BIAS")
        if residual is not None:
            if _same_view(residual, out):
                flags.add("ACCUMULATE")
            else:
                _require(residual.row_stride == out.row_stride and residual.offset == out.offset
                         and residual.shape == out.shape, "residual must have out's layout")
                _require(residual.buffer is not out.buffer, "residual aliasing out must be out itself")
                flags.add("RESIDUAL")
        return flags

    def _matmul_bindings(self, block, x, out, bias, residual, flags, params):
        bindings = {0: block.buffer, 1: x, 2: out, 3: params}
        if "BIAS" in flags:
            bindings[4] = bias
        if "RESIDUAL" in flags:
            bindings[5] = residual
        return bindings

    def q4_matvec(self, seq, x, w, out, bias=None, residual=None, norm=None, rope_kv=None) -> None:
        """out = [residual +] x'·Wᵀ [+ bias] for M <= 4 rows; x' = x, or with norm = (g, eps,
        ada | None) the RMS-normalised x / rms(x) · g [· (1 + ada)] (the pre-norm fused in).
        rope_kv = (positions, n_heads, n_kv_heads, head_dim, theta, k_cache, v_cache): W is a
        fused Q|K|V weight and its output's q and k are rotated and k, v written into the ring
        caches as `rope_kv_write` does (ROPE_KV: the same bytes in one dispatch)."""
        _require(w.dtype == "q4_0", "q4_matvec needs a Q4_0 weight")
        _require(1 <= x.rows <= MAX_M_MATVEC, f"q4_matvec handles 1..{MAX_M_MATVEC} rows, got {x.rows}")
        flags = self._linear_checks(x, w, out, bias, residual)
        extra = self._norm_bindings(x, norm, flags)
        if rope_kv is not None:
            # 4 more storage bindings (caches, positions, frequencies): past the device's limit
            # (WebGPU's default is 8), the matvec and rope_kv_write as two dispatches instead
            storage = 3 + len(extra) + len(flags & {"BIAS", "RESIDUAL"}) + 4
            if storage > int(self.host.limits.get("max_storage_buffers_per_shader_stage", 8)):
                self.q4_matvec(seq, x, w, out, bias, residual, norm)
                positions, n_heads, n_kv_heads, head_dim, theta, k_cache, v_cache = rope_kv
                self.rope_kv_write(seq, out, positions, n_heads, n_kv_heads, head_dim, theta,
                                   k_cache, v_cache)
                return
            extra.update(self._rope_kv_bindings(x, w, out, rope_kv, flags))
        flags.update(self._matvec_layout_flags(x.rows, w.cols))
        pipeline = self._pipeline("q4_matvec.wgsl", "main", flags)
        eps = float(norm[1]) if norm is not None else 0.0
        for block in w.blocks:
            gx, gy = self._grid(-(-block.n_rows // MATVEC_ROWS_PER_GROUP))
            params = self._uniform(x.rows, block.n_rows, w.cols, out.row_stride,
                                   out.offset + block.row_start, gx, block.row_start, eps, 0, 0, 0, 0)
            bindings = self._matmul_bindings(block, x, out, bias, residual, flags, params)
            bindings.update(extra)
            self._append(seq, pipeline, self._bind(pipeline, bindings), gx, gy)

    def _matvec_layout_flags(self, m: int, k: int) -> set:
        """q4_matvec.wgsl's specialisations by shape: ONE_ROW for the decode step's single x row
        (one accumulator per weight row); ALIGNED_ROWS when a weight row is an even number of
        18-byte blocks, so every row starts on a word and a block's word offsets are shared by all
        rows (not with NIBBLES_V1, the A/B switch that compiles session 14's matvec whole)."""
        flags = set()
        if m == 1:
            flags.add("ONE_ROW")
        if (k // 32) % 2 == 0 and "NIBBLES_V1" not in self.extra_defines:
            flags.add("ALIGNED_ROWS")
        return flags

    def _rope_kv_bindings(self, x, w, out, rope_kv, flags: set) -> dict:
        """Bindings (and the flag) of q4_matvec's fused RoPE + ring cache write (ROPE_KV)."""
        positions, n_heads, n_kv_heads, head_dim, theta, k_cache, v_cache = rope_kv
        capacity, width = k_cache.shape
        _require(len(w.blocks) == 1, "ROPE_KV needs the QKV weight in one binding")
        _require("RESIDUAL" not in flags and "ACCUMULATE" not in flags, "ROPE_KV takes no residual")
        _require(width == n_kv_heads * head_dim and head_dim % 2 == 0
                 and w.rows == (n_heads + 2 * n_kv_heads) * head_dim, "ROPE_KV: q|k|v shapes")
        _require(x.rows <= capacity, f"{x.rows} new rows overflow a ring of {capacity}")
        _require(positions.dtype in ("u32", "i32") and positions.size >= x.rows, "ROPE_KV: positions")
        flags.add("ROPE_KV")
        flags.update(self._kv_flags(k_cache, v_cache))
        params = self._uniform(n_heads * head_dim, width, head_dim, capacity, positions.offset)
        return {8: k_cache, 9: v_cache, 10: positions, 11: self.rope_inv_freq(head_dim, theta), 12: params}

    def _norm_bindings(self, x, norm, flags: set) -> dict:
        """Bindings (and flags) of q4_matvec's fused RMS norm: norm = (g [K], eps, ada [K] | None)."""
        if norm is None:
            return {}
        g, _, ada = norm
        _require(g.contiguous and g.size == x.cols, f"the norm weight must have {x.cols} values")
        flags.add("NORM")
        bindings = {6: g}
        if ada is not None:
            _require(ada.contiguous and ada.size == x.cols, f"the norm's ada must have {x.cols} values")
            flags.add("NORM_ADA")
            bindings[7] = ada
        return bindings

    def q4_swiglu(self, seq, x, w, out, norm=None) -> None:
        """out[m, f] = silu(gate_f · x'_m) · (up_f · x'_m) for M <= 4 rows, w the fused [gate; up]
        Q4 weight of 2F rows in one block; x' = x or its RMS norm (see q4_matvec). One dispatch:
        the FFN's gate/up matvec with its activation (and optionally its pre-norm) fused."""
        _require(w.dtype == "q4_0" and w.rows % 2 == 0, "q4_swiglu needs a fused [gate; up] Q4 weight")
        _require(len(w.blocks) == 1, "q4_swiglu needs the fused weight in one binding")
        _require(1 <= x.rows <= MAX_M_MATVEC, f"q4_swiglu handles 1..{MAX_M_MATVEC} rows, got {x.rows}")
        f = w.rows // 2
        _require(x.contiguous and x.dtype == "f32" and x.cols == w.cols, "q4_swiglu: x [M, K] f32")
        _require(out.dtype == "f32" and out.shape == (x.rows, f), f"q4_swiglu: out must be [{x.rows}, {f}]")
        flags = {"SWIGLU"}
        extra = self._norm_bindings(x, norm, flags)
        flags.update(self._matvec_layout_flags(x.rows, w.cols))
        pipeline = self._pipeline("q4_matvec.wgsl", "main", flags)
        block = w.blocks[0]
        gx, gy = self._grid(-(-f // 2))  # two features (four rows) per workgroup
        eps = float(norm[1]) if norm is not None else 0.0
        params = self._uniform(x.rows, f, w.cols, out.row_stride, out.offset, gx, 0, eps, f, 0, 0, 0)
        bindings = {0: block.buffer, 1: x, 2: out, 3: params}
        bindings.update(extra)
        self._append(seq, pipeline, self._bind(pipeline, bindings), gx, gy)

    def q4_matmul(self, seq, x, w, out, bias=None, residual=None) -> None:
        _require(w.dtype == "q4_0", "q4_matmul needs a Q4_0 weight")
        flags = self._linear_checks(x, w, out, bias, residual)
        shader = "q4_gemm8.wgsl" if self.gemm8 or "GEMM8" in self.extra_defines else "q4_matmul.wgsl"
        pipeline = self._pipeline(shader, "main", flags)
        self._tiled(seq, pipeline, x, w, out, bias, residual, flags)

    def linear_dense(self, seq, x, w, out, bias=None, residual=None) -> None:
        _require(w.dtype in ("f32", "f16"), "linear_dense needs an f32 or f16 weight")
        _require(w.cols % 2 == 0, f"dense linear needs an even K, got {w.cols}")
        flags = self._linear_checks(x, w, out, bias, residual)
        if w.dtype == "f16":
            flags.add("W_F16")
        pipeline = self._pipeline("linear_f32.wgsl", "main", flags)
        self._tiled(seq, pipeline, x, w, out, bias, residual, flags)

    def _tiled(self, seq, pipeline, x, w, out, bias, residual, flags):
        gy = -(-x.rows // 64)
        _require(gy <= self.max_groups_per_dim, f"too many rows ({x.rows}) for one dispatch")
        for block in w.blocks:
            params = self._uniform(x.rows, block.n_rows, w.cols, out.row_stride,
                                   out.offset + block.row_start, block.row_start)
            bindings = self._matmul_bindings(block, x, out, bias, residual, flags, params)
            self._append(seq, pipeline, self._bind(pipeline, bindings), -(-block.n_rows // 64), gy)

    # ----------------------------------------------------------------------- conv stem
    def conv1d(self, seq, x: GPUTensor, w: GPUTensor, b: GPUTensor, out: GPUTensor,
               stride: int) -> None:
        """Valid causal conv, kernel 3: x [T_in, C] (left context included), w [O, C, 3] (PyTorch
        layout), b [O] -> out [T_out, O], T_out = (T_in - 3) // stride + 1. All f32."""
        t_in, c = x.shape
        o = w.shape[0]
        _require(w.shape == (o, c, 3), f"conv weight must be [O, {c}, 3], got {w.shape}")
        t_out = (t_in - 3) // stride + 1
        _require(t_out >= 1 and out.shape == (t_out, o), f"out must be [{t_out}, {o}], got {out.shape}")
        _require(all(t.contiguous and t.dtype == "f32" for t in (x, w, b, out)),
                 "conv1d: contiguous f32 tensors")
        pipeline = self._pipeline("conv1d.wgsl", "main")
        params = self._uniform(t_out, o, c, stride)
        group = self._bind(pipeline, {0: w, 1: x, 2: out, 3: params, 4: b})
        self._append(seq, pipeline, group, -(-o // 64), -(-t_out // 64))

    # --------------------------------------------------------------------- normalisation
    def rmsnorm(self, seq, x: GPUTensor, weight: GPUTensor, out: GPUTensor, eps: float,
                ada_s: GPUTensor | None = None) -> None:
        """out = x / sqrt(mean(x²) + eps) · weight [· (1 + ada_s)], per row."""
        _require(x.contiguous and out.contiguous and x.shape == out.shape,
                 "rmsnorm: contiguous x and out of the same shape")
        _require(x.buffer is not out.buffer, "rmsnorm cannot run in place")
        flags = {"ADA"} if ada_s is not None else set()
        pipeline = self._pipeline("rmsnorm.wgsl", "main", flags)
        gx, gy = self._grid(x.rows)
        params = self._uniform(x.rows, x.cols, float(eps), gx)
        bindings = {0: x, 1: weight, 2: out, 3: params}
        if ada_s is not None:
            bindings[4] = ada_s
        self._append(seq, pipeline, self._bind(pipeline, bindings), gx, gy)

    # -------------------------------------------------------------------------- rotary
    def rope_inv_freq(self, head_dim: int, theta: float) -> GPUTensor:
        """inv_freq[i] = 1 / theta^(2i/hd) in f32, exactly the reference's f32 formula."""
        key = (head_dim, float(theta))
        if key not in self._inv_freq:
            expo = np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim)
            inv = (np.float32(1.0) / np.power(np.float32(theta), expo)).astype(np.float32)
            self._inv_freq[key] = self.tensor(inv, "f32", "inv_freq")
        return self._inv_freq[key]

    def rope(self, seq, x: GPUTensor, positions: GPUTensor, n_heads: int, head_dim: int,
             theta: float) -> None:
        """In place on x (a [M, n_heads*head_dim] view, e.g. the q+k columns of a fused QKV
        output); row m rotates by positions[m] (a u32 tensor or view)."""
        _require(x.cols == n_heads * head_dim and head_dim % 2 == 0,
                 "rope: x must be [M, n_heads*head_dim], head_dim even")
        _require(x.offset % 2 == 0 and x.row_stride % 2 == 0,
                 "rope: view offset and stride must be even")
        _require(positions.dtype in ("u32", "i32") and positions.size >= x.rows, "rope: u32 positions")
        pipeline = self._pipeline("rope.wgsl", "main")
        gx, gy = self._grid(-(-x.rows * n_heads * head_dim // 2 // WORKGROUP_INVOCATIONS))
        params = self._uniform(x.rows, n_heads, head_dim, x.row_stride, x.offset, positions.offset, gx)
        inv_freq = self.rope_inv_freq(head_dim, theta)
        group = self._bind(pipeline, {0: x, 1: positions, 2: inv_freq, 3: params})
        self._append(seq, pipeline, group, gx, gy)

    # ----------------------------------------------------------------------- attention
    def _kv_flags(self, k_cache, v_cache):
        _require(k_cache.dtype == v_cache.dtype and k_cache.shape == v_cache.shape, "k/v caches differ")
        return {"KV_F16"} if k_cache.dtype == "f16" else set()

    def kv_write(self, seq, k: GPUTensor, v: GPUTensor, positions: GPUTensor,
                 k_cache: GPUTensor, v_cache: GPUTensor) -> None:
        """k_cache[pos % capacity] = k[m], v_cache[...] = v[m] for each row m (k, v may be views)."""
        capacity, width = k_cache.shape
        _require(k.shape == v.shape and k.cols == width, f"k/v rows must have {width} columns")
        _require(k.rows <= capacity, f"{k.rows} new rows overflow a ring of {capacity}")
        for t in (k, v):
            _require(t.offset % 2 == 0 and t.row_stride % 2 == 0, "kv_write: even view offset/stride")
        pipeline = self._pipeline("attention.wgsl", "kv_write", self._kv_flags(k_cache, v_cache))
        gx, gy = self._grid(-(-k.rows * width // 2 // WORKGROUP_INVOCATIONS))
        params = self._uniform(k.rows, width, capacity, positions.offset, k.offset, k.row_stride,
                               v.offset, v.row_stride, gx)
        group = self._bind(pipeline, {3: positions, 6: k, 7: v, 8: k_cache, 9: v_cache, 10: params})
        self._append(seq, pipeline, group, gx, gy)

    def rope_kv_write(self, seq, qkv: GPUTensor, positions: GPUTensor, n_heads: int,
                      n_kv_heads: int, head_dim: int, theta: float, k_cache: GPUTensor,
                      v_cache: GPUTensor) -> None:
        """rope + kv_write in one dispatch, for q|k|v adjacent in `qkv` ([M, (n_heads +
        2 n_kv_heads) * head_dim] view of a fused QKV output): q and k rotated in place, the
        rotated k and v written into the ring caches at positions[m] % capacity."""
        capacity, width = k_cache.shape
        _require(width == n_kv_heads * head_dim and head_dim % 2 == 0, "rope_kv_write: kv width")
        _require(qkv.cols == (n_heads + 2 * n_kv_heads) * head_dim, "rope_kv_write: q|k|v columns")
        _require(qkv.offset % 2 == 0 and qkv.row_stride % 2 == 0, "rope_kv_write: even offset/stride")
        _require(qkv.rows <= capacity, f"{qkv.rows} new rows overflow a ring of {capacity}")
        _require(positions.dtype in ("u32", "i32") and positions.size >= qkv.rows, "rope_kv_write: positions")
        pipeline = self._pipeline("attention.wgsl", "rope_kv_write", self._kv_flags(k_cache, v_cache))
        gx, gy = self._grid(-(-qkv.rows * qkv.cols // 2 // WORKGROUP_INVOCATIONS))
        params = self._uniform(qkv.rows, n_heads, n_kv_heads, head_dim, qkv.row_stride, qkv.offset,
                               capacity, positions.offset, gx)
        group = self._bind(pipeline, {3: positions, 8: k_cache, 9: v_cache, 12: qkv,
                                      13: self.rope_inv_freq(head_dim, theta), 14: params})
        self._append(seq, pipeline, group, gx, gy)

    def attention(self, seq, q: GPUTensor, k_cache: GPUTensor, v_cache: GPUTensor,
                  positions: GPUTensor, out: GPUTensor, n_heads: int, n_kv_heads: int,
                  head_dim: int, window: int, scale: float | None = None) -> None:
        """Causal sliding-window GQA attention of the M query rows in q (positions[m], increasing,
        their K/V already written with kv_write) over the ring caches; out [M, n_heads*head_dim].
        Key j is visible to query i iff pos_i - window < j <= pos_i (and still in the ring)."""
        capacity, width = k_cache.shape
        m = q.rows
        _require(head_dim <= ATTN_MAX_HEAD_DIM and head_dim % 4 == 0, "attention: head_dim <= 128, % 4")
        _require(n_heads % n_kv_heads == 0 and width == n_kv_heads * head_dim, "attention: GQA shapes")
        _require(q.cols == n_heads * head_dim and out.shape == (m, n_heads * head_dim),
                 "attention: q and out must be [M, n_heads*head_dim]")
        _require(out.offset == 0, "attention: out must start at column 0")
        _require(m <= capacity, f"{m} query rows exceed the ring capacity {capacity}")
        _require(m <= self.max_groups_per_dim, "attention: too many query rows for one dispatch")
        scale = 1.0 / math.sqrt(head_dim) if scale is None else float(scale)
        flags = self._kv_flags(k_cache, v_cache)
        if self.uses_attention_rows(m, head_dim):
            # one workgroup per (head, 16 query rows), no key segments: one dispatch
            pipeline = self._pipeline("attention_rows.wgsl", "main", flags)
            params = self._uniform(m, n_heads, n_kv_heads, head_dim, window, capacity, q.offset,
                                   q.row_stride, positions.offset, out.row_stride, scale, 1, 0)
            group = self._bind(pipeline, {0: q, 1: k_cache, 2: v_cache, 3: positions, 4: out, 5: params})
            self._append(seq, pipeline, group, n_heads, -(-m // ATTN_ROWS_PER_GROUP))
            return
        if self.uses_attention_decode(m, n_heads // n_kv_heads):
            # a workgroup per (kv head, block of <= 4 of its query heads, row, segment)
            groups_x = n_kv_heads * -(-(n_heads // n_kv_heads) // 4)
            # (capped at the segments attention_decode_combine can merge)
            splits, split_keys = attention_splits(groups_x * m, min(window, capacity),
                                                  self.attn_decode_min_split_keys,
                                                  min(ATTN_DECODE_TARGET_GROUPS,
                                                      groups_x * m * ATTN_DECODE_MAX_SPLITS))
            first = self._pipeline("attention_decode.wgsl", "attention_decode", flags)
            second = self._pipeline("attention_decode.wgsl", "attention_decode_combine", flags)
        else:
            groups_x = n_heads
            splits, split_keys = attention_splits(m * n_heads, min(window, capacity),
                                                  self.attn_min_split_keys)
            first = self._pipeline("attention.wgsl", "attention", flags)
            second = self._pipeline("attention.wgsl", "attention_combine", flags)
        partials = self._scratch("attn_partials", m * n_heads * splits * (head_dim + 2))
        params = self._uniform(m, n_heads, n_kv_heads, head_dim, window, capacity, q.offset,
                               q.row_stride, positions.offset, out.row_stride, scale, splits,
                               split_keys)
        group = self._bind(first, {0: q, 1: k_cache, 2: v_cache, 3: positions, 5: params, 11: partials})
        self._append(seq, first, group, groups_x, m, splits)
        self._append(seq, second, self._bind(second, {4: out, 5: params, 11: partials}), n_heads, m)

    def uses_attention_rows(self, rows: int, head_dim: int) -> bool:
        """Whether attention() of `rows` query rows runs attention_rows.wgsl (16 rows of a head per
        workgroup sharing every K/V row load): on (attn_rows, VOXTRAL_ATTN_ROWS=0: off), subgroups
        in use, more rows than attention_decode takes, head_dim a multiple of 32 (<= 128). Its
        output equals `attention`'s up to f32 rounding (another summation order)."""
        return (self.attn_rows and self.use_subgroups and rows > ATTN_DECODE_MAX_ROWS
                and head_dim % 32 == 0)

    def uses_attention_decode(self, rows: int, gqa: int = 4) -> bool:
        """Whether attention() of `rows` query rows runs attention_decode.wgsl: not switched off
        (attn_decode == "v2", the default), subgroups in use (its butterflies need them; any
        subgroup size works), and few rows (more go to attention_rows.wgsl or `attention`).
        The output equals `attention`'s up to f32 rounding (the sums run in another order).
        Only with >= attn_decode_min_gqa (2) query heads per kv head: with 1:1 heads (the
        encoder's streaming step) 3 of its 4 score slots idle, and that case was not timed."""
        return (self.attn_decode == "v2" and self.use_subgroups and rows <= ATTN_DECODE_MAX_ROWS
                and gqa >= self.attn_decode_min_gqa)

    def _scratch(self, name: str, n_floats: int) -> GPUTensor:
        """A named f32 scratch buffer, grown on demand and shared by all calls (dispatches in a
        pass run in order, so consecutive users never overlap)."""
        t = self._scratches.get(name)
        if t is None or t.size < n_floats:
            t = self.empty((max(n_floats, 1),), "f32", name)
            self._scratches[name] = t
        return t

    # --------------------------------------------------------------------- elementwise
    def _elementwise(self, seq, entry, out, a=None, b=None, inplace=None) -> None:
        shape_src = inplace if inplace is not None else out
        rows, cols = shape_src.rows, shape_src.cols
        for t in (a, b):
            if t is not None:
                _require((t.rows, t.cols) == (rows, cols),
                         f"{entry}: operand {t.shape} vs {shape_src.shape}")
        pipeline = self._pipeline("elementwise.wgsl", entry)
        gx, gy = self._grid(-(-rows * cols // WORKGROUP_INVOCATIONS))
        o = inplace if inplace is not None else out
        params = self._uniform(rows, cols, a.offset if a else 0, a.row_stride if a else 0,
                               b.offset if b else 0, b.row_stride if b else 0,
                               o.offset, o.row_stride, gx)
        bindings = {3: params}
        if a is not None:
            bindings[0] = a
        if b is not None:
            bindings[1] = b
        if inplace is not None:
            bindings[4] = inplace
        else:
            _require(all(t is None or t.buffer is not out.buffer for t in (a, b)),
                     f"{entry}: out must not alias an input (use the in-place form)")
            bindings[2] = out
        self._append(seq, pipeline, self._bind(pipeline, bindings), gx, gy)

    def gelu(self, seq, x: GPUTensor, out: GPUTensor | None = None) -> None:
        """out = GELU(x) (exact erf); in place when out is None."""
        if out is None:
            self._elementwise(seq, "gelu_inplace", None, inplace=x)
        else:
            self._elementwise(seq, "gelu_main", out, a=x)

    def silu(self, seq, x: GPUTensor, out: GPUTensor | None = None) -> None:
        if out is None:
            self._elementwise(seq, "silu_inplace", None, inplace=x)
        else:
            self._elementwise(seq, "silu_main", out, a=x)

    def swiglu(self, seq, gate: GPUTensor, up: GPUTensor, out: GPUTensor) -> None:
        """out = silu(gate) · up (gate/up may be the two column halves of one fused output)."""
        self._elementwise(seq, "swiglu", out, a=gate, b=up)

    def add(self, seq, a: GPUTensor, b: GPUTensor, out: GPUTensor) -> None:
        self._elementwise(seq, "add", out, a=a, b=b)

    def mul(self, seq, a: GPUTensor, b: GPUTensor, out: GPUTensor) -> None:
        """out = a · b; b may be a row broadcast (a view with row_stride 0)."""
        self._elementwise(seq, "mul", out, a=a, b=b)

    def copy(self, seq, a: GPUTensor, out: GPUTensor) -> None:
        """out = a, between any 2-D views (gathers rows into a contiguous tensor, concatenates)."""
        self._elementwise(seq, "copy", out, a=a)

    def add_(self, seq, a: GPUTensor, b: GPUTensor) -> None:
        """a += b in place."""
        self._elementwise(seq, "add_inplace", None, b=b, inplace=a)

    # ---------------------------------------------------------------------- embeddings
    def embedding(self, seq, table: GPUWeight, ids: GPUTensor, out: GPUTensor,
                  accumulate: bool = False) -> None:
        """out[m] (+)= dequant(table[ids[m]]) for a Q4_0 table; ids is a u32 tensor or view.
        One dispatch per row block of the table."""
        _require(table.dtype == "q4_0", "embedding: the table must be Q4_0")
        _require(out.contiguous and out.cols == table.cols, f"embedding: out must be [M, {table.cols}]")
        m = out.rows
        _require(ids.dtype in ("u32", "i32") and ids.size >= m, f"embedding: needs {m} u32 ids")
        pipeline = self._pipeline("embedding.wgsl", "gather_add" if accumulate else "gather")
        for block in table.blocks:
            params = self._uniform(m, table.cols, block.row_start, block.n_rows, ids.offset)
            group = self._bind(pipeline, {0: block.buffer, 1: ids, 2: out, 3: params})
            self._append(seq, pipeline, group, -(-table.cols // Q4_BLOCK // 64), m)

    def gather_rows(self, seq, src: GPUTensor, ids: GPUTensor, out: GPUTensor) -> None:
        """out[m] = src[ids[m]] for an f32 matrix src [N, D] (a view whose offset and row stride
        are multiples of 4) and u32 ids; out [M, D] contiguous. The bind group depends on the
        buffers only, not on the rows picked."""
        m, d = out.rows, out.cols
        _require(src.dtype == "f32" and out.dtype == "f32" and src.cols == d and out.contiguous,
                 "gather_rows: f32 src [N, D] and contiguous out [M, D]")
        _require(d % 4 == 0 and src.offset % 4 == 0 and src.row_stride % 4 == 0 and out.offset == 0,
                 "gather_rows: D, src offset and row stride multiples of 4; out from element 0")
        _require(ids.dtype in ("u32", "i32") and ids.size >= m, f"gather_rows: needs {m} u32 ids")
        pipeline = self._pipeline("embedding.wgsl", "gather_f32")
        params = self._uniform(m, d // 4, src.offset // 4, src.row_stride // 4, ids.offset)
        group = self._bind(pipeline, {1: ids, 2: out, 3: params, 4: src})
        self._append(seq, pipeline, group, -(-d // 4 // 64), m)

    def decode_advance(self, seq, pos: GPUTensor, row: GPUTensor, tok: GPUTensor, hist: GPUTensor,
                       ctr: GPUTensor) -> None:
        """hist[ctr] = tok; ctr += 1; pos += 1; row += 1 (u32 scalars on the GPU): the end of a
        decode step when several go in one submit (decode_advance.wgsl)."""
        for t in (pos, row, tok, ctr):
            _require(t.dtype in ("u32", "i32") and t.size >= 1 and t.offset == 0, "decode_advance: u32 scalars")
        _require(hist.dtype in ("u32", "i32") and hist.offset == 0, "decode_advance: u32 history")
        pipeline = self._pipeline("decode_advance.wgsl", "main")
        self._append(seq, pipeline, self._bind(pipeline, {0: pos, 1: row, 2: tok, 3: hist, 4: ctr}), 1)

    # -------------------------------------------------------------------------- argmax
    def argmax(self, seq, x: GPUTensor, out_ids: GPUTensor) -> None:
        """out_ids[m] = argmax of row m of x (lowest index on ties); out_ids may be a view, e.g.
        the slot of the ids buffer the next step's embedding reads."""
        _require(x.contiguous and x.dtype == "f32", "argmax: contiguous f32 input")
        _require(out_ids.dtype in ("u32", "i32"), "argmax: u32 output")
        rows, n = x.rows, x.cols
        n_groups = -(-n // 4096)
        key = (rows, n_groups)
        if key not in self._argmax_scratch:
            self._argmax_scratch[key] = (self.empty((rows, n_groups), "f32", "argmax_val"),
                                         self.empty((rows, n_groups), "u32", "argmax_idx"))
        part_val, part_idx = self._argmax_scratch[key]
        params = self._uniform(rows, n, n_groups, out_ids.offset)
        first = self._pipeline("argmax.wgsl", "argmax_partial")
        self._append(seq, first, self._bind(first, {0: x, 1: part_val, 2: part_idx, 3: params}),
                     n_groups, rows)
        second = self._pipeline("argmax.wgsl", "argmax_final")
        self._append(seq, second, self._bind(second, {1: part_val, 2: part_idx, 3: params, 4: out_ids}),
                     rows)

    # ============================================================== TTS kernels (issue #7)
    # attention_local.wgsl, conv_causal.wgsl, conv_transpose.wgsl, reduce_rows.wgsl: what the TTS
    # codec and flow-matching head need beyond the ASR kernels above.

    CONV_PAD_MODES = {"zeros": 0, "replicate": 1, "reflect": 2}

    def attention_local(self, seq, q: GPUTensor, k: GPUTensor, v: GPUTensor, q_pos: GPUTensor,
                        k_pos: GPUTensor, ranges: GPUTensor, out: GPUTensor, n_heads: int,
                        n_kv_heads: int, head_dim: int, window: int, slopes: GPUTensor | None = None,
                        scale: float | None = None) -> None:
        """Cache-free GQA attention of the M rows of q over the N rows of k/v (views allowed),
        masked by positions: key j is visible to query i iff k_pos[j] <= q_pos[i] and
        q_pos[i] - k_pos[j] < window; only key indices in [ranges[2i], ranges[2i+1]) are scanned.
        slopes [n_heads] (f32) adds ALiBi slope_h·(k_pos[j] - q_pos[i]). out [M, n_heads*hd]."""
        m, n = q.rows, k.rows
        _require(head_dim <= ATTN_MAX_HEAD_DIM and head_dim % 4 == 0, "attention_local: head_dim <= 128, % 4")
        _require(n_heads % n_kv_heads == 0, "attention_local: GQA shapes")
        _require(q.cols == n_heads * head_dim and out.shape == (m, n_heads * head_dim),
                 "attention_local: q and out must be [M, n_heads*head_dim]")
        _require(k.cols == v.cols == n_kv_heads * head_dim and v.rows == n,
                 "attention_local: k and v must be [N, n_kv_heads*head_dim]")
        _require(all(t.dtype == "f32" for t in (q, k, v, out)), "attention_local: f32 tensors")
        _require(out.offset == 0 and out.row_stride == out.cols, "attention_local: contiguous out")
        _require(q_pos.dtype == k_pos.dtype == ranges.dtype == "u32" and q_pos.size >= m
                 and k_pos.size >= n and ranges.size >= 2 * m, "attention_local: u32 positions/ranges")
        _require(q_pos.offset == k_pos.offset == ranges.offset == 0,
                 "attention_local: positions and ranges must start at element 0")
        _require(m <= self.max_groups_per_dim, "attention_local: too many query rows for one dispatch")
        scale = 1.0 / math.sqrt(head_dim) if scale is None else float(scale)
        flags = {"ALIBI"} if slopes is not None else set()
        pipeline = self._pipeline("attention_local.wgsl", "main", flags)
        params = self._uniform(m, n_heads, n_kv_heads, head_dim, int(window), n, q.offset, q.row_stride,
                               k.offset, k.row_stride, v.offset, v.row_stride, out.row_stride, scale)
        bindings = {0: q, 1: k, 2: v, 3: q_pos, 4: k_pos, 5: ranges, 6: out, 7: params}
        if slopes is not None:
            _require(slopes.dtype == "f32" and slopes.size >= n_heads, "attention_local: n_heads f32 slopes")
            bindings[8] = slopes
        self._append(seq, pipeline, self._bind(pipeline, bindings), n_heads, m)

    def conv_causal(self, seq, x: GPUTensor, w: GPUTensor, out: GPUTensor, stride: int = 1,
                    pad: int | None = None, pad_mode: str = "zeros") -> None:
        """Conv1d of any kernel size K with `pad` (default K-1) left rows made in the shader:
        zeros, replicate (row 0) or reflect (row -r). x [T_in, C], w [O, C, K] (PyTorch layout),
        out [T_out, O] with T_out = (T_in + pad - K) // stride + 1. No bias; all f32, contiguous."""
        t_in, c = x.shape
        o, c_w, kk = w.shape
        pad = kk - 1 if pad is None else int(pad)
        _require(c_w == c, f"conv weight must be [O, {c}, K], got {w.shape}")
        _require(pad_mode in self.CONV_PAD_MODES, f"pad_mode must be one of {sorted(self.CONV_PAD_MODES)}")
        _require(pad_mode != "reflect" or t_in > pad,
                 f"reflect padding of {pad} needs more than {pad} rows, got {t_in}")
        t_out = (t_in + pad - kk) // stride + 1
        _require(t_out >= 1 and out.shape == (t_out, o), f"out must be [{t_out}, {o}], got {out.shape}")
        _require(all(t.contiguous and t.dtype == "f32" for t in (x, w, out)), "conv_causal: contiguous f32 tensors")
        _require(-(-t_out // 64) <= self.max_groups_per_dim, "conv_causal: too many output rows")
        pipeline = self._pipeline("conv_causal.wgsl", "main")
        params = self._uniform(t_out, o, c, kk, t_in, stride, pad, self.CONV_PAD_MODES[pad_mode])
        group = self._bind(pipeline, {0: w, 1: x, 2: out, 3: params})
        self._append(seq, pipeline, group, -(-o // 64), -(-t_out // 64))

    def conv_transpose(self, seq, x: GPUTensor, w: GPUTensor, out: GPUTensor, stride: int) -> None:
        """ConvTranspose1d, untrimmed: x [T_in, C], w [C, O, K] (PyTorch layout), no bias ->
        out [(T_in-1)·stride + K, O] with out[stride·t + j] += x[t]·w[:, :, j]. All f32."""
        t_in, c = x.shape
        c_w, o, kk = w.shape
        _require(c_w == c, f"conv_transpose weight must be [{c}, O, K], got {w.shape}")
        _require(stride >= 1, "conv_transpose: stride >= 1")
        t_out = (t_in - 1) * stride + kk
        _require(out.shape == (t_out, o), f"out must be [{t_out}, {o}], got {out.shape}")
        _require(all(t.contiguous and t.dtype == "f32" for t in (x, w, out)),
                 "conv_transpose: contiguous f32 tensors")
        n_q = -(-t_out // stride)
        _require(-(-n_q // 64) <= self.max_groups_per_dim, "conv_transpose: too many output rows")
        pipeline = self._pipeline("conv_transpose.wgsl", "main")
        params = self._uniform(t_out, o, c, kk, t_in, stride, -(-kk // stride))
        group = self._bind(pipeline, {0: w, 1: x, 2: out, 3: params})
        self._append(seq, pipeline, group, -(-o // 64), -(-n_q // 64), stride)

    def sum_rows(self, seq, x: GPUTensor, out: GPUTensor) -> None:
        """out [1, D] (or a row view) = Σ_m x[m] for x [M, D] (any 2-D view); f32, rows in order."""
        _require(out.rows == 1 and out.cols == x.cols, f"sum_rows: out must be [1, {x.cols}]")
        _require(x.buffer is not out.buffer, "sum_rows: out must not alias x")
        pipeline = self._pipeline("reduce_rows.wgsl", "sum_rows")
        gx, gy = self._grid(-(-x.cols // WORKGROUP_INVOCATIONS))
        params = self._uniform(x.rows, x.cols, x.offset, x.row_stride, out.offset, out.row_stride, gx, 0.0)
        self._append(seq, pipeline, self._bind(pipeline, {0: x, 2: out, 3: params}), gx, gy)

    def scale(self, seq, a: GPUTensor, s: float, out: GPUTensor) -> None:
        """out = a · s for a host scalar s (2-D views; out must not alias a)."""
        _require((a.rows, a.cols) == (out.rows, out.cols), f"scale: {a.shape} vs {out.shape}")
        _require(a.buffer is not out.buffer, "scale: out must not alias a")
        pipeline = self._pipeline("reduce_rows.wgsl", "scale")
        gx, gy = self._grid(-(-a.rows * a.cols // WORKGROUP_INVOCATIONS))
        params = self._uniform(a.rows, a.cols, a.offset, a.row_stride, out.offset, out.row_stride, gx, float(s))
        self._append(seq, pipeline, self._bind(pipeline, {0: a, 2: out, 3: params}), gx, gy)
