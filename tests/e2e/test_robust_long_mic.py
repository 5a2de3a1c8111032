"""Long run of the browser tab (issue 8), shortened for CI: the fake microphone streams into the page
for VOXTRAL_BROWSER_LONG_MINUTES (default 2) minutes; the worker keeps up with real time, text keeps
arriving, no page errors, and Chromium's memory stays flat. The 10-minute run is
`python scripts/long_run.py --browser` (figures in the README, "Guarantees and limits")."""
from __future__ import annotations

import importlib.util
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MINUTES = float(os.environ.get("VOXTRAL_BROWSER_LONG_MINUTES", "2"))


def test_fake_microphone_for_minutes_keeps_memory_flat(chromium_path, web_assets):
    spec = importlib.util.spec_from_file_location("long_run", os.path.join(REPO, "scripts", "long_run.py"))
    lr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lr)
    os.environ.setdefault("VOXTRAL_CHROMIUM", chromium_path)
    # Its own Playwright in its own thread: the session's browser fixture already runs Playwright's
    # sync API (an event loop) on this thread.
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(1) as pool:
        res = pool.submit(lr.long_browser_run, MINUTES, 0.25).result()
    samples = res["samples"]
    for s in samples:
        print(s)
    assert not res["page_errors"], res["page_errors"]
    last = samples[-1]
    assert last["audio_s"] is not None and last["audio_s"] >= 0.8 * last["wall_min"] * 60  # kept up
    assert all(s["new_chars"] > 0 for s in samples[1:]), samples
    # the Python side (Pyodide's heap: model, KV rings, transcript) stays put once warm ...
    wasm = [s["worker_wasm_mb"] for s in samples if s["worker_wasm_mb"] is not None]
    assert wasm and wasm[-1] - wasm[0] <= 16, wasm
    # ... and the whole browser grows only by what the page keeps on purpose (the received audio for
    # the WAV download, 3.8 MB a minute) and the one-time growth of the decoder's KV ring
    growth = last["chromium_rss_mb"] - samples[0]["chromium_rss_mb"]
    assert growth <= 150 + 10 * MINUTES, samples
