#!/usr/bin/env python3
"""Long-run checks (issue 8): memory stays flat and text keeps flowing over long streams.

    python scripts/long_run.py [--minutes 60] [--every 5] [--backend numpy] [--seed 0] [--json]
    python scripts/long_run.py --browser [--minutes 10] [--every 0.25] [--keep-recording]

ASR mode: streams MINUTES of speech-like audio (a harmonic "voice" with pitch glides and pauses,
made on the fly: nothing is held) through `LiveTranscription` with the tiny random-weight model, in
1 s pieces as `voxtral transcribe` does, and prints a sample every EVERY minutes of audio: wall time,
real-time factor, process RSS, decoder steps, characters of text. EOS is disabled (a random model
may emit it at any point; the run is about memory and throughput, not about when speech ends).

Browser mode: starts `voxtral serve` (random-weight demo model) and headless Chromium whose fake
microphone loops a speech WAV, loads the model, records for MINUTES and samples every EVERY minutes,
after a full garbage collection in the page and the worker, the RSS of the Chromium processes (by
kind), the page's and the worker's JS heap, the Pyodide heap, and the audio seconds and text that
have arrived. The page keeps no copy of the recording unless --keep-recording. Needs Chromium
(/usr/bin/chromium or $VOXTRAL_CHROMIUM), playwright and the Pyodide assets
(scripts/fetch_web_assets.py).

Exit status 1 when memory grew by more than --max-growth-mb between the first sample after warm-up
(the decoder's 8192-row KV ring fills after ~11 minutes of audio) and the last, or text stopped.
Browser: when the least-squares slope of the page's Chromium RSS after 6 minutes of audio (the KV
ring's last doubling) is over 2 MB per minute (+3.84 with --keep-recording), the Pyodide heap grew
after that, text stopped in any interval, or the page reported an error.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARMUP_MIN = 12.0  # the decoder KV ring (8192 tokens = 10.9 min) is full after this much audio
# Browser: the decoder's KV ring doubles its storage as it fills (64, 128, ... rows) and takes its
# final 8192 rows when 4096 tokens = 5.46 min of audio have arrived (the tiny model: 8 MB at once);
# after that only the transcript should grow.
BROWSER_WARMUP_AUDIO_S = 360.0
BROWSER_MAX_MB_PER_MIN = 2.0  # Chromium RSS growth allowed after warm-up (see long_browser_run)


def speech_like(i: int, rng: np.random.Generator, rate: int = 16000) -> np.ndarray:
    """Second i of a voice-like signal: harmonics of a gliding pitch, gated into syllables."""
    t = np.arange(rate) / rate + i
    f0 = 120 + 80 * rng.random() + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 10)) * 0.2
    x = x * (np.sin(2 * np.pi * (1 + rng.random()) * t) > -0.2)
    return (x + 0.01 * rng.standard_normal(rate)).astype(np.float32)


def rss_mb(pid: int | None = None) -> float:
    import psutil
    return psutil.Process(pid).memory_info().rss / 2**20


def long_asr_run(minutes: float, every_min: float = 5.0, backend: str = "numpy", seed: int = 0,
                 model_dir: str | None = None, on_sample=None) -> dict:
    """Stream `minutes` of audio through LiveTranscription; returns {"samples": [...], ...}.

    Each sample: audio_min, wall_s, rtf (over the last interval), rss_mb, steps, chars (total),
    new_chars (in the interval)."""
    import tempfile

    from voxtral.asr_pipeline import ASRPipeline
    from voxtral.testmodel import make_test_model
    from voxtral.weights.loader import open_model

    tmp = None
    if model_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="voxtral-long-run-")
        model_dir = make_test_model("asr", os.path.join(tmp.name, "asr"), seed=seed, fmt="mistral")
    pipe = ASRPipeline(open_model(model_dir), backend=backend)
    pipe.ids["eos_id"] = -1  # see the module docstring
    live = pipe.live()
    rng = np.random.default_rng(seed)
    total_s = int(round(minutes * 60))
    every_s = max(1, int(round(every_min * 60)))
    samples = []
    chars = last_chars = 0
    t0 = last_t = time.perf_counter()
    last_audio = 0
    for i in range(total_s):
        chars += len(live.push(speech_like(i, rng)))
        if (i + 1) % every_s == 0 or i + 1 == total_s:
            now = time.perf_counter()
            s = {"audio_min": round((i + 1) / 60, 2), "wall_s": round(now - t0, 1),
                 "rtf": round((now - last_t) / max(1, i + 1 - last_audio), 4), "rss_mb": round(rss_mb(), 1),
                 "steps": len(live.stream.tokens), "chars": chars, "new_chars": chars - last_chars}
            samples.append(s)
            if on_sample:
                on_sample(s)
            last_t, last_audio, last_chars = now, i + 1, chars
    live.finish()
    if tmp is not None:
        tmp.cleanup()
    return {"samples": samples, "backend": pipe.backend, "minutes": minutes,
            "wall_s": round(time.perf_counter() - t0, 1),
            "kv_slots": live.stream.kv_slots()}


def growth_after_warmup(samples: list[dict], key: str = "rss_mb", warm: float = WARMUP_MIN) -> float:
    """Memory at the last sample minus the first sample taken after warm-up (0 if too short)."""
    warm_samples = [s for s in samples if s["audio_min"] >= warm] or samples[-1:]
    return warm_samples[-1][key] - warm_samples[0][key]


def slope_per_min(samples: list[dict], key: str, x: str = "wall_min") -> float:
    """Least-squares slope of samples[key] against samples[x] (MB per minute for RSS samples):
    one number for a trend, which first-to-last differences let a single noisy sample decide."""
    xs = np.array([s[x] for s in samples], dtype=np.float64)
    ys = np.array([s[key] for s in samples], dtype=np.float64)
    if len(xs) < 2 or np.ptp(xs) == 0:
        raise ValueError(f"need samples at two times or more for a slope, got {len(xs)}")
    xc = xs - xs.mean()
    return float((xc * (ys - ys.mean())).sum() / (xc * xc).sum())


def after_browser_warmup(samples: list[dict]) -> list[dict]:
    """The samples taken once the decoder's KV ring has its final size (BROWSER_WARMUP_AUDIO_S)."""
    return [s for s in samples if (s["audio_s"] or 0) >= BROWSER_WARMUP_AUDIO_S]


