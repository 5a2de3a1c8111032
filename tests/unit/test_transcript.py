"""Word times and subtitle cues (voxtral.transcript) on hand-made token lists.

Every expected value below is worked out by hand from the conventions in transcript.py's docstring
(ASR spec 8: the first token of a word emitted in one go marks its end; pad steps inside a word push
the end later; a word starts at the previous word's end but at most MAX_WORD_S before its own end),
not by running the code."""
import pytest

from voxtral.transcript import (CUE_MAX_CHARS, CUE_MAX_S, MAX_WORD_S, Transcript, Word, group_words,
                                to_srt, to_vtt)

T = 0.08  # one decoder step


def t(k: int) -> float:
    """The time token_times gives output index k + 1 (a float product, like the real ones)."""
    return k * T


def spans(words):
    return [(w.word, w.start, w.end) for w in words]


def test_constants_are_the_documented_ones():
    # the hand computations below assume these
    assert (MAX_WORD_S, CUE_MAX_S, CUE_MAX_CHARS) == (1.0, 6.0, 80)


def test_words_start_at_the_previous_end():
    pieces = [("", t(2)), (" The", t(5)), ("", t(6)), (" cat", t(9)), ("", t(10)), (" sat", t(15))]
    assert spans(group_words(pieces)) == [("The", 0.0, 0.4), ("cat", 0.4, 0.72), ("sat", 0.72, 1.2)]


def test_max_word_s_clamps_the_start_after_a_pause():
    pieces = [(" Hi", 2.5), (" there", 6.0)]
    # Hi: max(0, 2.5 - 1) = 1.5; there: max(2.5, 6.0 - 1) = 5.0
    assert spans(group_words(pieces)) == [("Hi", 1.5, 2.5), ("there", 5.0, 6.0)]


def test_word_emitted_in_one_go_ends_at_its_first_token():
    """Spec 8: consecutive steps spelling one word add no audio time."""
    pieces = [(" inter", t(25)), ("nation", t(26)), ("al", t(27)), (" law", t(28))]
    assert spans(group_words(pieces)) == [("international", 1.0, 2.0), ("law", 2.0, 2.24)]


def test_pad_steps_inside_a_word_move_its_end_to_the_last_token():
    """The model waited 2 steps for more of the word: it ends 2 steps after its first token.
    (Taking only the first token's time would give 2.0.)"""
    pieces = [(" inter", t(25)), ("", t(26)), ("", t(27)), ("nation", t(28)), ("al", t(29)),
              ("", t(30)), (" law", t(40))]
    # end = 2.0 + (2.24 - 2.0 - 0.08) = 2.16; "al" follows directly: no more
    assert spans(group_words(pieces)) == [("international", 1.16, 2.16), ("law", 2.2, 3.2)]


def test_a_long_run_without_spaces_is_cut_and_keeps_its_times():
    """30 tokens on consecutive steps from 0.8 s, no space (e.g. Chinese): pieces of at most
    MAX_WORD_S, so no single word holds the whole run at the run's first time."""
    chars = "abcdefghijklmnopqrstuvwxyzABCD"
    pieces = [(c, t(10 + i)) for i, c in enumerate(chars)] + [(" end", 3.6)]
    words = group_words(pieces)
    # piece 1: t(10)..t(22) (t(23) - t(10) = 1.04 s > 1 s starts piece 2), ends at its first token;
    # piece 2: t(23)..t(35); piece 3: t(36)..t(39). Starts: previous end, but >= end - 1 s.
    assert spans(words) == [("abcdefghijklm", 0.0, 0.8), ("nopqrstuvwxyz", 0.84, 1.84),
                            ("ABCD", 1.88, 2.88), ("end", 2.88, 3.6)]
    assert [w.joined for w in words] == [False, True, True, False]
    # the cut does not show in the text of the subtitles or of JSON
    assert to_srt(Transcript("", [], words)).split("\n")[2] == chars + " end"
    assert Transcript("", [], words).to_dict()["words"][1] == {"word": "nopqrstuvwxyz", "start": 0.84, "end": 1.84}


