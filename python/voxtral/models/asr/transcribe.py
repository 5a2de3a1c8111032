"""Greedy decode loops: offline (`transcribe`, ASR spec section 9) and streaming (`ASRStream`, §11).

Both drive the same `DecoderSession`, so they differ only in how the encoder sees the mel (whole
clip vs 8-frame steps with conv states and KV rings) and give the same tokens.

Protocol (spec section 8): prompt = BOS + STREAMING_PAD × (n_left_pad_tokens + delay_tokens),
fed at positions 0…L-1 together with audio embeddings 0…L-1 (one batched prefill). The first
token is the argmax at position L-1; afterwards position p gets audio_emb[p] + E[token decided at
p-1]. Decoding stops at EOS or when the audio embeddings run out (at most N - L + 1 tokens, N - 38
for the default 480 ms delay; HF generate stops one step earlier).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import numpy as np

from ...config import ASRConfig, AudioStreamingConfig

BOS_ID, EOS_ID, STREAMING_PAD_ID = 1, 2, 32  # defaults; pass the tokenizer's special_id(...)

# Encoder chunk limit for ASRStream.push_mel: a caller pushing minutes of mel at once still runs
# the encoder in bounded pieces (the KV rings stay bounded either way).
MAX_TOKENS_PER_ENCODER_CHUNK = 32


def prompt_ids(cfg: ASRConfig, delay_tokens: int, bos_id: int = BOS_ID,
               pad_id: int = STREAMING_PAD_ID) -> list[int]:
    """[BOS] + [STREAMING_PAD] × (n_left_pad_tokens + delay_tokens): 39 ids for 480 ms."""
    return [bos_id] + [pad_id] * (cfg.audio.n_left_pad_tokens + delay_tokens)


@dataclass
class Transcription:
    tokens: list[int] = field(default_factory=list)  # generated ids, EOS excluded
    positions: list[int] = field(default_factory=list)  # decoder position that decided each token
    eos: bool = False  # EOS was generated (not listed in tokens)
    logits: list[np.ndarray] | None = None  # per decision step [vocab] (incl. the EOS step)


class DecoderSession:
    """Greedy decoder state: KV caches, time-conditioning scales, last token, next position."""

    def __init__(self, model, delay_tokens: int, bos_id=BOS_ID, eos_id=EOS_ID,
                 pad_id=STREAMING_PAD_ID, keep_logits=False):
        self.model = model
        self.ops = model.ops
        self.eos_id = eos_id
        self.prompt = prompt_ids(model.config, delay_tokens, bos_id, pad_id)
        self._state = model.decoder.acquire_state(self.ops, delay_tokens)
        self.caches = self._state.caches
        # handed back when this session is dropped (the next session reuses caches and step)
        weakref.finalize(self, model.decoder.release_state, self.ops, delay_tokens, self._state)
        self.scales = model.decoder.ffn_scales(self.ops, delay_tokens)
        self.result = Transcription(logits=[] if keep_logits else None)
        self.next_position = 0
        self.last_token: int | None = None  # last token read back
        self._token_ref = None  # last decided token as the backend holds it (device for GPUs)
        self._unread = None  # (readback handle, position, logits handle) of the newest decision
        # Replay a recorded step when the backend offers it (not when logits are kept: they stay
        # on the device in a replayed step).
        self._use_graph = hasattr(self.ops, "decode_step_graph") and not keep_logits
        self._graph = self._state.graph
        self._graph_seeded = False
        self._pending = []  # audio embeddings received before the prompt is complete
        self._n_pending = 0

    @property
    def done(self) -> bool:
        return self.result.eos

    def feed(self, audio_emb) -> list[int]:
        """Consume audio embeddings [k, dim] for the next k positions; returns the new tokens."""
        new: list[int] = []
        ops = self.ops
        if self.done or audio_emb.shape[0] == 0:
            return new
        if self.next_position == 0:  # still collecting the prompt's audio
            self._pending.append(audio_emb)
            self._n_pending += audio_emb.shape[0]
            if self._n_pending < len(self.prompt):
                return new
            audio_emb = ops.concat_rows(self._pending) if len(self._pending) > 1 else self._pending[0]
            self._pending, self._n_pending = [], 0
            n = len(self.prompt)
            x = ops.add(ops.rows(audio_emb, 0, n), self.model.decoder.embed(ops, self.prompt))  # [L, dim]
            self._decide(x)
            audio_emb = ops.rows(audio_emb, n, audio_emb.shape[0])
        i, rows = 0, audio_emb.shape[0]
        while i < rows and not self.done:
            # The token fed here may still be on the device (GPU backends): step p is recorded and
            # submitted before step p-1's token is read back, so the GPU never waits for the host.
            # A backend that replays a recorded step takes several per submit (a file's rows).
            previous = self._unread
            if self._use_graph:
                i += self._graph_steps(audio_emb, i, rows - i)
            else:
                x = ops.add(ops.rows(audio_emb, i, i + 1), self.model.decoder.embed(ops, self._token_ref))
                self._decide(x)
                i += 1
            new += self._resolve(previous)
            if self.done:
                self._unread = None  # decided after EOS: discarded
                break
        # Leave nothing unread at the end of a call: a streaming caller gets every token its
        # audio decided (the overlap is within one call, e.g. a whole file).
        new += self._resolve(self._unread)
        self._unread = None
        return new

    def _decide(self, x) -> None:
        """Run positions [next_position, +M) and submit; the decision is read one step later."""
        ops, dec = self.ops, self.model.decoder
        m = x.shape[0]
        positions = np.arange(self.next_position, self.next_position + m, dtype=np.int64)
        chunk = getattr(ops, "prefill_chunk_rows", 0) or m  # a backend may prefill in pieces
        for start in range(0, m, chunk):
            stop = min(m, start + chunk)
            part = x if (start, stop) == (0, m) else ops.rows(x, start, stop)
            h = dec(ops, part, positions[start:stop], self.caches, self.scales)
        n = h.shape[0]
        logits = dec.logits(ops, ops.rows(h, n - 1, n))  # [1, vocab]: only the last row decides
        token_ref = ops.argmax(logits)  # [1], on the device for GPU backends
        logits_read = ops.read_later(logits) if self.result.logits is not None else None
        self._unread = (ops.read_later(token_ref), int(positions[-1]), logits_read)
        ops.flush()
        self._token_ref = token_ref
        self.next_position += m

    def _graph_steps(self, audio_emb, row: int, available: int) -> int:
        """A backend that can record a decode step once (WebGPU) replays it for every token, up to
        its steps-per-submit at a time from rows row, row + 1, ... Returns the rows consumed."""
        if self._graph is None:
            self._graph = self.ops.decode_step_graph(self.model.decoder, self.caches, self.scales)
            self._state.graph = self._graph
            if self._graph is None:  # the backend cannot record this model's step
                self._use_graph = False
                x = self.ops.add(self.ops.rows(audio_emb, row, row + 1),
                                 self.model.decoder.embed(self.ops, self._token_ref))
                self._decide(x)
                return 1
        if not self._graph_seeded:  # this session's first replayed step (the graph may be older)
            self._graph.set_token(self._token_ref)
            self._graph_seeded = True
        n = min(available, self._graph.steps_per_submit)
        handle = self._graph.steps(audio_emb, row, self.next_position, n)
        self._unread = (handle, self.next_position, None)
        self.next_position += n
        return n

    def _resolve(self, unread) -> list[int]:
        """Read the decided tokens of one submit (waits only for that submit): one token, or the
        tokens of consecutive positions from a replayed graph's several steps."""
        if unread is None:
            return []
        handle, position, logits_read = unread
        tokens = [int(t) for t in np.asarray(handle.result()).reshape(-1)]
        if logits_read is not None:
            self.result.logits.append(np.array(logits_read.result()[0]))
        new = []
        for j, token in enumerate(tokens):
            self.last_token = token
            if token == self.eos_id:
                # Anything decided after EOS (later steps, a submit already made) is discarded.
                self.result.eos = True
                break
            self.result.tokens.append(token)
            self.result.positions.append(position + j)
            new.append(token)
        return new

    def kv_slots(self) -> int:
        return max(c.n_slots for c in self.caches)


