"""Tensor names and shapes of the published checkpoints, derived from params.json.

ASR: `mistralai/Voxtral-Mini-4B-Realtime-2602` (ASR spec section 3.1, 711 tensors at full size).
TTS: `mistralai/Voxtral-4B-TTS-2603` (TTS spec section 3, 386 tensors).
Shapes are PyTorch order ([out, in] for linears, [out, in, k] for convs). One table serves the
loader (to name a missing or mis-shaped tensor), the test-model writer and the quantizer.
"""
from __future__ import annotations

import math

ASR_PREFIX = "mm_streams_embeddings.embedding_module."
ASR_ENC_PREFIX = ASR_PREFIX + "whisper_encoder."
TTS_CODEC_PREFIX = "audio_tokenizer."


def _decoder_layer_shapes(prefix: str, p: dict) -> dict[str, tuple[int, ...]]:
    """A Mistral decoder layer without biases (ASR decoder, TTS backbone, TTS flow-matching head)."""
    d, hd, ff = p["dim"], p["head_dim"], p["hidden_dim"]
    nq, nkv = p["n_heads"] * hd, p.get("n_kv_heads", p["n_heads"]) * hd
    return {
        prefix + "attention_norm.weight": (d,),
        prefix + "attention.wq.weight": (nq, d),
        prefix + "attention.wk.weight": (nkv, d),
        prefix + "attention.wv.weight": (nkv, d),
        prefix + "attention.wo.weight": (d, nq),
        prefix + "ffn_norm.weight": (d,),
        prefix + "feed_forward.w1.weight": (ff, d),
        prefix + "feed_forward.w2.weight": (d, ff),
        prefix + "feed_forward.w3.weight": (ff, d),
    }


def asr_tensor_shapes(params: dict) -> dict[str, tuple[int, ...]]:
    """Every tensor of the ASR checkpoint with its shape, in the order of ASR spec 3.1."""
    mm = params["multimodal"]["whisper_model_args"]
    enc = mm["encoder_args"]
    n_mels = enc.get("audio_encoding_args", {}).get("num_mel_bins", 128)
    ed, ehd, eff = enc["dim"], enc["head_dim"], enc["hidden_dim"]
    enq, enkv = enc["n_heads"] * ehd, enc.get("n_kv_heads", enc["n_heads"]) * ehd
    down = mm["downsample_args"]["downsample_factor"]
    d, vocab = params["dim"], params["vocab_size"]
    t_dim = params.get("ada_rms_norm_t_cond_dim", 32)
    P, EP = ASR_PREFIX, ASR_ENC_PREFIX
    s: dict[str, tuple[int, ...]] = {
        P + "tok_embeddings.weight": (vocab, d),
        EP + "conv_layers.0.conv.weight": (ed, n_mels, 3),
        EP + "conv_layers.0.conv.bias": (ed,),
        EP + "conv_layers.1.conv.weight": (ed, ed, 3),
        EP + "conv_layers.1.conv.bias": (ed,),
    }
    for i in range(enc["n_layers"]):
        t = f"{EP}transformer.layers.{i}."
        # Encoder biases exist on q, v, o and w2 only (ASR spec 5.2 / 15.4).
        s.update({
            t + "attention_norm.weight": (ed,),
            t + "attention.wq.weight": (enq, ed),
            t + "attention.wq.bias": (enq,),
            t + "attention.wk.weight": (enkv, ed),
            t + "attention.wv.weight": (enkv, ed),
            t + "attention.wv.bias": (enkv,),
            t + "attention.wo.weight": (ed, enq),
            t + "attention.wo.bias": (ed,),
            t + "ffn_norm.weight": (ed,),
            t + "feed_forward.w1.weight": (eff, ed),
            t + "feed_forward.w2.weight": (ed, eff),
            t + "feed_forward.w2.bias": (ed,),
            t + "feed_forward.w3.weight": (eff, ed),
        })
    s[EP + "transformer.norm.weight"] = (ed,)
    s[P + "audio_language_projection.0.weight"] = (d, ed * down)
    s[P + "audio_language_projection.2.weight"] = (d, d)
    for i in range(params["n_layers"]):
        t = f"layers.{i}."
        s.update(_decoder_layer_shapes(t, params))
        if params.get("ada_rms_norm_t_cond", True):
            s[t + "ada_rms_norm_t_cond.0.weight"] = (t_dim, d)
            s[t + "ada_rms_norm_t_cond.2.weight"] = (d, t_dim)
    s["norm.weight"] = (d,)
    return s


def _ints(csv: str) -> list[int]:
    # params.json stores these as comma-separated strings ("2,2,2,2").
    return [int(v) for v in str(csv).split(",") if v.strip()]


