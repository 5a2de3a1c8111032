"""The thin host adapter every WebGPU host implements (native wgpu-py, browser Pyodide + JS).

Everything above this interface (kernels, model code) is host-agnostic and imports only numpy and
the standard library. A host hands out opaque handles (buffers, pipelines, bind groups) and does
exactly six things: create/write/read buffers, compile pipelines, make bind groups, and run a list
of dispatches as one command encoder + one compute pass + one submit.

Naming: features use WebGPU's names ('shader-f16', 'subgroups', 'timestamp-query'; wgpu-py's
'subgroup' is reported as 'subgroups'); limits use snake_case WebGPU names
('max_storage_buffer_binding_size', 'max_compute_invocations_per_workgroup', ...).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

# Buffer usages by simple name (values are the WebGPU GPUBufferUsage bits).
BUFFER_USAGE_BITS = {
    "map_read": 0x0001,
    "map_write": 0x0002,
    "copy_src": 0x0004,
    "copy_dst": 0x0008,
    "index": 0x0010,
    "vertex": 0x0020,
    "uniform": 0x0040,
    "storage": 0x0080,
    "indirect": 0x0100,
    "query_resolve": 0x0200,
}
DEFAULT_USAGE = ("storage", "copy_src", "copy_dst")


def usage_bits(usage: Sequence[str] | str) -> int:
    names = (usage,) if isinstance(usage, str) else tuple(usage)
    bits = 0
    for name in names:
        try:
            bits |= BUFFER_USAGE_BITS[name]
        except KeyError:
            known = sorted(BUFFER_USAGE_BITS)
            raise ValueError(f"unknown buffer usage {name!r}; known: {known}") from None
    return bits


class Dispatch(NamedTuple):
    """One compute dispatch: pipeline + its bind group (group 0) + workgroup counts (x, y, z)."""
    pipeline: object
    bind_group: object
    workgroups: tuple[int, int, int]


BindResource = object  # a buffer handle, or (buffer, offset_bytes, size_bytes)


class Copy(NamedTuple):
    """A buffer-to-buffer copy recorded after the compute pass of a `run`."""
    src: object
    src_offset: int
    dst: object
    dst_offset: int
    size: int


class ReadHandle:
    """A pending readback: `result()` -> bytes (blocks natively; the browser host awaits)."""

    def result(self) -> bytes:
        raise NotImplementedError


class GPUHost:
    """Abstract host. Subclasses implement the underscored primitives; pipelines are cached here."""

    #: WebGPU feature names the device was created with.
    features: frozenset[str] = frozenset()
    #: the device's limits (the adapter's own limits were requested), snake_case names.
    limits: dict[str, int] = {}
    #: browsers need `enable subgroups;` to use subgroup builtins; naga (wgpu-py) rejects it.
    needs_subgroups_directive: bool = False
    #: human-readable adapter description
    adapter_name: str = "?"

    def __init__(self):
        self._pipelines: dict[tuple[str, str], object] = {}

    # -------------------------------------------------------------------------- buffers
    def create_buffer(self, size: int, usage: Sequence[str] | str = DEFAULT_USAGE, label: str = ""):
        """A zero-initialised buffer of at least `size` bytes (rounded up to a multiple of 4)."""
        size = max(4, (int(size) + 3) // 4 * 4)
        self.allocated_bytes = getattr(self, "allocated_bytes", 0) + size  # for `voxtral bench`
        return self._create_buffer(size, usage_bits(usage), label)

    def write_buffer(self, buffer, data, offset: int = 0) -> None:
        """Copy bytes-like `data` (bytes, numpy array, memoryview) into `buffer` at `offset`."""
        raise NotImplementedError

    def read_buffer(self, buffer, offset: int = 0, size: int | None = None) -> bytes:
        """The bytes of buffer[offset : offset+size], after all submitted work (sync natively)."""
        raise NotImplementedError

    def destroy_buffer(self, buffer) -> None:
        raise NotImplementedError

    def buffer_size(self, buffer) -> int:
        raise NotImplementedError

    # ------------------------------------------------------------------------ pipelines
    def create_pipeline(self, wgsl_source: str, entry_point: str = "main"):
        """A compute pipeline (auto layout), compiled once per (source, entry point)."""
        key = (wgsl_source, entry_point)
        pipeline = self._pipelines.get(key)
        if pipeline is None:
            pipeline = self._compile_pipeline(wgsl_source, entry_point)
            self._pipelines[key] = pipeline
        return pipeline

    def create_bind_group(self, pipeline, resources: Sequence[BindResource] | dict[int, BindResource]):
        """Bind group 0 of `pipeline`. A list binds resources[i] at binding i; a dict maps binding
        numbers to resources. A resource is a buffer or (buffer, offset_bytes, size_bytes)."""
        entries = resources.items() if isinstance(resources, dict) else enumerate(resources)
        normalized = []
        for binding, res in entries:
            if isinstance(res, tuple):
                buf, offset, size = res
            else:
                buf, offset, size = res, 0, self.buffer_size(res)
            normalized.append((int(binding), buf, int(offset), int(size)))
        return self._create_bind_group(pipeline, normalized)

    # ---------------------------------------------------------------------------- run
    def run(self, dispatches: Sequence[Dispatch], copies: Sequence[Copy] = ()) -> None:
        """Encode all dispatches in one compute pass, then the buffer-to-buffer `copies` (e.g. the
        argmax into a mappable staging buffer), and submit once (does not wait)."""
        raise NotImplementedError

    def map_read(self, buffer, size: int) -> "ReadHandle":
        """Start mapping a 'map_read' buffer; the handle's `result()` waits for the submit that
        filled it (not for later ones) and returns its first `size` bytes."""
        raise NotImplementedError

    # ------------------------------------------------------------------ subclass hooks
    def _create_buffer(self, size: int, usage_bits: int, label: str):
        raise NotImplementedError

    def _compile_pipeline(self, wgsl_source: str, entry_point: str):
        raise NotImplementedError

    def _create_bind_group(self, pipeline, entries: list[tuple[int, object, int, int]]):
        raise NotImplementedError

    # ------------------------------------------------------------------------ helpers
    @property
    def has_subgroups(self) -> bool:
        return "subgroups" in self.features

    @property
    def has_shader_f16(self) -> bool:
        return "shader-f16" in self.features

    @property
    def max_storage_binding(self) -> int:
        return int(self.limits.get("max_storage_buffer_binding_size", 128 << 20))

    @property
    def max_workgroup_invocations(self) -> int:
        return int(self.limits.get("max_compute_invocations_per_workgroup", 256))
