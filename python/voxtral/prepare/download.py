"""`voxtral download`: fetch the published weights from the Hugging Face hub, resumably.

Sources (repo ids from the specs):
  asr, mistral   mistralai/Voxtral-Mini-4B-Realtime-2602  -> DIR/Voxtral-Mini-4B-Realtime-2602/
  tts, mistral   mistralai/Voxtral-4B-TTS-2603            -> DIR/Voxtral-4B-TTS-2603/
  asr, gguf      TrevorJS/voxtral-mini-realtime-gguf      -> DIR/voxtral-q4.gguf + DIR/tekken.json
  asr, shards    TrevorJS/voxtral-mini-realtime-gguf      -> DIR/voxtral-q4-shards/ (+ manifest.json)
(the GGUF names are where the community tools and `voxtral transcribe` look for them).

Everything hub-specific goes through `huggingface_hub`: the file list and sizes (`HfApi`), URLs,
auth headers, and the byte transfer itself (`http_get`, which retries a dropped connection from
where it stopped and shows a progress bar). What this module adds is resume *across runs*: since
huggingface_hub 1.x a download that is killed loses its temporary file, which for an 8.9 GB
checkpoint means starting over. Here each file is fetched into DIR/.voxtral-download/<file>.part
(named after the file's hash, so bytes of an older version are never spliced into a newer one),
appended to with an HTTP Range request on the next run, checked against the hub's sha256 (LFS
files) or git blob id (small files), and only then moved into place. A finished file is skipped on
the next run. HF_ENDPOINT (or --endpoint) points it at a mirror; HF_TOKEN / `hf auth login` at a
gated repo.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from voxtral.errors import ModelFormatError, VoxtralError

ASR_REPO = "mistralai/Voxtral-Mini-4B-Realtime-2602"
TTS_REPO = "mistralai/Voxtral-4B-TTS-2603"
GGUF_REPO = "TrevorJS/voxtral-mini-realtime-gguf"
STATE_DIR = ".voxtral-download"


@dataclass(frozen=True)
class Source:
    repo: str
    patterns: tuple[str, ...]  # every pattern must match at least one file
    subdir: str  # under --dir ("" = --dir itself)
    model_path: str  # what open_model is given afterwards, relative to --dir


SOURCES = {
    ("asr", "mistral"): Source(ASR_REPO, ("params.json", "tekken.json", "consolidated.safetensors"),
                               "Voxtral-Mini-4B-Realtime-2602", "Voxtral-Mini-4B-Realtime-2602"),
    ("tts", "mistral"): Source(TTS_REPO, ("params.json", "tekken.json", "consolidated.safetensors",
                                          "voice_embedding/*.pt"),
                               "Voxtral-4B-TTS-2603", "Voxtral-4B-TTS-2603"),
    ("asr", "gguf"): Source(GGUF_REPO, ("voxtral-q4.gguf", "tekken.json"), "", "voxtral-q4.gguf"),
    ("asr", "shards"): Source(GGUF_REPO, ("shard-[a-z][a-z]", "tekken.json"), "voxtral-q4-shards",
                              "voxtral-q4-shards"),
}


@dataclass
class RemoteFile:
    repo: str
    commit: str
    path: str  # in the repo, '/'-separated
    size: int
    sha256: str | None  # LFS files
    git_oid: str | None  # git blob sha1 (what the hub lists for every file)


def _hub_error(e: Exception, what: str, endpoint: str | None) -> VoxtralError:
    """One readable line for the ways a hub call fails."""
    from huggingface_hub.errors import (GatedRepoError, OfflineModeIsEnabled, RepositoryNotFoundError,
                                        RevisionNotFoundError)
    if isinstance(e, OfflineModeIsEnabled):
        return VoxtralError(f"{what}: downloads are disabled because HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) "
                            f"is set; unset it to download")
    if isinstance(e, GatedRepoError):
        return VoxtralError(f"{what}: the repository is gated; accept its terms on the hub and log in "
                            f"(`hf auth login`) or set HF_TOKEN")
    if isinstance(e, RevisionNotFoundError):
        return VoxtralError(f"{what}: no such revision ({e.__class__.__name__})")
    if isinstance(e, RepositoryNotFoundError):
        return VoxtralError(f"{what}: repository not found (or private: log in / set HF_TOKEN)")
    host = endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    return VoxtralError(f"{what}: cannot download from {host}: {e.__class__.__name__}: {e}".rstrip(": "))


def list_files(repo: str, patterns, revision: str = "main", endpoint: str | None = None,
               token=None) -> list[RemoteFile]:
    """The repo files matching `patterns` at one commit (resolved once, so a push during a long
    download cannot mix two versions)."""
    import httpx2
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.hf_api import RepoFile
    api = HfApi(endpoint=endpoint, token=token)
    try:
        commit = api.model_info(repo, revision=revision).sha
        entries = [f for f in api.list_repo_tree(repo, recursive=True, revision=commit) if isinstance(f, RepoFile)]
    except (HfHubHTTPError, httpx2.HTTPError, OSError) as e:
        raise _hub_error(e, repo, endpoint) from None
    out = []
    for pat in patterns:
        hits = [f for f in entries if fnmatch.fnmatchcase(f.path, pat)]
        if not hits:
            raise VoxtralError(f"{repo}@{commit[:12]}: no file matches {pat!r} (the repository has: "
                               f"{', '.join(sorted(f.path for f in entries)[:12])})")
        out += [RemoteFile(repo, commit, f.path, f.size, f.lfs.sha256 if f.lfs else None, f.blob_id)
                for f in sorted(hits, key=lambda f: f.path) if f.path not in {o.path for o in out}]
    return out


def _hash_file(path: str, rf: RemoteFile) -> bool:
    """Does the local file hold exactly the hub's bytes? sha256 for LFS files, else the git blob id
    (sha1 over 'blob <size>\\0' + content)."""
    if rf.sha256:
        h, want = hashlib.sha256(), rf.sha256
    elif rf.git_oid:
        h, want = hashlib.sha1(b"blob %d\0" % os.path.getsize(path)), rf.git_oid
    else:
        return os.path.getsize(path) == rf.size
    buf = bytearray(8 << 20)
    with open(path, "rb") as f:
        while n := f.readinto(buf):
            h.update(memoryview(buf)[:n])
    return h.hexdigest() == want.lower()


def _state_paths(root: str, rf: RemoteFile) -> tuple[str, str]:
    key = (rf.sha256 or rf.git_oid or "nohash")[:16]
    base = os.path.join(root, STATE_DIR, *rf.path.split("/"))
    return base + f".{key}.part", base + ".json"


def _read_marker(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)


class _Quiet:
    """tqdm stand-in for --quiet (huggingface_hub accepts any class with tqdm's interface)."""

    def __init__(self, *a, **k):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n=1):
        pass

    def close(self):
        pass


