"""Browser host: the GPUHost interface over Pyodide's JS bridge and web/gpu-host.js (`VoxtralGPU`).

Every GPU object lives in the JS helper's table; Python holds small handle objects carrying its
integer id (a handle's death releases the JS object, as dropping a wgpu-py object does natively).
Calls are kept few and cheap:
  * `run(dispatches, copies)` packs the whole step into one numpy u32 array and passes its address
    in the wasm heap to ONE JS call, which encodes the pass + copies and submits;
  * uploads pass the address of the bytes (the helper's writeBuffer reads the heap in place);
  * bind group entries travel the same way.

Waiting. WebGPU in the browser has no synchronous map: compiling a pipeline, `read_buffer` and a
`map_read` handle's `result()` get a JS Promise and block on it with `pyodide.ffi.run_sync`, which
suspends the WebAssembly stack (JSPI) while the worker's event loop runs the GPU callbacks. The
decode loop therefore stays plain synchronous Python, the same code the native host runs. JSPI
needs the Python call to have been entered with `callPromising` (worker.js does that for every
call into the session); `can_block()` says whether it is available.

Only numpy, the standard library and Pyodide's `pyodide.ffi` are used.
"""
from __future__ import annotations

import json
import re

import numpy as np

from .host import GPUHost, ReadHandle


def _run_sync(awaitable):
    from pyodide.ffi import run_sync  # only inside Pyodide

    return run_sync(awaitable)


def can_block() -> bool:
    """True when this Python stack may wait for a JS Promise (Pyodide with JSPI, entered through
    callPromising)."""
    try:
        from pyodide.ffi import can_run_sync
    except ImportError:
        return False
    try:
        return bool(can_run_sync())
    except Exception:
        return False


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", r"_\1", name).lower()


def _address(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


def _as_bytes_array(data) -> np.ndarray:
    """A contiguous uint8 view of bytes-like data or an array (no copy when already contiguous)."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)


class _Handle:
    """A JS object of the helper's table, released when the Python handle dies."""

    __slots__ = ("gpu", "id", "__weakref__")

    def __init__(self, gpu, obj_id: int):
        self.gpu, self.id = gpu, int(obj_id)

    def __del__(self):
        try:
            self.gpu.release(self.id)
        except Exception:  # interpreter shutdown, or the helper is gone
            pass


class JsBuffer(_Handle):
    __slots__ = ("size", "label")

    def __init__(self, gpu, obj_id: int, size: int, label: str):
        super().__init__(gpu, obj_id)
        self.size, self.label = int(size), label


class JsPipeline(_Handle):
    __slots__ = ()


class JsBindGroup(_Handle):
    __slots__ = ("refs",)  # the buffers it binds stay alive as long as it does


class JsHost(GPUHost):
    """GPUHost over a `VoxtralGPU` JS object (web/gpu-host.js) whose device is already created.
    run_sync blocks on what the helper's async methods return (default: Pyodide's; the native
    tests pass their own with a Python stand-in for the helper)."""

    needs_subgroups_directive = True  # browsers require `enable subgroups;`

    def __init__(self, gpu, run_sync=None):
        super().__init__()
        self.gpu = gpu
        self._wait_for = run_sync or _run_sync
        desc = json.loads(str(gpu.describe()))
        self.adapter_info = desc
        self.adapter_name = desc.get("name") or "WebGPU adapter"
        if desc.get("isFallbackAdapter"):
            self.adapter_name += " (software fallback)"
        self.features = frozenset(desc.get("features", ()))
        self.limits = {_snake(k): int(v) for k, v in desc.get("limits", {}).items()}
        # bound JS methods, looked up once (an attribute lookup through the bridge costs ~10 us)
        self._run = gpu.run
        self._write = gpu.writeBuffer

    # -------------------------------------------------------------------------- buffers
    def _create_buffer(self, size, usage_bits, label):
        return JsBuffer(self.gpu, self.gpu.createBuffer(int(size), int(usage_bits), label or ""), size, label)

    def write_buffer(self, buffer, data, offset=0):
        raw = _as_bytes_array(data)
        if raw.nbytes:
            self._write(buffer.id, int(offset), _address(raw), int(raw.nbytes))

    def read_buffer(self, buffer, offset=0, size=None):
        # copies must be 4-byte aligned: read the aligned span around the request and slice it
        size = buffer.size - offset if size is None else int(size)
        start = offset // 4 * 4
        stop = min(buffer.size, (offset + size + 3) // 4 * 4)
        if stop <= start:
            return b""
        data = bytes(self._wait_for(self.gpu.readBuffer(buffer.id, start, stop - start)).to_bytes())
        return data[offset - start: offset - start + size]

    def destroy_buffer(self, buffer):
        self.gpu.destroyBuffer(buffer.id)

    def buffer_size(self, buffer):
        return buffer.size

    # ------------------------------------------------------------------------ pipelines
    def _compile_pipeline(self, wgsl_source, entry_point):
        # createComputePipelineAsync: a WGSL error rejects the promise -> a Python exception here
        return JsPipeline(self.gpu, self._wait_for(self.gpu.createPipeline(wgsl_source, entry_point)))

    def _create_bind_group(self, pipeline, entries):
        words = np.array([(b, buf.id, off, size) for b, buf, off, size in entries], dtype=np.uint32)
        group = JsBindGroup(self.gpu, self.gpu.createBindGroup(pipeline.id, _address(words), len(entries)))
        group.refs = tuple(buf for _, buf, _, _ in entries)
        return group

    # ---------------------------------------------------------------------------- run
    def run(self, dispatches, copies=()) -> None:
        n_d, n_c = len(dispatches), len(copies)
        if not n_d and not n_c:
            return
        words = np.empty((n_d + n_c, 5), dtype=np.uint32)
        if n_d:
            words[:n_d] = [(p.id, g.id, x, y, z) for p, g, (x, y, z) in dispatches]
        if n_c:
            words[n_d:] = [(c.src.id, c.src_offset, c.dst.id, c.dst_offset, c.size) for c in copies]
        self._run(_address(words), n_d, n_c)

    def map_read(self, buffer, size: int) -> ReadHandle:
        return _JsRead(self.gpu.mapRead(buffer.id, int(size)), self._wait_for)

    def wait(self) -> None:
        """Block until the submitted work is done (a tiny readback)."""
        if not hasattr(self, "_wait_buffer"):
            self._wait_buffer = self.create_buffer(4, ("copy_src", "copy_dst"))
        self.read_buffer(self._wait_buffer, 0, 4)

    def take_errors(self) -> str | None:
        """WebGPU errors reported asynchronously since the last call (validation, device lost)."""
        errors = self.gpu.takeErrors()
        return None if errors is None else str(errors)


class _JsRead(ReadHandle):
    """mapAsync started at once; result() blocks (JSPI) on that mapping only, so the GPU keeps
    working on what was submitted after the copy (the one-step-behind token readback)."""

    def __init__(self, promise, wait_for):
        self.promise, self._wait_for = promise, wait_for
        self._data = None

    def result(self) -> bytes:
        if self._data is None:
            self._data = bytes(self._wait_for(self.promise).to_bytes())
        return self._data
