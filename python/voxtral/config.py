"""Model hyper-parameters, read from the model files (params.json / GGUF metadata), never hard-coded.

`ASRConfig.from_params` reads a Mistral `params.json` dict (ASR spec section 2.1); the audio block of
`tekken.json` (section 2.2) supplies the streaming constants. Tiny and full models run the same code.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace

from .errors import ModelFormatError


def _params_errors(fn):
    """A params.json / tekken.json value of the wrong type or out of range is the model file's
    fault: say so (ModelFormatError) instead of failing with a TypeError deep in the model."""
    @functools.wraps(fn)
    def wrapper(cls, *args, **kwargs):
        try:
            return fn(cls, *args, **kwargs)
        except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError, OverflowError) as e:
            what = f"missing key {e}" if isinstance(e, KeyError) else str(e)[:160]
            raise ModelFormatError(f"the model's params.json / tekken.json values are not usable "
                                   f"({cls.__name__}: {what})") from None
    return wrapper

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
    use_rope: bool = True  # False: no positional encoding at all (the TTS flow-matching head)

    def __post_init__(self):
        for k in ("dim", "head_dim", "hidden_dim", "n_heads", "n_kv_heads"):
            if getattr(self, k) < 1:
                raise ValueError(f"{k} = {getattr(self, k)} must be positive")
        if self.n_layers < 0 or self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_layers {self.n_layers} / n_heads {self.n_heads} / n_kv_heads "
                             f"{self.n_kv_heads} are inconsistent")
        if self.sliding_window is not None and self.sliding_window < 1:
            raise ValueError(f"sliding_window = {self.sliding_window} must be positive")
        if not (self.rope_theta > 0 and 0 <= self.norm_eps < 1):
            raise ValueError(f"rope_theta {self.rope_theta} / norm_eps {self.norm_eps} out of range")

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

    def __post_init__(self):
        if not (self.sampling_rate > 0 and self.frame_rate > 0 and self.num_mel_bins > 0
                and self.hop_length > 0 and self.window_size > 0 and self.transcription_delay_ms >= 0
                and self.n_left_pad_tokens >= 0 and self.sampling_rate // self.frame_rate > 0):
            raise ValueError(f"audio constants out of range: {self}")

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
    @_params_errors
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


# ------------------------------------------------------------------------------------------- TTS
# Defaults the published params.json leaves out (TTS spec 2.2, "absent from params.json").
TTS_DEFAULT_EULER_STEPS = 7  # vLLM-Omni `n_decoding_steps` fallback: 7 Euler steps = 8 timesteps
TTS_DEFAULT_CFG_ALPHA = 1.2
TTS_N_SPECIAL_AUDIO_CODES = 2  # [EMPTY_AUDIO] = 0, [END_AUDIO] = 1 head every codebook
CODEC_ENCODER_STRIDES_DEFAULT = "2,2,2,1"  # only used to derive the decoder's first window


def _csv_ints(text) -> tuple[int, ...]:
    # params.json stores the codec stage lists as comma-separated strings ("2,2,2,2").
    return tuple(int(v) for v in str(text).split(",") if v.strip())


@dataclass(frozen=True)
class CodecConfig:
    """The codec decoder (TTS spec 8): codes [T, 37] -> 24 kHz waveform."""

    dim: int
    hidden_dim: int
    head_dim: int
    n_heads: int
    n_kv_heads: int
    norm_eps: float  # block RMSNorms: 1e-2 (deliberate)
    qk_norm: bool
    qk_norm_eps: float  # 1e-6
    layer_scale: bool
    semantic_codebook_size: int
    semantic_dim: int
    acoustic_codebook_size: int  # FSQ levels (21)
    acoustic_dim: int  # FSQ dims (36)
    patch_size: int  # output samples per 100 Hz step (240)
    patch_kernel: int  # output_proj kernel (7)
    kernels: tuple[int, ...]  # conv kernel per stage ("3,4,4,4")
    strides: tuple[int, ...]  # conv stride per stage ("1,2,2,2"): stage 0 conv, then upsamplers
    lengths: tuple[int, ...]  # transformer layers per stage ("2,2,2,2")
    windows: tuple[int, ...]  # attention window W per stage (2,4,8,16): keys i-W..i
    sampling_rate: int = 24000

    @property
    def latent_dim(self) -> int:
        return self.semantic_dim + self.acoustic_dim

    @property
    def upsample(self) -> int:
        return math.prod(self.strides)

    @property
    def samples_per_frame(self) -> int:  # 1920 = 80 ms at 24 kHz
        return self.patch_size * self.upsample

    @classmethod
    def from_params(cls, a: dict) -> "CodecConfig":
        strides = _csv_ints(a["decoder_convs_strides_str"])
        kernels = _csv_ints(a["decoder_convs_kernels_str"])
        lengths = _csv_ints(a["decoder_transformer_lengths_str"])
        if not len(strides) == len(kernels) == len(lengths):
            raise ValueError("codec decoder stage lists (strides, kernels, lengths) differ in length")
        return cls(
            dim=int(a["dim"]), hidden_dim=int(a["hidden_dim"]), head_dim=int(a["head_dim"]),
            n_heads=int(a["n_heads"]), n_kv_heads=int(a.get("n_kv_heads", a["n_heads"])),
            norm_eps=float(a.get("norm_eps", 1e-2)), qk_norm=bool(a.get("qk_norm", True)),
            qk_norm_eps=float(a.get("qk_norm_eps", 1e-6)), layer_scale=bool(a.get("layer_scale", True)),
            semantic_codebook_size=int(a["semantic_codebook_size"]), semantic_dim=int(a["semantic_dim"]),
            acoustic_codebook_size=int(a["acoustic_codebook_size"]), acoustic_dim=int(a["acoustic_dim"]),
            patch_size=int(a["pretransform_patch_size"]), patch_kernel=int(a["patch_proj_kernel_size"]),
            kernels=kernels, strides=strides, lengths=lengths,
            windows=_codec_windows(a, strides), sampling_rate=int(a.get("sampling_rate", 24000)),
        )


def _codec_windows(a: dict, decoder_strides: tuple[int, ...]) -> tuple[int, ...]:
    """Decoder attention window per stage (TTS spec 8.4): the base window is halved after each
    stride-2 conv of the (absent) encoder, then doubled after each stride-2 decoder upsampler:
    16 -> 2 at 12.5 Hz, then 4, 8, 16."""
    w = int(a.get("attn_sliding_window_size", 16))
    halve = bool(a.get("half_attn_window_upon_downsampling", True))
    if halve:
        for s in _csv_ints(a.get("encoder_convs_strides_str", CODEC_ENCODER_STRIDES_DEFAULT)):
            if s > 1:
                w //= 2
    windows = []
    for s in decoder_strides:
        if halve and s > 1:
            w *= 2
        windows.append(w)
    return tuple(windows)


@dataclass(frozen=True)
class TTSConfig:
    """Voxtral 4B TTS: Mistral backbone + flow-matching head + codec decoder (TTS spec 2)."""

    backbone: TransformerConfig  # causal, interleaved RoPE, full cache (no sliding window)
    flow: TransformerConfig  # bidirectional over 3 tokens, no RoPE (use_rope False)
    codec: CodecConfig
    vocab_size: int
    semantic_codebook_size: int  # 8192
    acoustic_codebook_size: int  # 21 FSQ levels
    n_acoustic_codebook: int  # 36
    audio_token_id: int = 24  # [AUDIO]: voice placeholder
    begin_audio_token_id: int = 25
    bos_token_id: int = 1
    sampling_rate: int = 24000
    frame_rate: float = 12.5
    euler_steps: int = TTS_DEFAULT_EULER_STEPS
    cfg_alpha: float = TTS_DEFAULT_CFG_ALPHA
    # voice name -> rows (tekken.json audio.voice_num_audio_tokens); not part of equality/hash
    voice_rows: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def n_codebooks(self) -> int:  # 37
        return 1 + self.n_acoustic_codebook

    @property
    def codebook_offsets(self) -> tuple[int, ...]:
        """Row of code 0 of each codebook in the concatenated embedding table (TTS spec 3.3):
        semantic 0, acoustic k -> 8194 + 23·(k-1). Every table carries the 2 specials."""
        n = TTS_N_SPECIAL_AUDIO_CODES
        sem = self.semantic_codebook_size + n
        return (0,) + tuple(sem + (self.acoustic_codebook_size + n) * k for k in range(self.n_acoustic_codebook))

    @property
    def samples_per_frame(self) -> int:
        return self.codec.samples_per_frame

    @classmethod
    @_params_errors
    def from_params(cls, params: dict, tekken_audio: dict | None = None) -> "TTSConfig":
        mm = params["multimodal"]
        am = mm["audio_model_args"]
        fm = dict(am["acoustic_transformer_args"])
        fm.setdefault("norm_eps", 1e-5)  # dataclass default in the reference (absent from the file)
        enc = am.get("audio_encoding_args", {})
        # The FM head has no positional encoding at all (rope_theta in its args is inert, TTS spec 7.3).
        flow = replace(TransformerConfig.from_params(fm), use_rope=False, sliding_window=None)
        backbone = TransformerConfig.from_params(params)
        if backbone.sliding_window is not None:
            raise ValueError("the TTS backbone attends to its whole cache; params.json has a sliding_window")
        ta = tekken_audio or {}
        return cls(
            backbone=backbone,
            flow=flow,
            codec=CodecConfig.from_params(mm["audio_tokenizer_args"]),
            vocab_size=int(params["vocab_size"]),
            semantic_codebook_size=int(am["semantic_codebook_size"]),
            acoustic_codebook_size=int(am["acoustic_codebook_size"]),
            n_acoustic_codebook=int(am["n_acoustic_codebook"]),
            audio_token_id=int(am.get("audio_token_id", 24)),
            begin_audio_token_id=int(am.get("begin_audio_token_id", 25)),
            bos_token_id=int(mm.get("bos_token_id", 1)),
            sampling_rate=int(enc.get("sampling_rate", ta.get("sampling_rate", 24000))),
            frame_rate=float(enc.get("frame_rate", ta.get("frame_rate", 12.5))),
            euler_steps=int(fm.get("n_decoding_steps") or TTS_DEFAULT_EULER_STEPS),
            voice_rows={str(k): int(v) for k, v in (ta.get("voice_num_audio_tokens") or {}).items()},
        )
