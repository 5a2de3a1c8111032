"""`WebGPUOps`: the ops interface of `NumpyOps`, run by the WGSL kernels.

The model code (encoder, adapter, decoder) is written once against the ops interface; this class
gives it GPU-resident tensors. Ops do not run when called: each appends its dispatches to a pending
list, and the list is submitted (one command encoder, one compute pass, one submit) only when the
host needs a value (`to_host`) — for a decode step that is the 4-byte argmax, so a step is one
submit and logits never leave the GPU.

Buffers of intermediate tensors come from a pool keyed by size and return to it when their Python
object dies (CPython frees deterministically, also in Pyodide). Every decode step therefore reuses
the same buffers in the same order, so the bind groups cached by `Kernels` (keyed by buffer
identity) are all hits after the first step: bind groups are built once, not per step.

A buffer freed while dispatches that read it are still pending may be reused as the output of a
later dispatch (dispatches in one pass run in order), but never as the target of a host upload
(`queue.writeBuffer` lands before the pending dispatches run): uploads only take buffers freed
before the last submit.

Host-agnostic: numpy + stdlib; the GPU is reached only through the `GPUHost` adapter.
"""
from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from ...config import TransformerConfig
from ...errors import VoxtralError
from .host import Copy
from .kernels import MAX_M_MATVEC, GPUTensor, GPUWeight, Kernels
from .resident import ResidentWeight, fused_weight, upload_resident, whole_weight

PREFILL_ROWS_ENV = "VOXTRAL_PREFILL_ROWS"  # A/B switch: the prompt prefill in pieces of N rows

# Rows a regular streaming step adds to an attention cache at most (the encoder gets up to
# 32 tokens x 4 frames per chunk, the prompt 39 x 4): the GPU rings hold window + this - 1 rows so a
# whole batch attends in one pass; larger batches are split.
MAX_ATTENTION_BATCH = 256
# Caches without a sliding window (TTS backbone) get a fixed ring this long.
UNBOUNDED_CACHE_ROWS = 8192
_ITEMSIZE = {"f32": 4, "f16": 2, "u32": 4, "i32": 4}


class _Owner:
    """Owns one pooled buffer; returns it to the pool when the last tensor viewing it dies."""

    __slots__ = ("pool", "buffer", "nbytes", "__weakref__")

    def __init__(self, pool, buffer, nbytes):
        self.pool, self.buffer, self.nbytes = pool, buffer, nbytes

    def __del__(self):
        try:
            self.pool.release(self.buffer, self.nbytes)
        except Exception:  # interpreter shutdown
            pass


@dataclass(eq=False)
class DeviceArray(GPUTensor):
    """A GPUTensor that keeps its buffer's owner alive (views share it)."""

    owner: object = None

    def view_rows(self, start: int, stop: int) -> "DeviceArray":
        return self._wrap(super().view_rows(start, stop))

    def view_cols(self, start: int, stop: int) -> "DeviceArray":
        return self._wrap(super().view_cols(start, stop))

    def view_elems(self, start: int, stop: int) -> "DeviceArray":
        return self._wrap(super().view_elems(start, stop))

    def _wrap(self, t: GPUTensor) -> "DeviceArray":
        return DeviceArray(t.buffer, t.shape, t.dtype, t.offset, t.row_stride, self.owner)


class _BufferPool:
    """Free buffers by byte size. `ready` ones were freed before the last submit (safe for host
    uploads); `recent` ones may still be read by pending dispatches."""

    def __init__(self, host):
        self.host = host
        self.ready: dict[int, list] = defaultdict(list)
        self.recent: dict[int, list] = defaultdict(list)

    def release(self, buffer, nbytes: int) -> None:
        self.recent[nbytes].append(buffer)

    def submitted(self) -> None:
        for n, bufs in self.recent.items():
            self.ready[n].extend(bufs)
        self.recent.clear()

    def take(self, nbytes: int, for_upload: bool):
        if self.ready[nbytes]:
            return self.ready[nbytes].pop()
        if not for_upload and self.recent[nbytes]:
            return self.recent[nbytes].pop()
        return self.host.create_buffer(nbytes, label="act")


