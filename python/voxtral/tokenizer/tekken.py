"""Tekken tokenizer (Mistral's tiktoken-style byte-level BPE) read from a `tekken.json`.

Id space: ids 0..num_special-1 are special tokens (id = the entry's `rank` in `special_tokens`);
id num_special + r is vocab rank r.  Only the first `default_vocab_size - default_num_special_tokens`
vocab entries are used - the file lists more (150,000) and mistral-common truncates the same way,
otherwise ids past the embedding table could come out of the encoder.

Encoding uses tiktoken when it is importable (native) and the pure-Python pre-tokenizer + BPE
otherwise (Pyodide); both give identical ids.  Only numpy/stdlib are imported at module level.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
import os

from ..errors import TokenizerError
from . import pretokenize
from .bpe import BytePairEncoder

# Used when a file has no `special_tokens` list (mistral-common's bundled pre-v7 vocabularies):
# the same legacy names mistral-common assumes for such files, at ids 0..19.
LEGACY_SPECIAL_TOKENS = (
    "<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
    "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CALLS]", "[IMG]", "<pad>", "[IMG_BREAK]",
    "[IMG_END]", "[PREFIX]", "[MIDDLE]", "[SUFFIX]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]",
    "[TOOL_CONTENT]",
)
SPECIAL_FILLER = "<SPECIAL_{}>"

_CONFIG_KEYS = ("pattern", "default_vocab_size", "default_num_special_tokens")
_BACKENDS = ("auto", "tiktoken", "python")


def _require(mapping, key: str, where: str):
    if not isinstance(mapping, dict) or key not in mapping:
        raise TokenizerError(f"tekken.json: missing key '{key}' in {where}")
    return mapping[key]


def _parse_vocab(entries, count: int) -> list[bytes]:
    """Decode the first `count` vocab entries to bytes, checking what the id mapping relies on."""
    if not isinstance(entries, list):
        raise TokenizerError("tekken.json: 'vocab' is not a list")
    if len(entries) < count:
        raise TokenizerError(
            f"tekken.json: vocab has {len(entries)} entries but the config needs {count} "
            "(default_vocab_size - default_num_special_tokens)"
        )
    out = []
    for i in range(count):
        entry = entries[i]
        try:
            rank, b64 = entry["rank"], entry["token_bytes"]
            token = base64.b64decode(b64, validate=True)
        except (KeyError, TypeError) as exc:
            raise TokenizerError(f"tekken.json: vocab entry {i} lacks rank/token_bytes") from exc
        except (binascii.Error, ValueError) as exc:
            raise TokenizerError(f"tekken.json: vocab entry {i} has invalid base64") from exc
        if rank != i:
            raise TokenizerError(f"tekken.json: vocab entry {i} has rank {rank}; ranks must equal indices")
        if i < 256 and token != bytes([i]):
            # Every byte must be encodable: ranks 0..255 are the single bytes.
            raise TokenizerError(f"tekken.json: vocab rank {i} is {token!r}, expected the single byte {i}")
        out.append(token)
    return out


def _parse_special(entries, num_special: int) -> list[str]:
    """Names of all special ids 0..num_special-1 (unnamed ids get mistral-common's filler name)."""
    names = [SPECIAL_FILLER.format(i) for i in range(num_special)]
    if entries is None:
        entries = [{"rank": i, "token_str": s} for i, s in enumerate(LEGACY_SPECIAL_TOKENS)]
    if not isinstance(entries, list):
        raise TokenizerError("tekken.json: 'special_tokens' is not a list")
    for entry in entries:
        rank = _require(entry, "rank", "a special_tokens entry")
        name = _require(entry, "token_str", "a special_tokens entry")
        if not isinstance(rank, int) or not 0 <= rank < num_special:
            raise TokenizerError(f"tekken.json: special token {name!r} has rank {rank} outside 0..{num_special - 1}")
        names[rank] = name
    return names


def _tiktoken_encoding(pattern: str, ranks: dict[bytes, int], required: bool):
    """A tiktoken Encoding, or None when tiktoken is not importable and not required."""
    try:
        import tiktoken  # lazy: absent in Pyodide
    except ImportError as exc:
        if required:
            raise TokenizerError("backend='tiktoken' requested but tiktoken is not installed") from exc
        return None
    # Special tokens are handled by id here, never by text: "[INST]" in text is plain text.
    return tiktoken.Encoding(name="tekken", pat_str=pattern, mergeable_ranks=ranks, special_tokens={})


class Tekken:
    """A loaded tekken.json: encode text to ids, decode ids to text, look up special ids."""

    def __init__(self, data: dict, *, backend: str = "auto"):
        if backend not in _BACKENDS:
            raise TokenizerError(f"unknown tokenizer backend {backend!r}; expected one of {_BACKENDS}")
        if not isinstance(data, dict):
            raise TokenizerError("tekken.json: top level is not a JSON object")
        config = _require(data, "config", "the file")
        self.pattern, vocab_size, num_special = (_require(config, k, "'config'") for k in _CONFIG_KEYS)
        if not (isinstance(vocab_size, int) and isinstance(num_special, int) and 0 < num_special < vocab_size):
            raise TokenizerError(f"tekken.json: bad sizes default_vocab_size={vocab_size}, "
                                 f"default_num_special_tokens={num_special}")
        self._vocab_size = vocab_size
        self._num_special = num_special
        self.version = config.get("version")
        self._tokens = _parse_vocab(_require(data, "vocab", "the file"), vocab_size - num_special)
        self._special_names = _parse_special(data.get("special_tokens"), num_special)
        self._special_ids = {name: i for i, name in enumerate(self._special_names)}
        self._audio = data.get("audio")
        ranks = {token: rank for rank, token in enumerate(self._tokens)}
        if len(ranks) != len(self._tokens):
            raise TokenizerError("tekken.json: vocab has duplicate token_bytes")
        self._encoding = None
        if backend != "python":
            self._encoding = _tiktoken_encoding(self.pattern, ranks, required=backend == "tiktoken")
        self.backend = "tiktoken" if self._encoding is not None else "python"
        self._bpe = BytePairEncoder(ranks) if self._encoding is None else None
        if self._bpe is not None:
            self._regex = pretokenize.compile_pattern(self.pattern)

    # ---- construction -------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, d: dict, *, backend: str = "auto") -> "Tekken":
        return cls(d, backend=backend)

    @classmethod
    def from_file(cls, path, *, backend: str = "auto") -> "Tekken":
        path = os.fspath(path)
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except FileNotFoundError as exc:
            raise TokenizerError(f"tokenizer file not found: {path}") from exc
        except OSError as exc:
            raise TokenizerError(f"cannot read tokenizer file {path}: {exc}") from exc
        try:
            d = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TokenizerError(f"tokenizer file {path} is not valid JSON: {exc}") from exc
        try:
            return cls(d, backend=backend)
        except TokenizerError as exc:
            raise TokenizerError(f"{path}: {exc}") from exc

    # ---- properties ---------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Total ids (special + BPE): the model's embedding rows."""
        return self._vocab_size

    @property
    def num_special(self) -> int:
        return self._num_special

    @property
    def audio_config(self) -> dict | None:
        """The file's `audio` block as a dict, or None when it has none."""
        return self._audio

    @property
    def bos_id(self) -> int:
        return self.special_id("<s>")

    @property
    def eos_id(self) -> int:
        return self.special_id("</s>")

    def special_id(self, name: str) -> int:
        """Id of a special token by its string, e.g. "[STREAMING_PAD]"."""
        try:
            return self._special_ids[name]
        except KeyError:
            raise TokenizerError(f"special token {name!r} is not in the tokenizer file") from None

    def special_name(self, token_id: int) -> str:
        if not 0 <= token_id < self._num_special:
            raise TokenizerError(f"id {token_id} is not a special token id")
        return self._special_names[token_id]

    def is_special(self, token_id: int) -> bool:
        return 0 <= token_id < self._num_special

    # ---- encode / decode ----------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Ids of `text`: no BOS/EOS, special-token strings in the text encode as plain text."""
        # Lone surrogates cannot be UTF-8 encoded; tiktoken replaces them with U+FFFD the same way.
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        if self._encoding is not None:
            ranks = self._encoding.encode_ordinary(text)
        else:
            ranks = self._bpe.encode_pieces(self._regex.findall(text))
        offset = self._num_special
        return [r + offset for r in ranks]

    def token_bytes(self, token_id: int) -> bytes:
        """Raw bytes of one id; b"" for special ids (they have no text)."""
        token_id = int(token_id)
        if not 0 <= token_id < self._vocab_size:
            raise TokenizerError(f"token id {token_id} is outside 0..{self._vocab_size - 1}")
        if token_id < self._num_special:
            return b""
        return self._tokens[token_id - self._num_special]

    def decode_bytes(self, ids) -> bytes:
        return b"".join(self.token_bytes(i) for i in ids)

    def decode(self, ids) -> str:
        """Text of `ids`: special ids are dropped, bytes joined, invalid UTF-8 replaced.

        Nothing is stripped (ASR transcripts usually start with a space: callers strip).
        """
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def streaming_decoder(self) -> "StreamingDecoder":
        return StreamingDecoder(self)


class StreamingDecoder:
    """Turns ids into text one at a time, holding back bytes of an incomplete UTF-8 character.

    A character such as an emoji is often split over several byte tokens; emitting each token on
    its own would show replacement characters mid-stream.  The concatenation of every `push`
    followed by `flush` equals `Tekken.decode` of all the ids.
    """

    def __init__(self, tekken: Tekken):
        self._tekken = tekken
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        """Feed one id; returns the text that became complete (often "", never a partial char)."""
        return self._decoder.decode(self._tekken.token_bytes(token_id))

    def flush(self) -> str:
        """End of stream: whatever is held back (an incomplete tail decodes to U+FFFD)."""
        text = self._decoder.decode(b"", final=True)
        self._decoder.reset()
        return text
