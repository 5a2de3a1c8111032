"""The browser host (`JsHost`) natively: a Python stand-in for web/gpu-host.js over wgpu-py reads the
same wasm-heap addresses (here: process memory) and integer ids the real helper reads, so the id
tables, the packed dispatch/copy words and the uploads are checked without a browser. Also the
browser Session's WebGPU set-up: the kernel self-test passes, a forced failure is reported, and a
file transcribed on the self-tested kernels gives the numpy backend's tokens."""
from __future__ import annotations

import ctypes
import json
import os
import re

import numpy as np
import pytest

from voxtral.backends.webgpu.host import Copy, Dispatch
from voxtral.backends.webgpu.js_host import JsHost
from voxtral.backends.webgpu.selftest import choose_kernels, kernel_variants, run_checks
from voxtral.errors import VoxtralError


class _U8:
    """What Pyodide hands Python for a JS Uint8Array."""

    def __init__(self, data: bytes):
        self.data = data

    def to_bytes(self) -> bytes:
        return self.data


def _words(ptr: int, n: int) -> np.ndarray:
    return np.frombuffer(ctypes.string_at(ptr, 4 * n), dtype=np.uint32)


class FakeVoxtralGPU:
    """web/gpu-host.js's API over a WgpuHost. Async methods return thunks; `wait` runs them."""

    def __init__(self, host):
        self.h = host
        self.objects = [None]
        self.submits = 0
        self.released = 0

    @staticmethod
    def wait(thunk):
        return thunk() if callable(thunk) else thunk

    def _put(self, obj) -> int:
        self.objects.append(obj)
        return len(self.objects) - 1

    def describe(self) -> str:
        camel = {re.sub(r"_([a-z])", lambda m: m.group(1).upper(), k): v for k, v in self.h.limits.items()}
        return json.dumps({"name": "fake " + self.h.adapter_name, "features": sorted(self.h.features),
                           "limits": camel, "isFallbackAdapter": False})

    def takeErrors(self):
        return None

    def createBuffer(self, size, usage, label):
        return self._put(self.h._create_buffer(size, usage, label))

    def writeBuffer(self, obj_id, offset, ptr, n):
        self.h.write_buffer(self.objects[obj_id], ctypes.string_at(ptr, n), offset)

    def readBuffer(self, obj_id, offset, size):
        return lambda: _U8(self.h.read_buffer(self.objects[obj_id], offset, size))

    def mapRead(self, obj_id, size):
        handle = self.h.map_read(self.objects[obj_id], size)  # mapping starts now, as in JS
        return lambda: _U8(handle.result())

    def destroyBuffer(self, obj_id):
        self.objects[obj_id].destroy()
        self.release(obj_id)

    def release(self, obj_id):
        self.objects[obj_id] = None
        self.released += 1

    def createPipeline(self, code, entry):
        pipeline = self.h._compile_pipeline(code, entry)
        return lambda: self._put(pipeline)

    def createBindGroup(self, pipeline_id, ptr, n):
        w = _words(ptr, 4 * n).reshape(n, 4)
        entries = [(int(b), self.objects[int(i)], int(off), int(size)) for b, i, off, size in w]
        return self._put(self.h._create_bind_group(self.objects[pipeline_id], entries))

    def run(self, ptr, n_dispatches, n_copies):
        w = _words(ptr, 5 * (n_dispatches + n_copies)).reshape(-1, 5).astype(int)
        o = self.objects
        dispatches = [Dispatch(o[p], o[g], (x, y, z)) for p, g, x, y, z in w[:n_dispatches]]
        copies = [Copy(o[s], so, o[d], do, n) for s, so, d, do, n in w[n_dispatches:]]
        self.h.run(dispatches, copies)
        self.submits += 1


@pytest.fixture(scope="module")
def fake(host):
    return FakeVoxtralGPU(host)


@pytest.fixture(scope="module")
def js_host(fake):
    h = JsHost(fake, run_sync=FakeVoxtralGPU.wait)
    h.needs_subgroups_directive = False  # naga (under the fake) rejects `enable subgroups;`
    return h


def test_js_host_describes_the_device(js_host, host):
    assert js_host.features == host.features
    assert js_host.max_storage_binding == host.max_storage_binding
    assert js_host.max_workgroup_invocations == host.max_workgroup_invocations
    assert js_host.adapter_name.startswith("fake ")