def test_whitespace_only_tokens_and_empty_pieces():
    pieces = [(" ", t(3)), ("word", t(10)), ("", t(11)), (" ", t(12)), ("b", t(13)), ("\n", t(14)),
              ("c", t(15))]
    # "word" gets its time from its first visible token; " " and "\n" separate words
    assert spans(group_words(pieces)) == [("word", 0.0, 0.8), ("b", 0.8, 1.04), ("c", 1.04, 1.2)]
    assert group_words([("", 1.0), ("   ", 2.0)]) == []
    # a token ending in a line break ends its word; whitespace inside a token becomes one space
    # (a blank line inside a cue would end it early in SRT/VTT)
    pieces = [(" end.\n\n", t(10)), ("Next", t(11)), ("one\n\ntwo", t(12))]
    assert spans(group_words(pieces)) == [("end.", 0.0, 0.8), ("Nextone two", 0.8, 0.88)]


def test_times_clamped_to_the_audio():
    """Tokens decided in the right padding belong to the audio's last moment; times before the
    audio began (the first output index) are 0."""
    pieces = [(" a", -T), (" b", 1.0), (" c", 3.5), ("d", 3.58)]
    assert spans(group_words(pieces, audio_s=3.0)) == [("a", 0.0, 0.0), ("b", 0.0, 1.0), ("cd", 2.0, 3.0)]


def words_at(names, starts, ends):
    return [Word(n, s, e) for n, s, e in zip(names, starts, ends)]


def test_srt_and_vtt_cue_times_split_at_cue_max_s():
    words = words_at([f"w{i}" for i in range(10)], range(10), range(1, 11))
    # cue 1 takes w0..w5 (w5 ends at 6.0 = 0 + CUE_MAX_S, allowed); w6 would end 7 s after 0
    assert to_srt(Transcript("", [], words)) == (
        "1\n00:00:00,000 --> 00:00:06,000\nw0 w1 w2 w3 w4 w5\n\n"
        "2\n00:00:06,000 --> 00:00:10,000\nw6 w7 w8 w9\n")
    assert to_vtt(Transcript("", [], words)) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:06.000\nw0 w1 w2 w3 w4 w5\n\n"
        "00:00:06.000 --> 00:00:10.000\nw6 w7 w8 w9\n")


def test_cues_split_at_cue_max_chars():
    seven = [f"abcdefgh{i}" for i in range(7)]  # 7 words of 9 characters: 69 with the spaces
    times = [0.1 * i for i in range(9)]
    fits = words_at(seven + ["0123456789"], times, times)  # + " " + 10 = 80 characters: one cue
    srt = to_srt(Transcript("", [], fits))
    assert srt.count(" --> ") == 1 and len(srt.split("\n")[2]) == CUE_MAX_CHARS
    over = words_at(seven + ["01234567890", "x"], times, times)  # 81: the 8th word opens cue 2
    assert to_vtt(Transcript("", [], over)) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:00.600\n" + " ".join(seven) + "\n\n"
        "00:00:00.700 --> 00:00:00.800\n01234567890 x\n")


def test_cue_lasts_at_least_one_step_and_clock_format():
    words = [Word("alone", 3725.5, 3725.5)]  # 1 h 2 min 5.5 s; a zero-length word
    assert to_srt(Transcript("", [], words)) == "1\n01:02:05,500 --> 01:02:05,580\nalone\n"
    assert to_vtt(Transcript("", [], [])) == "WEBVTT\n"


@pytest.mark.parametrize("fmt", [to_srt, to_vtt])
def test_pieces_to_subtitles_end_to_end(fmt):
    pieces = [(" Hello", t(6)), ("", t(7)), (" wor", t(12)), ("", t(13)), ("ld", t(14)), (".", t(15))]
    # Hello [0, 0.48]; world. ends 0.96 + (1.12 - 0.96 - 0.08) = 1.04, starts at 0.48
    out = fmt(Transcript("Hello world.", [], group_words(pieces)))
    sep = "," if fmt is to_srt else "."
    assert f"00:00:00{sep}000 --> 00:00:01{sep}040\nHello world.\n" in out
