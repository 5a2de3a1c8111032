"""Transcript results and their output formats (text, JSON, SRT, WebVTT).

Timing convention (ASR spec section 8): the first text token of a word, decided at output index k,
marks the word's END at about (k - 1) * 80 ms of real audio (`token_times`). The model emits one
token per 80 ms step, so the rest of a word spelled over consecutive steps adds no audio time; when
the model pauses inside a word (pad steps between its tokens) it was waiting to hear more of it, and
the word ends that much later. So a word's end is its last token's time less one step for each of
its tokens that followed the previous one directly (for a word emitted in one go: its first token's
time, as the spec says).

The model does not say when a word starts; we take the previous word's end, but at most MAX_WORD_S
before its own end, so a word after a pause does not stretch over the silence. A run of text without
spaces longer than MAX_WORD_S (a language written without spaces, or a random model's noise) is cut
into pieces of at most MAX_WORD_S that keep their own times (`Word.joined` marks the continuations),
so that no "word" swallows the rest of the transcript and its time.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

MAX_WORD_S = 1.0
CUE_MAX_S = 6.0
CUE_MAX_CHARS = 80
TOKEN_S = 0.08  # one decoder step: 1280 samples at 16 kHz (ASR spec 8)
_EPS = 1e-6  # token times are float products of TOKEN_S: ignore their last-bit noise


@dataclass
class Word:
    word: str
    start: float
    end: float
    joined: bool = False  # continues the previous word's text without a space (a cut run)


@dataclass
class Transcript:
    text: str
    tokens: list[int]
    words: list[Word] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        words = [{"word": w.word, "start": w.start, "end": w.end} for w in self.words]
        return {"text": self.text, "tokens": self.tokens, "words": words,
                "timings": self.timings, **self.info}


class _Run:
    """The word being built: its text and what its end time needs."""

    def __init__(self, joined: bool = False):
        self.text, self.joined = "", joined
        self.first_t = self.last_t = self.end = None  # set by the first visible token

    def add(self, text: str, t: float, prev_end: float) -> None:
        if self.first_t is None and text.strip():
            self.first_t = self.last_t = t
            self.end = max(t, prev_end)
        elif self.first_t is not None:
            self.end += max(0.0, t - self.last_t - TOKEN_S - _EPS)  # pad steps inside the word
            self.last_t = max(self.last_t, t)
        self.text += text


def group_words(pieces: list[tuple[str, float]], audio_s: float | None = None) -> list[Word]:
    """pieces: (decoded text of one token, its time) in order -> words with start/end seconds.

    A token whose text begins with whitespace, or follows one that ends with it, starts a new
    word (Tekken tokens carry their leading space). Times are clamped to the audio's length when it
    is given: tokens decided in the right padding (after the audio ended) belong to its last
    moments."""
    if audio_s is not None:
        pieces = [(text, min(t, audio_s)) for text, t in pieces]
    words: list[Word] = []
    run = _Run()
    for text, t in pieces:
        if not text:
            continue  # special tokens (pads, word marks) decode to nothing
        if run.first_t is not None:
            new_word = text[:1].isspace() or run.text[-1:].isspace()  # e.g. after a token "」\n\n"
            too_long = t - run.first_t > MAX_WORD_S + _EPS
            if new_word or too_long:
                words.append(_word(run, words[-1].end if words else 0.0))
                run = _Run(joined=not new_word)
        run.add(text, t, words[-1].end if words else 0.0)
    if run.first_t is not None:
        words.append(_word(run, words[-1].end if words else 0.0))
    return words


def _word(run: _Run, prev_end: float) -> Word:
    end = max(0.0, run.end)
    start = max(prev_end, end - MAX_WORD_S, 0.0)
    # whitespace inside the text (a token such as "a\n\nb") becomes one space: a blank line would end
    # an SRT/VTT cue early
    return Word(" ".join(run.text.split()), round(min(start, end), 3), round(end, 3), run.joined)


def to_text(tr: Transcript) -> str:
    return tr.text


def to_json(tr: Transcript) -> str:
    return json.dumps(tr.to_dict(), ensure_ascii=False, indent=2)


def _join(words: list[Word]) -> str:
    """The words' text: a space between words, none inside a cut run."""
    return "".join(("" if w.joined or i == 0 else " ") + w.word for i, w in enumerate(words))


def _cues(words: list[Word]) -> list[tuple[float, float, str]]:
    """Consecutive words grouped into subtitle cues of at most CUE_MAX_S seconds and CUE_MAX_CHARS
    characters (a single longer word is a cue of its own)."""
    cues, cur = [], []
    for w in words:
        if cur and (w.end - cur[0].start > CUE_MAX_S or len(_join(cur + [w])) > CUE_MAX_CHARS):
            cues.append(cur)
            cur = []
        cur.append(w)
    if cur:
        cues.append(cur)
    out = []
    for c in cues:
        start, end = c[0].start, max(c[-1].end, c[0].start + TOKEN_S)  # a cue lasts >= one step
        out.append((start, end, _join(c)))
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