def test_js_host_buffers_roundtrip_and_release(js_host, fake):
    data = np.arange(37, dtype=np.uint8)  # not a multiple of 4: rounded up, read back exactly
    buf = js_host.create_buffer(data.nbytes)
    js_host.write_buffer(buf, np.concatenate([data, np.zeros(3, np.uint8)]))
    assert js_host.read_buffer(buf, 5, 20) == bytes(data[5:25])
    assert js_host.read_buffer(buf) == bytes(data) + b"\0\0\0"
    before = fake.released
    del buf
    assert fake.released == before + 1  # the JS object is released with its handle


def test_js_host_runs_the_kernel_self_test(js_host):
    kernels, report = choose_kernels(js_host)
    assert report["ok"], report
    assert kernels is not None and report["attempts"][0]["failed"] == []


def test_self_test_forced_failure_tries_every_variant(js_host):
    kernels, report = choose_kernels(js_host, force_fail=True)
    assert kernels is None and not report["ok"]
    assert [(a["use_subgroups"], a["use_shader_f16"]) for a in report["attempts"]] == kernel_variants(js_host)
    assert all(a["failed"] for a in report["attempts"])


def test_self_test_catches_wrong_results(host):
    """A kernel that computes garbage fails its check (here: every argmax reads as 0)."""
    from voxtral.backends.webgpu.kernels import Kernels
    from voxtral.backends.webgpu.ops import WebGPUOps

    class BrokenArgmax(WebGPUOps):
        def argmax(self, x):
            return self._upload(np.zeros((x.shape[0],), np.uint32), "u32")

    results = run_checks(BrokenArgmax(kernels=Kernels(host)))
    bad = [r["name"] for r in results if not r["ok"]]
    assert bad == ["argmax (read one step late)"]


def test_decode_on_js_host_equals_numpy_one_submit_per_step(js_host, fake, tmp_path):
    from voxtral.asr_pipeline import ASRPipeline
    from voxtral.audio import load_audio
    from voxtral.backends.webgpu.kernels import Kernels
    from voxtral.backends.webgpu.ops import WebGPUOps
    from voxtral.data import sample_wav_path
    from voxtral.testmodel import make_test_model
    from voxtral.weights.loader import open_model

    mf = open_model(make_test_model("asr", str(tmp_path), fmt="gguf"))
    audio = load_audio(sample_wav_path(), 16000)[:16000 * 2]
    want = ASRPipeline(mf, backend="numpy").transcribe(audio)
    pipe = ASRPipeline(mf, backend="webgpu", ops=WebGPUOps(kernels=Kernels(js_host)))
    before = fake.submits
    got = pipe.transcribe(audio)
    assert got.tokens == want.tokens
    assert pipe.ops.submits == fake.submits - before  # every submit went through the one JS call


# ------------------------------------------------------------------ the browser Session
@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    from voxtral.testmodel import make_test_model

    d = tmp_path_factory.mktemp("m")
    make_test_model("asr", str(d), fmt="shards", shard_bytes=200_000)
    return [(d / n).read_bytes() for n in sorted(os.listdir(d)) if n.startswith("shard-")]


def test_session_webgpu_equals_numpy(host, shards):
    from voxtral.browser import Session
    from voxtral.data import sample_wav_path

    wav = open(sample_wav_path(), "rb").read()
    ref = Session()
    ref.load(shards, backend="numpy")
    want = json.loads(ref.transcribe_file(wav))

    s = Session()
    report = json.loads(s.setup_webgpu(host))
    assert report["ok"] and report["adapter"] == host.adapter_name
    assert report["use_subgroups"] == host.has_subgroups
    info = json.loads(s.load(shards, backend="webgpu"))
    assert info["backend"] == "webgpu"
    got = json.loads(s.transcribe_file(wav))
    assert got["tokens"] == want["tokens"] and got["text"] == want["text"]
    assert got["backend"] == "webgpu"

    report = json.loads(s.setup_webgpu(host, json.dumps({"subgroups": False})))
    assert report["ok"] and not report["use_subgroups"]


def test_session_forced_self_test_failure(host, shards):
    from voxtral.browser import Session

    s = Session()
    report = json.loads(s.setup_webgpu(host, json.dumps({"force_fail": True})))
    assert not report["ok"] and "self-test failed" in report["message"]
    with pytest.raises(VoxtralError, match="not set up"):
        s.load(shards, backend="webgpu")