def fetch_file(rf: RemoteFile, root: str, endpoint: str | None = None, token=None, progress: bool = True,
               log=print) -> str:
    """Download one file into root/<path>, resuming a .part from an earlier run. Returns its path."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers
    final = os.path.join(root, *rf.path.split("/"))
    part, marker = _state_paths(root, rf)
    ident = {"repo": rf.repo, "path": rf.path, "size": rf.size, "sha256": rf.sha256, "git_oid": rf.git_oid}
    if os.path.isfile(final) and os.path.getsize(final) == rf.size:
        m = _read_marker(marker)
        if m is not None and {k: m.get(k) for k in ident} == ident:
            log(f"  {rf.path}: up to date")
            return final
        if _hash_file(final, rf):  # e.g. fetched by another tool: adopt it
            _write_marker(marker, ident, rf)
            log(f"  {rf.path}: already present, checksum ok")
            return final
    os.makedirs(os.path.dirname(part), exist_ok=True)
    os.makedirs(os.path.dirname(final) or ".", exist_ok=True)
    stale = re.compile(re.escape(os.path.basename(final)) + r"\.(?:[0-9a-f]{16}|nohash)\.part")
    for old in os.listdir(os.path.dirname(part)):  # parts of an older version of this file
        if stale.fullmatch(old) and old != os.path.basename(part):
            os.remove(os.path.join(os.path.dirname(part), old))
    have = os.path.getsize(part) if os.path.exists(part) else 0
    if have > rf.size:  # cannot be a prefix of this file
        os.remove(part)
        have = 0
    url = hf_hub_url(rf.repo, rf.path, revision=rf.commit, endpoint=endpoint)
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError
    try:
        meta = get_hf_file_metadata(url, token=token, endpoint=endpoint)
        headers = build_hf_headers(token=token)
        if not _same_origin(url, meta.location):
            headers.pop("authorization", None)  # a signed CDN URL: the token must not leave the hub
        log(f"  {rf.path}: " + (f"resuming at {have} of {rf.size} bytes" if have else f"{rf.size} bytes"))
        with open(part, "ab") as fh:
            http_get(meta.location, fh, resume_size=have, headers=headers, expected_size=rf.size,
                     displayed_filename=rf.path, tqdm_class=None if progress else _Quiet)
    except (HfHubHTTPError, httpx2.HTTPError, OSError) as e:
        kept = os.path.getsize(part) if os.path.exists(part) else 0
        err = _hub_error(e, f"{rf.repo}/{rf.path}", endpoint)
        raise VoxtralError(f"{err} ({kept} of {rf.size} bytes kept; run the same command again to "
                           f"resume)") from None
    if os.path.getsize(part) != rf.size or not _hash_file(part, rf):
        os.remove(part)  # a bad prefix would poison every resume: start this file over next time
        raise ModelFormatError(f"{rf.repo}/{rf.path}: downloaded bytes do not match the hub's checksum "
                               f"(corrupted in transit or changed on the server); run again to re-download")
    os.replace(part, final)
    _write_marker(marker, ident, rf)
    return final


def _write_marker(marker: str, ident: dict, rf: RemoteFile) -> None:
    os.makedirs(os.path.dirname(marker), exist_ok=True)
    with open(marker, "w") as f:
        json.dump({**ident, "commit": rf.commit}, f)


def _write_shard_manifest(root: str, files: list[RemoteFile]) -> None:
    """The community repo has no manifest; make one so the loader, server and browser can check the
    shards like ours. Hashes come from the hub listing, already verified against the bytes."""
    from voxtral.prepare.shard import write_manifest
    from voxtral.weights.loader import file_sha256
    shards = []
    for rf in files:
        if fnmatch.fnmatchcase(rf.path, "shard-[a-z][a-z]"):
            p = os.path.join(root, rf.path)
            shards.append({"name": rf.path, "size": rf.size, "sha256": rf.sha256 or file_sha256(p)})
    write_manifest(root, shards, f"{files[0].repo}@{files[0].commit}")


def download(kind: str, dir: str = "models", source: str = "mistral", revision: str = "main",
             endpoint: str | None = None, token=None, include=(), dry_run: bool = False,
             progress: bool = True, log=print) -> str:
    """Fetch one published model into `dir`; returns the path to give `--model`."""
    src = SOURCES.get((kind, source))
    if src is None:
        raise VoxtralError(f"no published {kind.upper()} model in {source!r} form "
                           + ("(TTS is published only as the BF16 Mistral directory; make a Q4 GGUF with "
                              "`voxtral quantize tts`)" if kind == "tts" else ""))
    files = list_files(src.repo, tuple(src.patterns) + tuple(include), revision, endpoint, token)
    root = os.path.join(dir, src.subdir) if src.subdir else dir
    total = sum(f.size for f in files)
    log(f"{src.repo} @ {files[0].commit[:12]}: {len(files)} files, {total / 1e9:.2f} GB -> {root}")
    if dry_run:
        for f in files:
            log(f"  {f.path}  {f.size}")
        return os.path.join(dir, src.model_path)
    os.makedirs(root, exist_ok=True)
    for rf in files:
        fetch_file(rf, root, endpoint, token, progress, log)
    if source == "shards":
        _write_shard_manifest(root, files)
    from voxtral.weights.loader import open_model
    path = os.path.join(dir, src.model_path)
    mf = open_model(path)  # the layout check: a complete, usable model
    log(f"ready: {path} ({mf.kind.upper()}, {len(mf.shapes)} tensors)")
    return path