# -------------------------------------------------------------------------------- browser mode

def long_browser_run(minutes: float, every_min: float = 0.5, on_sample=None,
                     query: str = "?backend=numpy&keep_recording=0", probe_js: str | None = None) -> dict:
    """Record from Chromium's fake microphone for `minutes`; a sample every `every_min` minutes.

    query: the page's parameters; by default the page keeps no copy of the recording (which costs
    3.84 MB a minute by design, up to 30 minutes), so what grows is the model's and the page's own."""
    import shutil
    import subprocess
    import tempfile

    import psutil
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("VOXTRAL_CHROMIUM", "/usr/bin/chromium")
    if not os.path.exists(chromium):
        raise SystemExit(f"no Chromium at {chromium} (set VOXTRAL_CHROMIUM)")
    work = tempfile.mkdtemp(prefix="voxtral-browser-long-")
    wav = os.path.join(work, "speech.wav")
    if shutil.which("espeak-ng"):
        subprocess.run(["espeak-ng", "-w", wav, "Hello, this is a long test of the browser app. The quick "
                        "brown fox jumps over the lazy dog."], check=True, capture_output=True)
    else:
        from voxtral.audio import write_wav
        rng = np.random.default_rng(0)
        write_wav(wav, np.concatenate([speech_like(i, rng) for i in range(4)]), 16000)
    env = dict(os.environ, VOXTRAL_DATA_DIR=os.path.join(work, "data"))
    log = open(os.path.join(work, "serve.log"), "w")
    server = subprocess.Popen([sys.executable, "-m", "voxtral", "serve", "--port", "0", "--models",
                               os.path.join(work, "models")], stdout=subprocess.PIPE, stderr=log, text=True,
                              env=env, cwd=REPO)
    samples = []
    try:
        line = server.stdout.readline()
        if not line.startswith("serving "):
            raise SystemExit(f"voxtral serve did not start: see {log.name}")
        url = line.split()[1]
        flags = ["--no-sandbox", "--ignore-certificate-errors", "--disable-background-networking",
                 "--no-first-run", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 f"--use-file-for-fake-audio-capture={wav}"]
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(os.path.join(work, "profile"), executable_path=chromium,
                                                        headless=True, args=flags, ignore_https_errors=True)
            page = ctx.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url + query)
            page.wait_for_selector("body[data-runtime=ready]", timeout=120_000)
            page.click("#load-btn")
            page.wait_for_selector("body[data-model=loaded]", timeout=120_000)
            cdp = ctx.new_cdp_session(page)
            cdp.send("Performance.enable")
            worker = _WorkerDevTools(page, cdp, "/worker.js")
            browser_pid = _chromium_root_pid(chromium)
            page.click("#record-btn")
            page.wait_for_selector("body[data-recording=on]")
            t0 = time.monotonic()
            last_chars = 0
            kinds = None  # the process kinds running when recording started (see "page_rss_mb")
            while True:
                time.sleep(max(0.0, t0 + (len(samples) + 1) * every_min * 60 - time.monotonic()))
                # A full garbage collection first, in the page and in the worker: what is measured
                # is memory still in use, not garbage V8 has not got round to (which made RSS swing
                # by several MB from one sample to the next).
                cdp.send("HeapProfiler.collectGarbage")
                worker.send("HeapProfiler.collectGarbage")
                wh = worker.send("Runtime.getHeapUsage")
                m = {x["name"]: x["value"] for x in cdp.send("Performance.getMetrics")["metrics"]}
                text = page.evaluate("window.voxtralApp.state.streamedText || ''")
                procs = _tree(browser_pid)
                by_kind = _rss_by_type(procs)
                if kinds is None:
                    kinds = set(by_kind)
                s = {"wall_min": round((time.monotonic() - t0) / 60, 2),
                     "audio_s": _float(page.inner_text("#fig-audio")),
                     "chromium_rss_mb": round(sum(_rss(p) for p in procs) / 2**20, 1),
                     # Chromium starts helper processes of its own now and then (an "on_device_model"
                     # service appeared ~3 min in, +94 MB): only the kinds that ran the page from the
                     # start are summed here; the total above includes everything.
                     "page_rss_mb": round(sum(v for k, v in by_kind.items() if k in kinds), 1),
                     "rss_by_process": by_kind,
                     "page_js_heap_mb": round(m.get("JSHeapUsedSize", 0) / 2**20, 2),
                     "page_nodes": int(m.get("Nodes", 0)), "page_layout_objects": int(m.get("LayoutObjects", 0)),
                     "worker_js_heap_mb": round(wh["usedSize"] / 2**20, 2) if wh else None,
                     "worker_array_buffers_mb": round(wh.get("backingStorageSize", 0) / 2**20, 2) if wh else None,
                     "worker_wasm_mb": _worker_heap_mb(page), "chars": len(text), "new_chars": len(text) - last_chars}
                if probe_js:
                    s["probe"] = worker.evaluate(probe_js)
                last_chars = len(text)
                samples.append(s)
                if on_sample:
                    on_sample(s)
                if time.monotonic() - t0 >= minutes * 60:
                    break
            page.click("#stop-btn")
            page.wait_for_function("document.getElementById('transcript').dataset.state === 'done'",
                                   timeout=600_000)
            ctx.close()
            return {"samples": samples, "minutes": minutes, "page_errors": errors}
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


