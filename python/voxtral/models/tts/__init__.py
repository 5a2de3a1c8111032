"""Voxtral 4B TTS on the ops interface: prompt, backbone, flow-matching head, codec, generation."""
from .backbone import TTSBackbone
from .codec import CodecDecoder, StreamingCodec
from .flow_matching import FlowMatchingHead
from .generate import Generation, generate_frames
from .model import TTSModel
from .prompt import build_tts_prompt, prompt_embeddings

__all__ = ["CodecDecoder", "FlowMatchingHead", "Generation", "StreamingCodec", "TTSBackbone", "TTSModel",
           "build_tts_prompt", "generate_frames", "prompt_embeddings"]
