"""`voxtral download` against a local fake Hugging Face hub (no network here).

The fake implements what huggingface_hub 2.x calls (read from its source): `GET
/api/models/{repo}/revision/{rev}` (model_info: the commit sha), `GET /api/models/{repo}/tree/{rev}`
(list_repo_tree: sizes, git oids, LFS sha256), and `HEAD/GET /{repo}/resolve/{rev}/{file}` with
ETag / X-Repo-Commit / Content-Length. Like the real hub, LFS files answer the HEAD with a 302 to
a CDN on another origin (another port here) carrying X-Linked-Etag / X-Linked-Size; the CDN
serves Range requests. Faults (drop the connection, stall, corrupt a byte) are injected per file.
`snapshot_download` against it checks that the fake behaves like the hub as huggingface_hub sees it.
"""
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("huggingface_hub")
from aiohttp import web  # noqa: E402

from voxtral.errors import ModelFormatError, VoxtralError  # noqa: E402
from voxtral.prepare.download import ASR_REPO, GGUF_REPO, TTS_REPO, download  # noqa: E402
from voxtral.testmodel import make_test_model  # noqa: E402
from voxtral.weights.loader import open_model, read_manifest  # noqa: E402

LFS_MIN = 10_000  # files at least this big are LFS files (the hub: binaries and anything large)
MB = 1 << 20
CHUNK = 10 * MB  # huggingface_hub's http_get writes in 10 MiB pieces: resume granularity


class FakeHub:
    def __init__(self):
        self.repos: dict[str, dict] = {}
        self.faults: dict[str, tuple] = {}  # repo path -> ("drop", n, times) | ("stall", n) | ("corrupt",)
        self.log: list[tuple[str, str, str | None]] = []  # (method, url path, Range header)
        self.release = None  # asyncio.Event that ends a stall

    def add_repo(self, repo: str, files: dict[str, bytes]) -> str:
        commit = hashlib.sha1(repo.encode() + b"".join(sorted(files.values()))).hexdigest()
        self.repos[repo] = {"commit": commit, "files": dict(files)}
        return commit

    # --- server plumbing: one loop in a thread, two origins (hub and CDN) ---
    def start(self):
        ready = threading.Event()

        def run():
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            self.release = asyncio.Event()
            app = web.Application()
            app.router.add_route("GET", "/api/models/{ns}/{name}/revision/{rev}", self.model_info)
            app.router.add_route("GET", "/api/models/{ns}/{name}/tree/{rev}", self.tree)
            app.router.add_route("*", "/{ns}/{name}/resolve/{rev}/{path:.+}", self.resolve)
            app.router.add_route("*", "/cdn/{ns}/{name}/{sha}/{path:.+}", self.cdn)
            self.runner = web.AppRunner(app, access_log=None)
            self.loop.run_until_complete(self.runner.setup())
            ports = []
            for _ in range(2):
                site = web.TCPSite(self.runner, "127.0.0.1", 0)
                self.loop.run_until_complete(site.start())
                ports.append(site._server.sockets[0].getsockname()[1])
            self.url, self.cdn_url = (f"http://127.0.0.1:{p}" for p in ports)
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)
        return self

    def stop(self):
        self.loop.call_soon_threadsafe(self.release.set)
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def unstall(self):
        self.loop.call_soon_threadsafe(self.release.set)

    # --- hub API ---
    def _repo(self, request):
        repo = f"{request.match_info['ns']}/{request.match_info['name']}"
        r = self.repos.get(repo)
        if r is None:
            raise web.HTTPNotFound(headers={"X-Error-Code": "RepoNotFound"}, text="Repository not found")
        if request.match_info["rev"] not in ("main", r["commit"]):
            raise web.HTTPNotFound(headers={"X-Error-Code": "RevisionNotFound"}, text="Invalid rev id")
        return repo, r

    async def model_info(self, request):
        self.log.append(("GET", request.path, None))
        repo, r = self._repo(request)
        return web.json_response({"id": repo, "modelId": repo, "sha": r["commit"], "private": False,
                                  "siblings": [{"rfilename": p} for p in sorted(r["files"])]})

    async def tree(self, request):
        self.log.append(("GET", request.path, None))
        _, r = self._repo(request)
        out, dirs = [], set()
        for path, data in sorted(r["files"].items()):
            parts = path.split("/")
            dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
            e = {"type": "file", "path": path, "size": len(data), "oid": _git_oid(data)}
            if len(data) >= LFS_MIN:  # the listed oid is then the pointer file's; lfs.oid is the content's
                e["oid"] = _git_oid(b"pointer " + _sha256(data).encode())
                e["lfs"] = {"oid": _sha256(data), "size": len(data), "pointerSize": 134}
            out.append(e)
        out += [{"type": "directory", "path": d, "oid": "0" * 40, "size": 0} for d in sorted(dirs)]
        return web.json_response(out)

    async def resolve(self, request):
        self.log.append((request.method, request.path, request.headers.get("Range")))
        repo, r = self._repo(request)
        path = request.match_info["path"]
        if path not in r["files"]:
            raise web.HTTPNotFound(headers={"X-Error-Code": "EntryNotFound", "X-Repo-Commit": r["commit"]})
        data = r["files"][path]
        if len(data) >= LFS_MIN:
            sha = _sha256(data)
            raise web.HTTPFound(f"{self.cdn_url}/cdn/{repo}/{sha}/{path}?signature=x", headers={
                "X-Repo-Commit": r["commit"], "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data)),
                "ETag": f'"{_git_oid(data)}"'})
        return await self._serve(request, path, data, {"X-Repo-Commit": r["commit"], "ETag": f'"{_git_oid(data)}"'})

    async def cdn(self, request):
        self.log.append((request.method, request.path, request.headers.get("Range")))
        repo = f"{request.match_info['ns']}/{request.match_info['name']}"
        path = request.match_info["path"]
        data = self.repos[repo]["files"][path]
        assert "authorization" not in {k.lower() for k in request.headers}, "token sent to the CDN"
        return await self._serve(request, path, data, {"ETag": f'"{_sha256(data)}"'})

    async def _serve(self, request, path, data, headers):
        start = 0
        rng = request.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
        body = data[start:]
        headers = {**headers, "Accept-Ranges": "bytes", "Content-Length": str(len(body))}
        status = 200
        if rng:
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        if request.method == "HEAD":
            return web.Response(status=status, headers=headers)
        fault = self.faults.get(path)
        if fault and fault[0] == "corrupt":
            body = bytes([body[0] ^ 1]) + body[1:]
        resp = web.StreamResponse(status=status, headers=headers)
        await resp.prepare(request)
        limit = len(body)
        if fault and fault[0] in ("drop", "stall"):
            limit = min(limit, fault[1])
        for i in range(0, limit, MB):
            await resp.write(body[i:min(i + MB, limit)])
        if limit < len(body):
            if fault[0] == "drop":
                n = fault[2] - 1
                self.faults[path] = ("drop", fault[1], n) if n > 0 else None
                request.transport.close()  # a network cut mid-body
                return resp
            await self.release.wait()  # a stalled connection, until the client is killed
            request.transport.close()
            return resp
        await resp.write_eof()
        return resp


