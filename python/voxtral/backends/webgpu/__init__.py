"""WebGPU backend: WGSL kernels (shaders/) driven from Python over a thin host adapter.

`host.GPUHost` is the adapter interface; `wgpu_host.WgpuHost` implements it natively on wgpu-py
(imported lazily, so this package also loads in Pyodide where a JS-backed host is used instead).
`kernels.Kernels` turns each shader into a method that appends dispatches to a list.
"""
from .host import Dispatch, GPUHost
from .kernels import GPUTensor, GPUWeight, Kernels, WeightBlock, find_shaders_dir, preprocess

__all__ = ["Dispatch", "GPUHost", "GPUTensor", "GPUWeight", "Kernels", "WeightBlock",
           "find_shaders_dir", "preprocess", "native_host"]


def native_host(**kwargs) -> GPUHost:
    """A WgpuHost (needs the `wgpu` package and an adapter; raises otherwise)."""
    from .wgpu_host import WgpuHost

    return WgpuHost(**kwargs)
