#!/usr/bin/env bash
# Install what is needed and run the main job: the browser app's HTTPS dev server, `voxtral serve`
# (open https://localhost:8443/). Extra arguments go to it, e.g. --port 9443 or --models DIR.
# With no real weights under models/, a random-weight demo model is generated as shards (its
# transcripts are meaningless text: the server and the page say so and tell how to get the real weights).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/voxtral serve "$@"
