"""Tiny HF `VoxtralRealtimeForConditionalGeneration` oracles in the Mistral weight layout.

Builds a random tiny model (transformers 5.24, CPU), re-initialises its weights so outputs are
meaningful (default init gives near-constant logits), rounds them to bf16 like the published file,
and converts them to `consolidated.safetensors` names and row order (ASR spec 14.3): q/k rows go
from HF split-half RoPE order back to Mistral interleaved order, the encoder q bias included.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402
import wave  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from voxtral.audio.synthetic import harmonic_vowels  # noqa: E402
from transformers import (VoxtralRealtimeConfig, VoxtralRealtimeFeatureExtractor,  # noqa: E402
                          VoxtralRealtimeForConditionalGeneration)

# numpy's BLAS threads and torch's OpenMP threads fight over 2 cores (10-50x slowdowns seen).
torch.set_num_threads(1)

P = "mm_streams_embeddings.embedding_module."
EP = P + "whisper_encoder."
ROPE = {"rope_type": "default", "rope_theta": 1e6}  # always explicit: tiny configs default to 1e4
SAMPLES_PER_TOKEN = 1280
N_LEFT_PAD_TOKENS = 32


@dataclass(frozen=True)
class TinyShape:
    name: str
    enc_dim: int = 64
    enc_heads: int = 4
    enc_head_dim: int = 16
    enc_hidden: int = 128
    enc_layers: int = 2
    enc_window: int = 750
    dec_dim: int = 96
    dec_heads: int = 4
    dec_kv_heads: int = 2
    dec_head_dim: int = 32
    dec_hidden: int = 192
    dec_layers: int = 2
    dec_window: int = 8192
    vocab: int = 1200  # > 1000 specials; ids 1, 2, 32, 33 exist
    n_mels: int = 128


def hf_config(s: TinyShape) -> VoxtralRealtimeConfig:
    return VoxtralRealtimeConfig(
        audio_config=dict(hidden_size=s.enc_dim, intermediate_size=s.enc_hidden,
                          num_hidden_layers=s.enc_layers, num_attention_heads=s.enc_heads,
                          head_dim=s.enc_head_dim, num_mel_bins=s.n_mels,
                          sliding_window=s.enc_window, rms_norm_eps=1e-5, rope_parameters=ROPE),
        text_config=dict(vocab_size=s.vocab, hidden_size=s.dec_dim, intermediate_size=s.dec_hidden,
                         num_hidden_layers=s.dec_layers, num_attention_heads=s.dec_heads,
                         num_key_value_heads=s.dec_kv_heads, head_dim=s.dec_head_dim,
                         sliding_window=s.dec_window, rms_norm_eps=1e-5, rope_parameters=ROPE,
                         tie_word_embeddings=True),
        downsample_factor=4, audio_length_per_tok=8, default_num_delay_tokens=6)


# Std of each random matrix = gain / sqrt(fan_in), by parameter-name fragment (first match wins).
# The spec's uniform 0.5 makes a nearly position-independent model (encoder output dominated by its
# mean, decoder dominated by the fed-back token): greedy output repeats one token. A livelier conv
# stem and decoder make the output depend on the audio (tests assert >= 3 distinct tokens).
DEFAULT_GAINS = (("embedder.", 1.5), ("language_model.layers.", 1.5), ("embed_tokens", 1.0), ("", 0.5))


def build_hf_model(s: TinyShape, seed: int, gains=DEFAULT_GAINS) -> VoxtralRealtimeForConditionalGeneration:
    """Random tiny model: matrices ~ N(0, (gain/√fan_in)²), norms 1 + 0.1·N, biases 0.05·N, bf16-exact."""
    torch.manual_seed(seed)
    model = VoxtralRealtimeForConditionalGeneration(hf_config(s)).eval().float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and p.dim() == 1:
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif p.dim() > 1:
                fan_in = p.shape[1] * (p.shape[2] if p.dim() == 3 else 1)
                gain = next(g for key, g in gains if key in name)
                p.copy_(torch.randn_like(p) * gain / math.sqrt(fan_in))
            else:
                p.copy_(torch.randn_like(p) * 0.05)
            p.copy_(p.to(torch.bfloat16).float())  # values representable in the BF16 file
    return model


def mistral_params(s: TinyShape) -> dict:
    """params.json of the tiny model (Mistral format, ASR spec 2.1)."""
    return {
        "dim": s.dec_dim, "n_layers": s.dec_layers, "head_dim": s.dec_head_dim,
        "hidden_dim": s.dec_hidden, "n_heads": s.dec_heads, "n_kv_heads": s.dec_kv_heads,
        "use_biases": False, "causal": True, "rope_theta": 1e6, "norm_eps": 1e-5,
        "vocab_size": s.vocab, "model_parallel": 1, "tied_embeddings": True,
        "sliding_window": s.dec_window, "model_max_length": 131072,
        "ada_rms_norm_t_cond": True, "ada_rms_norm_t_cond_dim": 32,
        "multimodal": {"whisper_model_args": {
            "encoder_args": {
                "dim": s.enc_dim, "n_layers": s.enc_layers, "head_dim": s.enc_head_dim,
                "hidden_dim": s.enc_hidden, "n_heads": s.enc_heads, "n_kv_heads": s.enc_heads,
                "vocab_size": s.vocab, "use_biases": True, "rope_theta": 1e6, "causal": True,
                "norm_eps": 1e-5, "pos_embed": "rope", "ffn_type": "swiglu",
                "norm_type": "rms_norm", "sliding_window": s.enc_window,
                "audio_encoding_args": {"sampling_rate": 16000, "frame_rate": 12.5,
                                        "num_mel_bins": s.n_mels, "hop_length": 160,
                                        "window_size": 400, "global_log_mel_max": 1.5,
                                        "transcription_format": "streaming"}},
            "downsample_args": {"downsample_factor": 4}}},
    }


def hf_rows_to_mistral(w: np.ndarray, n_heads: int) -> np.ndarray:
    """HF (split-half RoPE) q/k rows -> Mistral (interleaved RoPE) rows; works for weights and biases.

    HF row h·hd + c·hd/2 + i holds Mistral row h·hd + 2i + c: view [n_h, 2, hd/2], swap, flatten.
    """
    hd = w.shape[0] // n_heads
    tail = w.shape[1:]
    return w.reshape((n_heads, 2, hd // 2) + tail).swapaxes(1, 2).reshape(w.shape)


def mistral_weights(model, s: TinyShape) -> dict[str, np.ndarray]:
    """state_dict of the HF model -> {Mistral name: float32 array} (ASR spec 14.3)."""
    hf = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    W: dict[str, np.ndarray] = {}
    A = "model.audio_tower."
    for j, conv in ((0, "conv1"), (1, "conv2")):
        W[f"{EP}conv_layers.{j}.conv.weight"] = hf[f"{A}embedder.{conv}.weight"]
        W[f"{EP}conv_layers.{j}.conv.bias"] = hf[f"{A}embedder.{conv}.bias"]
    for i in range(s.enc_layers):
        h, t = f"{A}layers.{i}.", f"{EP}transformer.layers.{i}."
        W[t + "attention.wq.weight"] = hf_rows_to_mistral(hf[h + "self_attn.q_proj.weight"], s.enc_heads)
        W[t + "attention.wq.bias"] = hf_rows_to_mistral(hf[h + "self_attn.q_proj.bias"], s.enc_heads)
        W[t + "attention.wk.weight"] = hf_rows_to_mistral(hf[h + "self_attn.k_proj.weight"], s.enc_heads)
        W[t + "attention.wv.weight"] = hf[h + "self_attn.v_proj.weight"]
        W[t + "attention.wv.bias"] = hf[h + "self_attn.v_proj.bias"]
        W[t + "attention.wo.weight"] = hf[h + "self_attn.o_proj.weight"]
        W[t + "attention.wo.bias"] = hf[h + "self_attn.o_proj.bias"]
        W[t + "attention_norm.weight"] = hf[h + "self_attn_layer_norm.weight"]
        W[t + "ffn_norm.weight"] = hf[h + "final_layer_norm.weight"]
        W[t + "feed_forward.w1.weight"] = hf[h + "mlp.gate_proj.weight"]
        W[t + "feed_forward.w3.weight"] = hf[h + "mlp.up_proj.weight"]
        W[t + "feed_forward.w2.weight"] = hf[h + "mlp.down_proj.weight"]
        W[t + "feed_forward.w2.bias"] = hf[h + "mlp.down_proj.bias"]
    W[EP + "transformer.norm.weight"] = hf[A + "norm.weight"]
    W[P + "audio_language_projection.0.weight"] = hf["model.multi_modal_projector.linear_1.weight"]
    W[P + "audio_language_projection.2.weight"] = hf["model.multi_modal_projector.linear_2.weight"]
    W[P + "tok_embeddings.weight"] = hf["model.language_model.embed_tokens.weight"]
    for i in range(s.dec_layers):
        h, t = f"model.language_model.layers.{i}.", f"layers.{i}."
        W[t + "attention.wq.weight"] = hf_rows_to_mistral(hf[h + "self_attn.q_proj.weight"], s.dec_heads)
        W[t + "attention.wk.weight"] = hf_rows_to_mistral(hf[h + "self_attn.k_proj.weight"], s.dec_kv_heads)
        W[t + "attention.wv.weight"] = hf[h + "self_attn.v_proj.weight"]
        W[t + "attention.wo.weight"] = hf[h + "self_attn.o_proj.weight"]
        W[t + "attention_norm.weight"] = hf[h + "input_layernorm.weight"]
        W[t + "ffn_norm.weight"] = hf[h + "post_attention_layernorm.weight"]
        W[t + "feed_forward.w1.weight"] = hf[h + "mlp.gate_proj.weight"]
        W[t + "feed_forward.w3.weight"] = hf[h + "mlp.up_proj.weight"]
        W[t + "feed_forward.w2.weight"] = hf[h + "mlp.down_proj.weight"]
        W[t + "ada_rms_norm_t_cond.0.weight"] = hf[h + "ada_rms_norm.linear1.weight"]
        W[t + "ada_rms_norm_t_cond.2.weight"] = hf[h + "ada_rms_norm.linear2.weight"]
    W["norm.weight"] = hf["model.language_model.norm.weight"]
    return W


# ------------------------------------------------------------------------------ audio / mel
def pad_offline(audio: np.ndarray, delay_tokens: int) -> np.ndarray:
    """ASR spec 4.2: 32 tokens of zeros left; right: align to 1280 + (delay + 1 + 10) tokens."""
    n = len(audio)
    align = (SAMPLES_PER_TOKEN - n % SAMPLES_PER_TOKEN) % SAMPLES_PER_TOKEN
    right = align + (delay_tokens + 1 + 10) * SAMPLES_PER_TOKEN
    return np.pad(np.asarray(audio, dtype=np.float32), (N_LEFT_PAD_TOKENS * SAMPLES_PER_TOKEN, right))


_FE = None


def hf_mel(padded: np.ndarray) -> np.ndarray:
    """Log-mel [128, T] from the HF feature extractor (T = 8N for spec-padded audio)."""
    global _FE
    if _FE is None:
        _FE = VoxtralRealtimeFeatureExtractor()
    return _FE(padded.astype(np.float32), sampling_rate=16000, return_tensors="np").input_features[0]


# ------------------------------------------------------------------------------- HF oracle calls
def _t(mel, model):
    return torch.tensor(np.asarray(mel)[None], dtype=next(model.parameters()).dtype)


def hf_audio(model, mel):
    """(encoder output [4N, D], adapter output [N, dec_dim]) as numpy."""
    with torch.no_grad():
        out = model.model.get_audio_features(input_features=_t(mel, model))
    return out.last_hidden_state[0].numpy(), out.pooler_output[0].numpy()


def hf_generate(model, prompt, mel, delay_tokens):
    """HF greedy generate: (new token ids incl. a final EOS if any, per-step logits [steps, vocab])."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "model-agnostic default max_length": HF sets it to N itself
        out = model.generate(input_ids=torch.tensor([prompt]), input_features=_t(mel, model),
                             num_delay_tokens=delay_tokens, do_sample=False,
                             return_dict_in_generate=True, output_logits=True)
    new = out.sequences[0, len(prompt):].tolist()
    return new, np.stack([x[0].numpy() for x in out.logits])


