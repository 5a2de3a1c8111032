"""Browser end-to-end fixtures: `voxtral serve` on a free port with the tiny demo model as real byte
shards, headless Chromium (Debian's, never `playwright install`) driven by PyPI playwright, a fake
microphone that plays a speech WAV, and screenshots under tests/e2e/artifacts/.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import urllib.request

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARTIFACTS = os.path.join(REPO, "tests", "e2e", "artifacts")
CHROMIUM = os.environ.get("VOXTRAL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--enable-unsafe-webgpu", "--no-sandbox", "--ignore-certificate-errors",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run", "--disable-quic"]
SPEECH_TEXT = "Hello, this is a test of the browser app. The quick brown fox jumps over the lazy dog."
SHORT_SPEECH_TEXT = "Hello, this is a short test."  # ~2 s: the WebGPU tests run on SwiftShader (slow)


def _insecure_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Server:
    def __init__(self, url: str, models_dir: str, proc):
        self.url, self.models_dir, self.proc = url, models_dir, proc

    def get_json(self, path: str):
        with urllib.request.urlopen(self.url + path, context=_insecure_ctx(), timeout=30) as r:
            return json.loads(r.read())

    def shard_requests(self) -> list:
        return self.get_json("api/stats")["shard_requests"]

    @property
    def demo_dir(self) -> str:
        return os.path.join(self.models_dir, "demo-asr-tiny-shards")


@pytest.fixture(scope="session")
def chromium_path():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (bash scripts/setup.sh --test installs it)")
    return CHROMIUM


@pytest.fixture(scope="session")
def web_assets():
    """The Pyodide runtime + numpy wheel (fetched by scripts/setup.sh; fetched here if missing)."""
    r = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "fetch_web_assets.py")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"fetching the Pyodide assets failed:\n{r.stdout}\n{r.stderr}"


@pytest.fixture(scope="session")
def artifacts():
    os.makedirs(ARTIFACTS, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def server(web_assets, tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e-server")
    models = base / "models"  # empty: the server generates the demo model as shards
    env = dict(os.environ, VOXTRAL_DATA_DIR=str(base / "data"))
    log = open(base / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "voxtral", "serve", "--port", "0", "--models", str(models)],
                            stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=REPO)
    line = proc.stdout.readline()
    if not line.startswith("serving "):
        proc.kill()
        pytest.fail(f"voxtral serve did not start:\n{open(base / 'serve.log').read()}")
    srv = Server(line.split()[1], str(models), proc)
    yield srv
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory) -> str:
    """Real speech from espeak-ng (22.05 kHz PCM16), or a generated tone sequence without it."""
    path = str(tmp_path_factory.mktemp("audio") / "speech.wav")
    if shutil.which("espeak-ng"):
        subprocess.run(["espeak-ng", "-w", path, SPEECH_TEXT], check=True, capture_output=True)
    else:
        from voxtral.audio import write_wav
        t = np.arange(int(3.5 * 22050)) / 22050
        f = 220 + 200 * (np.floor(t * 3) % 4)
        write_wav(path, 0.3 * np.sin(2 * np.pi * f * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t)), 22050)
    return path


@pytest.fixture(scope="session")
def short_speech_wav(tmp_path_factory) -> str:
    """About 2 s of speech (espeak-ng), or a 2 s tone sequence without it."""
    path = str(tmp_path_factory.mktemp("audio") / "short.wav")
    if shutil.which("espeak-ng"):
        subprocess.run(["espeak-ng", "-w", path, SHORT_SPEECH_TEXT], check=True, capture_output=True)
    else:
        from voxtral.audio import write_wav
        t = np.arange(int(2.0 * 22050)) / 22050
        write_wav(path, 0.3 * np.sin(2 * np.pi * (220 + 200 * (np.floor(t * 3) % 4)) * t), 22050)
    return path


@pytest.fixture(scope="session")
def pw(chromium_path):
    """The session's Playwright (sync API); tests that need a differently started Chromium (no
    WebGPU, say) launch it from here."""
    from playwright.sync_api import sync_playwright
    pw = sync_playwright().start()
    yield pw
    pw.stop()


@pytest.fixture(scope="session")
def browser(pw, chromium_path, speech_wav):
    """One headless Chromium (fresh profile) whose fake microphone loops `speech_wav`."""
    profile = tempfile.mkdtemp(prefix="voxtral-chromium-")
    flags = CHROMIUM_FLAGS + ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                              f"--use-file-for-fake-audio-capture={speech_wav}"]
    ctx = pw.chromium.launch_persistent_context(profile, executable_path=chromium_path, headless=True,
                                                args=flags, ignore_https_errors=True, accept_downloads=True,
                                                viewport={"width": 1200, "height": 1000})
    yield ctx
    ctx.close()
    shutil.rmtree(profile, ignore_errors=True)


class App:
    """A page of the app plus the helpers the tests share."""

    def __init__(self, page, server: Server, artifacts: str):
        self.page, self.server, self.artifacts = page, server, artifacts
        self.console: list[str] = []
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))

    def open(self, query: str = "") -> "App":
        self.page.goto(self.server.url + query)
        # the WebGPU backend self-tests its kernels first (SwiftShader compiles slowly)
        self.page.wait_for_selector("body[data-runtime=ready]", timeout=180_000)
        return self

    def load_model(self, expect: str | None = None) -> None:
        self.page.click("#load-btn")
        self.page.wait_for_selector("body[data-model=loaded]", timeout=180_000)
        if expect:
            assert self.page.get_attribute("body", "data-load-source") == expect

    def clear_cache(self) -> None:
        self.page.click("#clear-cache-btn")
        self.page.wait_for_selector("#msg-cache", timeout=10_000)
        self.page.wait_for_function("document.getElementById('load-btn').textContent.includes('from server')")

    def wait_result(self, source: str, timeout: float = 90_000) -> dict:
        self.page.wait_for_selector(f"#transcript[data-state=done][data-source={source}]", timeout=timeout)
        return self.page.evaluate("window.voxtralApp.state.result")

    def tokens(self) -> list[int]:
        return json.loads(self.page.get_attribute("#transcript", "data-tokens"))

    def shot(self, name: str) -> None:
        self.page.screenshot(path=os.path.join(self.artifacts, name + ".png"), full_page=True)


@pytest.fixture
def new_app(browser, server, artifacts):
    pages = []

    def make() -> App:
        page = browser.new_page()
        pages.append(page)
        return App(page, server, artifacts)

    yield make
    for p in pages:
        p.close()


def cli_transcribe(wav: str, model: str, fmt: str = "json") -> str:
    r = subprocess.run([sys.executable, "-m", "voxtral", "transcribe", wav, "--model", model, "--backend", "numpy",
                        "--format", fmt, "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


def record_fake_microphone(a: App, tmp_path, wait_js: str, timeout: float = 30_000,
                           while_recording=None) -> tuple[dict, str, str]:
    """Record from the fake microphone until `wait_js` holds and some text has streamed in, call
    `while_recording()` (if given), stop, and check the streamed result against `voxtral
    transcribe` (numpy) of exactly the 16 kHz samples the worker received.
    Returns (result, text streamed while recording, the received WAV's path)."""
    from voxtral.audio import read_wav

    page = a.page
    page.click("#record-btn")
    page.wait_for_selector("body[data-recording=on]")
    # text must arrive while recording, not only when Stop flushes
    page.wait_for_function(f"({wait_js}) && window.voxtralApp.state.streamedText.length > 0", timeout=timeout)
    streamed_during = page.evaluate("window.voxtralApp.state.streamedText")
    assert streamed_during and page.get_attribute("body", "data-recording") == "on"
    if while_recording:
        while_recording()
    page.click("#stop-btn")
    result = a.wait_result("mic", timeout=300_000)

    wav = tmp_path / "received.wav"
    wav.write_bytes(base64.b64decode(page.evaluate("window.voxtralApp.recordingWavBase64()")))
    samples, rate = read_wav(str(wav))
    assert rate == 16000
    assert len(samples) == round(result["timings"]["audio_s"] * 16000)
    assert float(np.sqrt(np.mean(samples ** 2))) > 0.01  # speech arrived, not silence

    want = json.loads(cli_transcribe(str(wav), a.server.demo_dir, "json"))
    assert result["tokens"] == want["tokens"]
    assert result["text"] == want["text"]
    streamed = page.evaluate("window.voxtralApp.state.streamedText")
    assert streamed.startswith(streamed_during)  # text arrived while recording and only grew
    assert streamed.strip() == result["text"]
    assert page.inner_text("#transcript") == result["text"]
    return result, streamed_during, str(wav)