def _float(text: str) -> float | None:
    try:
        return float(text.split()[0])
    except (ValueError, IndexError):
        return None


class _WorkerDevTools:
    """The DevTools protocol inside the page's worker (the one whose URL ends with `url_end`), for
    what a page session cannot reach there: its heap and garbage collection. Messages go through
    the page session's Target.sendMessageToTarget; Playwright delivers the replies as events while
    one of its calls runs, so waiting pumps with short page timeouts."""

    def __init__(self, page, cdp, url_end: str):
        self.page, self.cdp, self.replies, self.next_id = page, cdp, {}, 0
        cdp.on("Target.receivedMessageFromTarget", self._on_message)
        targets = cdp.send("Target.getTargets")["targetInfos"]
        target = next(t for t in targets if t["type"] == "worker" and t["url"].endswith(url_end))
        self.session = cdp.send("Target.attachToTarget", {"targetId": target["targetId"],
                                                          "flatten": False})["sessionId"]

    def _on_message(self, event) -> None:
        if event.get("sessionId") == self.session:
            msg = json.loads(event["message"])
            if "id" in msg:
                self.replies[msg["id"]] = msg

    def send(self, method: str, params: dict | None = None, timeout_s: float = 60.0):
        """The command's result, or None if it failed or no reply came."""
        self.next_id += 1
        i = self.next_id
        self.cdp.send("Target.sendMessageToTarget", {"sessionId": self.session,
                                                     "message": json.dumps({"id": i, "method": method,
                                                                            "params": params or {}})})
        end = time.monotonic() + timeout_s
        while i not in self.replies and time.monotonic() < end:
            self.page.wait_for_timeout(20)
        return self.replies.pop(i, {}).get("result")

    def evaluate(self, expression: str):
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return (r or {}).get("result", {}).get("value")


def _worker_heap_mb(page) -> float | None:
    """Pyodide's wasm memory in the worker (the Python heap, numpy arrays included)."""
    for w in page.workers:
        try:
            n = w.evaluate("typeof pyodide !== 'undefined' && pyodide ? pyodide._module.HEAPU8.length : 0")
        except Exception:  # noqa: BLE001 - a worker without pyodide (the audio worklet) or gone
            continue
        if n:
            return round(n / 2**20, 1)
    return None


