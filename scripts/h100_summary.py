"""Key figures of an h100_run.sh call's result files, for the device tool's short output tail:
python3 scripts/h100_summary.py OUT_DIR (prints one line per file it knows)."""
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
KEYS = ("decode_ms_per_step", "steps_per_s", "encoder_ms", "prefill_ms", "rtf", "stream_rtf",
        "roofline_fraction", "ms_per_token", "adapter")


def pick(d: dict) -> dict:
    return {k: d[k] for k in KEYS if k in d}


for f in sorted(out.glob("*.json")):
    try:
        d = json.loads(f.read_text())
    except (OSError, ValueError) as e:
        print(f"{f.name}: unreadable ({e})")
        continue
    if isinstance(d, dict) and "result" in d and isinstance(d["result"], dict):
        d = d["result"]
    if not isinstance(d, dict):
        continue
    print(f"{f.name}: {json.dumps(pick(d))}")
    for prof in ("decode_profile", "prefill_profile", "encoder_profile"):
        p = d.get(prof)
        if isinstance(p, dict):
            fam = {k.replace(".wgsl", ""): (v["dispatches"], v["gpu_ms"]) for k, v in p.get("families", {}).items()}
            print(f"  {prof}: gpu {p.get('gpu_step_ms', p.get('gpu_ms'))} ms, {p.get('dispatches')} dispatches, {fam}")
    for v, r in (d.get("variants") or {}).items():
        print(f"  variant {v}: {json.dumps(r)[:400]}")
