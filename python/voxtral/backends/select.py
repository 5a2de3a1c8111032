"""Choosing the compute backend (shared by the ASR and TTS pipelines and the CLI)."""
from __future__ import annotations

import numpy as np

from voxtral.errors import VoxtralError

BACKENDS = ("auto", "webgpu", "numpy", "numpy64")


def make_ops(backend: str = "auto"):
    """(ops, backend name, note). `auto` takes WebGPU on a hardware adapter; with none, or with
    only a CPU-emulated one (lavapipe: slower than numpy), it takes numpy and a note says why."""
    if backend not in BACKENDS:
        raise VoxtralError(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
    if backend in ("auto", "webgpu"):
        try:
            from voxtral.backends.webgpu.ops import WebGPUOps
            ops = WebGPUOps()
        except Exception as e:  # no wgpu package, no adapter, device creation failed
            if backend == "webgpu":
                raise VoxtralError(f"the WebGPU backend is not available here: {e}") from None
            note = f"no WebGPU adapter ({type(e).__name__}: {str(e)[:120]}); using the numpy backend"
            from voxtral.backends.numpy_backend import NumpyOps
            return NumpyOps(), "numpy", note
        if backend == "auto" and getattr(ops.host, "is_software", False):
            # A CPU-emulated adapter (lavapipe) is slower than numpy: auto takes numpy.
            from voxtral.backends.numpy_backend import NumpyOps
            return NumpyOps(), "numpy", (f"only a software WebGPU adapter ({ops.host.adapter_name}); "
                                         "using the numpy backend (--backend webgpu forces it)")
        return ops, "webgpu", None
    from voxtral.backends.numpy_backend import NumpyOps
    return NumpyOps(np.float64 if backend == "numpy64" else np.float32), backend, None
