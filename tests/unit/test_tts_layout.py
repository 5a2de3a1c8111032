"""The TTS tensor layout pinned to the TTS spec, section 3 (consolidated.safetensors).

The expected table below is written out by hand from the spec (names, shapes, group counts
237 / 33 / 116 = 386), not computed by the code under test. It is compared with
`voxtral.layout.tts_tensor_shapes` on the published params (packaged as voxtral/data/tts_params.json)
and with the tensors a `make-test-model tts` file actually holds.
"""
from __future__ import annotations

import json
import os

import pytest

from voxtral.layout import tts_tensor_shapes
from voxtral.presets import tts_params

SHARED_PARAMS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "tts_params.json")

# TTS spec section 3.1: backbone, 26 x 9 + 3 = 237
BACKBONE = {
    "mm_audio_embeddings.tok_embeddings.weight": (131072, 3072),
    "mm_audio_embeddings.audio_codebook_embeddings.embeddings.weight": (9088, 3072),
    "norm.weight": (3072,),
}
for _i in range(26):
    BACKBONE.update({
        f"layers.{_i}.attention.wq.weight": (4096, 3072),
        f"layers.{_i}.attention.wk.weight": (1024, 3072),
        f"layers.{_i}.attention.wv.weight": (1024, 3072),
        f"layers.{_i}.attention.wo.weight": (3072, 4096),
        f"layers.{_i}.attention_norm.weight": (3072,),
        f"layers.{_i}.feed_forward.w1.weight": (9216, 3072),
        f"layers.{_i}.feed_forward.w2.weight": (3072, 9216),
        f"layers.{_i}.feed_forward.w3.weight": (9216, 3072),
        f"layers.{_i}.ffn_norm.weight": (3072,),
    })

# section 3.2: flow-matching head, 3 x 9 + 6 = 33
AT = "acoustic_transformer."
HEAD = {
    AT + "input_projection.weight": (3072, 36),
    AT + "time_projection.weight": (3072, 3072),
    AT + "llm_projection.weight": (3072, 3072),
    AT + "semantic_codebook_output.weight": (8320, 3072),
    AT + "acoustic_codebook_output.weight": (36, 3072),
    AT + "norm.weight": (3072,),
}
for _j in range(3):
    HEAD.update({
        f"{AT}layers.{_j}.attention.wq.weight": (4096, 3072),
        f"{AT}layers.{_j}.attention.wk.weight": (1024, 3072),
        f"{AT}layers.{_j}.attention.wv.weight": (1024, 3072),
        f"{AT}layers.{_j}.attention.wo.weight": (3072, 4096),
        f"{AT}layers.{_j}.attention_norm.weight": (3072,),
        f"{AT}layers.{_j}.ffn_norm.weight": (3072,),
        f"{AT}layers.{_j}.feed_forward.w1.weight": (9216, 3072),
        f"{AT}layers.{_j}.feed_forward.w2.weight": (3072, 9216),
        f"{AT}layers.{_j}.feed_forward.w3.weight": (9216, 3072),
    })

# section 3.4: codec decoder + quantizer, 2 + 2 + 6 + 2 + 8 x 13 = 116
AU = "audio_tokenizer."
WN = ".conv.parametrizations.weight.original"
CODEC = {
    AU + "quantizer.semantic_codebook.embedding_sum": (8192, 256),
    AU + "quantizer.semantic_codebook.cluster_usage": (8192,),
    AU + "decoder_blocks.0" + WN + "0": (1024, 1, 1),
    AU + "decoder_blocks.0" + WN + "1": (1024, 292, 3),
    AU + "output_proj" + WN + "0": (240, 1, 1),
    AU + "output_proj" + WN + "1": (240, 1024, 7),
}
for _b in (2, 4, 6):
    CODEC[f"{AU}decoder_blocks.{_b}{WN}0"] = (1024, 1, 1)
    CODEC[f"{AU}decoder_blocks.{_b}{WN}1"] = (1024, 1024, 4)
for _b in (1, 3, 5, 7):
    for _l in (0, 1):
        p = f"{AU}decoder_blocks.{_b}.layers.{_l}."
        CODEC.update({p + f"attention.{w}.weight": (1024, 1024) for w in ("wq", "wk", "wv", "wo")})
        CODEC.update({
            p + "attention.q_norm.weight": (1024,), p + "attention.k_norm.weight": (1024,),
            p + "attention_norm.weight": (1024,), p + "ffn_norm.weight": (1024,),
            p + "attention_scale": (1024,), p + "ffn_scale": (1024,),
            p + "feed_forward.w1.weight": (4096, 1024), p + "feed_forward.w3.weight": (4096, 1024),
            p + "feed_forward.w2.weight": (1024, 4096),
        })

SPEC = {**BACKBONE, **HEAD, **CODEC}


def _group(name: str) -> str:
    return "head" if name.startswith(AT) else "codec" if name.startswith(AU) else "backbone"


def test_the_hand_written_table_has_the_spec_counts():
    """Guards the table itself against a typo: the spec's own counts."""
    assert (len(BACKBONE), len(HEAD), len(CODEC), len(SPEC)) == (237, 33, 116, 386)


def test_full_layout_equals_the_spec():
    shapes = tts_tensor_shapes(tts_params("full"))
    counts = {g: sum(_group(n) == g for n in shapes) for g in ("backbone", "head", "codec")}
    assert len(shapes) == 386 and counts == {"backbone": 237, "head": 33, "codec": 116}
    assert set(shapes) == set(SPEC), (sorted(set(shapes) - set(SPEC))[:5], sorted(set(SPEC) - set(shapes))[:5])
    for name, shape in SPEC.items():
        assert tuple(shapes[name]) == shape, name
    # what the spec says is absent from the checkpoint
    assert "output.weight" not in shapes and AT + "time_embedding.inv_freq" not in shapes
    assert not any(n.startswith((AU + "input_proj", AU + "encoder_blocks")) for n in shapes)


def test_test_model_file_holds_exactly_the_spec_tensors(tmp_path):
    """A `make-test-model tts` file at small widths but the real depths (26 backbone layers, 3
    flow-matching layers; the tiny preset has 2 of each): exactly the spec's 386 names, all BF16."""
    from voxtral.testmodel import write_mistral_dir
    from voxtral.weights.safetensors import SafetensorsFile
    params = tts_params("tiny")
    params["n_layers"] = 26
    params["multimodal"]["audio_model_args"]["acoustic_transformer_args"]["n_layers"] = 3
    d = write_mistral_dir("tts", str(tmp_path / "tts"), params, seed=1)
    st = SafetensorsFile(os.path.join(d, "consolidated.safetensors"))
    assert sorted(st.names) == sorted(SPEC)
    assert {str(st.dtype(n)) for n in st.names} == {"BF16"}


@pytest.mark.skipif(not os.path.isfile(SHARED_PARAMS),
                    reason="compares with the published params.json in ../shared/data, not on this machine")
def test_packaged_params_are_the_published_ones():
    with open(SHARED_PARAMS, encoding="utf-8") as f:
        assert tts_params("full") == json.load(f)
