#!/bin/bash
# The H100 measurements behind README "Performance" and docs/perf-notes.md, run through the
# `device` tool from the repo root (that machine has no registries: everything travels in `carry`).
#
#   native   carry .gl .whl (../shared/tools/device-prep.sh + gguf/tqdm/pyyaml wheels):
#            `voxtral bench asr --preset full --json`, the kernel-option A/B with a replay profile
#            (scripts/bench_variants.py) and transformers on the same GPU (scripts/bench_transformers.py)
#   browser  carry .cache/web-assets (Pyodide) and the gpu-browser bundle (.chr/, see
#            ../shared/tools/gpu-browser/README.md; run after its install.sh): the page's benchmark
#            mode in headless Chromium on the H100, served as a static export of the app
#            (needs only the machine's python3 + numpy + aiohttp)
# Results go to $OUT (one file per measurement, so a later failure keeps the earlier ones).
set -u
OUT=${OUT:-/tmp/voxtral-out}
mkdir -p "$OUT"

setup_native() {
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
  export PYTHONPATH=$PWD/python:/tmp/site XDG_RUNTIME_DIR=/tmp
}

case "${1:-}" in
  native)
    setup_native
    nvidia-smi --query-gpu=name,memory.total,clocks.max.memory,driver_version --format=csv > "$OUT/gpu.csv" 2>&1
    echo "== voxtral bench asr"
    timeout 240 python3 -m voxtral bench asr --preset full --seconds 16 --backend webgpu --json \
      > "$OUT/native.json" 2> "$OUT/native.err"
    tail -c 1500 "$OUT/native.json"; tail -3 "$OUT/native.err"
    echo "== variants"
    timeout 200 python3 scripts/bench_variants.py --preset full --seconds 16 \
      > "$OUT/variants.jsonl" 2> "$OUT/variants.err"
    cut -c1-600 "$OUT/variants.jsonl"; tail -3 "$OUT/variants.err"
    echo "== transformers"
    timeout 200 python3 scripts/bench_transformers.py --preset full --seconds 16 --device cuda --dtype bf16 \
      --json > "$OUT/transformers.json" 2> "$OUT/transformers.err"
    cut -c1-1500 "$OUT/transformers.json"; tail -3 "$OUT/transformers.err"
    ;;
  browser)
    export PYTHONPATH=$PWD/python:/tmp/site
    python3 -m voxtral serve --export /tmp/voxtral-site --no-demo --models /nonexistent-models 2>&1 | tail -1
    echo "== page"
    timeout 450 python3 .chr/tools/run_page.py --timeout 420 --name page_full /tmp/voxtral-site \
      'index.html?bench=asr&preset=full&seconds=16&backend=webgpu&bandwidth=3350' 2>&1 | cut -c1-2000 | tail -40
    ;;
  *)
    echo "usage: bash scripts/h100_run.sh native|browser" >&2
    exit 2
    ;;
esac
