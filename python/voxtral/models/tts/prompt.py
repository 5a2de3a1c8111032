"""The TTS prompt (TTS spec 5): token ids, and the prefill embeddings with the voice inserted.

    [BOS] [BEGIN_AUDIO] [AUDIO] × N_voice [NEXT_AUDIO_TEXT] text… [REPEAT_AUDIO_TEXT] [BEGIN_AUDIO]

This is mistral-common's `InstructTokenizerV7.encode_speech_request` (36 before the text, 35 after:
vLLM-Omni's hand-written profiling dummy has them the other way round and is wrong). N_voice is the
voice's row count, `audio.voice_num_audio_tokens[voice]` in tekken.json; each [AUDIO] placeholder is
replaced by the next row of the voice embedding, every other id by its `tok_embeddings` row.
"""
from __future__ import annotations

import numpy as np

from ...errors import VoxtralError

# Special tokens by their tekken.json names (mistral-common calls 35/36 audio_to_text/text_to_audio).
BOS = "<s>"
AUDIO = "[AUDIO]"
BEGIN_AUDIO = "[BEGIN_AUDIO]"
NEXT_AUDIO_TEXT = "[NEXT_AUDIO_TEXT]"
REPEAT_AUDIO_TEXT = "[REPEAT_AUDIO_TEXT]"


def voice_row_counts(tok) -> dict[str, int]:
    """name -> rows of every preset the tokenizer file knows (tekken.json audio block)."""
    audio = tok.audio_config or {}
    return {str(k): int(v) for k, v in (audio.get("voice_num_audio_tokens") or {}).items()}


def voice_rows_for(tok, voice) -> int:
    """Rows of `voice`: a preset name (looked up in the tokenizer), a row count, or the rows."""
    if isinstance(voice, str):
        counts = voice_row_counts(tok)
        if voice not in counts:
            known = ", ".join(counts) or "none (the tokenizer has no voice table)"
            raise VoxtralError(f"unknown voice {voice!r}; valid voices: {known}")
        return counts[voice]
    if isinstance(voice, (int, np.integer)):
        n = int(voice)
    else:
        n = int(np.shape(voice)[0])  # voice embedding rows [N, dim]
    if n <= 0:
        raise VoxtralError("a voice needs at least one embedding row")
    return n


def build_tts_prompt(tok, text: str, voice) -> list[int]:
    """Prompt ids for `text` spoken by `voice` (a preset name, a row count, or an [N, dim] array).

    The text is encoded as is (no normalisation, no BOS/EOS), like mistral-common."""
    n_voice = voice_rows_for(tok, voice)
    sid = tok.special_id
    return ([sid(BOS), sid(BEGIN_AUDIO)] + [sid(AUDIO)] * n_voice + [sid(NEXT_AUDIO_TEXT)]
            + list(tok.encode(text)) + [sid(REPEAT_AUDIO_TEXT), sid(BEGIN_AUDIO)])


def _runs(mask: np.ndarray):
    """(start, stop, value) of the maximal runs of equal values in a boolean vector."""
    edges = np.flatnonzero(np.diff(mask.astype(np.int8))) + 1
    bounds = [0, *edges.tolist(), len(mask)]
    return [(a, b, bool(mask[a])) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def prompt_embeddings(ops, tok_embeddings, ids, voice, audio_token_id: int):
    """Prefill input [P, dim]: `tok_embeddings` rows, with the k-th [AUDIO] replaced by voice row k.

    voice: host array [N, dim]; N must equal the number of placeholders (a voice of another
    length would shift the text relative to what the model was trained on)."""
    ids = np.asarray(ids, dtype=np.int64)
    is_voice = ids == audio_token_id
    n_slots = int(is_voice.sum())
    n_rows = int(np.shape(voice)[0])
    if n_slots != n_rows:
        raise VoxtralError(f"the prompt has {n_slots} [AUDIO] placeholders but the voice has {n_rows} rows")
    voice = ops.asarray(voice)
    parts, used = [], 0
    for a, b, from_voice in _runs(is_voice):
        if from_voice:  # placeholders take consecutive voice rows, in order
            parts.append(ops.rows(voice, used, used + b - a))
            used += b - a
        else:
            parts.append(ops.embedding_rows(tok_embeddings, ids[a:b]))
    return ops.concat_rows(parts)
