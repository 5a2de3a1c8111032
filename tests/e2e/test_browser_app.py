"""The browser app end to end (headless Chromium, Pyodide, the numpy backend, the tiny demo model
served as real byte shards): file upload and drag-and-drop equal `voxtral transcribe`, the fake
microphone's streamed transcript equals the offline one of exactly the samples the worker received,
and a second load reads the shards from Cache Storage without asking the server. The WebGPU backend
has its own file (test_webgpu_app.py); here pages ask for ?backend=numpy, except the start page,
which shows what the default chooses."""
from __future__ import annotations

import base64
import json

import pytest

from voxtral.audio import read_wav

from .conftest import App, cli_transcribe, record_fake_microphone


@pytest.fixture(scope="module")
def app(browser, server, artifacts):
    """One page with the runtime up and the model loaded, shared by the transcription tests."""
    page = browser.new_page()
    a = App(page, server, artifacts).open("?backend=numpy")
    a.load_model()
    yield a
    page.close()


def test_start_page_downloads_nothing_until_asked(new_app, server):
    before = len(server.shard_requests())
    a = new_app().open()
    page = a.page
    assert page.is_visible("#demo-banner")  # the demo model is announced plainly
    assert "random-weight demo model" in page.inner_text("#demo-banner")
    page.click("#demo-banner summary")
    assert "Hugging Face" in page.inner_text("#how-to-weights")
    # the default takes WebGPU on a hardware adapter; headless Chromium's is SwiftShader (software,
    # slower than numpy), so the page says so and runs numpy (?backend=webgpu forces WebGPU)
    assert page.get_attribute("body", "data-backend") == "numpy"
    assert page.get_attribute("body", "data-backend-fallback") == "auto"
    assert "software fallback" in page.inner_text("#webgpu-status")
    assert "numpy" in page.inner_text("#msg-backend") and "?backend=webgpu" in page.inner_text("#msg-backend")
    assert "Cache Storage" in page.inner_text("#model-card")
    assert page.get_attribute("body", "data-model") == "none"
    page.wait_for_timeout(500)
    assert len(server.shard_requests()) == before  # no shard fetched without the click
    a.shot("01-start")


def test_upload_wav_equals_cli(app, server, speech_wav):
    a = app
    a.page.set_input_files("#file-input", speech_wav)
    result = a.wait_result("file")
    a.shot("02-file-transcript")
    want = json.loads(cli_transcribe(speech_wav, server.demo_dir, "json"))
    assert a.tokens() == want["tokens"] == result["tokens"]
    assert result["text"] == want["text"]
    assert a.page.inner_text("#transcript") == want["text"]
    assert a.page.locator("#cues .cue").count() >= 1
    # the downloads are the CLI's formats
    for button, fmt in (("#dl-txt", "text"), ("#dl-srt", "srt"), ("#dl-vtt", "vtt")):
        with a.page.expect_download() as dl:
            a.page.click(button)
        got = open(dl.value.path(), encoding="utf-8").read()
        assert got.strip() == cli_transcribe(speech_wav, server.demo_dir, fmt).strip(), fmt
        assert dl.value.suggested_filename.startswith("speech.")
    for fig in ("#fig-load", "#fig-audio", "#fig-rtf", "#fig-steps"):
        assert a.page.inner_text(fig) not in ("", "-"), fig


def _drop(page, data: bytes, name: str, mime: str) -> None:
    page.evaluate("""([b64, name, mime]) => {
        const bin = atob(b64);
        const u8 = Uint8Array.from(bin, (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([u8], name, { type: mime }));
        const dz = document.getElementById('drop-zone');
        dz.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
        dz.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }""", [base64.b64encode(data).decode(), name, mime])


def test_drag_and_drop_and_bad_files(app, server, speech_wav):
    a = app
    _drop(a.page, b"this is not audio at all\n" * 20, "notes.txt", "text/plain")
    a.page.wait_for_selector("#msg-file.error", timeout=30_000)
    msg = a.page.inner_text("#msg-file")
    assert "notes.txt" in msg and "could not be decoded" in msg
    a.shot("03-bad-file-error")
    a.page.click("#msg-file button")  # dismiss
    _drop(a.page, b"RIFF\x10\x00\x00\x00WAVEjunk", "broken.wav", "audio/wav")
    a.page.wait_for_selector("#msg-file.error", timeout=30_000)
    assert "Cannot transcribe this file" in a.page.inner_text("#msg-file")
    a.page.click("#msg-file button")
    _drop(a.page, open(speech_wav, "rb").read(), "dropped.wav", "audio/wav")
    a.wait_result("file")
    want = json.loads(cli_transcribe(speech_wav, server.demo_dir, "json"))
    assert a.tokens() == want["tokens"]


def test_fake_microphone_streams_the_offline_transcript(app, server, tmp_path):
    # the fake microphone loops the speech WAV in real time; record until ~3 s of it were processed
    result, _, wav = record_fake_microphone(
        app, tmp_path, "parseFloat(document.getElementById('fig-audio').textContent) >= 3.0")
    app.shot("05-mic-transcript")
    samples, _ = read_wav(wav)
    assert len(samples) >= 3.0 * 16000


def test_second_load_comes_from_the_browser_cache(new_app, server):
    a = new_app().open("?backend=numpy")
    a.clear_cache()
    n_shards = len(server.get_json("api/info")["models"][0]["shards"])
    before = len(server.shard_requests())
    a.load_model(expect="network")
    assert len(server.shard_requests()) - before == n_shards
    assert "from the server" in a.page.inner_text("#load-note")
    a.page.wait_for_function("document.getElementById('load-btn').textContent.includes('browser cache')")
    a.shot("06-loaded-from-server")

    a.page.reload()
    a.page.wait_for_selector("body[data-runtime=ready]", timeout=90_000)
    assert "browser cache" in a.page.inner_text("#load-btn")
    before = len(server.shard_requests())
    a.load_model(expect="cache")
    assert len(server.shard_requests()) == before  # not one shard request
    assert "browser cache" in a.page.inner_text("#load-note")
    assert "(browser cache)" in a.page.inner_text("#shard-list")
    a.shot("07-loaded-from-cache")
    assert not a.page.is_visible(".msg.error"), a.console
