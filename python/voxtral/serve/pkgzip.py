"""The in-browser part of the `voxtral` package as a zip for Pyodide, built on the fly from the source.

Only what runs in the worker goes in (numpy + standard library code); the CLI, the server, the
test-model writer and native-only helpers stay out. The WGSL kernels of the checkout's shaders/
go in as voxtral/shaders/*.wgsl, where `find_shaders_dir` looks inside the package, so the WebGPU
backend compiles exactly the shaders of the same build. Rebuilt when any included file changes.
"""
from __future__ import annotations

import hashlib
import io
import os
import zipfile

import voxtral

# Subpackages and modules of `voxtral` that the browser worker imports.
BROWSER_PACKAGES = ("audio", "tokenizer", "weights", "models", "backends", "data")
BROWSER_MODULES = ("__init__.py", "config.py", "layout.py", "presets.py", "transcript.py",
                   "asr_pipeline.py", "errors.py", "browser.py",
                   "asr_bench.py", "tts_bench.py", "random_weights.py",  # the page's benchmark mode
                   "tts_pipeline.py", "browser_tts.py")  # the text-to-speech tab
SKIP_SUFFIXES = (".pyc", ".pyo")


def package_dir() -> str:
    return os.path.dirname(os.path.abspath(voxtral.__file__))


def default_shaders_dir() -> str | None:
    try:
        from voxtral.backends.webgpu.kernels import find_shaders_dir
        return str(find_shaders_dir())
    except (FileNotFoundError, ImportError):
        return None


def browser_files(pkg: str | None = None, shaders_dir: str | None = None) -> list[tuple[str, str]]:
    """(path on disk, name in the zip) for every file the browser needs, sorted."""
    pkg = pkg or package_dir()
    out = []
    if shaders_dir and os.path.isdir(shaders_dir):
        for f in sorted(os.listdir(shaders_dir)):
            if f.endswith(".wgsl"):
                out.append((os.path.join(shaders_dir, f), "voxtral/shaders/" + f))
    for mod in BROWSER_MODULES:
        p = os.path.join(pkg, mod)
        if os.path.isfile(p):
            out.append((p, "voxtral/" + mod))
    for sub in BROWSER_PACKAGES:
        root = os.path.join(pkg, sub)
        for d, dirs, files in os.walk(root):
            dirs[:] = sorted(x for x in dirs if x != "__pycache__" and not x.startswith("."))
            for f in sorted(files):
                if f.endswith(SKIP_SUFFIXES) or f.startswith("."):
                    continue
                p = os.path.join(d, f)
                out.append((p, "voxtral/" + os.path.relpath(p, pkg).replace(os.sep, "/")))
    return sorted(out, key=lambda t: t[1])


class PackageZip:
    """Cached zip bytes + an ETag, rebuilt when a file's size or mtime changes."""

    def __init__(self, pkg: str | None = None, shaders_dir: str | None = None):
        self.pkg = pkg or package_dir()
        self.shaders_dir = shaders_dir or default_shaders_dir()
        self._stamp = None
        self.data = b""
        self.etag = ""

    def _current_stamp(self, files) -> str:
        h = hashlib.sha1()
        for p, name in files:
            st = os.stat(p)
            h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    def get(self) -> tuple[bytes, str]:
        files = browser_files(self.pkg, self.shaders_dir)
        stamp = self._current_stamp(files)
        if stamp != self._stamp:
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                for p, name in files:
                    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                    info.compress_type = zipfile.ZIP_DEFLATED
                    with open(p, "rb") as f:
                        z.writestr(info, f.read())
            self.data = buf.getvalue()
            self.etag = '"' + hashlib.sha256(self.data).hexdigest()[:32] + '"'
            self._stamp = stamp
        return self.data, self.etag
