"""Native host on wgpu-py 0.32 (Vulkan/Metal/D3D12; lavapipe on machines without a GPU)."""
from __future__ import annotations

import os

from .host import Copy, Dispatch, GPUHost, ReadHandle

# wgpu-py names features slightly differently from the browser; report WebGPU's names.
_FEATURE_ALIASES = {"subgroup": "subgroups"}
# Optional features the kernels can use when the adapter offers them.
_WANTED_FEATURES = ("shader-f16", "subgroup", "timestamp-query")
# Limits the kernels depend on; requested at the adapter's own values (defaults are far lower).
_COMPUTE_LIMITS = (
    "max-storage-buffer-binding-size", "max-buffer-size", "max-compute-invocations-per-workgroup",
    "max-compute-workgroup-size-x", "max-compute-workgroup-size-y", "max-compute-workgroup-size-z",
    "max-compute-workgroup-storage-size", "max-compute-workgroups-per-dimension",
    "max-storage-buffers-per-shader-stage", "max-uniform-buffer-binding-size",
    "max-uniform-buffers-per-shader-stage", "max-bind-groups", "max-bindings-per-bind-group",
    "min-storage-buffer-offset-alignment", "min-uniform-buffer-offset-alignment",
)


# Which of naga's runtime checks our own shaders are compiled with (VOXTRAL_SHADER_CHECKS):
#   "all"    WebGPU's default for untrusted code: index clamping and forced loop bounding
#   "bounds" index clamping only
#   "none"   neither (the default): the shaders are ours, every access is sized by the host code
#            and checked on lavapipe by the kernel tests, and Vulkan's robustBufferAccess (which
#            wgpu enables) still keeps a stray buffer access from faulting.
# Measured on the H100 (docs/perf-notes.md, session 13): forced loop bounding adds a counter to
# every loop, which keeps the driver from unrolling the fixed-trip inner loops - the encoder's
# GEMM ran 13x slower and the decode step's matvecs 1.5x; index clamping costs the GEMM 40% more.
# The browser compiles with its own checks (Dawn/Tint); this applies to the native host only.
SHADER_CHECKS_ENV = "VOXTRAL_SHADER_CHECKS"
SHADER_CHECKS = ("all", "bounds", "none")
DEFAULT_SHADER_CHECKS = "none"


class NoAdapterError(RuntimeError):
    """No WebGPU adapter is available on this machine."""