def hf_teacher_logits(model, ids, mel, delay_tokens):
    """Full-sequence logits [len(ids), vocab] with teacher-forced ids (mel cut to len(ids) tokens)."""
    mel = np.asarray(mel)[:, :8 * len(ids)]
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), input_features=_t(mel, model),
                    num_delay_tokens=delay_tokens)
    return out.logits[0].numpy()


# ------------------------------------------------------------------------------ test signals
SR = 16000


def noise(seconds: float, seed: int, level: float = 0.1) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def vowels(seconds: float, seed: int) -> np.ndarray:
    """Speech-like signal (voxtral.audio.synthetic.harmonic_vowels), enough spectral change to
    make the tiny models' output vary; the seed fixes it, as the cases' seeds were chosen for it."""
    return harmonic_vowels(seconds, np.random.default_rng(seed), SR)


def read_wav_mono16k(path) -> np.ndarray:
    """16-bit PCM WAV -> float32 mono in [-1, 1] (stdlib only); resampled if not 16 kHz."""
    with wave.open(str(path), "rb") as w:
        sr, ch, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        data = w.readframes(w.getnframes())
    if width != 2:
        raise ValueError(f"{path}: {8 * width}-bit WAV not supported here")
    x = np.frombuffer(data, dtype="<i2").astype(np.float32).reshape(-1, ch).mean(1) / 32768.0
    return x if sr == SR else resample(x, sr)


def resample(x: np.ndarray, sr: int) -> np.ndarray:
    try:
        import soxr
        return soxr.resample(x, sr, SR, quality="HQ").astype(np.float32)
    except ImportError:
        from math import gcd

        from scipy.signal import resample_poly
        g = gcd(SR, sr)
        return resample_poly(x, SR // g, sr // g).astype(np.float32)


def espeak(text: str) -> np.ndarray | None:
    """Synthetic speech from espeak-ng at 16 kHz, or None when espeak-ng is not installed."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run([exe, "-v", "en", "-s", "160", "-w", str(path), text], check=True,
                       capture_output=True)
        return read_wav_mono16k(path)


def shared_audio_dir() -> Path | None:
    """The project's shared test recordings, when this checkout has them."""
    here = Path(__file__).resolve()
    for cand in (here.parents[2] / "shared" / "data" / "audio", Path("/work/shared/data/audio")):
        if cand.is_dir():
            return cand
    return None
