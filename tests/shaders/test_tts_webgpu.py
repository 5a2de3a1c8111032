"""The tiny TTS model on the WebGPU backend (lavapipe in CI) against the numpy backend.

Same model, text, voice and seed (so the same flow-matching noise): the semantic and acoustic codes
must be equal frame by frame, and the audio equal within a normwise tolerance. The model seed and
noise seeds are fixed (not the session's random seed): an FSQ code sits on a rounding boundary
with probability ~1e-5 per value at the measured f32 disagreement, and a fixed case keeps the test
deterministic; the continuous flow-matching output is compared on random inputs separately.

Tolerances (measured on lavapipe, stated next to the assertions):
  audio (codec, 24 kHz float samples)   max |Δ| / max |ref| <= 1e-5   (measured <= 9.5e-7)
  flow-matching ODE output x [36]       max |Δ|             <= 1e-5   (measured <= 5e-7)
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from voxtral.backends import NumpyOps
from voxtral.config import TTSConfig
from voxtral.models.tts.generate import generate_frames
from voxtral.models.tts.model import TTSModel
from voxtral.models.tts.prompt import build_tts_prompt, prompt_embeddings
from voxtral.testmodel import make_test_model
from voxtral.tts_pipeline import TTSPipeline, make_ops
from voxtral.weights.loader import open_model

MODEL_SEED = 0
TEXT = "Hello world, this is a test."
CASES = [("ar_male", 1), ("fr_female", 0)]  # (voice, noise seed)
AUDIO_BOUND = 1e-5
FM_BOUND = 1e-5
SEED = int(os.environ.get("VOXTRAL_TEST_SEED", "0"))


@pytest.fixture(scope="module")
def ops(host):
    from voxtral.backends.webgpu.ops import WebGPUOps
    return WebGPUOps(host)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The Q4 GGUF form: Q4 matvecs and embedding gathers plus the dense (F32) small tensors."""
    return open_model(make_test_model("tts", str(tmp_path_factory.mktemp("tts")), seed=MODEL_SEED, fmt="gguf"))


@pytest.fixture(scope="module")
def pipes(ops, tiny):
    return TTSPipeline(tiny, backend="numpy"), TTSPipeline(tiny, ops=ops)


def test_gpu_pipeline_loads_q4_matrices_straight_to_the_gpu(ops, tiny):
    """TTSPipeline on WebGPU keeps no host copy of the backbone's and head's Q4 matrices (fused
    Q/K/V written in place); the codec's weights, folded on the host, stay host arrays."""
    from voxtral.backends.webgpu.resident import ResidentWeight
    seen = {}
    load = ops.load_weights

    def spy(tensors, shapes, host_prefixes=()):
        seen.update(load(tensors, shapes, host_prefixes))
        return seen

    ops.load_weights = spy
    try:
        TTSPipeline(tiny, ops=ops)
    finally:
        del ops.load_weights
    resident = {n for n, v in seen.items() if isinstance(v, ResidentWeight)}
    assert "layers.0.attention.wq.weight" in resident and not seen["layers.0.attention.wq.weight"].whole
    assert any(n.startswith("acoustic_transformer.") for n in resident)
    assert not any(n.startswith("audio_tokenizer.") for n in resident)
    assert any(n.startswith("audio_tokenizer.") and hasattr(v, "raw") for n, v in seen.items())  # Q4, on the host


@pytest.mark.parametrize("voice,seed", CASES)
def test_speech_equals_numpy(pipes, voice, seed):
    ref_pipe, gpu_pipe = pipes
    ref_chunks, gpu_chunks = [], []
    ref = ref_pipe.synthesize(TEXT, voice, seed=seed, max_seconds=1.6, on_audio=ref_chunks.append)
    got = gpu_pipe.synthesize(TEXT, voice, seed=seed, max_seconds=1.6, on_audio=gpu_chunks.append)
    assert gpu_pipe.backend == "webgpu" and got.info["backend"] == "webgpu"
    assert len(ref.frames) >= 10
    for t, (a, b) in enumerate(zip(ref.frames, got.frames)):
        assert np.array_equal(a, b), f"frame {t}: numpy {a.tolist()} vs webgpu {b.tolist()}"
    assert ref.frames.shape == got.frames.shape
    # streamed in the same chunks (5-frame first chunks), and the audio within the bound
    assert [len(c) for c in gpu_chunks] == [len(c) for c in ref_chunks]
    assert got.audio.shape == ref.audio.shape and got.audio.dtype == np.float32
    err = np.abs(got.audio - ref.audio).max() / np.abs(ref.audio).max()
    assert err <= AUDIO_BOUND, f"audio normwise error {err:.3g}"


