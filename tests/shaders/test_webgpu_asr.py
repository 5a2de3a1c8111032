"""The whole tiny ASR model on the WebGPU backend (lavapipe in CI) gives the same tokens as the
numpy backend, offline and streaming, for the Q4 GGUF model; plus the ops the model needs beyond
the kernels (copy, broadcast mul, row gathers)."""
import os

import numpy as np
import pytest

from voxtral.audio import log_mel, pad_for_offline
from voxtral.backends import NumpyOps
from voxtral.config import ASRConfig
from voxtral.models.asr.model import ASRModel
from voxtral.models.asr.transcribe import ASRStream, transcribe
from voxtral.testmodel import make_test_model
from voxtral.weights.loader import open_model

SEED = int(os.environ.get("VOXTRAL_TEST_SEED", "0"))


@pytest.fixture(scope="module")
def ops(host):
    from voxtral.backends.webgpu.ops import WebGPUOps
    return WebGPUOps(host)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = make_test_model("asr", str(tmp_path_factory.mktemp("asr")), seed=SEED, fmt="gguf")
    mf = open_model(path)
    cfg = ASRConfig.from_params(mf.params, mf.tokenizer().audio_config)
    return cfg, mf.weights()


def _mel(cfg, seconds, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    x = 0.2 * np.sin(2 * np.pi * (150 + 50 * np.sin(3 * t)) * t) * (np.sin(2 * np.pi * 0.9 * t) > 0)
    x = (x + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    return log_mel(pad_for_offline(x, cfg.audio), cfg.audio)


def test_copy_and_broadcast_ops(ops):
    rng = np.random.default_rng(SEED)
    a = rng.standard_normal((7, 12)).astype(np.float32)
    b = rng.standard_normal((1, 12)).astype(np.float32)
    ga = ops.asarray(a)
    assert np.array_equal(ops.to_host(ops.rows(ga, 2, 5)), a[2:5])
    assert np.array_equal(ops.to_host(ops.concat_rows([ops.rows(ga, 5, 7), ga])), np.concatenate([a[5:], a]))
    assert np.allclose(ops.to_host(ops.mul(ga, ops.asarray(b))), a * b, rtol=1e-6)
    assert np.allclose(ops.to_host(ops.add(ga, ops.asarray(np.ones((1, 1))))), a + 1, rtol=1e-6)
    assert np.array_equal(ops.to_host(ops.group_rows(ops.asarray(a[:6]), 3)), a[:6].reshape(2, 36))


def test_offline_tokens_equal_numpy(ops, tiny):
    cfg, w = tiny
    mel = _mel(cfg, 3.0, SEED)
    ref = transcribe(ASRModel(cfg, w, NumpyOps()), mel, return_logits=True)
    got = transcribe(ASRModel(cfg, w, ops), mel, return_logits=True)
    assert got.tokens == ref.tokens, f"seed {SEED}"
    for a, b in zip(ref.logits, got.logits):
        assert np.abs(a - b).max() <= 1e-4 * np.abs(a).max(), f"seed {SEED}"


def test_offline_replayed_steps_equal_numpy(ops, tiny):
    """Without logits kept, decode steps are a recorded graph replayed per token."""
    cfg, w = tiny
    mel = _mel(cfg, 3.0, SEED + 3)
    ref = transcribe(ASRModel(cfg, w, NumpyOps()), mel).tokens
    assert transcribe(ASRModel(cfg, w, ops), mel).tokens == ref, f"seed {SEED}"


@pytest.mark.parametrize("rows", [4, 7])
def test_prompt_prefill_in_pieces_equals_numpy(host, tiny, rows):
    """VOXTRAL_PREFILL_ROWS: the prompt through the layers a few rows at a time (4: the matvec
    instead of the tiled GEMM; 7: GEMM pieces) decides the same first token and logits as the
    numpy backend's whole-prompt prefill (each piece attends to the earlier ones in the caches)."""
    from voxtral.backends.webgpu.ops import WebGPUOps
    cfg, w = tiny
    mel = _mel(cfg, 2.0, SEED + 5)
    ref = transcribe(ASRModel(cfg, w, NumpyOps()), mel, return_logits=True)
    ops = WebGPUOps(host)
    ops.prefill_chunk_rows = rows
    got = transcribe(ASRModel(cfg, w, ops), mel, return_logits=True)
    assert got.tokens == ref.tokens, f"seed {SEED}"
    for a, b in zip(ref.logits, got.logits):
        assert np.abs(a - b).max() <= 1e-4 * np.abs(a).max(), f"seed {SEED}"


def test_next_session_reuses_caches_and_recorded_step(ops, tiny):
    """A dropped session hands its KV caches and recorded step to the next session of the same
    (ops, delay): no new recording, and the next clips' tokens still equal numpy's (stale cache
    rows of the earlier, longer clip are never read). Sessions alive at once never share."""
    import gc
    from voxtral.models.asr.transcribe import DecoderSession
    cfg, w = tiny
    model, ref_model = ASRModel(cfg, w, ops), ASRModel(cfg, w, NumpyOps())
    mels = [_mel(cfg, 3.0, SEED + 20), _mel(cfg, 1.5, SEED + 21), _mel(cfg, 2.0, SEED + 22)]
    delay = model.delay_tokens()
    graphs = []
    for mel in mels:
        s = DecoderSession(model, delay)
        s.feed(model.audio_embeddings(mel))
        ref = transcribe(ref_model, mel).tokens
        assert s.result.tokens == ref, f"seed {SEED}"
        graphs.append(s._graph)
        del s
        gc.collect()
    assert graphs[0] is not None and graphs[0] is graphs[1] is graphs[2]
    a, b = DecoderSession(model, delay), DecoderSession(model, delay)
    assert a._state is not b._state and a.caches[0] is not b.caches[0]


def test_file_decodes_several_steps_per_submit_and_stops_at_eos(ops, tiny):
    """A file's rows decode STEPS_PER_SUBMIT replayed steps per submit (positions and audio rows
    advanced on the GPU): the same tokens as one step per submit, and an EOS in the middle of a
    submit ends the result there (the submit's later steps and the next submit are discarded)."""
    from voxtral.backends.webgpu.step_graph import STEPS_PER_SUBMIT
    from voxtral.models.asr.transcribe import DecoderSession
    cfg, w = tiny
    model = ASRModel(cfg, w, ops)
    emb = model.audio_embeddings(_mel(cfg, 3.0, SEED + 30))
    delay = model.delay_tokens()
    n = len(DecoderSession(model, delay).prompt)

    def run(eos_id, one_per_submit=False):
        s = DecoderSession(model, delay, eos_id=eos_id)
        s.feed(ops.rows(emb, 0, n + 1))  # prefill + the first (recording) step
        before = ops.submits
        if one_per_submit:
            for p in range(n + 1, emb.shape[0]):
                s.feed(emb.view_rows(p, p + 1))
        else:
            s.feed(emb.view_rows(n + 1, emb.shape[0]))
        return s.result, ops.submits - before

    single, submits_single = run(-1, one_per_submit=True)
    batched, submits_batched = run(-1)
    steps = emb.shape[0] - n - 1
    assert batched.tokens == single.tokens and batched.positions == single.positions
    assert submits_single == steps and submits_batched == -(-steps // STEPS_PER_SUBMIT)
    # With an EOS id: the same result as one step per submit. tokens[-steps:] are the batched
    # steps' tokens (every step decides one here); the EOS is a token decided by a batched step
    # that is not its submit's first - ideally one decided there first (then the stop is inside
    # a submit; a random tiny model may repeat earlier tokens only, then it stops earlier).
    toks = single.tokens
    first_batched = len(toks) - steps
    inside = [i for i in range(first_batched, len(toks)) if (i - first_batched) % STEPS_PER_SUBMIT]
    k = next((i for i in inside if toks[i] not in toks[:i]), inside[0])
    stopped, _ = run(toks[k])
    reference, _ = run(toks[k], one_per_submit=True)
    assert stopped.eos and stopped.tokens == reference.tokens and stopped.positions == reference.positions
    assert stopped.tokens == toks[:toks.index(toks[k])]


def test_streaming_tokens_equal_numpy(ops, tiny):
    cfg, w = tiny
    mel = _mel(cfg, 2.5, SEED + 1)
    ref = transcribe(ASRModel(cfg, w, NumpyOps()), mel).tokens
    stream = ASRStream(ASRModel(cfg, w, ops))
    rng = np.random.default_rng(SEED)
    i = 0
    while i < mel.shape[1]:
        n = int(rng.integers(1, 40))
        stream.push_mel(mel[:, i:i + n])
        i += n
    assert stream.tokens == ref, f"seed {SEED}"


def test_decode_is_one_submit_per_step(ops, tiny):
    """After the prefill, each decoded token costs exactly one submit (no per-kernel syncs)."""
    cfg, w = tiny
    mel = _mel(cfg, 2.0, SEED + 2)
    model = ASRModel(cfg, w, ops)
    emb = model.audio_embeddings(mel)
    from voxtral.models.asr.transcribe import DecoderSession
    s = DecoderSession(model, model.delay_tokens())
    n = len(s.prompt)
    s.feed(ops.rows(emb, 0, n))
    s.feed(ops.rows(emb, n, n + 1))  # the first step also records the step graph
    before = ops.submits
    steps = 0
    for p in range(n + 1, emb.shape[0]):
        if s.done:
            break
        s.feed(emb.view_rows(p, p + 1))  # a view: no copy of its own
        steps += 1
        if steps == 1:  # (the first step from this buffer binds it once)
            objects = (len(ops.k._bind_groups), len(ops.k._uniforms))
    assert steps > 3 and ops.submits - before == steps
    # ... and creates no GPU object: the audio row's index goes through a buffer
    assert (len(ops.k._bind_groups), len(ops.k._uniforms)) == objects
    # The step's fusions: per layer the QKV matvec also does RoPE and the cache write (ROPE_KV);
    # the two pre-norms ride on the QKV and gate/up matvecs, the SwiGLU too; only the final
    # norm before the LM head is its own dispatch.
    names = {id(p): f"{key[0]}:{key[1]}" for key, p in ops.k._pipelines.items()}
    flags = {id(p): key[2] for key, p in ops.k._pipelines.items()}
    entries = [names[id(d.pipeline)] for d in s._graph.dispatches]
    n_layers = cfg.decoder.n_layers
    assert sum("ROPE_KV" in flags[id(d.pipeline)] for d in s._graph.dispatches) == n_layers, entries
    assert not {"attention.wgsl:kv_write", "attention.wgsl:rope_kv_write", "rope.wgsl:main"} & set(entries)
    assert entries.count("rmsnorm.wgsl:main") == 1 and "elementwise.wgsl:swiglu" not in entries
    assert entries.count("q4_matvec.wgsl:main") == 4 * n_layers + 1  # QKV, Wo, gate/up, W2; LM head


def test_cli_backend_webgpu_equals_numpy(tmp_path):
    """`voxtral transcribe --backend webgpu` (GGUF and a dense BF16 model) prints the numpy tokens."""
    import json
    import subprocess
    import sys

    from voxtral.audio import write_wav
    from voxtral.asr_bench import bench_clip
    wav = tmp_path / "clip.wav"
    write_wav(str(wav), bench_clip(2.5, SEED), 16000)
    for fmt in ("gguf", "mistral"):
        model = make_test_model("asr", str(tmp_path / fmt), seed=SEED, fmt=fmt)
        outs = []
        for backend in ("numpy", "webgpu"):
            r = subprocess.run([sys.executable, "-m", "voxtral", "transcribe", str(wav), "--model", model,
                                "--backend", backend, "--format", "json", "--quiet"],
                               capture_output=True, text=True, timeout=600)
            assert r.returncode == 0, r.stderr
            outs.append(json.loads(r.stdout))
        assert outs[0]["tokens"] == outs[1]["tokens"], (fmt, SEED)
        assert outs[1]["backend"] == "webgpu"


def test_bench_passes_on_webgpu_equal_numpy(host):
    """The benchmark's two passes (voxtral.asr_bench, also the page's benchmark mode) give the
    numpy backend's tokens on the GPU."""
    from voxtral.asr_bench import bench_model, random_asr_model, time_asr
    from voxtral.backends.webgpu.ops import WebGPUOps
    from voxtral.backends.webgpu.resident import ResidentWeight
    cfg, weights = random_asr_model("tiny", SEED)
    want = time_asr(NumpyOps(), cfg, weights, 1.5)
    ops = WebGPUOps(host)
    _, resident = bench_model(ops, "tiny", SEED)  # Q4 straight to the GPU, Q/K/V and gate/up fused
    assert isinstance(resident["layers.0.attention.wk.weight"], ResidentWeight)
    assert not resident["layers.0.attention.wk.weight"].whole
    got = time_asr(ops, cfg, resident, 1.5)
    assert got["offline_tokens"] == want["offline_tokens"]
    assert got["stream_tokens"] == want["stream_tokens"] and got["stream_eos"] == want["stream_eos"]
    assert got["decode_steps"] == want["decode_steps"] > 0


def test_time_conditioned_norm_folded_once_is_bit_identical(ops):
    """The decoder's FFN norm g · (1 + ada) is folded into one vector once per (g, ada) and the
    fused gate/up matvec then runs with a plain norm: the same bits as the matvec forming the
    product itself (NORM_ADA); inside a step recording the fold is not recorded (one dispatch),
    and an ada made inside the recording is used unfolded."""
    from voxtral.weights.q4 import Q4Tensor
    rng = np.random.default_rng(SEED + 11)
    f, k_dim = 70, 256
    w_gate, w_up = (Q4Tensor.quantize(rng.standard_normal((f, k_dim)).astype(np.float32)) for _ in range(2))
    g = rng.uniform(0.5, 1.5, k_dim).astype(np.float32)
    h = ops.asarray(rng.standard_normal((1, k_dim)).astype(np.float32))          # [1, K]
    ada = ops.mul(ops.asarray(rng.standard_normal((1, k_dim)).astype(np.float32)), 0.3)  # [1, K] on the device
    folded = ops.to_host(ops.norm_swiglu(h, g, 1e-5, w_gate, w_up, ada=ada))
    gw, _ = ops._split_weight((w_gate, w_up), None)
    out = ops._alloc((1, f))
    ops.k.q4_swiglu(ops.seq, h, gw, out, norm=(ops._param(g), 1e-5, ada))  # NORM_ADA: unfolded
    assert np.array_equal(folded, ops.to_host(out))
    hn = ops.to_host(h).astype(np.float64)
    xn = hn / np.sqrt((hn * hn).mean() + 1e-5) * g * (1 + ops.to_host(ada))
    a, u = xn @ w_gate.dequantize().T, xn @ w_up.dequantize().T
    assert np.max(np.abs(folded - a / (1 + np.exp(-a)) * u)) < 1e-4 * np.abs(a * u).max()
    pos = ops._alloc((1,), "u32")
    ops.flush()
    ops.begin_capture(pos)
    ops.norm_swiglu(h, g, 1e-5, w_gate, w_up, ada=ada)                 # folded earlier: 1 dispatch
    inner = ops.mul(ada, 2.0)                                         # made inside the recording
    ops.norm_swiglu(h, g, 1e-5, w_gate, w_up, ada=inner)
    dispatches, _ = ops.end_capture()
    flags = {k[2] for k, p in ops.k._pipelines.items() if any(d.pipeline is p for d in dispatches)}
    assert len(dispatches) == 3  # swiglu (folded), the mul, swiglu (NORM_ADA)
    assert any("NORM_ADA" in fl for fl in flags) and any("NORM" in fl and "NORM_ADA" not in fl for fl in flags)
