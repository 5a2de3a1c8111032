#!/bin/bash
# The H100 measurements behind README "Performance" and docs/perf-notes.md, run through the
# `device` tool from the repo root (that machine has no registries: everything travels in `carry`).
#
#   bench    carry .gl .whl: `voxtral bench asr --preset full --json` alone
#   native   carry .gl .whl (../shared/tools/device-prep.sh + gguf/tqdm/pyyaml wheels):
#            `voxtral bench asr --preset full --json`, where the GPU time goes (scripts/profile_asr.py)
#            and transformers on the same GPU (scripts/bench_transformers.py)
#   browser  carry .cache/web-assets (Pyodide) and the gpu-browser bundle (.chr/, see
#            ../shared/tools/gpu-browser/README.md; run after its install.sh): the page's benchmark
#            mode in headless Chromium on the H100, served as a static export of the app
#            (needs only the machine's python3 + numpy + aiohttp)
#   kernels  carry .gl .whl: scripts/kernel_bench.py (the Q4 kernels per shader variant; extra
#            arguments go to it) and scripts/profile_asr.py (the decode step and encoder by family)
#   ab KB PROF  carry .gl .whl: kernel_bench.py --only matvec --fused --variants KB, then
#            profile_asr.py --no-encoder --variants PROF (the decode step per kernel variant, with a
#            token check), e.g. ab base,checks=bounds base,attn=v2
#   browser+bench  both, the page first (one call after the install: the least device time)
#   browser+native the page, then everything `native` runs
#   tts      (after the chr install; carry .cache/web-assets .gl .whl) the page's ?bench=tts on the
#            full model, then `voxtral bench tts --preset full` natively
#   measure KB PROF ["VAR=VALUE ..."]  (after the chr install; carry .cache/web-assets .gl .whl)
#            most needed first: the page, the native bench, the matvec kernels per variant of KB,
#            profile_asr per variant of PROF, (with the list) the GEMM kernels base/GEMM8 and one
#            native bench per VAR=VALUE, transformers last; at most 8 result files, a summary
#   measure-native KB PROF ["VAR=VALUE ..."]  (carry .gl .whl) the same without the page
#   quick KB  (carry .gl .whl) the matvec kernels per variant of KB, then the native bench
#   all      (after the chr install; carry .cache/web-assets .gl .whl) browser+native, then tts, then
#            the native ASR bench once more with VOXTRAL_ATTN_DECODE=all (stream A/B)
# Results go to $OUT (one file per measurement, so a later failure keeps the earlier ones).
set -u
OUT=${OUT:-/tmp/voxtral-out}
mkdir -p "$OUT"

setup_gl() {  # the Vulkan/GL loader debs (libglvnd: the NVIDIA Vulkan driver file names libGLX_nvidia)
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
}

setup_native() {
  setup_gl
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
  export PYTHONPATH=$PWD/python:/tmp/site XDG_RUNTIME_DIR=/tmp
}

print_kernel_rows() {  # the rows of kernel_bench.py's JSON files ($@), one line each
  python3 - "$@" <<'PY'
import json, sys
for f in sys.argv[1:]:
    for r in json.load(open(f))["rows"]:
        rate = f'{r["weight_gbs"]:7.1f} GB/s' if r["M"] == 1 else f'{r["tflops"]:6.2f} TFLOP/s'
        print(f'{r["variant"]:28s} {r["shape"]:24s} M={r["M"]:<4d} {r["us"]:8.1f} us {rate} same={r["same_bits_as_first"]}')
PY
}

bench_native() {
  nvidia-smi --query-gpu=name,memory.total,clocks.max.memory,driver_version --format=csv > "$OUT/gpu.csv" 2>&1
  echo "== voxtral bench asr"
  timeout 150 python3 -m voxtral bench asr --preset full --seconds 16 --backend webgpu --json \
    > "$OUT/native.json" 2> "$OUT/native.err"
  grep -v tokens "$OUT/native.json"; tail -3 "$OUT/native.err"
}

