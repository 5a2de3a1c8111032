#!/usr/bin/env bash
# Install the test dependencies and run every test (unit, oracle, shaders, e2e).
# Extra arguments go to pytest, e.g. scripts/test.sh -k gguf
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
exec .venv/bin/python -m pytest -q "$@" tests