def test_flow_matching_values_on_random_inputs(ops, tiny):
    """The ODE's continuous output for random hidden states and noise (session seed)."""
    cfg = TTSConfig.from_params(tiny.params, tiny.tokenizer().audio_config)
    w = tiny.weights()
    ref_m, gpu_m = TTSModel(cfg, w, NumpyOps()), TTSModel(cfg, w, ops)
    rng = np.random.default_rng(SEED)
    for steps in (7, 3):
        h = rng.standard_normal((1, cfg.backbone.dim)).astype(np.float32)
        noise = rng.standard_normal(cfg.n_acoustic_codebook)
        a = ref_m.head.acoustic_values(ref_m.ops, h, noise, steps)
        b = ops.to_host(gpu_m.head.acoustic_values(ops, ops.asarray(h), noise, steps))
        err = np.abs(a - b).max()
        assert err <= FM_BOUND, f"seed {SEED}, {steps} steps: max |Δ| {err:.3g}"
        assert ref_m.head.semantic_code(ref_m.ops, h) == gpu_m.head.semantic_code(ops, ops.asarray(h))


def test_recorded_flow_matching_solve_equals_the_plain_one(ops, tiny):
    """acoustic_codes replays the Euler solve recorded once per (steps, alpha): the replay gives
    the bits of the solve run op by op, for new h and noise every frame (it reads its inputs)."""
    cfg = TTSConfig.from_params(tiny.params, tiny.tokenizer().audio_config)
    m = TTSModel(cfg, tiny.weights(), ops)
    graph = ops.flow_matching_graph(m.head, 5, 1.2)
    rng = np.random.default_rng(SEED + 7)
    outs = []
    for _ in range(3):
        h = ops.asarray(rng.standard_normal((1, cfg.backbone.dim)).astype(np.float32))
        noise = rng.standard_normal(cfg.n_acoustic_codebook)
        plain = ops.to_host(m.head.acoustic_values(ops, h, noise, 5, 1.2))
        replay = ops.to_host(graph.run(h, noise))
        assert np.array_equal(plain, replay), f"seed {SEED}"
        outs.append(replay)
    assert not np.array_equal(outs[0], outs[1])
    codes = m.head.acoustic_codes(ops, h, noise, 5, 1.2)
    assert len(m.head._graphs) == 1  # recorded on first use, then replayed
    assert np.array_equal(codes, m.head.acoustic_codes(ops, h, noise, 5, 1.2))


def test_codec_on_random_codes(ops, tiny):
    """The codec alone on random frames (session seed), longer than one streaming window."""
    cfg = TTSConfig.from_params(tiny.params, tiny.tokenizer().audio_config)
    w = tiny.weights()
    ref_m, gpu_m = TTSModel(cfg, w, NumpyOps()), TTSModel(cfg, w, ops)
    rng = np.random.default_rng(SEED)
    n = 30
    codes = np.concatenate([rng.integers(2, 2 + cfg.semantic_codebook_size, (n, 1)),
                            rng.integers(2, 2 + cfg.acoustic_codebook_size, (n, cfg.n_acoustic_codebook))], axis=1)
    a = ref_m.codec(ref_m.ops, codes)
    b = gpu_m.codec(ops, codes)
    assert a.shape == b.shape == (n * cfg.samples_per_frame,)
    err = np.abs(a - b).max() / np.abs(a).max()
    assert err <= AUDIO_BOUND, f"seed {SEED}: normwise error {err:.3g}"


def test_two_submits_per_frame(ops, pipes):
    """A frame costs two GPU round trips (semantic code, acoustic values): no hidden syncs (the
    Euler/CFG scalars are applied without reading them back)."""
    _, gpu_pipe = pipes
    voice = gpu_pipe.voice("ar_male")
    ids = build_tts_prompt(gpu_pipe.tokenizer, TEXT, voice)
    x = prompt_embeddings(ops, gpu_pipe.model.backbone.tok_embeddings, ids, voice, gpu_pipe.config.audio_token_id)
    gpu_pipe.model.head.time_table(ops, 7)  # once per run
    ops.flush()
    before = ops.submits
    gen = generate_frames(gpu_pipe.model, x, np.random.default_rng(1), max_frames=6)
    assert len(gen.frames) == 6
    assert ops.submits - before == 2 * len(gen.frames)