class WgpuHost(GPUHost):
    """GPUHost over wgpu-py. `backend` ('Vulkan', 'Metal', 'D3D12', 'OpenGL') forces one."""

    def __init__(self, power_preference: str = "high-performance", backend: str | None = None,
                 shader_checks: str | None = None):
        super().__init__()
        self.shader_checks = shader_checks or os.environ.get(SHADER_CHECKS_ENV) or DEFAULT_SHADER_CHECKS
        if self.shader_checks not in SHADER_CHECKS:
            raise ValueError(f"shader checks must be one of {SHADER_CHECKS}, not {self.shader_checks!r}")
        os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")  # silences a wgpu/Vulkan loader warning
        if backend:
            os.environ["WGPU_BACKEND_TYPE"] = backend
        import wgpu  # imported here: the rest of the package must load without wgpu (Pyodide)

        self._wgpu = wgpu
        adapter = wgpu.gpu.request_adapter_sync(power_preference=power_preference)
        if adapter is None:
            raise NoAdapterError("wgpu found no adapter (install mesa-vulkan-drivers for lavapipe)")
        info = adapter.info
        self.adapter_name = f"{info.get('device', '?')} ({info.get('backend_type', '?')})"
        self.is_software = str(info.get("adapter_type", "")).lower() == "cpu"  # lavapipe, llvmpipe
        wanted = [f for f in _WANTED_FEATURES if f in adapter.features]
        limits = {k: adapter.limits[k] for k in _COMPUTE_LIMITS if k in adapter.limits}
        self.device = adapter.request_device_sync(required_features=wanted, required_limits=limits)
        self.queue = self.device.queue
        self.features = frozenset(_FEATURE_ALIASES.get(f, f) for f in self.device.features)
        self.limits = {k.replace("-", "_"): int(v) for k, v in self.device.limits.items()
                       if isinstance(v, int)}
        self.needs_subgroups_directive = False  # naga rejects `enable subgroups;`
        try:  # raw wgpu-native entry points for the hot encoding loop (see _encode_raw)
            from wgpu.backends.wgpu_native._ffi import ffi, lib
            self._raw = (lib, ffi.NULL)
        except (ImportError, AttributeError):
            self._raw = None

    # -------------------------------------------------------------------------- buffers
    def _create_buffer(self, size, usage_bits, label):
        return self.device.create_buffer(size=size, usage=usage_bits, label=label)

    def write_buffer(self, buffer, data, offset=0):
        self.queue.write_buffer(buffer, int(offset), data)

    def read_buffer(self, buffer, offset=0, size=None):
        # Copies must be 4-byte aligned: read the aligned span around the request and slice it.
        # queue.read_buffer submits a copy and maps it, so it also waits for all earlier work
        # (on_submitted_work_done_sync is broken in wgpu-py 0.32).
        size = buffer.size - offset if size is None else int(size)
        start = offset // 4 * 4
        stop = min(buffer.size, (offset + size + 3) // 4 * 4)
        data = self.queue.read_buffer(buffer, start, stop - start)
        return bytes(data)[offset - start: offset - start + size]

    def destroy_buffer(self, buffer):
        buffer.destroy()

    def buffer_size(self, buffer):
        return int(buffer.size)

    # ------------------------------------------------------------------------ pipelines
    def _compile_pipeline(self, wgsl_source, entry_point):
        module = self._shader_module(wgsl_source)
        return self.device.create_compute_pipeline(
            layout="auto", compute={"module": module, "entry_point": entry_point})

    def _shader_module(self, code: str):
        """A shader module with `shader_checks`' runtime checks: WebGPU's create_shader_module for
        "all", else wgpu-native's wgpuDeviceCreateShaderModuleTrusted (through wgpu-py's cffi
        handles; it has no Python wrapper)."""
        if self.shader_checks == "all":
            return self.device.create_shader_module(code=code)
        from wgpu.backends.wgpu_native import _api
        lib, ffi = _api.lib, _api.ffi
        source = _api.new_struct_p("WGPUShaderSourceWGSL *", code=_api.to_c_string_view(code))
        source[0].chain.next = ffi.NULL
        source[0].chain.sType = lib.WGPUSType_ShaderSourceWGSL
        desc = _api.new_struct_p("WGPUShaderModuleDescriptor *",
                                 nextInChain=ffi.cast("WGPUChainedStruct *", source),
                                 label=_api.to_c_string_view("voxtral"))
        checks = lib.WGPUShaderRuntimeChecks_BoundsChecks if self.shader_checks == "bounds" else 0
        handle = lib.wgpuDeviceCreateShaderModuleTrusted(self.device._internal, desc, checks)
        if handle == ffi.NULL:
            raise RuntimeError("shader module creation failed")
        return _api.GPUShaderModule("voxtral", handle, self.device)

    def _create_bind_group(self, pipeline, entries):
        return self.device.create_bind_group(
            layout=pipeline.get_bind_group_layout(0),
            entries=[{"binding": b, "resource": {"buffer": buf, "offset": off, "size": size}}
                     for b, buf, off, size in entries])

    # ---------------------------------------------------------------------------- run
    def run(self, dispatches: list[Dispatch], copies: list[Copy] = ()) -> None:
        encoder = self.device.create_command_encoder()
        cpass = encoder.begin_compute_pass()
        if self._raw is not None:
            self._encode_raw(cpass, dispatches)
        else:
            current = None
            for pipeline, bind_group, (x, y, z) in dispatches:
                if pipeline is not current:
                    cpass.set_pipeline(pipeline)
                    current = pipeline
                cpass.set_bind_group(0, bind_group)
                cpass.dispatch_workgroups(x, y, z)
        cpass.end()
        for c in copies:
            encoder.copy_buffer_to_buffer(c.src, c.src_offset, c.dst, c.dst_offset, c.size)
        self.queue.submit([encoder.finish()])

    def _encode_raw(self, cpass, dispatches) -> None:
        """The same encoding through wgpu-native's C functions directly: wgpu-py's checked
        wrappers cost ~15 us per call, and a decode step of the full model is ~1000 calls. The
        pipelines and bind groups are kept alive by their caches (Kernels)."""
        lib, null = self._raw
        handle = cpass._internal
        set_pipeline = lib.wgpuComputePassEncoderSetPipeline
        set_group = lib.wgpuComputePassEncoderSetBindGroup
        dispatch = lib.wgpuComputePassEncoderDispatchWorkgroups
        current = None
        for pipeline, bind_group, (x, y, z) in dispatches:
            if pipeline is not current:
                set_pipeline(handle, pipeline._internal)
                current = pipeline
            set_group(handle, 0, bind_group._internal, 0, null)
            dispatch(handle, x, y, z)

    def gpu_time_s(self, dispatches: list[Dispatch]) -> float | None:
        """Seconds the GPU spent on `dispatches` (one compute pass between two timestamps), or None
        without the timestamp-query feature. For benchmarks: the wall time of a submit also
        counts the host's encoding."""
        if "timestamp-query" not in self.features:
            return None
        wgpu = self._wgpu
        if not hasattr(self, "_timestamps"):
            self._timestamps = (self.device.create_query_set(type="timestamp", count=2),
                                self.device.create_buffer(size=16, usage=wgpu.BufferUsage.QUERY_RESOLVE
                                                          | wgpu.BufferUsage.COPY_SRC))
        query_set, resolved = self._timestamps
        encoder = self.device.create_command_encoder()
        cpass = encoder.begin_compute_pass(timestamp_writes={
            "query_set": query_set, "beginning_of_pass_write_index": 0, "end_of_pass_write_index": 1})
        if self._raw is not None:
            self._encode_raw(cpass, dispatches)
        else:
            for pipeline, bind_group, (x, y, z) in dispatches:
                cpass.set_pipeline(pipeline)
                cpass.set_bind_group(0, bind_group)
                cpass.dispatch_workgroups(x, y, z)
        cpass.end()
        encoder.resolve_query_set(query_set, 0, 2, resolved, 0)
        self.queue.submit([encoder.finish()])
        t0, t1 = (int(v) for v in memoryview(self.queue.read_buffer(resolved)).cast("Q"))
        return (t1 - t0) * 1e-9  # wgpu-native reports timestamps in nanoseconds

    def map_read(self, buffer, size: int) -> ReadHandle:
        return _WgpuRead(buffer, size, self)

    def wait(self) -> None:
        """Block until submitted work is done (a tiny readback; see read_buffer)."""
        if not hasattr(self, "_wait_buffer"):
            self._wait_buffer = self.create_buffer(4, ("copy_src", "copy_dst"))
        self.read_buffer(self._wait_buffer, 0, 4)


class _WgpuRead(ReadHandle):
    """map_async started at once; result() waits for that mapping only, so the GPU keeps working
    on whatever was submitted after the copy (the one-step-behind token readback)."""

    def __init__(self, buffer, size: int, host: "WgpuHost"):
        self.buffer, self.size, self.host = buffer, int(size), host
        self.promise = buffer.map_async("READ", 0, buffer.size)

    def result(self) -> bytes:
        # wgpu-py's own wait resolves the mapping from a thread that blocks until the queue is
        # empty, i.e. also until the step submitted after this one: the GPU would idle while the
        # host records the next step. Non-blocking polls resolve it as soon as its own submit is
        # done.
        raw = self.host._raw
        dev = getattr(self.host.device, "_internal", None)
        if raw is not None and dev is not None:
            lib, null = raw
            while self.promise._state == "pending":
                lib.wgpuDevicePoll(dev, False, null)
        self.promise.sync_wait()
        data = bytes(self.buffer.read_mapped(0, self.buffer.size))[: self.size]
        self.buffer.unmap()
        return data
