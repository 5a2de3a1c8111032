#!/usr/bin/env bash
# Install what is needed and run the main job.
# With no real weights under models/, a random-weight demo model is generated (and the output is
# meaningless text: the command says so and tells how to get the real weights).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/voxtral transcribe "$(.venv/bin/python -c 'import voxtral.data as d; print(d.sample_wav_path())')" "$@"
