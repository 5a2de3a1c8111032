"""Weights loaded straight to the GPU: the host never holds the whole model.

`upload_resident` takes the model's tensors one at a time (phase 2 of the loader, or the random
generator of the benchmarks) and writes every Q4_0 matrix into GPU memory at once, the members of
a Q/K/V or gate/up group directly into their place in one row-concatenated matrix (what
`WebGPUOps.linear_split` multiplies). The host keeps a `ResidentWeight` (shape, byte count, where
it lives) instead of the bytes; small tensors (norms, biases, convs, the 32-wide ADA projections)
stay host arrays.

Why: in Pyodide the model would otherwise sit in the wasm heap (2.5 GB for the real ASR model),
and above 2 GiB Pyodide 0.27's JS<->wasm copies (to_bytes, assign_to, to_js) fail with "offset is
out of bounds" and file reads come back as zeros (seen: a WGSL source of NULs). Natively it cuts
the peak host memory of a load from the model's size to its largest tensor.
"""
from __future__ import annotations

from typing import Any, Iterable

from ...errors import VoxtralError
from ...layout import split_groups
from .kernels import GPUWeight


class ResidentWeight:
    """A Q4_0 matrix on the GPU: rows [row_start, row_start + shape[0]) of `gpu`."""

    def __init__(self, shape, nbytes: int, gpu: GPUWeight, row_start: int = 0):
        self.shape = tuple(int(s) for s in shape)
        self.nbytes = int(nbytes)  # of the Q4 bytes (what a matvec over it reads)
        self.gpu = gpu
        self.row_start = int(row_start)

    @property
    def whole(self) -> bool:
        return self.row_start == 0 and self.shape[0] == self.gpu.rows

    def __repr__(self) -> str:
        return f"ResidentWeight(shape={self.shape}, rows {self.row_start}.. of {self.gpu.shape})"


def _gpu_q4(value, shape) -> bool:
    """Q4 matrices the kernels read as Q4 (rows u32-aligned); others run dequantized."""
    return hasattr(value, "raw") and len(shape) == 2 and shape[1] % 64 == 0


def upload_resident(kernels, tensors: Iterable[tuple[str, Any]], shapes: dict[str, tuple],
                    host_prefixes=()) -> dict[str, Any]:
    """{name: ResidentWeight | host value} from (name, value) pairs consumed one at a time.
    shapes: every tensor's shape (phase 1), so a fused group is allocated before its first part.
    Names starting with one of host_prefixes stay host values (the TTS codec folds its weights
    on the host)."""
    host_prefixes = tuple(host_prefixes)
    groups = {}
    for g in split_groups(n for n in shapes if not (host_prefixes and n.startswith(host_prefixes))):
        if len({shapes[n][1] for n in g}) == 1 and all(len(shapes[n]) == 2 for n in g):
            for n in g:
                groups[n] = g
    fused: dict[tuple, GPUWeight] = {}
    out: dict[str, Any] = {}
    for name, value in tensors:
        shape = tuple(getattr(value, "shape", shapes.get(name, ())))
        if not _gpu_q4(value, shape) or (host_prefixes and name.startswith(host_prefixes)):
            out[name] = value
            continue
        group = groups.get(name)
        if group is None:
            gw = kernels.alloc_q4(shape[0], shape[1], label=name)
            kernels.write_q4_rows(gw, 0, value.raw)
            out[name] = ResidentWeight(shape, value.raw.nbytes, gw)
            continue
        if group not in fused:
            fused[group] = kernels.alloc_q4(sum(shapes[n][0] for n in group), shape[1], label=group[0])
        row0 = sum(shapes[n][0] for n in group[: group.index(name)])
        kernels.write_q4_rows(fused[group], row0, value.raw)
        out[name] = ResidentWeight(shape, value.raw.nbytes, fused[group], row0)
    return out


def whole_weight(w: ResidentWeight) -> GPUWeight:
    if not w.whole:
        raise VoxtralError(f"{w!r} is part of a fused matrix and cannot be used alone")
    return w.gpu


def fused_weight(ws) -> GPUWeight | None:
    """The one GPU matrix that `ws` (ResidentWeights) tile in order, or None."""
    if not ws or not all(isinstance(w, ResidentWeight) for w in ws):
        return None
    gpu, row = ws[0].gpu, 0
    for w in ws:
        if w.gpu is not gpu or w.row_start != row:
            return None
        row += w.shape[0]
    return gpu if row == gpu.rows else None