def test_backend_choice_and_tts_settings(host):
    """`webgpu` gets the TTS settings; `auto` takes WebGPU on a hardware adapter and numpy (with
    a note) on a CPU-emulated one such as lavapipe."""
    ops, name, note = make_ops("webgpu")
    assert name == "webgpu" and note is None and ops.name == "webgpu"
    assert ops.unbounded_cache_rows == 4096  # the TTS context bounds the backbone's GPU ring
    assert ops.matvec_split_rows == 8
    ops, name, note = make_ops("auto")
    if getattr(host, "is_software", False):
        assert name == "numpy" and "software" in note
    else:
        assert name == "webgpu" and note is None


@pytest.mark.parametrize("m", [5, 6, 8])
def test_row_chunked_q4_matvec(host, m):
    """A 5..8-row Q4 linear as matvecs on row chunks (the FM batch), with bias-free residual add
    and in-place accumulation, equals the plain routing (tiled q4_matmul) within f32 rounding."""
    from voxtral.backends.webgpu.ops import WebGPUOps
    from voxtral.weights.q4 import Q4Tensor

    rng = np.random.default_rng(SEED + m)
    w = Q4Tensor.quantize(rng.standard_normal((200, 256)).astype(np.float32))
    x = rng.standard_normal((m, 256)).astype(np.float32)
    r = rng.standard_normal((m, 200)).astype(np.float32)
    ref = x.astype(np.float64) @ w.dequantize().astype(np.float64).T
    got = {}
    for split in (None, 8):
        o = WebGPUOps(host)
        o.matvec_split_rows = split
        (y,) = o.linear_split(o.asarray(x), (w,))
        got[split] = (o.to_host(y), o.to_host(o.linear(o.asarray(x), w, residual=o.asarray(r))))
    for split, (y, yr) in got.items():
        assert np.abs(y - ref).max() <= 2e-6 * np.abs(ref).max(), split
        assert np.abs(yr - (ref + r)).max() <= 2e-6 * np.abs(ref + r).max(), split


def test_speak_cli_webgpu(tiny, tmp_path, capsys):
    """`voxtral speak --backend webgpu` writes the numpy backend's WAV up to PCM rounding (the
    samples agree to ~1e-6, so a 16-bit sample differs by at most one step)."""
    import wave

    from voxtral.cli import main

    def speak(backend):
        out = tmp_path / f"{backend}.wav"
        assert main(["speak", TEXT, "--voice", "ar_male", "--seed", "1", "--model", tiny.path, "--out", str(out),
                     "--max-seconds", "0.8", "--backend", backend]) == 0
        with wave.open(str(out), "rb") as w:
            return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int32)

    gpu, ref = speak("webgpu"), speak("numpy")
    assert "on webgpu" in capsys.readouterr().err
    assert gpu.shape == ref.shape == (10 * 1920,)
    assert np.abs(gpu - ref).max() <= 1


@pytest.mark.parametrize("backend", ["webgpu", "numpy"])
def test_bench_tts(tiny, backend, capsys):
    """`voxtral bench tts` on the tiny model: every figure present and sane, JSON on request."""
    import json

    from voxtral.bench_tts import run_tts_bench
    from voxtral.cli import main

    r = run_tts_bench("tiny", frames=6, backend=backend, model=tiny.path)
    assert r["backend"] == backend and r["frames"] == 6 and r["audio_s"] == pytest.approx(6 * 0.08)
    for key in ("load_s", "prefill_ms", "backbone_ms_per_frame", "fm_ms_per_frame", "codec_ms_per_frame",
                "frames_per_s", "rtf", "peak_host_mb"):
        assert r[key] > 0, key
    assert (r["gpu"] is not None) == (backend == "webgpu")
    if r["gpu"]:
        assert r["gpu"]["adapter"] and r["gpu"]["buffers_mb"] > 0
    assert main(["bench", "tts", "--frames", "3", "--backend", backend, "--model", tiny.path, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["bench"] == "tts" and out["frames"] == 3
    assert main(["bench", "tts", "--frames", "3", "--backend", backend, "--model", tiny.path]) == 0
    text = capsys.readouterr().out
    assert "flow-matching head" in text and "RTF" in text and "wall s per audio s" in text
