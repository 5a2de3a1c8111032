"""Model hyper-parameters, read from the model files (params.json / GGUF metadata), never hard-coded.

`ASRConfig.from_params` reads a Mistral `params.json` dict (ASR spec section 2.1); the audio block of
`tekken.json` (section 2.2) supplies the streaming constants. Tiny and full models run the same code.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

# Published values (ASR spec section 2.2); used when a tekken.json has no `audio` block.
DEFAULT_ASR_AUDIO = {
    "sampling_rate": 16000,
    "frame_rate": 12.5,
    "audio_encoding_config": {"num_mel_bins": 128, "hop_length": 160, "window_size": 400},
    "transcription_delay_ms": 480,
    "streaming_look_ahead_ms": 2.5,
    "streaming_look_back_ms": 52.5,
    "streaming_n_left_pad_tokens": 32,
    "transcription_format": "streaming",
}

OFFLINE_STREAMING_BUFFER_TOKENS = 10  # mistral-common constant (ASR spec 2.3)


@dataclass(frozen=True)
class TransformerConfig:
    """One Mistral-style transformer stack (the ASR encoder, the ASR/TTS decoder, the FM head)."""

    dim: int
    n_layers: int
    head_dim: int
    hidden_dim: int
    n_heads: int
    n_kv_heads: int
    rope_theta: float
    norm_eps: float
    sliding_window: int | None  # None = attend to the whole cache
    use_biases: bool = False

    @classmethod
    def from_params(cls, p: dict) -> "TransformerConfig":
        return cls(
            dim=int(p["dim"]),
            n_layers=int(p["n_layers"]),
            head_dim=int(p["head_dim"]),
            hidden_dim=int(p["hidden_dim"]),
            n_heads=int(p["n_heads"]),
            n_kv_heads=int(p.get("n_kv_heads", p["n_heads"])),
            rope_theta=float(p.get("rope_theta", 1e6)),
            norm_eps=float(p.get("norm_eps", 1e-5)),
            sliding_window=(int(p["sliding_window"]) if p.get("sliding_window") else None),
            use_biases=bool(p.get("use_biases", False)),
        )


@dataclass(frozen=True)
class AudioStreamingConfig:
    """Front-end and streaming constants (tekken.json `audio` block + encoder audio args)."""

    sampling_rate: int = 16000
    frame_rate: float = 12.5
    num_mel_bins: int = 128
    hop_length: int = 160
    window_size: int = 400
    global_log_mel_max: float = 1.5
    transcription_delay_ms: float = 480.0
    n_left_pad_tokens: int = 32

    @property
    def raw_audio_length_per_tok(self) -> int:  # 1280 samples = 80 ms
        return int(self.sampling_rate // self.frame_rate)

    @property
    def audio_length_per_tok(self) -> int:  # 8 mel frames
        return int(self.raw_audio_length_per_tok / self.hop_length)

    def num_audio_tokens(self, n_samples: int) -> int:
        """mistral-common `AudioConfig.num_audio_tokens` (ASR spec 2.3)."""
        if n_samples % self.hop_length != 0:
            frames = math.ceil(n_samples / self.hop_length - 1)
        else:
            frames = n_samples // self.hop_length
        return math.ceil(frames / self.audio_length_per_tok)

    def num_delay_tokens(self, delay_ms: float | None = None) -> int:
        ms = self.transcription_delay_ms if delay_ms is None else delay_ms
        return self.num_audio_tokens(int(ms / 1000 * self.sampling_rate))

    def n_right_pad_tokens(self, delay_ms: float | None = None) -> int:
        return self.num_delay_tokens(delay_ms) + 1 + OFFLINE_STREAMING_BUFFER_TOKENS


@dataclass(frozen=True)
class ASRConfig:
    """Voxtral Mini 4B Realtime: encoder + adapter + time-conditioned decoder."""

    encoder: TransformerConfig
    decoder: TransformerConfig
    vocab_size: int
    downsample_factor: int  # encoder frames grouped into one audio token (4)
    ada_t_cond_dim: int  # ADA bottleneck (32)
    audio: AudioStreamingConfig = field(default_factory=AudioStreamingConfig)
    tied_embeddings: bool = True

    @classmethod
    def from_params(cls, params: dict, tekken_audio: dict | None = None) -> "ASRConfig":
        mm = params["multimodal"]["whisper_model_args"]
        enc = mm["encoder_args"]
        aenc = enc.get("audio_encoding_args", {})
        ta = dict(DEFAULT_ASR_AUDIO)
        if tekken_audio:
            ta.update(tekken_audio)
        aec = ta.get("audio_encoding_config", {})
        audio = AudioStreamingConfig(
            sampling_rate=int(aenc.get("sampling_rate", ta["sampling_rate"])),
            frame_rate=float(aenc.get("frame_rate", ta["frame_rate"])),
            num_mel_bins=int(aenc.get("num_mel_bins", aec.get("num_mel_bins", 128))),
            hop_length=int(aenc.get("hop_length", aec.get("hop_length", 160))),
            window_size=int(aenc.get("window_size", aec.get("window_size", 400))),
            global_log_mel_max=float(aenc.get("global_log_mel_max", 1.5)),
            transcription_delay_ms=float(ta.get("transcription_delay_ms", 480)),
            n_left_pad_tokens=int(ta.get("streaming_n_left_pad_tokens", 32)),
        )
        return cls(
            encoder=TransformerConfig.from_params(enc),
            decoder=TransformerConfig.from_params(params),
            vocab_size=int(params["vocab_size"]),
            downsample_factor=int(mm["downsample_args"]["downsample_factor"]),
            ada_t_cond_dim=int(params.get("ada_rms_norm_t_cond_dim", 32)),
            audio=audio,
            tied_embeddings=bool(params.get("tied_embeddings", True)),
        )
