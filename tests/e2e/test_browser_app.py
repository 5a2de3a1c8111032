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
    # Copy puts the transcript on the clipboard (read back through the browser's clipboard API)
    a.page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url.rstrip("/"))
    a.page.bring_to_front()
    a.page.evaluate("navigator.clipboard.writeText('not the transcript')")
    a.page.click("#copy-btn")
    a.page.wait_for_function("document.getElementById('copy-btn').textContent === 'Copied'")
    assert a.page.evaluate("navigator.clipboard.readText()") == want["text"]


def test_upload_flac_decoded_by_the_browser_equals_cli(app, server, speech_wav, tmp_path):
    """A format Python does not read (FLAC) goes through the browser's decodeAudioData. At 16 kHz
    mono the decoder neither resamples nor mixes, and FLAC is lossless, so the samples are the
    16-bit values / 32768 - exactly what `voxtral transcribe` reads from a WAV of the same values."""
    import numpy as np
    import soundfile as sf

    from voxtral.audio import load_audio, write_wav

    pcm = np.clip(np.round(load_audio(speech_wav, 16000) * 32768), -32768, 32767).astype(np.int16)
    flac, wav = tmp_path / "speech.flac", tmp_path / "speech-16k.wav"
    sf.write(str(flac), pcm, 16000, format="FLAC", subtype="PCM_16")
    write_wav(str(wav), pcm / 32768.0, 16000)  # PCM_16: the same integers
    a = app
    a.page.set_input_files("#file-input", str(flac))
    result = a.wait_result("file")
    want = json.loads(cli_transcribe(str(wav), server.demo_dir, "json"))
    assert result["tokens"] == want["tokens"] and result["text"] == want["text"]
    assert result["timings"]["audio_s"] == round(len(pcm) / 16000, 4)


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
    def while_recording():
        # the level meter follows the speech (the worklet's RMS of each 80 ms piece)
        app.page.wait_for_function("parseFloat(document.getElementById('level-fill').style.width) > 0",
                                   timeout=10_000)
        assert app.page.inner_text("#mic-status").startswith("recording")
        assert app.page.is_disabled("#record-btn") and not app.page.is_disabled("#stop-btn")
        app.shot("04-recording")

    # the fake microphone loops the speech WAV in real time; record until ~3 s of it were processed
    result, _, wav = record_fake_microphone(
        app, tmp_path, "parseFloat(document.getElementById('fig-audio').textContent) >= 3.0",
        while_recording=while_recording)
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


def test_loading_shows_byte_progress_midway(new_app, server):
    """The second shard's response is held back: the first shard's bar is full, the others empty,
    the overall bar at the first shard's share of the bytes; released, the load completes."""
    a = new_app().open("?backend=numpy")
    a.clear_cache()
    model = next(m for m in server.get_json("api/info")["models"] if m["kind"] == "asr")
    shards = model["shards"]
    assert len(shards) >= 3
    held = []

    def hold(route):
        held.append(route)

    pattern = f"**/{shards[1]['name']}"
    ctx = a.page.context  # the context's routes see the worker's requests too
    ctx.route(pattern, hold)
    try:
        a.page.click("#load-btn")
        a.page.wait_for_function("document.querySelector('#shard-0 .fill').classList.contains('done')",
                                 timeout=60_000)
        while not held:
            a.page.wait_for_timeout(100)
        want = 100 * shards[0]["size"] / model["total_size"]
        width = a.page.evaluate("parseFloat(document.getElementById('overall-fill').style.width)")
        assert width == round(want, 1), (width, want)
        assert a.page.evaluate("parseFloat(document.querySelector('#shard-1 .fill').style.width)") == 0
        assert a.page.get_attribute("body", "data-model") == "loading"
        assert a.page.is_disabled("#load-btn")
        a.shot("08-loading-progress")
    finally:
        for route in held:
            route.continue_()
        ctx.unroute(pattern, hold)
    a.page.wait_for_selector("body[data-model=loaded]", timeout=60_000)
    assert a.page.evaluate("parseFloat(document.getElementById('overall-fill').style.width)") == 100


