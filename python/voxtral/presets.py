"""params.json contents for the published models and for the tiny test models.

`full` reproduces the published files (ASR spec 2.1, TTS `params.json`); `tiny` keeps every key and
structural feature (GQA with several query heads per KV head, biases, ADA, codec stages) at sizes
that run in seconds on a CPU.
"""
from __future__ import annotations

import copy

ASR_FULL_PARAMS: dict = {
    "dim": 3072,
    "n_layers": 26,
    "head_dim": 128,
    "hidden_dim": 9216,
    "n_heads": 32,
    "n_kv_heads": 8,
    "use_biases": False,
    "causal": True,
    "rope_theta": 1000000.0,
    "norm_eps": 1e-05,
    "vocab_size": 131072,
    "model_parallel": 1,
    "tied_embeddings": True,
    "sliding_window": 8192,
    "model_max_length": 131072,
    "multimodal": {
        "whisper_model_args": {
            "encoder_args": {
                "audio_encoding_args": {
                    "sampling_rate": 16000,
                    "frame_rate": 12.5,
                    "num_mel_bins": 128,
                    "hop_length": 160,
                    "window_size": 400,
                    "chunk_length_s": None,
                    "global_log_mel_max": 1.5,
                    "transcription_format": "streaming",
                },
                "dim": 1280,
                "n_layers": 32,
                "head_dim": 64,
                "hidden_dim": 5120,
                "n_heads": 32,
                "vocab_size": 131072,
                "n_kv_heads": 32,
                "use_biases": True,
                "use_cache": False,
                "rope_theta": 1000000.0,
                "causal": True,
                "norm_eps": 1e-05,
                "pos_embed": "rope",
                "max_source_positions": None,
                "ffn_type": "swiglu",
                "norm_type": "rms_norm",
                "sliding_window": 750,
            },
            "downsample_args": {"downsample_factor": 4},
        }
    },
    "ada_rms_norm_t_cond": True,
    "ada_rms_norm_t_cond_dim": 32,
}

# Tiny ASR: encoder 4 heads x 16 (MHA, biases), decoder 4 query heads on 2 KV heads.  The vocab keeps
# all 256 byte tokens plus some merges so any text is encodable. Every matrix width is a multiple of
# 64 like the real ones, so Q4 rows stay u32-aligned and the GPU kernels see the real layout.
_ASR_TINY = {"dim": 128, "n_layers": 2, "head_dim": 32, "hidden_dim": 256, "n_heads": 4, "n_kv_heads": 2,
             "vocab_size": 2048}
_ASR_TINY_ENC = {"dim": 64, "n_layers": 2, "head_dim": 16, "hidden_dim": 128, "n_heads": 4, "n_kv_heads": 4}


def asr_params(preset: str = "full") -> dict:
    p = copy.deepcopy(ASR_FULL_PARAMS)
    if preset == "full":
        return p
    if preset != "tiny":
        raise ValueError(f"unknown preset {preset!r} (expected 'tiny' or 'full')")
    p.update(_ASR_TINY)
    enc = p["multimodal"]["whisper_model_args"]["encoder_args"]
    enc.update(_ASR_TINY_ENC)
    enc["vocab_size"] = p["vocab_size"]
    return p


def tts_full_params() -> dict:
    from voxtral.data import tts_params_json
    return tts_params_json()


def tts_params(preset: str = "full") -> dict:
    p = tts_full_params()
    if preset == "full":
        return p
    if preset != "tiny":
        raise ValueError(f"unknown preset {preset!r} (expected 'tiny' or 'full')")
    p.update({"dim": 64, "n_layers": 2, "head_dim": 16, "hidden_dim": 128, "n_heads": 4, "n_kv_heads": 2,
              "vocab_size": 2048})
    am = p["multimodal"]["audio_model_args"]
    am["semantic_codebook_size"] = 64
    am["acoustic_transformer_args"].update(
        {"input_dim": 64, "dim": 64, "n_layers": 2, "head_dim": 16, "hidden_dim": 128, "n_heads": 4,
         "n_kv_heads": 2})
    ac = p["multimodal"]["audio_tokenizer_args"]
    ac.update({"semantic_codebook_size": 64, "semantic_dim": 16, "dim": 32, "hidden_dim": 64,
               "head_dim": 8, "n_heads": 4, "n_kv_heads": 4, "pretransform_patch_size": 240})
    return p
