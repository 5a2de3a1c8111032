"""`voxtral shard`: byte-split a GGUF into `shard-aa`, `shard-ab`, ... plus `manifest.json`.

Browsers and static hosts cap single downloads, so the app serves the ~2.5 GB Q4 file in pieces,
cut exactly like `split -b 512m` (the community shards are made that way, and the loader
concatenates them back into one stream). The manifest lists each piece's name, size and sha256 so
the loader, the server and the browser can tell a missing, truncated or corrupted piece from a
good one before parsing a byte (format: see MANIFEST_* in `voxtral.weights.loader`).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile

from voxtral.errors import ModelFormatError, VoxtralError
from voxtral.weights.loader import KEY_TEKKEN, MANIFEST_FORMAT, MANIFEST_NAME

DEFAULT_SHARD_BYTES = 512 * 1024 * 1024
SHARD_PREFIX = "shard-"
_BLOCK = 8 << 20  # copy/hash granularity: memory stays at one block whatever the shard size
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_OUR_FILES = re.compile(r"shard-[a-z]{2}")


def parse_size(text: str | int) -> int:
    """'512M' -> 536870912. K/M/G are binary (as `split -b 512m`); 'MB', 'MiB' are accepted too."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise VoxtralError(f"bad size {text!r}: use a byte count or a number with K, M or G (e.g. 512M)")
    mult = 1024 ** " kmgt".index(m.group(2).lower() or " ")
    n = int(float(m.group(1)) * mult)
    if n <= 0:
        raise VoxtralError(f"bad size {text!r}: must be positive")
    return n


def shard_name(i: int) -> str:
    """split's default naming: two letters, aa .. zz."""
    if i >= 26 * 26:
        raise VoxtralError(f"more than {26 * 26} shards: use a larger --max-bytes")
    return SHARD_PREFIX + _LETTERS[i // 26] + _LETTERS[i % 26]


def _clear_old_shards(out_dir: str) -> None:
    """Remove an earlier shard set: leftover pieces past the new last one would be read as part of
    the stream. Only names this module writes are touched."""
    for n in os.listdir(out_dir):
        if _OUR_FILES.fullmatch(n) or n == MANIFEST_NAME:
            os.remove(os.path.join(out_dir, n))


def write_manifest(out_dir: str, shards: list[dict], source: str, file_sha256: str | None = None,
                   shard_bytes: int | None = None) -> dict:
    """Write manifest.json for shards already in `out_dir` ([{name, size, sha256}] in order)."""
    manifest = {"format": MANIFEST_FORMAT, "source": source,
                "total_size": sum(s["size"] for s in shards), "shards": shards}
    if file_sha256:
        manifest["sha256"] = file_sha256  # of the whole file: comparable with the hub's LFS sha256
    if shard_bytes:
        manifest["shard_bytes"] = shard_bytes
    tmp = os.path.join(out_dir, MANIFEST_NAME + ".tmp")
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=2)
    os.replace(tmp, os.path.join(out_dir, MANIFEST_NAME))
    return manifest


def split_file(path: str, out_dir: str, max_bytes: int = DEFAULT_SHARD_BYTES, progress=None) -> dict:
    """Byte-split `path` like `split -b max_bytes` into out_dir/shard-aa, ...; then manifest.json.

    Streams in 8 MiB blocks (hashing each shard and the whole file on the way), so memory does not
    grow with the shard size. The pieces are written into a hidden folder inside out_dir and moved
    into place only when all of them are complete, manifest last: an error or Ctrl-C part way
    leaves out_dir as it was (an earlier shard set stays intact), never a partial set."""
    if max_bytes <= 0:
        raise VoxtralError("shard size must be positive")
    total = os.path.getsize(path)
    try:
        os.makedirs(out_dir, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".shard-tmp-", dir=out_dir)
    except OSError as e:
        raise VoxtralError(f"cannot write shards to {out_dir}: {e.strerror or e}") from None
    try:
        whole = hashlib.sha256()
        shards = []
        buf = bytearray(_BLOCK)
        with open(path, "rb") as f:
            for i in range(max(1, -(-total // max_bytes))):
                name, h, size = shard_name(i), hashlib.sha256(), 0
                with open(os.path.join(staging, name), "wb") as g:
                    while size < max_bytes:
                        view = memoryview(buf)[:min(_BLOCK, max_bytes - size)]
                        n = f.readinto(view)
                        if not n:
                            break
                        g.write(view[:n])
                        h.update(view[:n])
                        whole.update(view[:n])
                        size += n
                        if progress is not None:
                            progress.update(n)
                shards.append({"name": name, "size": size, "sha256": h.hexdigest()})
        if sum(s["size"] for s in shards) != total:
            raise ModelFormatError(f"{path} changed size while it was being split")
        _clear_old_shards(out_dir)
        for s in shards:
            os.replace(os.path.join(staging, s["name"]), os.path.join(out_dir, s["name"]))
        return write_manifest(out_dir, shards, os.path.basename(path), whole.hexdigest(), max_bytes)
    except OSError as e:
        raise VoxtralError(f"cannot write shards to {out_dir}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def shard_gguf(path: str, out_dir: str, max_bytes: int = DEFAULT_SHARD_BYTES, progress: bool = False) -> dict:
    """`voxtral shard`: check that `path` is a GGUF, split it, and make the directory self-contained.

    A GGUF without an embedded tokenizer (the community file) needs tekken.json next to it; it is
    copied into the shard directory when it sits beside the source."""
    from voxtral.weights.gguf import open_gguf
    if not os.path.isfile(path):
        raise VoxtralError(f"{path}: no such file (give the .gguf to split)")
    gg = open_gguf(path)  # raises a clear error for a non-GGUF or truncated file
    has_tokenizer = KEY_TEKKEN in gg.metadata
    gg.close()
    if os.path.abspath(out_dir) == os.path.abspath(os.path.dirname(path) or "."):
        raise VoxtralError("the shard directory must not be the directory of the source file")
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=os.path.getsize(path), unit="B", unit_scale=True, desc="shard", leave=False)
    try:
        manifest = split_file(path, out_dir, max_bytes, bar)
    finally:
        if bar is not None:
            bar.close()
    side = os.path.join(os.path.dirname(path) or ".", "tekken.json")
    if not has_tokenizer and os.path.exists(side):
        shutil.copyfile(side, os.path.join(out_dir, "tekken.json"))
    return manifest
