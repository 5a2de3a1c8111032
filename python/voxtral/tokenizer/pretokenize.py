"""Tekken pre-tokenizer: the tekken.json split pattern run through Python's own `re`.

The pattern in tekken.json is written for Rust's fancy-regex (tiktoken), which has Unicode
property classes (`\\p{L}`, `\\p{Lu}`, ...) and a Unicode `\\s`.  Python's `re` has neither, and the
`regex` package is not available in the browser (Pyodide), so we translate the pattern: every
property class becomes an explicit character class built from `unicodedata` general categories.
Everything else in the pattern (alternation, quantifiers, `(?!...)`, literal escapes) means the same
in both engines (both are leftmost-first backtracking matchers), so it is passed through unchanged.

Only the standard library is used here: this module runs inside Pyodide.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata

from ..errors import TokenizerError

# The split pattern of every Tekken file seen so far (mistral-common's bundled files, the ASR and
# TTS models).  Only a default for `split`; `Tekken` always uses the pattern from its own file.
TEKKEN_PATTERN = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Rust's `\s` is the Unicode White_Space property (PropList.txt), which `unicodedata` does not
# expose.  It differs from `str.isspace()`: isspace() also accepts U+001C..U+001F (bidi class B/S).
# The list has been unchanged since Unicode 6.3 (when U+180E left it).
WHITE_SPACE_RANGES = (
    (0x0009, 0x000D),
    (0x0020, 0x0020),
    (0x0085, 0x0085),
    (0x00A0, 0x00A0),
    (0x1680, 0x1680),
    (0x2000, 0x200A),
    (0x2028, 0x2029),
    (0x202F, 0x202F),
    (0x205F, 0x205F),
    (0x3000, 0x3000),
)

# Property name -> the general categories it covers (the only properties tekken patterns use).
PROPERTY_CATEGORIES = {
    "L": ("Lu", "Ll", "Lt", "Lm", "Lo"),
    "Lu": ("Lu",),
    "Ll": ("Ll",),
    "Lt": ("Lt",),
    "Lm": ("Lm",),
    "Lo": ("Lo",),
    "M": ("Mn", "Mc", "Me"),
    "Mn": ("Mn",),
    "Mc": ("Mc",),
    "Me": ("Me",),
    "N": ("Nd", "Nl", "No"),
    "Nd": ("Nd",),
    "Nl": ("Nl",),
    "No": ("No",),
}
# Long names the Rust engine also accepts for the same properties.
PROPERTY_ALIASES = {
    "Letter": "L",
    "Uppercase_Letter": "Lu",
    "Lowercase_Letter": "Ll",
    "Titlecase_Letter": "Lt",
    "Modifier_Letter": "Lm",
    "Other_Letter": "Lo",
    "Mark": "M",
    "Number": "N",
}


@functools.lru_cache(maxsize=1)
def _category_runs() -> tuple[tuple[int, int, str], ...]:
    """All code points as maximal runs (first, last, general category): one pass, done once.

    Runs are much fewer than code points (~4k vs 1.1M), so every property class is then built
    from the runs instead of rescanning the code space.
    """
    category = unicodedata.category
    runs = []
    start, current = 0, category("\x00")
    for cp in range(1, sys.maxunicode + 1):
        cat = category(chr(cp))
        if cat != current:
            runs.append((start, cp - 1, current))
            start, current = cp, cat
    runs.append((start, sys.maxunicode, current))
    return tuple(runs)


@functools.lru_cache(maxsize=None)
def property_ranges(name: str) -> tuple[tuple[int, int], ...]:
    """Sorted, merged (first, last) code-point ranges of `\\p{name}`."""
    name = PROPERTY_ALIASES.get(name, name)
    if name not in PROPERTY_CATEGORIES:
        raise TokenizerError(f"tokenizer pattern uses unsupported Unicode property \\p{{{name}}}")
    wanted = set(PROPERTY_CATEGORIES[name])
    ranges: list[tuple[int, int]] = []
    for first, last, cat in _category_runs():
        if cat not in wanted:
            continue
        if ranges and ranges[-1][1] + 1 == first:  # adjacent runs, e.g. Lu then Ll
            ranges[-1] = (ranges[-1][0], last)
        else:
            ranges.append((first, last))
    return tuple(ranges)


def _escape_cp(cp: int) -> str:
    # \uXXXX / \UXXXXXXXX are understood by `re` inside classes and never clash with syntax.
    return f"\\u{cp:04X}" if cp <= 0xFFFF else f"\\U{cp:08X}"


def _class_body(ranges) -> str:
    """The inside of a `[...]` matching exactly `ranges`."""
    parts = []
    for first, last in ranges:
        if first == last:
            parts.append(_escape_cp(first))
        else:
            parts.append(_escape_cp(first) + "-" + _escape_cp(last))
    return "".join(parts)


def _read_property_name(pattern: str, i: int) -> tuple[str, int]:
    """Parse the name after `\\p` / `\\P` at pattern[i:]; return (name, index after it)."""
    if i < len(pattern) and pattern[i] == "{":
        end = pattern.find("}", i)
        if end < 0:
            raise TokenizerError(f"unterminated \\p{{...}} in tokenizer pattern at offset {i}")
        return pattern[i + 1 : end], end + 1
    if i < len(pattern):  # one-letter form, e.g. \pL
        return pattern[i], i + 1
    raise TokenizerError("tokenizer pattern ends with a bare \\p")


def _translate_escape(pattern: str, i: int, in_class: bool) -> tuple[str, int]:
    """Translate the escape starting at pattern[i] == '\\'; return (text, next index)."""
    if i + 1 >= len(pattern):
        raise TokenizerError("tokenizer pattern ends with a backslash")
    c = pattern[i + 1]
    if c in "pP":
        name, nxt = _read_property_name(pattern, i + 2)
        body = _class_body(property_ranges(name))
        if in_class:
            if c == "P":  # a negated class cannot be spliced into another class in `re`
                raise TokenizerError("tokenizer pattern uses \\P{...} inside [...]: unsupported")
            return body, nxt
        return ("[^" if c == "P" else "[") + body + "]", nxt
    if c in "sS":
        body = _class_body(WHITE_SPACE_RANGES)
        if in_class:
            if c == "S":
                raise TokenizerError("tokenizer pattern uses \\S inside [...]: unsupported")
            return body, i + 2
        return ("[^" if c == "S" else "[") + body + "]", i + 2
    if c in "dDwWbB":
        # Their Unicode definitions differ between the engines; tekken patterns never use them.
        raise TokenizerError(f"tokenizer pattern uses \\{c}: unsupported")
    return pattern[i : i + 2], i + 2  # \r, \n, \t, \/, \\ ... mean the same in `re`


def translate(pattern: str) -> str:
    """Rewrite a fancy-regex tekken pattern into an equivalent Python `re` pattern."""
    out = []
    i, in_class = 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            text, i = _translate_escape(pattern, i, in_class)
            out.append(text)
            continue
        if in_class:
            if c == "[":  # Rust nests classes here; `re` would read a literal '['
                raise TokenizerError("tokenizer pattern uses a nested character class: unsupported")
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            out.append(c)
            i += 1
            if pattern.startswith("^", i):
                out.append("^")
                i += 1
            if pattern.startswith("]", i):  # a leading ']' is a literal in both engines
                out.append("\\]")
                i += 1
            continue
        out.append(c)
        i += 1
    if in_class:
        raise TokenizerError("tokenizer pattern has an unterminated [...]")
    return "".join(out)


@functools.lru_cache(maxsize=8)
def compile_pattern(pattern: str = TEKKEN_PATTERN) -> re.Pattern:
    """The compiled Python equivalent of a tekken pattern (cached: the classes take ~0.15 s natively)."""
    try:
        return re.compile(translate(pattern))
    except re.error as exc:
        raise TokenizerError(f"tokenizer pattern does not compile: {exc}") from exc


def split(text: str, pattern: str = TEKKEN_PATTERN) -> list[str]:
    """Split `text` into the pieces BPE runs on (what tiktoken's regex `find_iter` yields)."""
    return compile_pattern(pattern).findall(text)
