"""Helpers shared by the kernel test files: per-test seeds, the normwise error, running a list."""
from __future__ import annotations

import math
import os
import zlib

import numpy as np

SESSION_SEED = int(os.environ.get("VOXTRAL_TEST_SEED") or 0)  # conftest draws one per session


def seed_of(*params) -> int:
    return zlib.crc32(repr((SESSION_SEED,) + params).encode())


def max_rel(got, ref) -> float:
    """max |got - ref| / max |ref| (inf when got holds a NaN: poisoned outputs left unwritten)."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if not np.all(np.isfinite(got)):
        return math.inf
    return float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-30))


def run(k, build) -> None:
    """Record the dispatches `build(seq)` appends and submit them once."""
    seq: list = []
    build(seq)
    k.run(seq)
