"""The text-to-speech tab end to end (headless Chromium, Pyodide, the numpy backend, the tiny TTS
demo model the server generates as real byte shards when it finds no TTS weights).

Typed text, a picked voice, Euler steps and seed -> audio streamed to the page in codec chunks, equal
to `voxtral speak --backend numpy` for the same model, text, voice, seed and steps; the WAV download
is that audio. The page runs on numpy (Pyodide) and on WebGPU (the page's host; SwiftShader here).
Tolerance: float32 everywhere, but native numpy (BLAS), Pyodide's numpy and the WGSL kernels round
differently (~1e-7 .. 1e-6 relative), so the frame count must be identical and every 16-bit sample
may differ by at most one step (measured: ~0.3% of samples differ by 1 on numpy).
"""
from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import sys
import wave

import numpy as np
import pytest

from .conftest import App

TEXT = "Good morning! The browser speaks now."
VOICE, SEED, STEPS, MAX_SECONDS = "fr_female", 3, 5, 1.2


def _pcm(wav_bytes: bytes) -> np.ndarray:
    with wave.open(io.BytesIO(wav_bytes), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 24000)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int32)


def cli_speak(model: str, out: str) -> str:
    r = subprocess.run([sys.executable, "-m", "voxtral", "speak", TEXT, "--model", model, "--voice", VOICE,
                        "--seed", str(SEED), "--euler-steps", str(STEPS), "--max-seconds", str(MAX_SECONDS),
                        "--backend", "numpy", "--out", out], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stderr


@pytest.fixture(params=["numpy", "webgpu"])
def tts_app(request, browser, server, artifacts):
    page = browser.new_page()
    a = App(page, server, artifacts).open(f"?backend={request.param}&tab=tts")
    a.backend = request.param
    yield a
    page.close()


def test_tts_tab_speaks_like_the_cli(tts_app, server, tmp_path):
    """numpy in Pyodide, or the WGSL kernels through the page's WebGPU host (SwiftShader in CI)."""
    a = tts_app
    page = a.page
    assert page.is_visible("#tts-main") and not page.is_visible("#asr-main")
    assert page.is_visible("#tts-demo-banner")  # the demo TTS model is announced plainly
    assert "demo-tts-tiny-shards" in page.inner_text("#tts-model-select")
    page.click("#tts-load-btn")
    page.wait_for_selector("body[data-tts-model=loaded]", timeout=120_000)
    assert page.get_attribute("body", "data-backend") == a.backend, a.console

    # the voice picker: the model's 20 presets, grouped by language
    voices = page.eval_on_selector_all("#tts-voice option", "os => os.map(o => [o.value, o.dataset.language])")
    assert len(voices) == 20 and ["fr_female", "French"] in voices and ["casual_male", "English"] in voices
    groups = page.eval_on_selector_all("#tts-voice optgroup", "gs => gs.map(g => g.label)")
    assert {"English", "French", "German", "Arabic", "Hindi"} <= set(groups)
    assert page.input_value("#tts-steps") == "7"  # the model's default

    page.fill("#tts-text", TEXT)
    page.select_option("#tts-voice", VOICE)
    page.fill("#tts-steps", str(STEPS))
    page.fill("#tts-seed", str(SEED))
    page.fill("#tts-max", str(MAX_SECONDS))
    page.click("#tts-speak-btn")
    page.wait_for_selector("#tts-result[data-state=done]", timeout=120_000)
    a.shot(f"20-tts-spoken-{a.backend}")

    state = page.evaluate("({r: window.voxtralApp.tts.state.result, chunks: window.voxtralApp.tts.state.chunks"
                          ".map(c => c.length), scheduled: window.voxtralApp.tts.state.nextTime})")
    result, chunks = state["r"], state["chunks"]
    frames = result["frames"]
    assert 10 <= frames <= 15  # at most 1.2 s at 12.5 frames/s (the model may end the utterance earlier)
    assert result["info"]["euler_steps"] == STEPS and result["info"]["seed"] == SEED
    assert result["info"]["voice"] == VOICE and result["info"]["backend"] == a.backend
    # streamed: the codec's 5-frame chunks, each scheduled for playback as it arrived
    want = [5] * (frames // 5) + ([frames % 5] if frames % 5 else [])  # then the flushed tail
    assert chunks == [1920 * n for n in want] and state["scheduled"] > 0
    for fig in ("#tts-fig-audio", "#tts-fig-rtf", "#tts-fig-first", "#tts-fig-load"):
        assert page.inner_text(fig) not in ("", "-"), fig
    assert "than real time" in page.inner_text("#tts-fig-rtf")

    samples = np.frombuffer(base64.b64decode(page.evaluate("window.voxtralApp.tts.samplesBase64()")), "<f4")
    assert samples.size == frames * 1920

    cli_wav = str(tmp_path / "cli.wav")
    err = cli_speak(os.path.join(server.models_dir, "demo-tts-tiny-shards"), cli_wav)
    assert f"({frames} frames)" in re.sub(r"\s+", " ", err)
    cli = _pcm(open(cli_wav, "rb").read())
    page_pcm = np.clip(np.round(samples.astype(np.float64) * 32768.0), -32768, 32767)
    assert cli.shape == page_pcm.shape
    assert np.abs(page_pcm - cli).max() <= 1

    # the download is the WAV of those samples
    with page.expect_download() as dl:
        page.click("#tts-download-btn")
    assert dl.value.suggested_filename == f"voxtral-{VOICE}.wav"
    got = open(dl.value.path(), "rb").read()
    assert got == base64.b64decode(page.evaluate("window.voxtralApp.tts.wavBase64()"))
    assert np.abs(_pcm(got) - cli).max() <= 1
    assert not page.is_visible("#tts-result[data-state=error]"), a.console
    if a.backend == "webgpu":  # the GPU ran the TTS kernels (attention_local, conv_*, reduce_rows)
        assert "backend webgpu" in page.inner_text("#tts-load-note")


def test_too_long_text_is_refused_with_a_message_not_cut(browser, server, artifacts):
    """A text over the limit (10,000 characters: voxtral.models.tts.text) is kept whole in the box
    (no maxlength cutting a paste silently); the counter says it is too long and Speak answers
    with Python's message, naming both figures."""
    from voxtral.models.tts.text import MAX_TEXT_CHARS

    page = browser.new_page()
    try:
        a = App(page, server, artifacts).open("?backend=numpy&tab=tts")
        page.click("#tts-load-btn")
        page.wait_for_selector("body[data-tts-model=loaded]", timeout=120_000)
        text = "Say this. " * (MAX_TEXT_CHARS // 10) + "!"  # one character over
        page.fill("#tts-text", text)
        assert len(page.input_value("#tts-text")) == MAX_TEXT_CHARS + 1
        assert page.get_attribute("#tts-count", "data-over") == "true"
        assert f"{MAX_TEXT_CHARS + 1:,} characters of at most {MAX_TEXT_CHARS:,}" in page.inner_text("#tts-count")
        page.click("#tts-speak-btn")
        page.wait_for_selector("#tts-result[data-state=error]", timeout=60_000)
        msg = page.inner_text("#tts-result")
        assert f"too long ({MAX_TEXT_CHARS + 1} characters; the limit is {MAX_TEXT_CHARS})" in msg
        a.shot("22-tts-text-too-long")
        page.fill("#tts-text", "Short again.")
        assert page.get_attribute("#tts-count", "data-over") == "false"
        assert not page.is_disabled("#tts-speak-btn")  # the page is usable after the refusal
    finally:
        page.close()
