"""The Python side of the browser worker (web/worker.js): shard bytes in, transcripts out as JSON.

Runs inside Pyodide, so numpy + standard library only. worker.js hands over
  * the model's shards as JS Uint8Arrays (or anything bytes-like, natively in tests), which become
    byte sources read one tensor at a time: a JS array is never copied whole into wasm memory;
  * an uploaded WAV as a reader of the user's File ({size, read(offset, n)}, FileReaderSync in
    the worker), or as a Uint8Array or bytes: read and resampled piece by piece as `voxtral
    transcribe` reads a file from disk, so its length costs no memory (wasm32 holds 2 GiB at most);
  * other audio as float32 16 kHz samples (the browser's decodeAudioData output), taken 1 s at a
    time.
Results go back as JSON strings (one conversion, no proxies to leak).

The compute backend is one parameter, "numpy" or "webgpu". For "webgpu" the worker first hands
over its `VoxtralGPU` object (web/gpu-host.js) with `setup_webgpu`, which wraps it in a `JsHost` and
self-tests the kernels (`backends.webgpu.selftest`); every model load then runs on those kernels.
Calls that touch the GPU must be entered through `callPromising` (JSPI): readbacks block on JS
promises with `pyodide.ffi.run_sync`.
"""
from __future__ import annotations

import io
import json
import time

import numpy as np

from voxtral.asr_pipeline import FEED_SECONDS, ASRPipeline
from voxtral.errors import AudioFormatError, ModelFormatError, VoxtralError
from voxtral.transcript import to_srt, to_vtt
from voxtral.weights.gguf import open_gguf
from voxtral.weights.loader import _model_from_gguf
from voxtral.weights.sources import BufferSource, ShardedBytes

SAMPLE_RATE = 16000
NO_SIDE_DIR = "/nonexistent-voxtral-side-dir"  # shards in the browser have no folder beside them


class JsArraySource:
    """A byte source over a JS Uint8Array (a Pyodide JsProxy): copies only the ranges asked for."""

    def __init__(self, u8):
        self.u8 = u8
        self.size = int(u8.length)

    def _check(self, offset: int, n: int) -> None:
        if self.u8 is None:
            raise ModelFormatError("this shard was released once the model was built (it holds no tensor "
                                   "the model still reads)")
        if offset < 0 or n < 0 or offset + n > self.size:
            raise ModelFormatError(f"truncated shard: bytes [{offset}, {offset + n}) were requested "
                                   f"but it is only {self.size} bytes long")

    def read(self, offset: int, n: int) -> bytes:
        self._check(offset, n)
        return bytes(self.u8.subarray(offset, offset + n).to_bytes())

    def read_into(self, offset: int, out) -> None:
        view = memoryview(out).cast("B")
        self._check(offset, len(view))
        if len(view):
            self.u8.subarray(offset, offset + len(view)).assign_to(view)

    def close(self) -> None:
        self.u8 = None  # the JS array (a shard: up to 512 MB) can be garbage-collected


class RangeFile(io.RawIOBase):
    """A read-only, seekable binary file over an object that reads byte ranges, so `WavReader`
    reads an upload the way it reads a file on disk: a JS File through the worker's reader
    ({size, read(offset, n) -> Uint8Array}) or a JS Uint8Array (subarray / assign_to). Only the
    ranges asked for are copied into wasm memory."""

    def __init__(self, obj, name: str = "<upload>"):
        super().__init__()
        self.obj, self.name = obj, name
        self.size = int(obj.size if hasattr(obj, "size") else obj.length)
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + int(offset))
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, b) -> int:
        view = memoryview(b).cast("B")
        n = max(0, min(len(view), self.size - self.pos))
        if n:
            try:
                if hasattr(self.obj, "assign_to"):  # a Uint8Array
                    self.obj.subarray(self.pos, self.pos + n).assign_to(view[:n])
                else:
                    piece = self.obj.read(self.pos, n)
                    got = int(piece.length if hasattr(piece, "length") else len(piece))
                    if got != n:
                        raise OSError(f"asked for {n} bytes at {self.pos}, got {got}")
                    if hasattr(piece, "assign_to"):
                        piece.assign_to(view[:n])
                    else:
                        view[:n] = piece
            except Exception as e:  # noqa: BLE001 - a JS error (the file was changed or removed) included
                raise AudioFormatError(f"{self.name}: the file could not be read any more "
                                       f"(changed or removed since it was chosen?): {e}") from e
        self.pos += n
        return n


