"""The page's benchmark mode (?bench=asr, ?bench=tts): the worker builds the random model in Pyodide,
runs `voxtral bench asr`'s (`bench tts`'s) passes on the WebGPU backend (SwiftShader here, the H100
in the device runs) and shows + posts the same JSON as the CLI, with the CLI's tokens (semantic
codes) for the same model and input."""
from __future__ import annotations

from voxtral.bench import run_asr_bench
from voxtral.bench_tts import run_tts_bench

SECONDS = 1.5  # SwiftShader: ~0.4 s per decode step of the tiny model


def test_bench_mode_reports_the_cli_figures_and_tokens(new_app):
    a = new_app()
    a.page.goto(a.server.url + f"?bench=asr&preset=tiny&seconds={SECONDS}&backend=webgpu")
    a.page.wait_for_selector("body[data-bench=done], body[data-bench=error]", timeout=400_000)
    r = a.page.evaluate("window.voxtralApp.state.benchResult")
    assert r["ok"], (r, a.console[-20:])
    a.shot("40-bench-mode")
    assert a.page.is_visible("#bench-card") and '"steps_per_s"' in a.page.inner_text("#bench-output")
    cli = run_asr_bench("tiny", SECONDS, "numpy")
    same = ("bench", "preset", "audio_s", "positions", "decode_steps", "bytes_per_step")
    assert {k: r[k] for k in same} == {k: cli[k] for k in same}
    assert r["backend"] == "webgpu" and r["host"] == "browser" and "swiftshader" in r["adapter"].lower()
    for key in ("load_s", "encoder_ms", "decode_ms_per_step", "steps_per_s", "rtf", "stream_rtf", "wasm_heap_mb"):
        assert r[key] > 0, key
    assert r["offline_tokens"] == cli["offline_tokens"]
    assert r["stream_tokens"] == cli["stream_tokens"] and r["stream_eos"] == cli["stream_eos"]


def test_tts_bench_mode_reports_the_cli_figures_and_codes(new_app):
    a = new_app()
    a.page.goto(a.server.url + "?bench=tts&preset=tiny&frames=3&backend=webgpu")
    a.page.wait_for_selector("body[data-bench=done], body[data-bench=error]", timeout=400_000)
    r = a.page.evaluate("window.voxtralApp.state.benchResult")
    assert r["ok"], (r, a.console[-20:])
    assert '"frames_per_s"' in a.page.inner_text("#bench-output")
    cli = run_tts_bench("tiny", frames=3, backend="numpy")
    same = ("bench", "preset", "prompt_tokens", "frames", "audio_s", "semantic_codes")
    assert {k: r[k] for k in same} == {k: cli[k] for k in same}
    assert r["backend"] == "webgpu" and r["host"] == "browser" and "swiftshader" in r["adapter"].lower()
    for key in ("load_s", "prefill_ms", "backbone_ms_per_frame", "fm_ms_per_frame", "rtf", "wasm_heap_mb"):
        assert r[key] > 0, key


def test_bench_mode_reports_an_unknown_benchmark(new_app):
    a = new_app()
    a.page.goto(a.server.url + "?bench=nonsense&backend=numpy")
    a.page.wait_for_selector("body[data-bench=error]", timeout=180_000)
    r = a.page.evaluate("window.voxtralApp.state.benchResult")
    assert r == {"ok": False, "error": 'unknown benchmark "nonsense" (known: asr, tts)'}
    assert "benchmark failed" in a.page.inner_text("#bench-output")
