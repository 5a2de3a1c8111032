"""Backends implementing the ops interface the models are written against.

`NumpyOps` is the float32/float64 reference (CPU, always available, runs in Pyodide).
"""
from .numpy_backend import NumpyOps, erf

__all__ = ["NumpyOps", "erf", "default_ops"]


def default_ops() -> NumpyOps:
    return NumpyOps()