def as_source(buf):
    if hasattr(buf, "subarray") and hasattr(buf, "assign_to"):
        return JsArraySource(buf)
    return BufferSource(buf)


def as_samples(x) -> np.ndarray:
    """float32 samples from a JS Float32Array proxy, bytes, or an array."""
    if hasattr(x, "to_bytes"):
        return np.frombuffer(x.to_bytes(), dtype="<f4").copy()
    if isinstance(x, (bytes, bytearray, memoryview)):
        return np.frombuffer(x, dtype="<f4").copy()
    return np.asarray(x, dtype=np.float32).reshape(-1)


def result_json(tr) -> str:
    d = tr.to_dict()
    d["srt"] = to_srt(tr)
    d["vtt"] = to_vtt(tr)
    t = d["timings"]
    t["steps_per_s"] = round(t["steps"] / t["compute_s"], 2) if t.get("compute_s") else None
    return json.dumps(d, ensure_ascii=False)


class Session:
    """One loaded model and at most one live transcription (a worker holds one Session)."""

    def __init__(self):
        self.pipe: ASRPipeline | None = None
        self.live = None
        self.kernels = None  # the self-tested WebGPU kernels (setup_webgpu), shared by every load

    def setup_webgpu(self, gpu, options_json: str = "{}") -> str:
        """gpu: the worker's VoxtralGPU JS object (natively, in tests: a GPUHost). Runs the kernel
        self-test and keeps the first variant that passes. options: {"force_fail": true} makes
        every check fail; {"subgroups": false} skips the subgroup kernels. Returns the report as
        JSON: ok, adapter, use_subgroups, use_shader_f16, attempts, features, limits, seconds, and
        a message when it failed."""
        from voxtral.backends.webgpu.host import GPUHost
        from voxtral.backends.webgpu.js_host import JsHost, can_block
        from voxtral.backends.webgpu.kernels import REQUIRED_LIMITS, limit_shortfalls
        from voxtral.backends.webgpu.selftest import choose_kernels, kernel_variants

        opts = json.loads(options_json or "{}")
        self.kernels = None
        if not isinstance(gpu, GPUHost) and not can_block():
            return json.dumps({"ok": False, "attempts": [], "message": (
                "this browser cannot wait for the GPU from Python (no JavaScript Promise Integration)")})
        host = gpu if isinstance(gpu, GPUHost) else JsHost(gpu)
        short = limit_shortfalls(host.limits)
        if short:  # said plainly, before any kernel is compiled against them
            return json.dumps({"ok": False, "attempts": [], "adapter": getattr(host, "adapter_name", "?"),
                               "limits": {k: host.limits.get(k) for k in REQUIRED_LIMITS},
                               "message": f"this GPU's WebGPU limits are too small for the kernels "
                                          f"({'; '.join(short)})"})
        t0 = time.perf_counter()
        variants = kernel_variants(host)
        if opts.get("subgroups") is False:  # ?subgroups=0: the shared-memory kernels only
            variants = [v for v in variants if not v[0]]
        kernels, report = choose_kernels(host, force_fail=bool(opts.get("force_fail")), variants=variants)
        report["seconds"] = round(time.perf_counter() - t0, 3)
        report["features"] = sorted(host.features)
        report["limits"] = {k: host.limits[k] for k in ("max_storage_buffer_binding_size", "max_buffer_size",
                                                        "max_compute_invocations_per_workgroup") if k in host.limits}
        report["adapter_info"] = getattr(host, "adapter_info", None)
        if kernels is None:
            first = next((a["failed"][0] for a in report["attempts"] if a["failed"]), "no kernel variant to try")
            report["message"] = f"the WebGPU kernel self-test failed on {report['adapter']} ({first})"
            if opts.get("force_fail"):
                report["message"] += " - forced on purpose (selftest=fail)"
        self.kernels = kernels
        return json.dumps(report)

    def _make_ops(self, backend: str):
        if backend != "webgpu":
            return None  # ASRPipeline makes it
        if self.kernels is None:
            raise VoxtralError("the WebGPU backend is not set up (its self-test did not pass)")
        from voxtral.backends.webgpu.ops import WebGPUOps

        self.kernels.clear_bind_groups()  # the previous model's buffers can go
        return WebGPUOps(kernels=self.kernels)

    def load(self, shards, name: str = "model", backend: str = "numpy", tekken_json: str | None = None) -> str:
        """shards: the GGUF's byte pieces in order. Returns JSON: kind, params summary, load_s."""
        t0 = time.perf_counter()
        sources = [as_source(b) for b in shards]
        if not sources:
            raise ModelFormatError("no shards were given")
        gg = open_gguf(ShardedBytes(sources))
        mf = _model_from_gguf(gg, name, "shards", NO_SIDE_DIR)
        if mf.tekken is None and tekken_json:
            mf.tekken = json.loads(tekken_json)
        if mf.kind != "asr":
            raise VoxtralError(f"{name} is a {mf.kind.upper()} model; this page runs speech-to-text")
        self.pipe, self.live = None, None  # the previous model's memory first
        self.pipe = ASRPipeline(mf, backend=backend, ops=self._make_ops(backend))
        # Each tensor was copied as it was read (GGUFFile.tensor reads into a new array, then numpy
        # keeps it or the GPU backend uploads it) and the tokenizer came from the metadata at open:
        # nothing reads the shards again, so they are let go - the model's whole size in JS memory.
        gg.close()
        self.pipe.load_s = time.perf_counter() - t0
        self.live = None
        p = mf.params
        return json.dumps({"name": name, "kind": mf.kind, "backend": backend, "load_s": round(self.pipe.load_s, 4),
                           "dim": p.get("dim"), "n_layers": p.get("n_layers"), "vocab_size": p.get("vocab_size"),
                           "tokenizer": self.pipe.tokenizer.backend})

    def bench_asr(self, preset: str = "tiny", seconds: float = 16.0, backend: str = "numpy",
                  bandwidth_gbs: float | None = None, kernels: str | None = None) -> str:
        """The page's benchmark mode: `voxtral bench asr`'s passes (voxtral.asr_bench) on a random
        model of the preset's size built here in memory, on this page's backend. Returns JSON with
        the same fields as the CLI's (the memory figures are the worker's to add). kernels: A/B
        switches of the WebGPU kernels as "name=value,..." (see _kernel_switches)."""
        from voxtral.asr_bench import add_roofline, bench_model, time_asr
        from voxtral.backends import NumpyOps

        self.pipe, self.live = None, None  # a loaded model's memory first
        t0 = time.perf_counter()
        ops = self._make_ops(backend) or NumpyOps()
        switches = _kernel_switches(kernels)
        if switches and hasattr(ops, "k"):
            for name, value in switches.items():
                setattr(ops if name == "prefill_chunk_rows" else ops.k, name, value)
        cfg, weights = bench_model(ops, preset)  # on WebGPU straight to the GPU, tensor by tensor
        build_s = time.perf_counter() - t0
        r = time_asr(ops, cfg, weights, float(seconds))
        host = getattr(ops, "host", None)
        r = {"bench": "asr", "preset": preset, "model": f"random {preset} (in memory)", "backend": backend,
             "host": "browser", "load_s": round(build_s + r["warmup_s"], 3), **r}
        add_roofline(r, getattr(host, "adapter_name", "cpu (numpy in Pyodide)"), bandwidth_gbs)
        r["gpu_allocated_mb"] = round(getattr(host, "allocated_bytes", 0) / 2**20, 1) if host else None
        r["submits"] = getattr(ops, "submits", None)
        if switches:
            r["kernels"] = switches
        return json.dumps(r)

    def bench_tts(self, preset: str = "tiny", frames: int = 50, backend: str = "numpy") -> str:
        """The page's TTS benchmark mode: `voxtral bench tts`'s timed frames (voxtral.tts_bench)
        on a random model of the preset's size built here in memory, on this page's backend."""
        from voxtral.backends import NumpyOps
        from voxtral.tts_bench import random_tts_model, time_tts
        from voxtral.tts_pipeline import prepare_ops

        self.pipe, self.live = None, None  # a loaded model's memory first
        t0 = time.perf_counter()
        ops = prepare_ops(self._make_ops(backend) or NumpyOps())
        _, model, voice_rows, ids = random_tts_model(ops, preset)
        build_s = time.perf_counter() - t0
        r = time_tts(ops, model, ids, voice_rows, int(frames))
        host = getattr(ops, "host", None)
        r = {"bench": "tts", "preset": preset, "model": f"random {preset} (in memory)", "backend": backend,
             "host": "browser", "voice": "random", "load_s": round(build_s + r["warmup_s"], 3), **r}
        r["adapter"] = getattr(host, "adapter_name", "cpu (numpy in Pyodide)")
        r["gpu_allocated_mb"] = round(getattr(host, "allocated_bytes", 0) / 2**20, 1) if host else None
        r["submits"] = getattr(ops, "submits", None)
        return json.dumps(r)

    def _need_model(self) -> ASRPipeline:
        if self.pipe is None:
            raise VoxtralError("no model is loaded")
        return self.pipe

    def transcribe_file(self, data, on_text=None, on_progress=None, name: str = "<upload>") -> str:
        """data: a WAV file as the worker's File reader ({size, read(offset, n)}), a JS Uint8Array
        or bytes. Read, checked and resampled exactly as `voxtral transcribe` reads a file from
        disk: header and NaN scan first, then 1 s pieces, so memory does not grow with its length."""
        from voxtral.audio.wav import WavReader

        src = data if isinstance(data, (bytes, bytearray, memoryview)) else RangeFile(data, name)
        reader = WavReader(src)
        try:
            reader.check_finite()  # the file's own problems first, as the CLI reports them
            tr = self._need_model().transcribe_pieces(reader.stream(SAMPLE_RATE, FEED_SECONDS), reader.seconds,
                                        on_text=on_text, progress=on_progress)
        finally:
            reader.close()
        return result_json(tr)

    def transcribe_samples(self, samples, on_text=None, on_progress=None) -> str:
        """samples: float32 mono 16 kHz (e.g. decoded by the browser's decodeAudioData): a JS
        Float32Array is taken 1 s at a time, never copied whole into wasm memory."""
        pipe = self._need_model()
        step = int(FEED_SECONDS * SAMPLE_RATE)
        if hasattr(samples, "subarray"):
            n = int(samples.length)
            pieces = (as_samples(samples.subarray(i, min(n, i + step))) for i in range(0, n, step))
        else:
            audio = as_samples(samples)
            n = audio.size
            pieces = (audio[i:i + step] for i in range(0, n, step))
        if n == 0:
            raise VoxtralError("the file holds no audio samples")
        tr = pipe.transcribe_pieces(pieces, n / SAMPLE_RATE, on_text=on_text, progress=on_progress)
        return result_json(tr)

    # live audio: start, push 80 ms pieces, finish
    def live_start(self, delay_ms: float | None = None) -> None:
        self.live = self._need_model().live(delay_ms)

    def live_push(self, samples) -> str:
        """Returns JSON {text: new text, audio_s, compute_s, steps}."""
        if self.live is None:
            raise VoxtralError("no live transcription is running")
        text = self.live.push(as_samples(samples))
        return json.dumps(self._live_figures(text), ensure_ascii=False)

    def _live_figures(self, text: str) -> dict:
        lv = self.live
        steps = len(lv.stream.tokens)
        return {"text": text, "audio_s": round(lv.audio_s, 3), "compute_s": round(lv.compute_s, 4),
                "steps": steps, "rtf": round(lv.compute_s / lv.audio_s, 4) if lv.audio_s else None,
                "steps_per_s": round(steps / lv.compute_s, 2) if lv.compute_s else None}

    def live_finish(self) -> str:
        """Flush (right pad, last steps); returns the whole transcript as JSON, plus `tail` text."""
        if self.live is None:
            raise VoxtralError("no live transcription is running")
        tail = self.live.finish()
        tr = self.live.transcript()
        self.live = None
        d = json.loads(result_json(tr))
        d["tail"] = tail
        return json.dumps(d, ensure_ascii=False)


KERNEL_SWITCHES = "attn_rows=0|1, attn_decode=v1|v2, gemm8=0|1, prefill_rows=0..64"


def _kernel_switches(spec: str | None) -> dict:
    """{"attn_rows": bool, "attn_decode": str, "gemm8": bool, "prefill_chunk_rows": int} from e.g.
    "attn_rows=0,attn_decode=v1" (the page's ?kernels= parameter; the counterparts of
    VOXTRAL_ATTN_ROWS, VOXTRAL_ATTN_DECODE, VOXTRAL_GEMM8, VOXTRAL_PREFILL_ROWS); anything else is
    refused."""
    out: dict = {}
    for part in (p.strip() for p in (spec or "").split(",") if p.strip()):
        name, _, value = part.partition("=")
        if name in ("attn_rows", "gemm8") and value in ("0", "1"):
            out[name] = value == "1"
        elif name == "attn_decode" and value in ("v1", "v2"):
            out[name] = value
        elif name == "prefill_rows" and value.isdigit() and int(value) <= 64:
            out["prefill_chunk_rows"] = int(value)
        else:
            raise VoxtralError(f"unknown kernel switch {part!r} (known: {KERNEL_SWITCHES})")
    return out
