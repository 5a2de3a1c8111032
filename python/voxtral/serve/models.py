"""Model shards the dev server offers: discovery, the JSON manifest (sizes, sha256), the demo model.

Looked for under the models folder (`--models`, default ./models or $VOXTRAL_MODELS):
  voxtral-q4-shards/       the Q4 ASR GGUF as `split -b` pieces (shard-aa ...), + tekken.json if the
                           GGUF carries no tokenizer (the community file does not)
  voxtral-tts-q4-shards/   the same for TTS
With no ASR model there, a tiny random-weight ASR model is written as shards to
demo-asr-tiny-shards/ and offered as a demo (plainly labelled: its transcript is noise); likewise,
with no TTS model, a tiny random-weight TTS model goes to demo-tts-tiny-shards/ (its speech is noise).

A folder with a manifest.json (what `voxtral shard` and `make-test-model` write) is served only if
its shards are the ones the manifest describes: names and sizes (a stat each), and the sha256 of
every shard's bytes. A missing, truncated or corrupted shard makes the server skip that model with
one WARNING line naming the folder and the shard; the other models are still served. A folder
without a manifest is served with the sha256 computed from its files.

Hashing a 2.5 GB model takes seconds, so each shard's sha256 is computed once and remembered in the
user data dir, keyed by the file's size, mtime, ctime and inode: any write to a shard changes its
ctime (which, unlike mtime, cannot be set back from user space), so a remembered hash is never
reused for changed bytes. What no stat can see (bit rot on the disk itself) is left to the
browser, which checks every shard it downloads against the advertised sha256 (web/worker.js).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field

from voxtral.errors import ModelFormatError
from voxtral.weights.loader import MANIFEST_NAME, check_manifest, read_manifest
from voxtral.weights.sources import shard_sources_from_dir

REAL_MODELS = (("voxtral-q4-shards", "asr"), ("voxtral-tts-q4-shards", "tts"))
DEMO_MODEL = ("demo-asr-tiny-shards", "asr")
DEMO_TTS_MODEL = ("demo-tts-tiny-shards", "tts")
HOW_TO_GET_TTS_SHARDS = """\
To get real speech, fetch mistralai/Voxtral-4B-TTS-2603 and make the browser's Q4 shards of it:
  voxtral download tts
  voxtral quantize tts models/Voxtral-4B-TTS-2603 -o models/voxtral-tts-q4.gguf
  voxtral shard models/voxtral-tts-q4.gguf -o models/voxtral-tts-q4-shards"""
DEMO_SHARD_BYTES = 256 * 1024  # a few shards even for the tiny model, so the page shows several
SIDE_FILES = ("tekken.json", "params.json")


@dataclass
class ShardInfo:
    name: str
    size: int
    sha256: str
    path: str = field(repr=False)


@dataclass
class ModelEntry:
    id: str
    kind: str
    demo: bool
    dir: str
    shards: list[ShardInfo]
    side_files: list[str]

    @property
    def total_size(self) -> int:
        return sum(s.size for s in self.shards)

    def to_json(self) -> dict:
        base = f"/models/{self.id}/"
        return {"id": self.id, "kind": self.kind, "demo": self.demo, "total_size": self.total_size,
                "shards": [{"name": s.name, "size": s.size, "sha256": s.sha256, "url": base + s.name}
                           for s in self.shards],
                "files": {n: base + n for n in self.side_files}}


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


# A file changed within the same clock tick as the stamp was taken would keep the stamp (file times
# are coarse: a few ms, 2 s on FAT), so, as git does for its index, a hash is remembered only for a
# file whose times are at least this much older than the hashing.
RACY_NS = 2_000_000_000


def _now_ns() -> int:
    return time.time_ns()


def _stamp(st: os.stat_result) -> list[int]:
    """What must be unchanged for a remembered sha256 to still hold (see the module docstring)."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _cached_hashes(d: str, sources, cache_dir: str, log) -> dict[str, str]:
    """sha256 of each shard, computed once and remembered by `_stamp` in cache_dir."""
    key = hashlib.sha1(os.path.realpath(d).encode()).hexdigest()[:16]
    cpath = os.path.join(cache_dir, "manifests", key + ".json")
    try:
        with open(cpath, encoding="utf-8") as f:
            cache = json.load(f)
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    out, todo = {}, []
    for src in sources:
        name = os.path.basename(src.path)
        stamp = _stamp(os.stat(src.path))
        hit = cache.get(name)
        if isinstance(hit, dict) and hit.get("stamp") == stamp and isinstance(hit.get("sha256"), str):
            out[name] = hit["sha256"]
        else:
            todo.append((name, src.path, stamp))
    if todo:
        log(f"voxtral serve: computing the sha256 of {len(todo)} shard(s) in {d} "
            f"({sum(t[2][0] for t in todo) / 1e6:.0f} MB; remembered while the files are unchanged) ...")
    changed = False
    for name, path, stamp in todo:
        started = _now_ns()
        out[name] = _sha256(path)
        st = os.stat(path)
        if _stamp(st) == stamp and max(st.st_mtime_ns, st.st_ctime_ns) < started - RACY_NS:
            cache[name] = {"stamp": stamp, "sha256": out[name]}
            changed = True
    if changed:
        try:
            os.makedirs(os.path.dirname(cpath), exist_ok=True)
            tmp = cpath + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(cache, f, indent=1)
            os.replace(tmp, cpath)
        except OSError as e:  # only costs hashing again at the next start
            log(f"voxtral serve: note: cannot save the sha256 cache to {cpath} ({e.strerror or e})")
    return out


