"""scripts/bench_transformers.py: the HF side-by-side baseline builds the real layout and decodes
exactly as the oracle tests' HF greedy path does. Nothing here looks at timings."""
from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
if not hasattr(transformers, "VoxtralRealtimeForConditionalGeneration"):
    pytest.skip("this transformers has no VoxtralRealtimeForConditionalGeneration", allow_module_level=True)

from voxtral.layout import asr_tensor_shapes  # noqa: E402
from voxtral.presets import asr_params  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_KEYS = {"bench", "preset", "device", "device_name", "dtype", "torch", "transformers", "params",
                 "audio_s", "positions", "prompt_tokens", "build_s", "mel_ms", "encoder_ms", "prefill_ms",
                 "new_tokens", "decode_steps", "decode_ms_per_token", "decode_tokens_per_s", "generate_s",
                 "processing_s", "rtf", "wall_s", "token_ids"}


@pytest.fixture(scope="module")
def bench():
    """The script as a module (scripts/ is no package)."""
    spec = importlib.util.spec_from_file_location("bench_transformers", ROOT / "scripts" / "bench_transformers.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def one_thread():
    """One torch thread (numpy and OpenMP threads fight on small CPUs), restored afterwards."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def oracle(one_thread):
    """tests/oracle/hf_asr_oracle.py (it sets one torch thread on import: the fixture restores it)."""
    sys.path.insert(0, str(ROOT / "tests" / "oracle"))
    try:
        import hf_asr_oracle
    finally:
        sys.path.remove(str(ROOT / "tests" / "oracle"))
    return hf_asr_oracle


@pytest.mark.parametrize("preset", ["full", "tiny"])
def test_hf_model_has_exactly_the_mistral_layout_parameters(bench, preset):
    params = asr_params(preset)
    model = bench.construct(bench.hf_config_from_params(params), "meta", torch.bfloat16)
    # the LM head is tied to the embedding: one tensor, counted once by parameters()
    assert model.lm_head.weight is model.model.language_model.embed_tokens.weight
    expected = sum(math.prod(shape) for shape in asr_tensor_shapes(params).values())
    assert bench.count_params(model) == expected
    if preset == "full":
        assert expected == 4_429_679_360  # ASR spec 3.1
        assert next(model.parameters()).dtype == torch.bfloat16


def test_tiny_cpu_run_decodes_every_position_like_the_oracle(bench, oracle, capsys):
    seconds = 2.0
    r = bench.main(["--preset", "tiny", "--device", "cpu", "--dtype", "f32", "--seconds", str(seconds),
                    "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert EXPECTED_KEYS - {"token_ids"} <= set(printed) and "token_ids" not in printed
    assert EXPECTED_KEYS <= set(r)
    assert r["preset"] == "tiny" and r["device"] == "cpu" and r["dtype"] == "f32"

    # EOS ignored: one new token per audio position after the prompt, as many as HF allows
    ids = r["token_ids"]
    assert r["new_tokens"] == len(ids) == r["positions"] - r["prompt_tokens"] > 0
    assert r["decode_steps"] == len(ids) - 1

    # the oracle tests' path on the same random model: spec padding, HF mel, prompt, generate
    from voxtral.config import ASRConfig
    from voxtral.models.asr import prompt_ids
    try:
        from voxtral.asr_bench import bench_clip
    except ImportError:
        from voxtral.bench import bench_clip
    model = bench.build_model("tiny", "cpu", torch.float32, seed=0)
    cfg = ASRConfig.from_params(asr_params("tiny"))
    delay = cfg.audio.num_delay_tokens(bench.DELAY_MS)
    mel = oracle.hf_mel(oracle.pad_offline(bench_clip(seconds), delay))
    assert mel.shape[1] // 8 == r["positions"]
    ref, _ = oracle.hf_generate(model, prompt_ids(cfg, delay), mel, delay)
    assert ids[:len(ref)] == ref  # the oracle stops at EOS, the bench goes on
    if bench.EOS_ID not in ref:
        assert len(ref) == len(ids)
    assert len(set(ids)) >= 3, f"degenerate greedy output {ids}"