def test_storage_quota_exceeded_warns_and_the_model_still_works(new_app, server, short_speech_wav):
    """Browser storage full: the shards cannot be cached (a real QuotaExceededError: the origin's
    quota is set below one shard through the DevTools protocol); the page says so, loads the model
    anyway and transcribes as the CLI does."""
    a = new_app().open("?backend=numpy")
    a.clear_cache()
    cdp = a.page.context.new_cdp_session(a.page)
    origin = server.url.rstrip("/")
    cdp.send("Storage.overrideQuotaForOrigin", {"origin": origin, "quotaSize": 16 * 1024})
    try:
        a.load_model(expect="network")
        a.page.wait_for_function("(document.getElementById('msg-cache') || {}).textContent"
                                 " && document.getElementById('msg-cache').textContent.includes('quota')",
                                 timeout=30_000)
        msg = a.page.inner_text("#msg-cache")
        assert "quota exceeded" in msg and "downloaded again next time" in msg
        assert "warn" in a.page.get_attribute("#msg-cache", "class")
        a.shot("09-quota-warning")
        a.page.set_input_files("#file-input", short_speech_wav)
        result = a.wait_result("file")
        want = json.loads(cli_transcribe(short_speech_wav, server.demo_dir, "json"))
        assert result["tokens"] == want["tokens"]
        # nothing was cached, and the page knows it
        a.page.wait_for_function("document.getElementById('load-btn').textContent.includes('from server')")
    finally:
        cdp.send("Storage.overrideQuotaForOrigin", {"origin": origin})  # the default quota again
        cdp.detach()


def test_no_webgpu_says_so_and_runs_on_numpy(pw, chromium_path, server, artifacts, short_speech_wav):
    """A browser that gives no WebGPU adapter (Chromium on Linux without --enable-unsafe-webgpu,
    like a blocklisted GPU): asked for WebGPU, the page says why it is not used and transcribes on
    numpy, as the CLI does."""
    from .conftest import CHROMIUM_FLAGS
    b = pw.chromium.launch(executable_path=chromium_path, headless=True,
                           args=[f for f in CHROMIUM_FLAGS if f != "--enable-unsafe-webgpu"])
    try:
        page = b.new_page(ignore_https_errors=True, viewport={"width": 1200, "height": 1000})
        a = App(page, server, artifacts).open("?backend=webgpu")
        assert page.get_attribute("body", "data-backend") == "numpy", a.console
        assert page.get_attribute("body", "data-backend-fallback") == "webgpu"
        msg = page.inner_text("#msg-backend")
        assert msg.startswith("WebGPU is not used: WebGPU gave no adapter (GPU blocked, disabled or missing)")
        assert "Running on the numpy backend" in msg and "warn" in page.get_attribute("#msg-backend", "class")
        assert page.inner_text("#webgpu-status").startswith("not used: WebGPU gave no adapter")
        assert "numpy" in page.inner_text("#backend-label")
        a.shot("14-no-webgpu")
        a.load_model()
        page.set_input_files("#file-input", short_speech_wav)
        result = a.wait_result("file")
        want = json.loads(cli_transcribe(short_speech_wav, server.demo_dir, "json"))
        assert result["backend"] == "numpy" and result["tokens"] == want["tokens"]
    finally:
        b.close()


def test_non_wav_over_the_decode_cap_gets_a_message(app, tmp_path):
    """An hours-long compressed file would be decoded whole by the browser: over 64 MB the page
    says so and how to go on (convert to WAV, which is read piece by piece) instead of running the
    tab out of memory; it reads 12 bytes of the file to see it is not a WAV, no more."""
    big = tmp_path / "long-podcast.mp3"
    with open(big, "wb") as f:
        f.write(b"ID3\x04\x00\x00\x00\x00\x00\x00")
        f.truncate(64 * 2**20 + 1)  # sparse: nothing is written
    app.page.set_input_files("#file-input", str(big))
    app.page.wait_for_selector("#msg-file.error", timeout=30_000)
    msg = app.page.inner_text("#msg-file")
    assert '"long-podcast.mp3" is too large for the browser\'s audio decoder (67.1 MB' in msg
    assert "up to 67.1 MB" in msg and "Convert it to WAV" in msg and "voxtral transcribe" in msg
    assert app.page.get_attribute("#transcript", "data-state") == "error"
    assert not app.page.is_disabled("#record-btn")  # nothing is stuck busy
    app.page.click("#msg-file button")