def _check_against_manifest(d: str, manifest: dict, hashes: dict[str, str]) -> None:
    for e in manifest["shards"]:
        got, want = hashes[e["name"]], e["sha256"].lower()
        if got != want:
            raise ModelFormatError(f"{d}: shard {e['name']!r} is corrupted: its sha256 is {got[:16]}... but "
                                   f"{MANIFEST_NAME} says {want[:16]}... (changed bytes or a bad download); "
                                   "download or re-create it")


def scan_model(d: str, model_id: str, kind: str, demo: bool, cache_dir: str, log=print) -> ModelEntry:
    """The model in shard folder d, checked against its manifest.json when it has one.

    Raises ModelFormatError naming the shard when a shard is missing, has the wrong size or the
    wrong sha256 (also for an unreadable manifest), so a broken model is never offered."""
    manifest = read_manifest(d)
    if manifest is not None:
        check_manifest(d, manifest)  # names and sizes first: cheap, and names a missing shard
    sources = shard_sources_from_dir(d)
    hashes = _cached_hashes(d, sources, cache_dir, log)
    if manifest is not None:
        _check_against_manifest(d, manifest, hashes)
    shards = [ShardInfo(os.path.basename(s.path), s.size, hashes[os.path.basename(s.path)], s.path)
              for s in sources]
    side = [n for n in SIDE_FILES if os.path.isfile(os.path.join(d, n))]
    return ModelEntry(model_id, kind, demo, d, shards, side)


def make_demo_model(models_dir: str, log=print, kind: str = "asr", rewrite: bool = False) -> str:
    """The tiny random-weight demo model of `kind` as shards (written once, then reused;
    rewrite: write it again, e.g. after a damaged copy was found)."""
    from voxtral.testmodel import make_test_model
    name = DEMO_MODEL[0] if kind == "asr" else DEMO_TTS_MODEL[0]
    d = os.path.join(models_dir, name)
    if rewrite or not os.path.exists(os.path.join(d, "manifest.json")):
        what = "speech-to-text" if kind == "asr" else "text-to-speech"
        log(f"voxtral serve: writing the random-weight {what} demo model to {d} ...")
        make_test_model(kind, d, seed=0, fmt="shards", preset="tiny", shard_bytes=DEMO_SHARD_BYTES)
    return d


def _why(d: str, e: Exception) -> str:
    """The error's message without a leading copy of the folder name (the warning names it)."""
    if isinstance(e, OSError):
        return f"cannot read {e.filename or 'a file'}: {e.strerror or e}"
    msg = str(e)
    return msg[len(d) + 2:] if msg.startswith(d + ": ") else msg


def _scan_demo(models_dir: str, kind: str, cache_dir: str, log) -> ModelEntry:
    """The demo model; ours to make, so a damaged copy is written again rather than skipped."""
    model_id = DEMO_MODEL[0] if kind == "asr" else DEMO_TTS_MODEL[0]
    d = make_demo_model(models_dir, log, kind)
    try:
        return scan_model(d, model_id, kind, True, cache_dir, log)
    except (ModelFormatError, OSError) as e:
        log(f"voxtral serve: WARNING: the demo model in {d} is damaged ({_why(d, e)}); writing it again")
    d = make_demo_model(models_dir, log, kind, rewrite=True)
    return scan_model(d, model_id, kind, True, cache_dir, log)


def discover_models(models_dir: str, cache_dir: str, log=None, allow_demo: bool = True) -> list[ModelEntry]:
    """Real shard folders found under models_dir; with no ASR (TTS) model among them, the ASR
    (TTS) demo model too. A real model that fails its checks is left out with one WARNING line
    (folder, shard, reason): the server never offers bytes the page would reject part way."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    found = []
    for name, kind in REAL_MODELS:
        d = os.path.join(models_dir, name)
        if os.path.isdir(d):
            try:
                found.append(scan_model(d, name, kind, False, cache_dir, log))
            except (ModelFormatError, OSError) as e:
                log(f"voxtral serve: WARNING: not serving the {kind.upper()} model in {d}: {_why(d, e)}")
    if allow_demo and not any(m.kind == "asr" for m in found):
        found.append(_scan_demo(models_dir, "asr", cache_dir, log))
    if allow_demo and not any(m.kind == "tts" for m in found):
        found.append(_scan_demo(models_dir, "tts", cache_dir, log))
    return found