setup_page() {  # Chromium on the H100, and the app exported as static files to /tmp/voxtral-site
  # Without the loader debs Chromium's GPU process found no surface extension and exited
  # (session 13's first try): unpack them and name NVIDIA's driver files as gpu-browser's README says.
  setup_gl
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  export PYTHONPATH=$PWD/python:/tmp/site
  python3 -m voxtral serve --export /tmp/voxtral-site --no-demo --models /nonexistent-models 2>&1 | tail -1
}

native_extra() {  # where the GPU time goes, and transformers on the same GPU
  echo "== profile"
  timeout 150 python3 scripts/profile_asr.py --preset full --seconds 16 > "$OUT/profile.json" 2> "$OUT/profile.err"
  cut -c1-600 "$OUT/profile.json"; tail -3 "$OUT/profile.err"
  echo "== transformers"
  timeout 200 python3 scripts/bench_transformers.py --preset full --seconds 16 --device cuda --dtype bf16 \
    --json > "$OUT/transformers.json" 2> "$OUT/transformers.err"
  cut -c1-1500 "$OUT/transformers.json"; tail -3 "$OUT/transformers.err"
}

case "${1:-}" in
  bench)  # the benchmark alone
    setup_native
    bench_native
    ;;
  native)
    setup_native
    bench_native
    native_extra
    ;;
  kernels)
    setup_native
    shift
    echo "== kernel_bench $*"
    timeout 240 python3 scripts/kernel_bench.py "$@" > "$OUT/kernels.json" 2> "$OUT/kernels.err"
    tail -3 "$OUT/kernels.err"
    echo "== profile"
    timeout 200 python3 scripts/profile_asr.py --preset full --seconds 16 > "$OUT/profile.json" 2> "$OUT/profile.err"
    cut -c1-3000 "$OUT/profile.json"; tail -3 "$OUT/profile.err"
    ;;
  ab)
    setup_native
    echo "== kernel_bench (matvec) $2"
    timeout 240 python3 scripts/kernel_bench.py --only matvec --fused --variants "$2" > "$OUT/kernels.json" 2> "$OUT/kernels.err"
    print_kernel_rows "$OUT/kernels.json"
    tail -2 "$OUT/kernels.err"
    echo "== profile_asr variants $3"
    timeout 300 python3 scripts/profile_asr.py --preset full --seconds 16 --no-encoder --variants "$3" \
      > "$OUT/profile.json" 2> "$OUT/profile.err"
    grep -v '^{' "$OUT/profile.err" | tail -12
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print({k: r.get(k) for k in ('decode_ms_per_step','encoder_ms','rtf')})" "$OUT/profile.json"
    ;;
  quick)  # (carry .gl .whl) the least device time: the matvec kernels per variant of $2, then the bench
    setup_native
    echo "== kernel_bench (matvec) $2"
    timeout 100 python3 scripts/kernel_bench.py --only matvec --fused --reps 20 --variants "$2" > "$OUT/kernels_matvec.json" 2> /dev/null
    print_kernel_rows "$OUT/kernels_matvec.json"
    bench_native
    ;;
  measure|measure-native)  # (measure: after the chr install; carry .cache/web-assets .gl .whl)
    # The figures of a session in one call, most needed first (a call cut short by the device
    # time left keeps what it wrote): [measure: the page,] the native bench, the matvec kernels
    # per variant of $2 (e.g. base,NIBBLES_V1), profile_asr with the decode step per variant of
    # $3, the GEMM kernels base/GEMM8, one native bench per VAR=VALUE of $4, transformers last.
    # At most 8 result files come back (the device tool's limit); key figures via h100_summary.py.
    if [ "$1" = measure ]; then bash "$0" browser; rm -f "$OUT"/*.chrome.log "$OUT/page_tiny.json"; fi
    setup_native
    bench_native
    echo "== kernel_bench (matvec) $2"
    timeout 150 python3 scripts/kernel_bench.py --only matvec --fused --variants "$2" > "$OUT/kernels_matvec.json" 2> /dev/null
    print_kernel_rows "$OUT/kernels_matvec.json"
    echo "== profile_asr variants $3"
    timeout 200 python3 scripts/profile_asr.py --preset full --seconds 16 --variants "$3" > "$OUT/profile.json" 2> /dev/null
    python3 scripts/h100_summary.py "$OUT" | grep -A40 '^profile.json'
    if [ -n "${4:-}" ]; then
      echo "== kernel_bench (matmul) base,GEMM8: encoder M=800, prefill M=39"
      timeout 100 python3 scripts/kernel_bench.py --only matmul --variants base,GEMM8 > "$OUT/kernels_gemm.json" 2> /dev/null
      timeout 100 python3 scripts/kernel_bench.py --only matmul --decoder-gemm --m 39 --variants base,GEMM8 \
        > "$OUT/kernels_gemm39.json" 2> /dev/null
      print_kernel_rows "$OUT/kernels_gemm.json" "$OUT/kernels_gemm39.json"
      rm -f "$OUT/kernels_gemm39.json"
      i=0
      for e in $4; do  # one native bench per VAR=VALUE (space-separated list)
        i=$((i + 1))
        echo "== voxtral bench asr with $e"
        env "$e" timeout 150 python3 -m voxtral bench asr --preset full --seconds 16 --backend webgpu \
          --json > "$OUT/native_ab$i.json" 2> /dev/null
        python3 scripts/h100_summary.py "$OUT" | grep "^native_ab$i.json"
      done
    fi
    rm -f "$OUT"/*.err "$OUT/gpu.csv"
    echo "== transformers"
    timeout 200 python3 scripts/bench_transformers.py --preset full --seconds 16 --device cuda --dtype bf16 \
      --json > "$OUT/transformers.json" 2> /dev/null
    echo "== summary"
    python3 scripts/h100_summary.py "$OUT"
    ;;
  all)
    bash "$0" browser+native
    bash "$0" tts
    setup_native
    echo "== voxtral bench asr, VOXTRAL_ATTN_DECODE=all"
    VOXTRAL_ATTN_DECODE=all timeout 150 python3 -m voxtral bench asr --preset full --seconds 16 \
      --backend webgpu --json > "$OUT/native_attn_all.json" 2> "$OUT/native_attn_all.err"
    grep -E '"(decode_ms_per_step|rtf|stream_rtf|encoder_ms)"' "$OUT/native_attn_all.json"; tail -2 "$OUT/native_attn_all.err"
    ;;
  tts)
    setup_page
    echo "== page (tts full)"
    timeout 300 python3 .chr/tools/run_page.py --timeout 280 --name page_tts /tmp/voxtral-site \
      'index.html?bench=tts&preset=full&frames=50&backend=webgpu' 2>&1 | cut -c1-1500 | tail -3
    setup_native
    echo "== voxtral bench tts"
    timeout 200 python3 -m voxtral bench tts --preset full --frames 50 --backend webgpu --json \
      > "$OUT/native_tts.json" 2> "$OUT/native_tts.err"
    grep -v '^    ' "$OUT/native_tts.json" | head -40; tail -3 "$OUT/native_tts.err"
    ;;
  browser|browser+bench|browser+native)
    setup_page
    echo "== page (full)"
    timeout 300 python3 .chr/tools/run_page.py --timeout 280 --name page_full /tmp/voxtral-site \
      'index.html?bench=asr&preset=full&seconds=16&backend=webgpu&bandwidth=3350' 2>&1 | cut -c1-2000 | tail -30
    echo "== page (tiny: tokens against the CLI's)"
    timeout 120 python3 .chr/tools/run_page.py --timeout 100 --name page_tiny /tmp/voxtral-site \
      'index.html?bench=asr&preset=tiny&seconds=16&backend=webgpu' 2>&1 | cut -c1-300 | tail -3
    if [ "$1" != "browser" ]; then  # the native figure after the page's (carry .whl too)
      setup_native
      bench_native
      if [ "$1" = "browser+native" ]; then native_extra; fi
    fi
    ;;
  *)
    echo "usage: bash scripts/h100_run.sh bench|native|kernels [ARGS]|ab KB PROF|measure[-native] KB PROF ["VAR=VALUE ..."]|quick KB|browser|browser+bench|browser+native|tts|all" >&2
    exit 2
    ;;
esac
