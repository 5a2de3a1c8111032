"""The browser app on the WebGPU backend (headless Chromium's SwiftShader adapter, Pyodide, the
tiny demo model served as byte shards): the kernels pass their start-up self-test, the page says
which adapter and kernel variant run, an uploaded WAV and the fake microphone's stream give the
tokens of `voxtral transcribe --backend numpy`, and a failing self-test (forced with
?selftest=fail) falls back to numpy with a visible message and still transcribes.

SwiftShader runs a decode step of even the tiny model in about half a second (every workgroup is
slow on it), so these tests use ~2-3 s of audio."""
from __future__ import annotations

import json

import pytest

from .conftest import App, cli_transcribe, record_fake_microphone


@pytest.fixture(scope="module")
def gpu_app(browser, server, artifacts):
    page = browser.new_page()
    a = App(page, server, artifacts).open("?backend=webgpu")
    a.load_model()
    yield a
    page.close()


def test_webgpu_self_test_passes_and_page_shows_the_adapter(gpu_app):
    page = gpu_app.page
    assert page.get_attribute("body", "data-backend") == "webgpu", gpu_app.console
    assert "WebGPU" in page.inner_text("#backend-label")
    status = page.inner_text("#webgpu-status")
    gpu = page.evaluate("window.voxtralApp.state.gpu")
    assert gpu["ok"] and gpu["attempts"][-1]["ok"]
    assert gpu["adapter_info"]["isFallbackAdapter"]  # SwiftShader
    assert status.startswith(f"in use: {gpu['adapter']}")
    assert "swiftshader" in status.lower()
    # SwiftShader offers subgroups but not shader-f16: the page says which kernels run
    assert f"subgroups: {'yes' if gpu['use_subgroups'] else 'no'}" in status
    assert "shader-f16: no" in status and not gpu["use_shader_f16"]
    assert page.get_attribute("body", "data-gpu-subgroups") == ("yes" if gpu["use_subgroups"] else "no")
    assert not page.is_visible("#msg-backend")
    gpu_app.shot("10-webgpu-ready")


def test_webgpu_upload_wav_equals_cli(gpu_app, server, short_speech_wav):
    a = gpu_app
    a.page.set_input_files("#file-input", short_speech_wav)
    result = a.wait_result("file", timeout=300_000)
    a.shot("11-webgpu-file-transcript")
    want = json.loads(cli_transcribe(short_speech_wav, server.demo_dir, "json"))
    assert result["backend"] == "webgpu"
    assert a.tokens() == want["tokens"] == result["tokens"]
    assert result["text"] == want["text"]
    t = result["timings"]
    print(f"\nWebGPU (SwiftShader) file: {t['audio_s']} s audio, {t['steps']} steps, compute {t['compute_s']} s, "
          f"{t['steps_per_s']} steps/s")


def test_webgpu_fake_microphone_streams_the_offline_transcript(gpu_app, tmp_path):
    # ~3 s of the looping speech WAV handed to the worker (decoding lags behind on SwiftShader)
    result, _, _ = record_fake_microphone(gpu_app, tmp_path, "window.voxtralApp.state.sentSamples >= 3 * 16000")
    assert result["backend"] == "webgpu" and result["timings"]["audio_s"] >= 3.0
    gpu_app.shot("12-webgpu-mic-transcript")


def test_failed_self_test_falls_back_to_numpy(new_app, server, short_speech_wav):
    a = new_app().open("?backend=webgpu&selftest=fail")
    page = a.page
    assert page.get_attribute("body", "data-backend") == "numpy"
    assert page.get_attribute("body", "data-backend-fallback") == "webgpu"
    msg = page.inner_text("#msg-backend")
    assert "self-test failed" in msg and "numpy backend" in msg
    assert "numpy" in page.inner_text("#backend-label")
    assert page.inner_text("#webgpu-status").startswith("not used: ")
    gpu = page.evaluate("window.voxtralApp.state.gpu")
    assert not gpu["ok"] and len(gpu["attempts"]) >= 1 and all(x["failed"] for x in gpu["attempts"])
    a.shot("13-selftest-fallback")
    a.load_model()
    a.page.set_input_files("#file-input", short_speech_wav)
    result = a.wait_result("file")
    want = json.loads(cli_transcribe(short_speech_wav, server.demo_dir, "json"))
    assert result["backend"] == "numpy" and result["tokens"] == want["tokens"]