def _sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _git_oid(b: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(b) + b).hexdigest()


def _dir_files(path: str) -> dict[str, bytes]:
    out = {}
    for root, _, names in os.walk(path):
        for n in names:
            p = os.path.join(root, n)
            out[os.path.relpath(p, path).replace(os.sep, "/")] = open(p, "rb").read()
    return out


@pytest.fixture(autouse=True)
def online(monkeypatch):
    """scripts/test.sh sets HF_HUB_OFFLINE=1 to keep tests off the internet; the fake hub is local."""
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """Tiny models in the published layouts, plus a 24 MiB extra file for resume tests."""
    base = tmp_path_factory.mktemp("published")
    asr = _dir_files(make_test_model("asr", str(base / "asr"), seed=3))
    tts = _dir_files(make_test_model("tts", str(base / "tts"), seed=3))
    gguf_path = make_test_model("asr", str(base / "gguf"), seed=3, fmt="gguf")
    shards = _dir_files(make_test_model("asr", str(base / "shards"), seed=3, fmt="shards", shard_bytes=200_000))
    community = {"voxtral-q4.gguf": open(gguf_path, "rb").read(),
                 "tekken.json": asr["tekken.json"], "README.md": b"# community gguf\n"}
    community.update({k: v for k, v in shards.items() if k.startswith("shard-")})
    asr["README.md"] = b"# Voxtral\n"
    asr["extra/blob.bin"] = os.urandom(24 * MB)
    return {ASR_REPO: asr, TTS_REPO: tts, GGUF_REPO: community}


@pytest.fixture
def hub(published):
    h = FakeHub()
    for repo, files in published.items():
        h.add_repo(repo, files)
    h.start()
    yield h
    h.stop()


def _dl(hub, kind, tmp_path, **kw):
    logs = []
    kw.setdefault("progress", False)
    path = download(kind, str(tmp_path / "models"), endpoint=hub.url, token=False, log=logs.append, **kw)
    return path, logs


def _content_gets(hub):
    return [e for e in hub.log if e[0] == "GET" and ("/cdn/" in e[1] or "/resolve/" in e[1])]


