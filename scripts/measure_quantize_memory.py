#!/usr/bin/env python3
"""Measure the peak memory of `voxtral quantize` on a full-size model.

    .venv/bin/python scripts/measure_quantize_memory.py [--kind asr|tts] [--src DIR] [--work DIR] [--keep]

Without --src it first writes a full-size random-weight BF16 model with `make-test-model --preset
full` (ASR: 8.9 GB, 711 tensors, the real [131072, 3072] embedding; needs ~12 GB of free disk for
the model and its GGUF). With --src it quantizes that directory instead (e.g. the real weights
from `voxtral download asr`).

Quantize runs in a child process that reports its own VmHWM (the kernel's peak resident set for
that process image; getrusage's ru_maxrss is unsuitable because Linux carries it across
fork+exec). The parent also samples the child's VmRSS every 50 ms as a cross-check. The result
is printed as JSON; add --shard to also split the GGUF and verify the shards.

Measured on the development machine (2 cores, Debian 12, Python 3.11, numpy 2.3) with
`--shard`, full-size random ASR model (safetensors file 8,859,462,776 bytes, 711 tensors ->
2,522,610,624-byte GGUF, 461 of them Q4_0; 5 shards of <= 512 MiB):
    quantize peak RSS 199 MiB (35 MiB before it started), sampled max VmRSS 192 MiB, 34.6 s;
    generating the random model took 305 s, sharding + sha256 verification 10.9 s.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

CHILD = r"""
import json, sys
from voxtral.prepare.quantize import quantize_model

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])

before = status("VmRSS")
r = quantize_model(sys.argv[1], sys.argv[2], sys.argv[3], progress=True)
print(json.dumps({"rss_before_kb": before, "peak_rss_kb": status("VmHWM"), **r}))
"""


def _sample(pid: int, out: dict, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        out["max_sampled_kb"] = max(out.get("max_sampled_kb", 0), int(line.split()[1]))
        except OSError:
            return
        time.sleep(0.05)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kind", choices=["asr", "tts"], default="asr")
    ap.add_argument("--src", help="an existing BF16 Mistral directory (default: generate a full-size random one)")
    ap.add_argument("--work", default=None, help="scratch directory (default: a temporary one under /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the generated model and GGUF")
    ap.add_argument("--shard", action="store_true", help="also shard the GGUF and verify the shards")
    args = ap.parse_args()

    work = args.work or tempfile.mkdtemp(prefix="voxtral-qmem-")
    os.makedirs(work, exist_ok=True)
    report: dict = {"kind": args.kind}
    try:
        src = args.src
        if src is None:
            from voxtral.testmodel import make_test_model
            src = os.path.join(work, f"{args.kind}-full-bf16")
            free = shutil.disk_usage(work).free
            print(f"writing a full-size random {args.kind.upper()} model to {src} ({free / 1e9:.0f} GB free) ...",
                  file=sys.stderr)
            t0 = time.perf_counter()
            make_test_model(args.kind, src, seed=0, fmt="mistral", preset="full", progress=True)
            report["generate_s"] = round(time.perf_counter() - t0, 1)
        report["src_bytes"] = os.path.getsize(os.path.join(src, "consolidated.safetensors"))
        out = os.path.join(work, f"voxtral-{args.kind}-q4.gguf")
        proc = subprocess.Popen([sys.executable, "-c", CHILD, src, out, args.kind], stdout=subprocess.PIPE, text=True)
        sampled: dict = {}
        stop = threading.Event()
        th = threading.Thread(target=_sample, args=(proc.pid, sampled, stop), daemon=True)
        th.start()
        stdout, _ = proc.communicate()
        stop.set()
        th.join()
        if proc.returncode != 0:
            print(f"quantize failed (exit {proc.returncode})", file=sys.stderr)
            return 1
        r = json.loads(stdout.strip().splitlines()[-1])
        report.update({"gguf_bytes": r["bytes"], "tensors": r["tensors"], "q4": r["q4"], "quantize_s": r["seconds"],
                       "rss_before_mib": round(r["rss_before_kb"] / 1024, 1),
                       "peak_rss_mib": round(r["peak_rss_kb"] / 1024, 1),
                       "max_sampled_rss_mib": round(sampled.get("max_sampled_kb", 0) / 1024, 1)})
        if args.shard:
            from voxtral.prepare.shard import shard_gguf
            from voxtral.weights.loader import open_model
            t0 = time.perf_counter()
            m = shard_gguf(out, os.path.join(work, "shards"), progress=True)
            open_model(os.path.join(work, "shards"), verify=True)
            report.update({"shards": len(m["shards"]), "shard_verify_s": round(time.perf_counter() - t0, 1)})
        print(json.dumps(report, indent=2))
        return 0
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
