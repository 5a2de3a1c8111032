"""Voxtral Mini 4B Realtime speech-to-text model (encoder, adapter, decoder, decode loops)."""
from .adapter import ASRAdapter
from .decoder import ASRDecoder, time_embedding
from .encoder import ASREncoder, EncoderStream
from .model import ASRModel
from .transcribe import ASRStream, Transcription, prompt_ids, token_times, transcribe

__all__ = ["ASRAdapter", "ASRDecoder", "ASREncoder", "ASRModel", "ASRStream", "EncoderStream",
           "Transcription", "prompt_ids", "time_embedding", "token_times", "transcribe"]
