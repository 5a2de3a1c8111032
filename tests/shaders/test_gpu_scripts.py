"""scripts/kernel_bench.py and scripts/profile_asr.py, the H100 measurement tools, on lavapipe with
small shapes: they run, report what they claim, and their variants compute what the kernels do
(nothing here looks at timings)."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_kernel_bench_variants_and_probes(host, monkeypatch, capsys):
    kb = _script("kernel_bench")
    monkeypatch.setattr(kb, "ENCODER", [("enc.qkv", 70, 128)])
    monkeypatch.setattr(kb, "DECODER", [("dec.qkv", 96, 256), ("dec.w13", 20, 64), ("lm_head", 37, 64 * 33)])
    monkeypatch.setattr(kb, "FUSED", [("dec.qkv", "norm"), ("dec.w13", "swiglu+norm+ada")])
    monkeypatch.setattr(kb, "_SPLIT_BUFFERS", {})
    monkeypatch.setattr(sys, "argv", ["kernel_bench", "--reps", "2", "--m", "67", "--fused", "--split",
                                      "--variants", "base,checks=bounds,checks=all",
                                      "--split-words", "base,SLOT2,SLOT4+ROWS8"])
    kb.main()
    report = json.loads(capsys.readouterr().out)
    rows = {(r["variant"], r["shape"]): r for r in report["rows"]}
    shapes = ["enc.qkv", "dec.qkv", "dec.w13", "lm_head", "dec.qkv+norm", "dec.w13+swiglu+norm+ada"]
    for v in ("base", "checks=bounds", "checks=all"):
        for s in shapes:
            assert rows[(v, s)]["us"] > 0 and rows[(v, s)]["M"] == (67 if s == "enc.qkv" else 1)
            # the runtime checks change no result
            assert rows[(v, s)]["same_bits_as_first"] is (None if v == "base" else True)
    # the split-layout experiment computes the same matvec (summed in the earlier lane-per-block
    # order, so not the same bits); its probes do not (on purpose)
    for s in ("dec.qkv", "dec.w13", "lm_head"):
        assert rows[("split-layout", s)]["max_rel_vs_first"] < 1e-5
        assert rows[("split-layout+PROBE_NO_X", s)]["max_rel_vs_first"] > 1e-3
        # the word-slot kernel over the split layout, in each slot width
        for v in ("q4split_words", "q4split_words+SLOT2", "q4split_words+SLOT4+ROWS8"):
            assert rows[(v, s)]["max_rel_vs_first"] < 1e-5, (v, s)


def test_profile_asr_families_and_attention_sweep(host, monkeypatch, capsys):
    pa = _script("profile_asr")
    monkeypatch.setattr(sys, "argv", ["profile_asr", "--preset", "tiny", "--seconds", "1.5", "--steps", "2",
                                      "--attn-groups", "64,512", "--variants", "base,SOME_UNUSED_DEFINE"])
    pa.main()
    r = json.loads(capsys.readouterr().out)
    dp = r["decode_profile"]
    assert sum(f["dispatches"] for f in dp["families"].values()) == dp["dispatches"]
    assert "q4_matvec.wgsl:main" in dp["families"] and "rmsnorm.wgsl:main" in dp["families"]
    assert "attention.wgsl:rope_kv_write" not in dp["families"]  # fused into the QKV matvec
    assert dp["timestamp_step_ms"] is None or dp["timestamp_step_ms"] > 0
    assert set(dp["host_encoding_ms"]) == {"begin", "record", "end_pass", "finish", "submit"}
    assert sum(f["dispatches"] for f in r["encoder_profile"]["families"].values()) == r["encoder_profile"]["dispatches"]
    assert set(r["attn_groups"]) == {"64", "512"} or set(r["attn_groups"]) == {64, 512}
    sp = r["session_profile"]
    assert sp["prefill_ms"] > 0 and sp["first_step_ms"] > 0 and sp["steady_step_ms"] > 0
    assert any("feed" in line for line in sp["prefill_top"])
    # the variant sweep: a define no shader uses decodes the same tokens with the same dispatches
    assert set(r["variants"]) == {"base", "SOME_UNUSED_DEFINE"} and len(dp["tokens"]) > 0
    assert all(v["same_tokens_as_first"] and v["dispatches"] == dp["dispatches"] for v in r["variants"].values())
