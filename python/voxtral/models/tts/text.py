"""Text handling before the prompt: light normalisation, the length limit, sentence splitting.

mistral-common encodes the text as given. The reference's demo client (TTS spec 4.5) collapses
line breaks and whitespace and appends "." when the text lacks terminal punctuation; both help the
model end the utterance, so `normalize_text` does those two and nothing language-specific.

The reference speaks a long paragraph in one pass (a 125-word paragraph is ~470 frames); past
`SINGLE_PROMPT_MAX_TOKENS` text tokens the text is split at sentence boundaries and each sentence
is its own prompt (the audio is concatenated): this bounds the context (prompt + frames must fit
4096 positions) and the per-prompt cost, and gives the first audio sooner.
"""
from __future__ import annotations

import re

from ...errors import VoxtralError

# Documented input limit: about 15 minutes of speech; well past any sensible single request.
MAX_TEXT_CHARS = 10_000
SINGLE_PROMPT_MAX_TOKENS = 400

TERMINAL_PUNCTUATION = ".!?…。！？؟।\"'”’»)]"
# A sentence ends at . ! ? … (and the CJK / Arabic / Devanagari marks), optionally followed by
# closing quotes or brackets, then whitespace; CJK full stops need no space after them.
_SENTENCE_END = re.compile(r"(?<=[.!?…؟।][\"'”’»)\]])\s+|(?<=[.!?…؟।])\s+|(?<=[。！？])")
_CLAUSE_END = re.compile(r"(?<=[,;:，；：、])\s+")


def normalize_text(text: str) -> str:
    """Collapse every whitespace run (newlines included) to one space, strip, and end with a
    terminal punctuation mark (appends "." if there is none)."""
    t = " ".join(str(text).split())
    if t and t[-1] not in TERMINAL_PUNCTUATION:
        t += "."
    return t


def check_text(text: str) -> None:
    if not text or not text.strip():
        raise VoxtralError("the text to speak is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise VoxtralError(f"the text is too long ({len(text)} characters; the limit is {MAX_TEXT_CHARS}): "
                           "split it into several requests")


def split_sentences(text: str) -> list[str]:
    return [s for s in (p.strip() for p in _SENTENCE_END.split(text)) if s]


def _split_long(piece: str, count, max_tokens: int) -> list[str]:
    """A sentence over the limit: split at clause marks, then between words, greedily packing."""
    if count(piece) <= max_tokens:
        return [piece]
    parts = [p for p in _CLAUSE_END.split(piece) if p]
    if len(parts) == 1:
        parts = piece.split(" ")
        if len(parts) == 1:  # one enormous "word" (no spaces, e.g. CJK without punctuation)
            n = max(1, len(piece) // 2)
            return _split_long(piece[:n], count, max_tokens) + _split_long(piece[n:], count, max_tokens)
    out: list[str] = []
    for p in parts:
        joined = f"{out[-1]} {p}" if out else p
        if out and count(joined) <= max_tokens:
            out[-1] = joined
        else:
            out.extend(_split_long(p, count, max_tokens))
    return out


def prompt_texts(text: str, count, max_tokens: int = SINGLE_PROMPT_MAX_TOKENS) -> list[str]:
    """The texts to speak as separate prompts: the whole text if it has at most `max_tokens`
    tokens (count(str) -> int), else one per sentence (long sentences split further)."""
    if count(text) <= max_tokens:
        return [text]
    out: list[str] = []
    for sentence in split_sentences(text):
        out.extend(_split_long(sentence, count, max_tokens))
    return out