def _resolve_delay(model, delay_ms, delay_tokens) -> int:
    if delay_tokens is not None:
        return int(delay_tokens)
    return model.config.audio.num_delay_tokens(delay_ms)


def transcribe(model, mel, delay_ms: float | None = None, *, delay_tokens: int | None = None,
               bos_id: int = BOS_ID, eos_id: int = EOS_ID, pad_id: int = STREAMING_PAD_ID,
               return_logits: bool = False) -> Transcription:
    """Offline greedy transcription of a padded clip's mel [n_mels, 8N] (spec section 9).

    The mel must come from audio padded per spec 4.2 (32 tokens of zeros on the left, alignment +
    n_right_pad_tokens on the right). delay_ms defaults to the config's transcription delay.
    """
    delay = _resolve_delay(model, delay_ms, delay_tokens)
    session = DecoderSession(model, delay, bos_id, eos_id, pad_id, keep_logits=return_logits)
    session.feed(model.audio_embeddings(mel))  # [N, dim]
    return session.result


class ASRStream:
    """True streaming transcription: push mel frames as they are computed, get tokens as decided.

    Frames are consumed 8 at a time (one audio token, 80 ms): the encoder runs incrementally (conv
    states, KV rings of window + 4 rows), the decoder prefills once the prompt's L positions have
    audio (L·8 mel frames, 312 for 480 ms) and then decides one token per 8 frames. At end of
    stream the caller pushes the mel of the right pad (alignment + n_right_pad_tokens of zeros,
    spec 4.2) — without it the last words, which sit behind the delay, are never emitted.
    """

    def __init__(self, model, delay_ms: float | None = None, *, delay_tokens: int | None = None,
                 bos_id: int = BOS_ID, eos_id: int = EOS_ID, pad_id: int = STREAMING_PAD_ID,
                 keep_logits: bool = False):
        self.model = model
        self.delay_tokens = _resolve_delay(model, delay_ms, delay_tokens)
        self.encoder = model.encoder_stream()
        self.session = DecoderSession(model, self.delay_tokens, bos_id, eos_id, pad_id, keep_logits)
        self.frames_per_token = model.mel_frames_per_token
        self._mel = np.zeros((model.config.audio.num_mel_bins, 0), dtype=np.float32)  # [n_mels, <8]

    @property
    def result(self) -> Transcription:
        return self.session.result

    @property
    def tokens(self) -> list[int]:
        return self.session.result.tokens

    @property
    def positions(self) -> list[int]:
        return self.session.result.positions

    @property
    def done(self) -> bool:
        """EOS was generated; further audio is ignored."""
        return self.session.done

    @property
    def mel_frames_needed_for_first_token(self) -> int:
        return len(self.session.prompt) * self.frames_per_token

    def push_mel(self, frames) -> list[int]:
        """frames [n_mels, t] (any t >= 0) -> ids decided by them (EOS excluded)."""
        if self.done:
            return []
        self._mel = np.concatenate([self._mel, np.asarray(frames)], axis=1)  # keeps float64 input
        n_tok = self._mel.shape[1] // self.frames_per_token
        new: list[int] = []
        for start in range(0, n_tok, MAX_TOKENS_PER_ENCODER_CHUNK):
            stop = min(n_tok, start + MAX_TOKENS_PER_ENCODER_CHUNK)
            chunk = self._mel[:, start * self.frames_per_token:stop * self.frames_per_token]
            audio_emb = self.model.adapter(self.model.ops, self.encoder.step(chunk))  # [k, dim]
            new += self.session.feed(audio_emb)
            if self.done:
                break
        self._mel = self._mel[:, n_tok * self.frames_per_token:]
        return new

    def kv_slots(self) -> dict[str, int]:
        """Rows allocated per layer in the encoder and decoder KV caches (bounded by the windows)."""
        return {"encoder": self.encoder.kv_slots(), "decoder": self.session.kv_slots()}


def token_times(positions, delay_tokens: int, cfg: ASRConfig | AudioStreamingConfig) -> np.ndarray:
    """Approximate time (s, from the start of the real audio) each token refers to.

    Position p carries padded audio token p, i.e. real audio [(p - n_left)·T, (p - n_left + 1)·T)
    with T = 80 ms. A token decided at p has heard audio up to (p - n_left + 1)·T and, being
    delay_tokens behind, describes audio around (p - n_left - delay_tokens)·T. For the output index
    k = p - (n_left + delay_tokens) (k = 0 is the first token, decided at the last prompt
    position), the measured convention (spec section 8) is: the first text token of a word at
    output index k marks the word's END at ≈ (k - 1)·T. This returns
    (p - n_left - delay_tokens - 1)·T for each p (negative values = before the audio started).
    """
    audio = cfg.audio if isinstance(cfg, ASRConfig) else cfg
    tok_s = audio.raw_audio_length_per_tok / audio.sampling_rate  # 0.08 s
    p = np.asarray(positions, dtype=np.float64)
    return (p - audio.n_left_pad_tokens - delay_tokens - 1) * tok_s