def _chromium_root_pid(exe: str) -> int | None:
    import psutil
    real = os.path.realpath(exe)
    me = psutil.Process()
    for p in me.children(recursive=True):
        try:
            if "--type=" not in " ".join(p.cmdline()) and "chrom" in os.path.basename(p.exe() or real).lower():
                return p.pid
        except psutil.Error:
            continue
    return None


def _tree(pid):
    import psutil
    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [root] + root.children(recursive=True)
    except psutil.Error:
        return []


def _rss_by_type(procs) -> dict:
    """RSS in MB per Chromium process kind (browser, renderer, gpu-process, utility:audio, ...), to
    see where growth happens."""
    import psutil
    out: dict = {}
    for p in procs:
        try:
            args = p.cmdline()
        except psutil.Error:
            continue
        kind = next((a.split("=", 1)[1] for a in args if a.startswith("--type=")), "browser")
        sub = next((a.split("=", 1)[1] for a in args if a.startswith("--utility-sub-type=")), "")
        if sub:
            kind += ":" + sub.split(".")[0]
        out[kind] = round(out.get(kind, 0) + _rss(p) / 2**20, 1)
    return out


def _rss(p) -> int:
    import psutil
    try:
        return p.memory_info().rss
    except psutil.Error:
        return 0


# ------------------------------------------------------------------------------------------ main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--browser", action="store_true", help="the browser tab with the fake microphone")
    ap.add_argument("--minutes", type=float, default=None, help="length (default 60; browser 10)")
    ap.add_argument("--every", type=float, default=None, help="minutes between samples (default 5; browser 0.5)")
    ap.add_argument("--backend", default="numpy", help="ASR mode: numpy, numpy64, webgpu or auto")
    ap.add_argument("--seed", type=int, default=0, help="ASR mode: random model and signal seed")
    ap.add_argument("--model", default=None, help="ASR mode: a model path instead of the generated tiny one")
    ap.add_argument("--max-growth-mb", type=float, default=None,
                    help="fail above this growth after warm-up (default 40 MB; browser 2 MB per minute)")
    ap.add_argument("--keep-recording", action="store_true",
                    help="browser: let the page keep its copy of the recording (3.84 MB a minute)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON at the end")
    args = ap.parse_args(argv)

    def show(s):
        print("  ".join(f"{k}={v}" for k, v in s.items()), flush=True)

    if args.browser:
        minutes = 10 if args.minutes is None else args.minutes
        query = "?backend=numpy" + ("" if args.keep_recording else "&keep_recording=0")
        res = long_browser_run(minutes, args.every or 0.25, on_sample=show, query=query)
        samples = res["samples"]
        warm = after_browser_warmup(samples)
        if len(warm) < 4:
            print(f"browser: too short to measure after warm-up ({BROWSER_WARMUP_AUDIO_S / 60:.0f} min of audio)")
            return 1
        rss_per_min = slope_per_min(warm, "page_rss_mb")
        wasm = [s["worker_wasm_mb"] for s in warm if s["worker_wasm_mb"] is not None]
        wasm_growth = (wasm[-1] - wasm[0]) if wasm else 0.0
        limit = BROWSER_MAX_MB_PER_MIN if args.max_growth_mb is None else args.max_growth_mb
        if args.keep_recording:
            limit += 3.84  # the page's copy of the recording, by design (16 kHz float32, up to 30 min)
        flowing = all(s["new_chars"] > 0 for s in samples[1:]) if len(samples) > 1 else True
        print(f"browser: {minutes} min; from minute {warm[0]['wall_min']}: Chromium RSS {rss_per_min:+.2f} MB/min "
              f"(least squares; limit {limit:.2f}), Pyodide heap {wasm_growth:+.1f} MB; text flowing: "
              f"{flowing}; page errors: {len(res['page_errors'])}")
        ok = rss_per_min <= limit and wasm_growth <= 1 and flowing and not res["page_errors"]
    else:
        minutes = 60 if args.minutes is None else args.minutes
        res = long_asr_run(minutes, args.every or 5.0, args.backend, args.seed, args.model, on_sample=show)
        samples = res["samples"]
        growth = growth_after_warmup(samples)
        limit = 40 if args.max_growth_mb is None else args.max_growth_mb
        flowing = all(s["new_chars"] > 0 for s in samples)
        audio_s = minutes * 60
        print(f"asr ({res['backend']}): {minutes} min of audio in {res['wall_s']} s (RTF "
              f"{res['wall_s'] / audio_s:.4f}), RSS growth after warm-up {growth:+.1f} MB (limit {limit}), "
              f"text in every interval: {flowing}, KV rows {res['kv_slots']}")
        ok = growth <= limit and flowing
    if args.json:
        print(json.dumps(res))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
