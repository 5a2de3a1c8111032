"""Model shards the dev server offers: discovery, the JSON manifest (sizes, sha256), the demo model.

Looked for under the models folder (`--models`, default ./models or $VOXTRAL_MODELS):
  voxtral-q4-shards/       the Q4 ASR GGUF as `split -b` pieces (shard-aa ...), + tekken.json if the
                           GGUF carries no tokenizer (the community file does not)
  voxtral-tts-q4-shards/   the same for TTS
With no ASR model there, a tiny random-weight ASR model is written as shards to
demo-asr-tiny-shards/ and offered as a demo (plainly labelled: its transcript is noise); likewise,
with no TTS model, a tiny random-weight TTS model goes to demo-tts-tiny-shards/ (its speech is noise).

Each shard's sha256 comes from the folder's manifest.json when that matches the files (names,
sizes, and not older than them), else it is computed once and cached in the user data dir.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field

from voxtral.errors import ModelFormatError
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


def _from_manifest_json(d: str, sources) -> dict[str, str] | None:
    """name -> sha256 from the folder's manifest.json, if it describes exactly these files."""
    mpath = os.path.join(d, "manifest.json")
    if not os.path.exists(mpath):
        return None
    try:
        with open(mpath, encoding="utf-8") as f:
            m = json.load(f)
        listed = {s["name"]: (int(s["size"]), str(s["sha256"])) for s in m["shards"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    m_mtime = os.stat(mpath).st_mtime_ns
    out = {}
    for src in sources:
        name = os.path.basename(src.path)
        st = os.stat(src.path)
        if name not in listed or listed[name][0] != st.st_size or st.st_mtime_ns > m_mtime:
            return None
        out[name] = listed[name][1]
    return out if len(out) == len(listed) else None


def _cached_hashes(d: str, sources, cache_dir: str, log) -> dict[str, str]:
    """Hash each shard once; remember (size, mtime) -> sha256 in cache_dir."""
    key = hashlib.sha1(os.path.realpath(d).encode()).hexdigest()[:16]
    cpath = os.path.join(cache_dir, "manifests", key + ".json")
    try:
        with open(cpath, encoding="utf-8") as f:
            cache = json.load(f)
    except (OSError, ValueError):
        cache = {}
    out, changed = {}, False
    for src in sources:
        name = os.path.basename(src.path)
        st = os.stat(src.path)
        stamp = [st.st_size, st.st_mtime_ns]
        hit = cache.get(name)
        if hit and hit.get("stamp") == stamp:
            out[name] = hit["sha256"]
            continue
        log(f"voxtral serve: computing sha256 of {os.path.join(d, name)} ({st.st_size / 1e6:.0f} MB, once) ...")
        out[name] = _sha256(src.path)
        cache[name] = {"stamp": stamp, "sha256": out[name]}
        changed = True
    if changed:
        os.makedirs(os.path.dirname(cpath), exist_ok=True)
        tmp = cpath + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(cache, f, indent=1)
        os.replace(tmp, cpath)
    return out


def scan_model(d: str, model_id: str, kind: str, demo: bool, cache_dir: str, log=print) -> ModelEntry:
    sources = shard_sources_from_dir(d)
    hashes = _from_manifest_json(d, sources) or _cached_hashes(d, sources, cache_dir, log)
    shards = [ShardInfo(os.path.basename(s.path), s.size, hashes[os.path.basename(s.path)], s.path)
              for s in sources]
    side = [n for n in SIDE_FILES if os.path.isfile(os.path.join(d, n))]
    return ModelEntry(model_id, kind, demo, d, shards, side)


def make_demo_model(models_dir: str, log=print, kind: str = "asr") -> str:
    """The tiny random-weight demo model of `kind` as shards (written once, then reused)."""
    from voxtral.testmodel import make_test_model
    name = DEMO_MODEL[0] if kind == "asr" else DEMO_TTS_MODEL[0]
    d = os.path.join(models_dir, name)
    if not os.path.exists(os.path.join(d, "manifest.json")):
        what = "speech-to-text" if kind == "asr" else "text-to-speech"
        log(f"voxtral serve: writing the random-weight {what} demo model to {d} ...")
        make_test_model(kind, d, seed=0, fmt="shards", preset="tiny", shard_bytes=DEMO_SHARD_BYTES)
    return d


def discover_models(models_dir: str, cache_dir: str, log=None, allow_demo: bool = True) -> list[ModelEntry]:
    """Real shard folders found under models_dir; with no ASR (TTS) model among them, the ASR
    (TTS) demo model too."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    found = []
    for name, kind in REAL_MODELS:
        d = os.path.join(models_dir, name)
        if os.path.isdir(d):
            try:
                found.append(scan_model(d, name, kind, False, cache_dir, log))
            except ModelFormatError as e:
                log(f"voxtral serve: WARNING: skipping {d}: {e}")
    if allow_demo and not any(m.kind == "asr" for m in found):
        d = make_demo_model(models_dir, log)
        found.append(scan_model(d, DEMO_MODEL[0], DEMO_MODEL[1], True, cache_dir, log))
    if allow_demo and not any(m.kind == "tts" for m in found):
        d = make_demo_model(models_dir, log, "tts")
        found.append(scan_model(d, DEMO_TTS_MODEL[0], DEMO_TTS_MODEL[1], True, cache_dir, log))
    return found