class WebGPUOps:
    """Ops over the WGSL kernels; tensors are `DeviceArray`s (GPU) until `to_host`."""

    name = "webgpu"
    dtype = np.float32

    def __init__(self, host=None, *, kernels: Kernels | None = None, kv_dtype: str = "f32",
                 max_binding_bytes: int | None = None):
        if kernels is None:
            if host is None:
                from . import native_host
                host = native_host()
            kernels = Kernels(host, max_binding_bytes=max_binding_bytes)
        self.k = kernels
        self.host = kernels.host
        self.kv_dtype = kv_dtype
        self.seq: list = []  # pending dispatches
        self.copies: list = []  # pending buffer copies (readbacks), encoded after the dispatches
        self._staging: dict[int, list] = defaultdict(list)  # free mappable buffers by size
        self.pool = _BufferPool(self.host)
        self._weights: dict[int, tuple] = {}  # id(host weight) -> (host weight, GPU copy)
        self._positions: dict[bytes, DeviceArray] = {}  # positions uploaded since the last submit
        self.submits = 0
        self._capture = None  # (pos tensor, kept tensors) while a step graph is being recorded
        self._last_rope = None  # (dispatch, q, k, rope args) of the last rope_qk (see GPURingCache)
        self._last_qkv = None  # (dispatch, q4_matvec args) of the last fused QKV matvec (same)
        # A/B switch under measurement: the decoder's prompt prefill in pieces of this many rows
        # (<= 4: q4_matvec instead of the tiled GEMM, whose 64-row tiles a 39-row prompt fills
        # badly); 0 = the whole prompt at once
        rows = os.environ.get(PREFILL_ROWS_ENV, "0").strip() or "0"
        if not rows.isdigit():
            raise VoxtralError(f"{PREFILL_ROWS_ENV} must be a whole number of rows, not {rows!r}")
        self.prefill_chunk_rows = int(rows)

    # ------------------------------------------------------------------------ memory
    def _alloc(self, shape, dtype: str = "f32", for_upload: bool = False) -> DeviceArray:
        shape = tuple(int(s) for s in shape)
        nbytes = max(4, -(-int(math.prod(shape)) * _ITEMSIZE[dtype] // 4) * 4)
        buf = self.pool.take(nbytes, for_upload)
        t = DeviceArray(buf, shape, dtype, owner=_Owner(self.pool, buf, nbytes))
        if self._capture is not None:
            self._capture[1].append(t)  # a recorded graph owns its intermediates for good
        return t

    def _upload(self, array, dtype: str | None = None) -> DeviceArray:
        a = np.asarray(array)
        if dtype is None:
            dtype = "f32" if a.dtype.kind == "f" else ("u32" if a.dtype.kind in "ub" else "i32")
        t = self._alloc(a.shape if a.ndim else (1,), dtype, for_upload=True)
        self.k.write(t, a)
        return t

    def flush(self) -> None:
        """Submit the pending dispatches (one encoder, one pass, one submit)."""
        if self._capture is not None:
            raise RuntimeError("a step graph being recorded cannot be submitted or read back")
        if self.seq or self.copies:
            self.host.run(self.seq, self.copies)
            # cleared in place: a kernel call may hold this very list while an argument of the
            # same call flushes (e.g. a broadcast operand read back from the GPU)
            self.seq.clear()
            self.copies.clear()
            self.submits += 1
        self.pool.submitted()
        self._positions.clear()

    # ---------------------------------------------------------------- step graphs
    def begin_capture(self, pos: GPUTensor) -> None:
        """Record dispatches (not run) with `pos` as the positions of every op; see step_graph."""
        self.flush()
        self._capture = (pos, [])

    def end_capture(self) -> tuple[list, list]:
        """(recorded dispatches, tensors they use that must stay allocated)."""
        pos, keep = self._capture
        self._capture = None
        dispatches = list(self.seq)
        self.seq.clear()
        return dispatches, keep

    def encoder_step_graph(self, encoder, conv_states, caches, n_mel_frames: int):
        """A recorded streaming encoder step of n_mel_frames mel frames (see step_graph)."""
        from .step_graph import EncoderStepGraph
        return EncoderStepGraph(self, encoder, conv_states, caches, n_mel_frames)

    def flow_matching_graph(self, head, steps: int, alpha: float):
        """The TTS flow-matching head's Euler solve, recorded (see step_graph)."""
        from .step_graph import FlowMatchingGraph
        return FlowMatchingGraph(self, head, steps, alpha)

    def decode_step_graph(self, decoder, caches, scales):
        """A recorded decode step, or None when the token embedding needs the host (a dense
        table: BF16/F32 models gather rows on the CPU)."""
        if self._weight(decoder.tok_embeddings).dtype != "q4_0":
            return None
        from .step_graph import DecodeStepGraph
        return DecodeStepGraph(self, decoder, caches, scales)

    def asarray(self, x):
        if isinstance(x, GPUTensor):
            return x
        t = self._upload(np.asarray(x, dtype=np.float32))
        if t.size == 1:  # remember a scalar's value: broadcasting it then needs no readback
            t.host_scalar = float(np.asarray(x, dtype=np.float32).reshape(-1)[0])
        return t

    def to_host(self, x) -> np.ndarray:
        if not isinstance(x, GPUTensor):
            return np.asarray(x)
        self.flush()
        out = self.k.read(self._contiguous(x) if not x.contiguous else x)
        if not x.contiguous:
            self.flush()
        return out

    def read_later(self, x) -> "_PendingRead":
        """Schedule a small readback (a token id) with the next submit; `result()` waits only for
        that submit. The decode loop reads step p-1's token after submitting step p."""
        if not x.contiguous:
            x = self._contiguous(x)
        nbytes = -(-x.size * _ITEMSIZE[x.dtype] // 4) * 4
        free = self._staging[nbytes]
        buf = free.pop() if free else self.host.create_buffer(nbytes, ("map_read", "copy_dst"), "readback")
        self.copies.append(Copy(x.buffer, x.offset * _ITEMSIZE[x.dtype], buf, 0, nbytes))
        return _PendingRead(self, buf, nbytes, x.shape, x.dtype)

    def zeros(self, shape):
        return self._upload(np.zeros(shape, np.float32))

    # ----------------------------------------------------------------------- weights
    def load_weights(self, tensors, shapes: dict, host_prefixes=()) -> dict:
        """The model's weights from (name, value) pairs taken one at a time: Q4 matrices go
        straight to the GPU (see resident.py), the rest, and names under host_prefixes (weights
        the model code reads on the host), stays on the host."""
        return upload_resident(self.k, tensors, shapes, host_prefixes)

    def _weight(self, w) -> GPUWeight:
        """Upload a weight matrix once (Q4 stays Q4; dense as f32), cached per host object."""
        if isinstance(w, ResidentWeight):
            return whole_weight(w)
        hit = self._weights.get(id(w))
        if hit is None or hit[0] is not w:
            if hasattr(w, "raw") and w.shape[1] % 64 == 0:
                g = self.k.upload_weight(w)
            elif hasattr(w, "raw"):
                # Q4 rows of K % 64 != 0 (the ADA up-projection, K = 32: one 18-byte block per
                # row) are not u32-aligned; these matrices are tiny, so they run dequantized.
                g = self.k.upload_weight(w.dequantize(), "f32")
            else:
                g = self.k.upload_weight(np.asarray(w, np.float32).reshape(w.shape[0], -1), "f32")
            hit = (w, g)
            self._weights[id(w)] = hit
        return hit[1]

    def _param(self, v) -> GPUTensor:
        """A small parameter (bias, norm weight, conv weight) uploaded once as f32."""
        if isinstance(v, GPUTensor):
            return v
        hit = self._weights.get(id(v))
        if hit is None or hit[0] is not v:
            a = v.dequantize() if hasattr(v, "dequantize") else np.asarray(v, np.float32)
            hit = (v, self.k.tensor(np.ascontiguousarray(a, np.float32), "f32", "param"))
            self._weights[id(v)] = hit
        return hit[1]

    def _positions_tensor(self, positions) -> GPUTensor:
        p = np.asarray(positions, dtype=np.int64)
        if self._capture is not None:  # a recorded step reads its positions from a fixed buffer
            if p.size != self._capture[0].size:
                raise ValueError(f"this step graph records {self._capture[0].size} position(s), not {p.size}")
            return self._capture[0]
        if p.size and (p.min() < 0 or p.max() >= 2**32):
            raise ValueError("positions must fit in u32")
        key = p.astype(np.uint32).tobytes()
        t = self._positions.get(key)
        if t is None:
            t = self._upload(p.astype(np.uint32), "u32")
            self._positions[key] = t
        return t

    # ----------------------------------------------------------------------- shaping
    def _contiguous(self, x: GPUTensor) -> DeviceArray:
        out = self._alloc(x.shape)
        self.k.copy(self.seq, x, out)
        return out

    def rows(self, x, start: int, stop: int):
        if start == 0 and stop == x.shape[0] and x.contiguous:
            return x
        return self._contiguous(x.view_rows(start, stop))

    def concat_rows(self, parts):
        parts = [p for p in parts if p.shape[0] > 0]
        if len(parts) == 1:
            return parts[0]
        cols = parts[0].shape[1]
        out = self._alloc((sum(p.shape[0] for p in parts), cols))
        r = 0
        for p in parts:
            self.k.copy(self.seq, p, out.view_rows(r, r + p.shape[0]))
            r += p.shape[0]
        return out

    def group_rows(self, x, factor: int):
        """[R, C] -> [R/factor, C·factor]: row-major regrouping, a reinterpretation of the buffer."""
        if not x.contiguous:
            x = self._contiguous(x)
        r, c = x.shape
        if r % factor:
            raise ValueError(f"{r} rows are not a multiple of {factor}")
        return DeviceArray(x.buffer, (r // factor, c * factor), x.dtype, 0, None, x.owner)

    def write_rows(self, dst, start: int, src) -> None:
        self.k.copy(self.seq, self.asarray(src), dst.view_rows(start, start + src.shape[0]))

    # ------------------------------------------------------------------------- math
    def linear(self, x, w, b=None, residual=None):
        """[residual +] x·Wᵀ [+ b]; the residual add is fused into the matmul."""
        x = self.asarray(x)
        if not x.contiguous:
            x = self._contiguous(x)
        gw = self._weight(w)
        out = self._alloc((x.shape[0], gw.rows))
        if residual is not None and not residual.contiguous:
            residual = self._contiguous(residual)
        self._linear_rows(x, gw, out, None if b is None else self._param(b), residual)
        return out

    def linear_split(self, x, ws, bs=None):
        """Linears of one input as ONE matmul over the row-concatenated weights (fused once, at
        first use); returns the column ranges of its output as views."""
        x = self.asarray(x)
        if not x.contiguous:
            x = self._contiguous(x)
        gw, gb = self._split_weight(ws, bs)
        out = self._alloc((x.shape[0], gw.rows))
        self._linear_rows(x, gw, out, gb)
        return _split_views(out, ws)

    def norm_linear_split(self, h, norm_w, eps: float, ws, bs=None, ada=None):
        """linear_split(rmsnorm(h, norm_w, eps, ada), ws, bs). For up to 4 rows (the decode step)
        with a Q4 weight it is ONE dispatch per row block of the weight: the matvec normalises its
        input itself (q4_matvec NORM); else the two ops."""
        h = self.asarray(h)
        gw, gb = self._split_weight(ws, bs)
        if h.rows > MAX_M_MATVEC or gw.dtype != "q4_0" or not h.contiguous:
            return self.linear_split(self.rmsnorm(h, norm_w, eps, ada=ada), ws, bs)
        out = self._alloc((h.shape[0], gw.rows))
        norm = self._norm(norm_w, eps, ada)
        self.k.q4_matvec(self.seq, h, gw, out, gb, norm=norm)
        if len(gw.blocks) == 1:  # the ring cache may redo it with RoPE and the cache write fused
            self._last_qkv = (self.seq[-1], h, gw, out, gb, norm)
        return _split_views(out, ws)

    def norm_swiglu(self, h, norm_w, eps: float, w_gate, w_up, ada=None):
        """silu(x·gateᵀ) ⊙ (x·upᵀ), x = rmsnorm(h, norm_w, eps, ada) (norm_w None: x = h). For up
        to 4 rows with the fused gate/up Q4 weight in one binding it is ONE dispatch (q4_swiglu:
        norm, both matvecs and the activation); else norm, matmul and swiglu. (The TTS flow-matching
        head's 6 rows in two chunks measured no faster: docs/perf-notes.md.)"""
        h = self.asarray(h)
        gw, _ = self._split_weight((w_gate, w_up), None)
        if (h.rows > MAX_M_MATVEC or gw.dtype != "q4_0" or len(gw.blocks) != 1
                or not h.contiguous or w_gate.shape != w_up.shape):
            x = h if norm_w is None else self.rmsnorm(h, norm_w, eps, ada=ada)
            return self.swiglu(*self.linear_split(x, (w_gate, w_up)))
        out = self._alloc((h.shape[0], gw.rows // 2))
        norm = None if norm_w is None else self._norm(norm_w, eps, ada)
        self.k.q4_swiglu(self.seq, h, gw, out, norm=norm)
        return out

    def _norm(self, norm_w, eps: float, ada):
        g = self._param(norm_w)
        if ada is None:
            return (g, float(eps), None)
        folded = self._folded_norm_weight(g, ada)
        if folded is not None:
            return (folded, float(eps), None)
        return (g, float(eps), self._param(ada))

    def _folded_norm_weight(self, g: GPUTensor, ada) -> GPUTensor | None:
        """g · (1 + ada) as one [1, K] vector, made once per (g, ada): the ASR decoder's
        time-conditioned FFN norm is the same at every step (its ada is computed once per session
        delay), so the fused matvec reads one vector instead of two and skips the product (the
        same f32 product it formed itself: bit-identical). None when ada is made inside the step
        graph being recorded (it would then change per step)."""
        ada = ada if isinstance(ada, GPUTensor) else self._param(ada)  # host values: uploaded once
        if self._capture is not None and any(t is ada for t in self._capture[1]):
            return None
        key = ("folded_norm", id(g), id(ada))
        hit = self._weights.get(key)
        if hit is None or hit[0] is not g or hit[1] is not ada:
            n = g.size
            g_row = GPUTensor(g.buffer, (1, n), "f32", g.offset)
            ada_row = GPUTensor(ada.buffer, (1, n), "f32", ada.offset)
            one_plus = self.k.tensor(np.ones((1, n), np.float32))  # [1, K], becomes 1 + ada
            folded = self.k.empty((1, n), "f32", "folded_norm")  # [1, K]
            # In the op stream (after whatever made ada); while a step graph is being recorded,
            # in a submit of its own (ada is older than the recording): it must not be replayed.
            seq = self.seq if self._capture is None else []
            self.k.add_(seq, one_plus, ada_row)
            self.k.mul(seq, g_row, one_plus, folded)
            if seq is not self.seq:
                self.host.run(seq)
                self.submits += 1
            hit = (g, ada, folded, one_plus)  # one_plus lives until the submit is surely done
            self._weights[key] = hit
        return hit[2]

    def _split_weight(self, ws, bs):
        """(fused weight, fused bias or None) of row-concatenated ws, made once per weight set."""
        bs = tuple(bs) if bs is not None else (None,) * len(ws)
        key = ("split",) + tuple(id(w) for w in ws) + tuple(id(b) for b in bs)
        hit = self._weights.get(key)
        if hit is None or any(a is not b for a, b in zip(hit[0], tuple(ws) + bs)):
            resident = fused_weight(ws)  # loaded as one matrix: nothing to fuse
            hit = (tuple(ws) + bs, resident if resident is not None else self._fuse_rows(ws),
                   self._fuse_bias(ws, bs))
            self._weights[key] = hit
        return hit[1], hit[2]

    def _fuse_rows(self, ws) -> GPUWeight:
        if any(isinstance(w, ResidentWeight) for w in ws):
            raise VoxtralError(f"weights loaded to the GPU separately cannot be fused now: {ws!r} "
                               "(upload_resident fuses the groups of layout.SPLIT_GROUPS at load)")
        if all(hasattr(w, "raw") for w in ws) and ws[0].shape[1] % 64 == 0:
            from ...weights.q4 import Q4Tensor
            raw = np.concatenate([np.asarray(w.raw, np.uint8).reshape(w.shape[0], -1) for w in ws])
            return self.k.upload_weight(Q4Tensor((raw.shape[0], ws[0].shape[1]), raw))
        dense = [w.dequantize() if hasattr(w, "dequantize") else np.asarray(w, np.float32) for w in ws]
        return self.k.upload_weight(np.concatenate(dense).astype(np.float32), "f32")

    def _fuse_bias(self, ws, bs):
        if all(b is None for b in bs):
            return None
        parts = [np.zeros(w.shape[0], np.float32) if b is None else np.asarray(b, np.float32).reshape(-1)
                 for w, b in zip(ws, bs)]
        return self.k.tensor(np.concatenate(parts), "f32", "bias")

    def swiglu(self, gate, up):
        out = self._alloc(gate.shape)
        self.k.swiglu(self.seq, gate, up, out)
        return out

    def rmsnorm(self, x, w, eps: float, ada=None):
        """x / rms(x) · w [· (1 + ada)] (ada: the decoder's time conditioning, fused)."""
        x = self.asarray(x)
        if not x.contiguous:
            x = self._contiguous(x)
        out = self._alloc(x.shape)
        self.k.rmsnorm(self.seq, x, self._param(w), out, eps, None if ada is None else self._param(ada))
        return out

    def rope_interleaved(self, x, positions, n_heads: int, head_dim: int, theta: float):
        """Rotates x IN PLACE and returns it (x is a fresh projection output that nothing else
        reads; no copy, one dispatch). Views (the q/k columns of a fused QKV) are fine."""
        x = self.asarray(x)
        self.k.rope(self.seq, x, self._positions_tensor(positions), n_heads, head_dim, theta)
        return x

    def rope_qk(self, q, k, positions, n_heads: int, n_kv_heads: int, head_dim: int, theta: float):
        """q and k rotated in place; when they are adjacent column ranges of one fused QKV output
        (the usual case) a single dispatch rotates both as n_heads + n_kv_heads heads."""
        if (isinstance(q, GPUTensor) and isinstance(k, GPUTensor) and q.buffer is k.buffer
                and q.row_stride == k.row_stride and q.offset + q.cols == k.offset and q.rows == k.rows):
            both = GPUTensor(q.buffer, (q.rows, q.cols + k.cols), q.dtype, q.offset, q.row_stride)
            self.k.rope(self.seq, both, self._positions_tensor(positions), n_heads + n_kv_heads,
                        head_dim, theta)
            # the ring cache's attend may swap this dispatch for rope + kv_write in one
            self._last_rope = (self.seq[-1], q, k, n_heads, n_kv_heads, head_dim, theta)
            return q, k
        return (self.rope_interleaved(q, positions, n_heads, head_dim, theta),
                self.rope_interleaved(k, positions, n_kv_heads, head_dim, theta))

    def attention(self, q, k, v, q_pos, k_pos, n_heads: int, n_kv_heads: int, head_dim: int,
                  window: int | None, alibi_slopes=None):
        """Self-attention of a batch over itself (no cache): its K/V go into a ring as long as the
        batch, and the ring kernel masks by position."""
        q_pos, k_pos = np.asarray(q_pos), np.asarray(k_pos)
        if alibi_slopes is not None or not _ring_positions(q_pos, k_pos):
            # TTS codec (ALiBi) and flow-matching head (repeated positions): see the TTS section
            return self._attention_local(q, k, v, q_pos, k_pos, n_heads, n_kv_heads, head_dim,
                                         window, alibi_slopes)
        m = q.shape[0]
        width = n_kv_heads * head_dim
        kc, vc = self._alloc((m, width)), self._alloc((m, width))
        pos = self._positions_tensor(q_pos)
        self.k.kv_write(self.seq, k, v, pos, kc, vc)
        out = self._alloc((m, n_heads * head_dim))
        self.k.attention(self.seq, q, kc, vc, pos, out, n_heads, n_kv_heads, head_dim,
                         _window(window, m))
        return out

    def new_kv_cache(self, width: int, capacity: int | None, cfg: TransformerConfig):
        return GPURingCache(self, width, cfg)

    def gelu(self, x):
        out = self._alloc(x.shape)
        self.k.gelu(self.seq, self.asarray(x), out)
        return out

    def silu(self, x):
        out = self._alloc(x.shape)
        self.k.silu(self.seq, self.asarray(x), out)
        return out

    def _broadcast(self, a, b):
        """b as an operand shaped like a: same shape, or one row repeated (stride 0)."""
        b = self.asarray(b)
        if tuple(b.shape) == tuple(a.shape):
            return b
        if b.shape[0] == 1 and b.shape[-1] == a.shape[-1]:
            return GPUTensor(b.buffer, a.shape, b.dtype, b.offset, 0)
        if b.size == 1:  # a scalar: materialise (rare: one-time set-up values)
            value = getattr(b, "host_scalar", None)  # set by asarray: no readback (no sync) needed
            if value is None:
                value = float(self.to_host(b).reshape(-1)[0])
            return self._upload(np.full(a.shape, value, np.float32))
        raise ValueError(f"cannot broadcast {b.shape} to {a.shape}")

    def add(self, a, b):
        a = self.asarray(a)
        out = self._alloc(a.shape)
        self.k.add(self.seq, a, self._broadcast(a, b), out)
        return out

    def mul(self, a, b):
        a = self.asarray(a)
        value = _host_scalar(b)
        if value is not None:  # a · host scalar: one dispatch, no upload, no sync
            out = self._alloc(a.shape)
            self.k.scale(self.seq, a, value, out)
            return out
        out = self._alloc(a.shape)
        self.k.mul(self.seq, a, self._broadcast(a, b), out)
        return out

    def conv1d(self, x, w, b, stride: int, left_pad: int):
        """x [T, C_in] time-major, w [C_out, C_in, 3]; left_pad zero rows prepended (causal)."""
        if w.shape[2] != 3 or b is None:  # TTS codec convs: general kernel size, no bias
            return self.conv1d_padded(x, w, left_pad, "zeros", stride)
        x = self.asarray(x)
        if left_pad:
            x = self.concat_rows([self.zeros((left_pad, x.shape[1])), x])
        t_out = (x.shape[0] - w.shape[2]) // stride + 1
        out = self._alloc((t_out, w.shape[0]))
        self.k.conv1d(self.seq, x, self._param(w), self._param(b), out, stride)
        return out

    def embedding_rows(self, table, ids):
        """Rows of a Q4 table gathered on the GPU; ids may be a device u32 tensor (the previous
        step's argmax: the token never visits the host). Dense tables gather on the host."""
        gw = self._weight(table)
        if gw.dtype != "q4_0":
            host_ids = np.asarray(self.to_host(ids) if isinstance(ids, GPUTensor) else ids, np.int64)
            if hasattr(table, "take") and not isinstance(table, np.ndarray):  # ndarray.take flattens
                rows = table.take(host_ids.reshape(-1))
            else:
                rows = np.asarray(table, np.float32)[host_ids.reshape(-1)]
            return self._upload(np.asarray(rows, np.float32))
        if not isinstance(ids, GPUTensor):
            ids = self._upload(np.asarray(ids, np.uint32).reshape(-1), "u32")
        out = self._alloc((ids.size, gw.cols))
        self.k.embedding(self.seq, gw, ids, out)
        return out

    def argmax(self, x):
        x = self.asarray(x)
        out = self._alloc((x.shape[0],), "u32")
        self.k.argmax(self.seq, x, out)
        return out

    # ================================================================ TTS ops (issue #7)
    # The TTS model's ops beyond the ASR ones: cache-free attention masked by explicit positions
    # (codec ALiBi + W+1 window; flow-matching groups), convs of any kernel size with their left
    # padding made in the shader, the transposed conv, and row sums (frame embeddings).

    # Q4 matmuls of a few rows more than q4_matvec takes (the flow-matching head's 6 rows: 3 tokens
    # x cond/uncond) run as matvecs on row chunks when `matvec_split_rows` >= M (set by the TTS
    # pipeline; None keeps the plain rule): the tiled q4_matmul wastes 58 of its 64 rows there.
    matvec_split_rows: int | None = None

    def _linear_rows(self, x, gw, out, bias=None, residual=None):
        m = x.shape[0]
        if (gw.dtype != "q4_0" or self.matvec_split_rows is None or m <= MAX_M_MATVEC
                or m > self.matvec_split_rows):
            self.k.linear(self.seq, x, gw, out, bias, residual)
            return
        for s in range(0, m, MAX_M_MATVEC):
            e = min(m, s + MAX_M_MATVEC)
            r = None
            if residual is not None:
                r = out.view_rows(s, e) if residual is out else residual.view_rows(s, e)
            self.k.linear(self.seq, self.rows(x, s, e), gw, out.view_rows(s, e), bias, r)

    def _attention_local(self, q, k, v, q_pos, k_pos, n_heads, n_kv_heads, head_dim, window,
                         alibi_slopes):
        q, k, v = self.asarray(q), self.asarray(k), self.asarray(v)
        q_pos = np.asarray(q_pos, dtype=np.int64).reshape(-1)
        k_pos = np.asarray(k_pos, dtype=np.int64).reshape(-1)
        win = min(int(window), 2**31 - 1) if window is not None else 2**31 - 1
        if k_pos.size and np.all(np.diff(k_pos) >= 0):  # sorted keys: scan only the visible band
            lo = np.searchsorted(k_pos, q_pos - win + 1, "left")
            hi = np.searchsorted(k_pos, q_pos, "right")
        else:
            lo, hi = np.zeros_like(q_pos), np.full_like(q_pos, k_pos.size)
        ranges = self._upload(np.stack([lo, hi], axis=1).reshape(-1).astype(np.uint32), "u32")
        slopes = None if alibi_slopes is None else self._slopes_tensor(alibi_slopes)
        out = self._alloc((q.shape[0], n_heads * head_dim))
        self.k.attention_local(self.seq, q, k, v, self._positions_tensor(q_pos),
                               self._positions_tensor(k_pos), ranges, out, n_heads, n_kv_heads,
                               head_dim, win, slopes)
        return out

    def _slopes_tensor(self, slopes) -> GPUTensor:
        cache = self.__dict__.setdefault("_alibi_slopes", {})  # slopes bytes -> GPU tensor
        key = np.asarray(slopes, np.float32).tobytes()
        if key not in cache:
            cache[key] = self.k.tensor(np.asarray(slopes, np.float32).reshape(-1), "f32", "alibi")
        return cache[key]

    def conv1d_padded(self, x, w, pad: int, mode: str = "zeros", stride: int = 1):
        """Conv1d (no bias) of x [T, C_in] with `pad` left rows made by `mode` ("zeros",
        "replicate": row 0, "reflect": rows pad..1) in the kernel: equal to
        conv1d(pad_left(x, pad, mode), w, None, stride, 0) without materialising the padding."""
        x = self.asarray(x)
        if not x.contiguous:
            x = self._contiguous(x)
        t_out = (x.shape[0] + pad - w.shape[2]) // stride + 1
        out = self._alloc((t_out, w.shape[0]))
        self.k.conv_causal(self.seq, x, self._param(w), out, stride, pad, mode)
        return out

    def conv_transpose1d(self, x, w, stride: int):
        """x [T, C_in], w [C_in, C_out, K] (PyTorch layout) -> [(T-1)·stride + K, C_out], untrimmed."""
        x = self.asarray(x)
        if not x.contiguous:
            x = self._contiguous(x)
        out = self._alloc(((x.shape[0] - 1) * stride + w.shape[2], w.shape[1]))
        self.k.conv_transpose(self.seq, x, self._param(w), out, stride)
        return out

    def sum_rows(self, x):
        """[M, D] -> [1, D]."""
        x = self.asarray(x)
        out = self._alloc((1, x.shape[1]))
        self.k.sum_rows(self.seq, x, out)
        return out


def _split_views(out, ws) -> list:
    """The column ranges of a fused output, one per weight of the split."""
    views, c = [], 0
    for w in ws:
        n = w.shape[0]
        views.append(out.view_cols(c, c + n))
        c += n
    return views


def _ring_positions(q_pos: np.ndarray, k_pos: np.ndarray) -> bool:
    """True when self-attention fits the ring kernel: keys = queries, strictly increasing."""
    return (q_pos.shape == k_pos.shape and np.array_equal(q_pos, k_pos)
            and bool(np.all(np.diff(q_pos.reshape(-1)) > 0)))


def _host_scalar(b):
    """The value of a one-element operand known on the host (a Python/numpy number, a one-value
    host array, or a GPU scalar made by asarray), else None."""
    if isinstance(b, (int, float, np.number)):
        return float(b)
    if isinstance(b, np.ndarray):
        return float(b.reshape(-1)[0]) if b.size == 1 else None
    return getattr(b, "host_scalar", None) if getattr(b, "size", 0) == 1 else None


class _PendingRead:
    def __init__(self, ops: WebGPUOps, buffer, nbytes: int, shape, dtype: str):
        self.ops, self.buffer, self.nbytes, self.shape, self.dtype = ops, buffer, nbytes, shape, dtype
        self._value = None

    def result(self) -> np.ndarray:
        if self._value is None:
            if any(c.dst is self.buffer for c in self.ops.copies):
                self.ops.flush()  # the copy has not been submitted yet
            raw = self.ops.host.map_read(self.buffer, self.nbytes).result()
            np_dtype = {"f32": np.float32, "u32": np.uint32, "i32": np.int32}[self.dtype]
            self._value = np.frombuffer(raw, dtype=np_dtype)[: int(math.prod(self.shape))].reshape(self.shape)
            self.ops._staging[self.nbytes].append(self.buffer)
        return self._value


def _window(window: int | None, capacity: int) -> int:
    # The kernel masks i - window < j <= i; None (no sliding window) = everything in the ring.
    return int(window) if window is not None else int(capacity)


class GPURingCache:
    """KV cache of one attention layer as two GPU rings [capacity, width]; slot of position p is
    p % capacity. capacity = window + MAX_ATTENTION_BATCH - 1, so a batch of up to
    MAX_ATTENTION_BATCH rows attends in place: every key its oldest row may see is still there."""

    def __init__(self, ops: WebGPUOps, width: int, cfg: TransformerConfig):
        self.ops, self.cfg = ops, cfg
        self.window = cfg.sliding_window
        self.unbounded_rows = getattr(ops, "unbounded_cache_rows", UNBOUNDED_CACHE_ROWS)
        base = self.window if self.window is not None else self.unbounded_rows
        self.capacity = base + MAX_ATTENTION_BATCH - 1
        self.keys = ops.k.kv_cache(self.capacity, width, ops.kv_dtype)
        self.values = ops.k.kv_cache(self.capacity, width, ops.kv_dtype)
        self.n_appended = 0

    @property
    def n_slots(self) -> int:
        return self.capacity

    def _just_roped_qkv(self, q, k, v):
        """The q|k|v view when the last recorded dispatch is rope_qk's rotation of exactly this
        q and k (adjacent columns of one QKV output, v right after k) with this layer's RoPE:
        that dispatch and the kv_write that follows become one rope_kv_write (decode steps:
        one dispatch fewer per layer). None otherwise."""
        ops, cfg = self.ops, self.cfg
        last = ops._last_rope
        if last is None or not ops.seq or ops.seq[-1] is not last[0]:
            return None
        _, lq, lk, n_heads, n_kv_heads, head_dim, theta = last
        if (lq is not q or lk is not k or not isinstance(v, GPUTensor) or v.buffer is not q.buffer
                or v.row_stride != q.row_stride or v.offset != k.offset + k.cols or v.rows != q.rows
                or (n_heads, n_kv_heads, head_dim, theta)
                != (cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.rope_theta)):
            return None
        return GPUTensor(q.buffer, (q.rows, q.cols + k.cols + v.cols), q.dtype, q.offset, q.row_stride)

    def _qkv_matvec_before_rope(self, qkv):
        """(h, weight, out, bias, norm) of the QKV matvec when it is the dispatch right before the
        rope that rotated `qkv` (its whole output): then matvec, rope and cache write become one
        q4_matvec with ROPE_KV (decode steps: two dispatches fewer per layer). None otherwise."""
        ops = self.ops
        last = ops._last_qkv
        if last is None or len(ops.seq) < 2 or ops.seq[-2] is not last[0]:
            return None
        _, h, gw, out, gb, norm = last
        if (out.buffer is not qkv.buffer or out.offset != qkv.offset or out.shape != qkv.shape
                or out.row_stride != qkv.row_stride):
            return None
        return h, gw, out, gb, norm

    def attend(self, q, k, v, positions):
        ops, cfg = self.ops, self.cfg
        positions = np.asarray(positions, dtype=np.int64)
        if self.window is None and positions.size and positions[-1] >= self.unbounded_rows:
            raise ValueError(f"sequence longer than {self.unbounded_rows} positions")
        m = positions.shape[0]
        outs = []
        for s in range(0, m, MAX_ATTENTION_BATCH):
            e = min(m, s + MAX_ATTENTION_BATCH)
            pos = ops._positions_tensor(positions[s:e])
            qs, ks, vs = (t if (s, e) == (0, m) else t.view_rows(s, e) for t in (q, k, v))
            qkv = self._just_roped_qkv(q, k, v) if (s, e) == (0, m) else None
            matvec = self._qkv_matvec_before_rope(qkv) if qkv is not None else None
            if matvec is not None:  # QKV matvec + rope just recorded: one matvec that does all
                ops.seq.pop()
                ops.seq.pop()
                h, gw, out, gb, norm = matvec
                ops.k.q4_matvec(ops.seq, h, gw, out, gb, norm=norm, rope_kv=(
                    pos, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.rope_theta, self.keys, self.values))
            elif qkv is not None:  # q, k rotated by the dispatch just recorded: redo it fused
                ops.seq.pop()
                ops.k.rope_kv_write(ops.seq, qkv, pos, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim,
                                    cfg.rope_theta, self.keys, self.values)
            else:
                ops.k.kv_write(ops.seq, ks, vs, pos, self.keys, self.values)
            out = ops._alloc((e - s, cfg.n_heads * cfg.head_dim))
            ops.k.attention(ops.seq, qs, self.keys, self.values, pos, out, cfg.n_heads,
                            cfg.n_kv_heads, cfg.head_dim, _window(self.window, self.capacity))
            outs.append(out)
        self.n_appended += m
        return outs[0] if len(outs) == 1 else ops.concat_rows(outs)