def tts_tensor_shapes(params: dict) -> dict[str, tuple[int, ...]]:
    """Every tensor of the TTS checkpoint with its shape (TTS spec section 3)."""
    am = params["multimodal"]["audio_model_args"]
    ac = params["multimodal"]["audio_tokenizer_args"]
    fm = am["acoustic_transformer_args"]
    d, vocab = params["dim"], params["vocab_size"]
    n_ac = am["n_acoustic_codebook"]
    sem = am["semantic_codebook_size"]
    # 37 codebook tables, each with 2 specials, concatenated and padded to a multiple of 128.
    n_codebook_rows = 128 * math.ceil((sem + 2 + n_ac * (am["acoustic_codebook_size"] + 2)) / 128)
    s: dict[str, tuple[int, ...]] = {
        "mm_audio_embeddings.tok_embeddings.weight": (vocab, d),
        "mm_audio_embeddings.audio_codebook_embeddings.embeddings.weight": (n_codebook_rows, d),
        "norm.weight": (d,),
    }
    for i in range(params["n_layers"]):
        s.update(_decoder_layer_shapes(f"layers.{i}.", params))
    A = "acoustic_transformer."
    fd = fm["dim"]
    s.update({
        A + "input_projection.weight": (fd, n_ac),
        A + "time_projection.weight": (fd, fd),
        A + "llm_projection.weight": (fd, fm.get("input_dim", d)),
        A + "semantic_codebook_output.weight": (128 * math.ceil((sem + 2) / 128), fd),
        A + "acoustic_codebook_output.weight": (n_ac, fd),
        A + "norm.weight": (fd,),
    })
    for j in range(fm["n_layers"]):
        s.update(_decoder_layer_shapes(f"{A}layers.{j}.", fm))
    C = TTS_CODEC_PREFIX
    cd, cff = ac["dim"], ac["hidden_dim"]
    cq, ckv = ac["n_heads"] * ac["head_dim"], ac.get("n_kv_heads", ac["n_heads"]) * ac["head_dim"]
    latent = ac["semantic_dim"] + ac["acoustic_dim"]
    kernels = _ints(ac["decoder_convs_kernels_str"])
    lengths = _ints(ac["decoder_transformer_lengths_str"])
    s[C + "quantizer.semantic_codebook.embedding_sum"] = (ac["semantic_codebook_size"], ac["semantic_dim"])
    s[C + "quantizer.semantic_codebook.cluster_usage"] = (ac["semantic_codebook_size"],)
    # Blocks alternate conv (even index) and transformer stage (odd index).
    for stage, (k, n_layers) in enumerate(zip(kernels, lengths)):
        conv = f"{C}decoder_blocks.{2 * stage}.conv.parametrizations.weight."
        s[conv + "original0"] = (cd, 1, 1)
        # Block 0 is a Conv1d [out, in, k]; the upsamplers are ConvTranspose1d [in, out, k].
        s[conv + "original1"] = (cd, latent, k) if stage == 0 else (cd, cd, k)
        for l in range(n_layers):
            t = f"{C}decoder_blocks.{2 * stage + 1}.layers.{l}."
            s.update({
                t + "attention.wq.weight": (cq, cd),
                t + "attention.wk.weight": (ckv, cd),
                t + "attention.wv.weight": (ckv, cd),
                t + "attention.wo.weight": (cd, cq),
                t + "attention.q_norm.weight": (cq,),
                t + "attention.k_norm.weight": (ckv,),
                t + "attention_norm.weight": (cd,),
                t + "ffn_norm.weight": (cd,),
                t + "attention_scale": (cd,),
                t + "ffn_scale": (cd,),
                t + "feed_forward.w1.weight": (cff, cd),
                t + "feed_forward.w2.weight": (cd, cff),
                t + "feed_forward.w3.weight": (cff, cd),
            })
    patch = ac["pretransform_patch_size"]
    s[C + "output_proj.conv.parametrizations.weight.original0"] = (patch, 1, 1)
    s[C + "output_proj.conv.parametrizations.weight.original1"] = (patch, cd, ac["patch_proj_kernel_size"])
    return s


def is_q4_candidate(name: str, shape: tuple[int, ...]) -> bool:
    """Which tensors the Q4_0 GGUF stores quantized: every 2-D linear/embedding weight whose input
    width is a multiple of 32 (ASR spec 3.2). Convs, norms, biases, codebook statistics stay F32/F16."""
    if len(shape) != 2 or shape[1] % 32 != 0:
        return False
    return not name.endswith("embedding_sum")


# Weights that a layer multiplies with the same input, in the order `TransformerLayer` passes them
# to `linear_split` (Q/K/V; gate/up): a GPU backend stores each group as one row-concatenated matrix.
SPLIT_GROUPS = (("attention.wq.weight", "attention.wk.weight", "attention.wv.weight"),
                ("feed_forward.w1.weight", "feed_forward.w3.weight"))


def split_groups(names) -> list[tuple[str, ...]]:
    """The fused groups (full tensor names, in order) present among `names`."""
    names = set(names)
    out = []
    for first, *rest in SPLIT_GROUPS:
        for n in sorted(names):
            if n.endswith(first):
                prefix = n[: -len(first)]
                group = (n,) + tuple(prefix + r for r in rest)
                if all(g in names for g in group):
                    out.append(group)
    return out
