"""Byte-level BPE with tiktoken's exact semantics, in pure Python (used in the browser).

tiktoken does not rank merge *rules*: it ranks byte strings.  For one pre-tokenized piece:
if the whole piece is a token, that is the answer; otherwise start from single bytes and
repeatedly merge the adjacent pair whose concatenation has the lowest rank (leftmost on ties),
until no adjacent concatenation is a token.  Every single byte is a token in Tekken (ranks 0..255),
so the result always covers the piece.
"""

from __future__ import annotations

import heapq

_NO_RANK = 1 << 62

# Beyond this many cached pieces the cache is cleared: a long transcript or an adversarial input
# must not grow memory without bound, and the hit rate of ordinary text is high long before this.
_CACHE_LIMIT = 1 << 16


def _merge(piece: bytes, ranks: dict[bytes, int]) -> list[int]:
    """Merge a piece that is not a token itself; returns its token ranks.

    The parts form a doubly linked list (by start offset) and candidate pairs sit in a heap keyed
    by (rank, start).  Popping the smallest key picks the lowest rank and, among equal ranks, the
    leftmost pair - the same choice as tiktoken's full rescan, in O(n log n) instead of O(n^2),
    which matters for long pieces such as whitespace runs or long tokens of punctuation.
    """
    n = len(piece)
    nxt = list(range(1, n + 1))  # nxt[s]: start of the part after the part starting at s (n = end)
    prv = list(range(-1, n - 1))
    alive = [True] * n  # alive[s]: a part currently starts at s
    heap = []
    for s in range(n - 1):
        r = ranks.get(piece[s : s + 2], _NO_RANK)
        if r != _NO_RANK:
            heap.append((r, s, s + 2))
    heapq.heapify(heap)

    def push_pair(s: int) -> None:
        # Candidate = the part at s joined with the part after it; `end` identifies the pair's
        # extent so stale heap entries (from before a neighbour merged) can be recognised.
        mid = nxt[s]
        if mid >= n:
            return
        end = nxt[mid]
        r = ranks.get(piece[s:end], _NO_RANK)
        if r != _NO_RANK:
            heapq.heappush(heap, (r, s, end))

    while heap:
        _, s, end = heapq.heappop(heap)
        if not alive[s] or nxt[s] >= n or nxt[nxt[s]] != end:
            continue  # stale: one of the two parts has changed since this entry was pushed
        mid = nxt[s]
        alive[mid] = False
        nxt[s] = end
        if end < n:
            prv[end] = s
        push_pair(s)
        if prv[s] >= 0:
            push_pair(prv[s])

    out = []
    s = 0
    while s < n:
        out.append(ranks[piece[s : nxt[s]]])
        s = nxt[s]
    return out


class BytePairEncoder:
    """tiktoken-equivalent BPE over a {token bytes: rank} table, with a per-piece cache."""

    def __init__(self, ranks: dict[bytes, int]):
        self.ranks = ranks
        self._cache: dict[bytes, tuple[int, ...]] = {}

    def encode_piece(self, piece: bytes) -> tuple[int, ...]:
        """Token ranks of one pre-tokenized piece (its UTF-8 bytes)."""
        rank = self.ranks.get(piece)
        if rank is not None:
            return (rank,)
        cached = self._cache.get(piece)
        if cached is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            cached = tuple(_merge(piece, self.ranks))
            self._cache[piece] = cached
        return cached

    def encode_pieces(self, pieces) -> list[int]:
        """Token ranks of a sequence of pieces (str), concatenated."""
        out: list[int] = []
        for piece in pieces:
            out.extend(self.encode_piece(piece.encode("utf-8")))
        return out
