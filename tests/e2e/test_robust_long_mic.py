"""Long run of the browser tab (issue 8): the fake microphone streams into the page for
VOXTRAL_BROWSER_LONG_MINUTES (default 10) minutes; the worker keeps up with real time, text arrives
in every interval, no page errors, and memory stays flat once warm.

"Flat" is a least-squares slope of the page's Chromium RSS (samples every 15 s, each after a full
garbage collection in the page and the worker) over the samples taken after 6 minutes of audio,
when the decoder's KV ring has made its last doubling (8192 rows at 5.46 min). The page keeps no
copy of the recording here (?keep_recording=0; by design it costs 3.84 MB a minute, up to 30
minutes), so what may grow is the transcript: ~750 tokens a minute, well under 0.2 MB a minute in
Python and the page together. Anything kept per 80 ms piece shows: a 1 KB leak per piece is
0.75 MB a minute, a piece's samples (5 KB) 3.84. `python scripts/long_run.py --browser` is the same
run with a printed table (figures in the README, "Guarantees and limits")."""
from __future__ import annotations

import importlib.util
import json
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MINUTES = float(os.environ.get("VOXTRAL_BROWSER_LONG_MINUTES", "10"))


def _long_run_module():
    spec = importlib.util.spec_from_file_location("long_run", os.path.join(REPO, "scripts", "long_run.py"))
    lr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lr)
    return lr


def test_slope_per_min_is_least_squares():
    """The measure itself: a known line through noise gives its slope; one outlier at the end
    moves it far less than it moves a first-to-last difference."""
    lr = _long_run_module()
    samples = [{"wall_min": t / 4, "mb": 100 + 1.5 * t / 4 + (0.3 if t % 2 else -0.3)} for t in range(17)]
    assert abs(lr.slope_per_min(samples, "mb") - 1.5) < 0.05
    samples[-1]["mb"] += 10
    assert lr.slope_per_min(samples, "mb") < 1.5 + 10 / 4 / 2  # endpoints alone: +2.5 MB/min


def test_fake_microphone_for_minutes_keeps_memory_flat(chromium_path, web_assets, artifacts):
    lr = _long_run_module()
    os.environ.setdefault("VOXTRAL_CHROMIUM", chromium_path)
    # Its own Playwright in its own thread: the session's browser fixture already runs Playwright's
    # sync API (an event loop) on this thread.
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(1) as pool:
        res = pool.submit(lr.long_browser_run, MINUTES, 0.25).result()
    samples = res["samples"]
    with open(os.path.join(artifacts, "long_mic_samples.json"), "w") as f:
        json.dump(res, f, indent=1)
    for s in samples:
        print(s)
    assert not res["page_errors"], res["page_errors"]
    last = samples[-1]
    assert last["audio_s"] is not None and last["audio_s"] >= 0.9 * last["wall_min"] * 60  # kept up
    assert all(s["new_chars"] > 0 for s in samples[1:]), samples  # text in every 15 s
    warm = lr.after_browser_warmup(samples)
    if MINUTES >= 9:
        assert len(warm) >= 12, samples  # at least 3 minutes of warm samples to fit
    if len(warm) < 4:
        return  # a shortened run (VOXTRAL_BROWSER_LONG_MINUTES) ends before the ring's last doubling
    slope = lr.slope_per_min(warm, "page_rss_mb")
    print(f"Chromium RSS after {warm[0]['wall_min']} min: {slope:+.2f} MB/min (least squares, {len(warm)} samples)")
    assert slope <= lr.BROWSER_MAX_MB_PER_MIN, (slope, warm)
    # the Python side (Pyodide's heap: model, KV rings, transcript) does not grow once warm
    wasm = [s["worker_wasm_mb"] for s in warm]
    assert None not in wasm and wasm[-1] - wasm[0] <= 1, wasm
    # nor does the worker's JS heap (the per-piece messages, proxies and promises are collected)
    assert lr.slope_per_min(warm, "worker_js_heap_mb") <= 0.25, warm
