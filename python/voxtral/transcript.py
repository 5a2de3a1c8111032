"""Transcript results and their output formats (text, JSON, SRT, WebVTT).

Timing convention (ASR spec section 8): the first text token of a word, decided at output index k,
marks the word's END at about (k - 1) * 80 ms of real audio (`token_times`). The model does not say
when a word starts; we take the previous word's end, but at most MAX_WORD_S before its own end,
so a word after a pause does not stretch over the silence.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

MAX_WORD_S = 1.0
CUE_MAX_S = 6.0
CUE_MAX_CHARS = 80


@dataclass
class Word:
    word: str
    start: float
    end: float


@dataclass
class Transcript:
    text: str
    tokens: list[int]
    words: list[Word] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"text": self.text, "tokens": self.tokens, "words": [asdict(w) for w in self.words],
                "timings": self.timings, **self.info}


def group_words(pieces: list[tuple[str, float]], audio_s: float | None = None) -> list[Word]:
    """pieces: (decoded text of one token, its time) in order -> words with start/end seconds.

    A token whose text begins with whitespace starts a new word (Tekken tokens carry their
    leading space). Times are clamped to the audio's length when it is given: tokens decided in
    the right padding (after the audio ended) belong to its last moments."""
    if audio_s is not None:
        pieces = [(text, min(t, audio_s)) for text, t in pieces]
    words: list[Word] = []
    cur, cur_end = "", 0.0
    prev_end = 0.0
    for text, t in pieces:
        if not text:
            continue
        if text[:1].isspace() and cur.strip():
            words.append(_word(cur, prev_end, cur_end))
            prev_end = words[-1].end
            cur = ""
        if not cur.strip():
            cur_end = max(t, prev_end)  # the word's end is marked by its first text token
        cur += text
    if cur.strip():
        words.append(_word(cur, prev_end, cur_end))
    return words


def _word(text: str, prev_end: float, end: float) -> Word:
    end = max(0.0, end)
    start = max(prev_end, end - MAX_WORD_S, 0.0)
    return Word(text.strip(), round(min(start, end), 3), round(end, 3))


def to_text(tr: Transcript) -> str:
    return tr.text


def to_json(tr: Transcript) -> str:
    return json.dumps(tr.to_dict(), ensure_ascii=False, indent=2)


def _cues(words: list[Word]) -> list[tuple[float, float, str]]:
    cues, cur = [], []
    for w in words:
        if cur and (w.end - cur[0].start > CUE_MAX_S
                    or len(" ".join(x.word for x in cur)) + len(w.word) + 1 > CUE_MAX_CHARS):
            cues.append(cur)
            cur = []
        cur.append(w)
    if cur:
        cues.append(cur)
    out = []
    for c in cues:
        start, end = c[0].start, max(c[-1].end, c[0].start + 0.08)
        out.append((start, end, " ".join(x.word for x in c)))
    return out


def _clock(t: float, sep: str) -> str:
    ms = int(round(max(t, 0.0) * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def to_srt(tr: Transcript) -> str:
    lines = []
    for i, (a, b, text) in enumerate(_cues(tr.words), 1):
        lines += [str(i), f"{_clock(a, ',')} --> {_clock(b, ',')}", text, ""]
    return "\n".join(lines)


def to_vtt(tr: Transcript) -> str:
    lines = ["WEBVTT", ""]
    for a, b, text in _cues(tr.words):
        lines += [f"{_clock(a, '.')} --> {_clock(b, '.')}", text, ""]
    return "\n".join(lines)


FORMATTERS = {"text": to_text, "json": to_json, "srt": to_srt, "vtt": to_vtt}