def test_download_asr_mistral_and_rerun_is_a_no_op(hub, published, tmp_path):
    path, logs = _dl(hub, "asr", tmp_path)
    assert path == str(tmp_path / "models" / "Voxtral-Mini-4B-Realtime-2602")
    for f in ("params.json", "tekken.json", "consolidated.safetensors"):
        assert open(os.path.join(path, f), "rb").read() == published[ASR_REPO][f]
    assert not os.path.exists(os.path.join(path, "README.md")), "only the needed files by default"
    assert open_model(path).kind == "asr"
    assert "ready:" in logs[-1]
    # The big file went through the CDN origin (like the hub's LFS redirect), small ones directly.
    gets = _content_gets(hub)
    assert any("/cdn/" in g[1] and g[1].endswith("consolidated.safetensors") for g in gets)
    n = len(hub.log)
    _, logs = _dl(hub, "asr", tmp_path)
    assert _content_gets(hub) == gets, "a complete download is not fetched again"
    assert sum("up to date" in m for m in logs) == 3
    assert len(hub.log) - n == 2  # only model_info + tree


def test_download_tts_with_voices(hub, published, tmp_path):
    path, _ = _dl(hub, "tts", tmp_path)
    mf = open_model(path)
    assert mf.kind == "tts" and len(mf.voices) == 20
    assert _dir_files(path).keys() >= {k for k in published[TTS_REPO]}


def test_download_community_gguf_and_shards(hub, published, tmp_path):
    g, _ = _dl(hub, "asr", tmp_path, source="gguf")
    assert g == str(tmp_path / "models" / "voxtral-q4.gguf")
    assert open(g, "rb").read() == published[GGUF_REPO]["voxtral-q4.gguf"]
    assert os.path.exists(tmp_path / "models" / "tekken.json")  # beside the .gguf, where the loader looks
    s, _ = _dl(hub, "asr", tmp_path, source="shards")
    assert s == str(tmp_path / "models" / "voxtral-q4-shards")
    m = read_manifest(s)  # the community repo has none: written from the verified hashes
    names = sorted(k for k in published[GGUF_REPO] if k.startswith("shard-"))
    assert [e["name"] for e in m["shards"]] == names
    assert [e["sha256"] for e in m["shards"]] == [_sha256(published[GGUF_REPO][n]) for n in names]
    assert open_model(s, verify=True).format == "shards"
    a, b = open_model(g), open_model(s)
    for name in a.shapes:
        x, y = a.tensor(name), b.tensor(name)
        assert (x.raw == y.raw).all() if hasattr(x, "raw") else (x == y).all()


def test_include_dry_run_and_source_errors(hub, tmp_path):
    path, logs = _dl(hub, "asr", tmp_path, include=["README.md"], dry_run=True)
    assert any("README.md" in m for m in logs) and not os.path.exists(path)
    with pytest.raises(VoxtralError, match="no file matches 'nothing.txt'"):
        _dl(hub, "asr", tmp_path, include=["nothing.txt"])
    with pytest.raises(VoxtralError, match="only as the BF16 Mistral directory"):
        _dl(hub, "tts", tmp_path, source="gguf")


def test_resume_after_dropped_connection_within_a_run(hub, published, tmp_path):
    """A network cut mid-file: huggingface_hub's http_get retries with a Range request."""
    hub.faults["extra/blob.bin"] = ("drop", 15 * MB, 1)
    path, _ = _dl(hub, "asr", tmp_path, include=["extra/blob.bin"])
    assert open(os.path.join(path, "extra/blob.bin"), "rb").read() == published[ASR_REPO]["extra/blob.bin"]
    ranges = [e[2] for e in _content_gets(hub) if e[1].endswith("blob.bin")]
    assert ranges == [None, f"bytes={CHUNK}-"], ranges


def test_corrupted_transfer_is_detected_and_redone(hub, published, tmp_path):
    hub.faults["consolidated.safetensors"] = ("corrupt",)
    with pytest.raises(ModelFormatError, match="do not match the hub's checksum"):
        _dl(hub, "asr", tmp_path)
    root = tmp_path / "models" / "Voxtral-Mini-4B-Realtime-2602"
    assert not (root / "consolidated.safetensors").exists()
    assert not [p for p in (root / ".voxtral-download").iterdir() if p.name.endswith(".part")]
    hub.faults.clear()
    path, _ = _dl(hub, "asr", tmp_path)
    assert open(os.path.join(path, "consolidated.safetensors"), "rb").read() == \
        published[ASR_REPO]["consolidated.safetensors"]


def test_existing_correct_file_is_adopted_and_wrong_one_replaced(hub, published, tmp_path):
    root = tmp_path / "models" / "Voxtral-Mini-4B-Realtime-2602"
    root.mkdir(parents=True)
    (root / "params.json").write_bytes(published[ASR_REPO]["params.json"])  # e.g. from `hf download`
    bad = bytearray(published[ASR_REPO]["consolidated.safetensors"])
    bad[-1] ^= 0xFF
    (root / "consolidated.safetensors").write_bytes(bytes(bad))  # right size, wrong bytes
    state = root / ".voxtral-download"
    state.mkdir()
    (state / "consolidated.safetensors.0123456789abcdef.part").write_bytes(b"an older version's bytes")
    _, logs = _dl(hub, "asr", tmp_path)
    assert not (state / "consolidated.safetensors.0123456789abcdef.part").exists(), "stale part removed"
    assert any("params.json: already present, checksum ok" in m for m in logs)
    assert (root / "consolidated.safetensors").read_bytes() == published[ASR_REPO]["consolidated.safetensors"]


def test_hub_errors_are_one_clear_line(hub, tmp_path):
    hub.repos.pop(ASR_REPO)
    with pytest.raises(VoxtralError, match="repository not found"):
        _dl(hub, "asr", tmp_path)
    with pytest.raises(VoxtralError, match="no such revision"):
        _dl(hub, "tts", tmp_path, revision="v9")
    dead = FakeHub().start()
    url = dead.url
    dead.stop()
    with pytest.raises(VoxtralError, match="cannot download from"):
        download("tts", str(tmp_path), endpoint=url, token=False, progress=False, log=lambda m: None)
    import huggingface_hub.constants
    huggingface_hub.constants.HF_HUB_OFFLINE = True  # restored by the `online` fixture
    with pytest.raises(VoxtralError, match="HF_HUB_OFFLINE"):
        _dl(hub, "tts", tmp_path)


def test_fake_hub_serves_snapshot_download(hub, published, tmp_path):
    """The fake is faithful enough for huggingface_hub's own snapshot_download."""
    from huggingface_hub import snapshot_download
    out = snapshot_download(TTS_REPO, endpoint=hub.url, local_dir=str(tmp_path / "snap"),
                            cache_dir=str(tmp_path / "cache"), token=False)
    got = {k: v for k, v in _dir_files(out).items() if not k.startswith(".cache/")}
    assert got == published[TTS_REPO]


def _cli_env(hub, tmp_path):
    return dict(os.environ, HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf_home"), HF_HUB_DISABLE_IMPLICIT_TOKEN="1",
                HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1", HF_HUB_OFFLINE="0",
                TRANSFORMERS_OFFLINE="0")


def test_cli_resume_after_kill(hub, published, tmp_path):
    """Kill `voxtral download` mid-file (a crash, Ctrl-C, a closed laptop), run it again: it asks
    for the rest with a Range request and ends with the right bytes."""
    hub.faults["extra/blob.bin"] = ("stall", 15 * MB)
    cmd = [sys.executable, "-m", "voxtral", "download", "asr", "--dir", str(tmp_path / "models"),
           "--include", "extra/blob.bin"]
    env = _cli_env(hub, tmp_path)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    state = tmp_path / "models" / "Voxtral-Mini-4B-Realtime-2602" / ".voxtral-download" / "extra"
    deadline = time.time() + 60
    part = None
    while time.time() < deadline:
        parts = list(state.glob("blob.bin.*.part")) if state.exists() else []
        if parts and parts[0].stat().st_size >= CHUNK:
            part = parts[0]
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    assert part is not None, "the download never reached the stall"
    proc.kill()
    proc.wait(10)
    hub.unstall()
    hub.faults.clear()
    assert part.stat().st_size == CHUNK
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"resuming at {CHUNK} of {24 * MB} bytes" in r.stderr
    root = r.stdout.strip()
    assert open(os.path.join(root, "extra", "blob.bin"), "rb").read() == published[ASR_REPO]["extra/blob.bin"]
    ranges = [e[2] for e in _content_gets(hub) if e[1].endswith("blob.bin")]
    assert ranges == [None, f"bytes={CHUNK}-"], ranges
    assert not part.exists()
    marker = json.loads((state / "blob.bin.json").read_text())
    assert marker["sha256"] == _sha256(published[ASR_REPO]["extra/blob.bin"])


def test_cli_download_error_exit_code(hub, tmp_path):
    r = subprocess.run([sys.executable, "-m", "voxtral", "download", "tts", "--dir", str(tmp_path), "--source",
                        "shards"], env=_cli_env(hub, tmp_path), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "voxtral quantize tts" in r.stderr
