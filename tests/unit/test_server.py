"""The HTTPS dev server without a browser: Range/ETag, traversal refusal, 404/405, concurrency,
model discovery (the demo model; manifest checks: test_server_manifest.py), the package zip and the
certificate."""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import ssl
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest

from voxtral.serve import build_config
from voxtral.serve.app import ServerConfig, ServerThread, make_app
from voxtral.serve.files import parse_range
from voxtral.serve.models import discover_models
from voxtral.serve.pkgzip import PackageZip
from voxtral.serve.tls import ensure_certificate, server_ssl_context
from voxtral.testmodel import make_test_model

SHARD_BYTES = 100_000


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("serve")
    models = base / "models"
    make_test_model("asr", str(models / "voxtral-q4-shards"), fmt="shards", shard_bytes=SHARD_BYTES)
    web = base / "web"
    web.mkdir()
    (web / "index.html").write_text("<!doctype html><title>t</title>")
    (web / "app.js").write_text("console.log(1)")
    (web / ".hidden").write_text("dotfile")
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TOP SECRET")
    os.symlink(outside / "secret.txt", web / "evil.txt")
    os.symlink(outside, web / "evil-dir")
    (base / "secret.txt").write_text("TOP SECRET")
    pyo = base / "pyodide"
    pyo.mkdir()
    (pyo / "pyodide.js").write_text("// fake runtime")
    shaders = base / "shaders"
    shaders.mkdir()
    (shaders / "q4_matvec.wgsl").write_text("// wgsl")
    data = base / "data"
    entries = discover_models(str(models), str(data), log=lambda m: None)
    cfg = ServerConfig(web_dir=str(web), shaders_dir=str(shaders), pyodide_dir=str(pyo), models=entries,
                       how_to_get_weights="get them")
    cert, key, _ = ensure_certificate(str(data))
    srv = ServerThread(make_app(cfg), "127.0.0.1", 0, server_ssl_context(cert, key)).start()
    yield {"srv": srv, "cfg": cfg, "models": models, "base": base, "data": data}
    srv.stop()


def request(env, path, method="GET", headers=None):
    """Raw request: the path goes on the wire exactly as given (no client-side normalization)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", env["srv"].port, context=ctx, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def shard_file(env, name="shard-aa"):
    return (env["models"] / "voxtral-q4-shards" / name).read_bytes()


URL_AA = "/models/voxtral-q4-shards/shard-aa"


def test_full_get_has_etag_length_and_ranges(env):
    data = shard_file(env)
    status, h, body = request(env, URL_AA)
    assert status == 200 and body == data
    assert h["content-length"] == str(len(data))
    assert h["accept-ranges"] == "bytes" and h["etag"].startswith('"')
    assert h["x-content-type-options"] == "nosniff"
    status, h2, body = request(env, URL_AA, "HEAD")
    assert status == 200 and body == b"" and h2["content-length"] == str(len(data))
    assert h2["etag"] == h["etag"]
    status, _, body = request(env, URL_AA, headers={"If-None-Match": h["etag"]})
    assert status == 304 and body == b""


@pytest.mark.parametrize("rng,start,end", [
    ("bytes=0-99", 0, 99),                      # start
    ("bytes=1000-1999", 1000, 1999),            # middle
    ("bytes=-500", SHARD_BYTES - 500, SHARD_BYTES - 1),  # suffix
    ("bytes=99000-", 99000, SHARD_BYTES - 1),   # open end
    ("bytes=99990-200000", 99990, SHARD_BYTES - 1),  # end past the file: clipped
    ("bytes=-200000", 0, SHARD_BYTES - 1),      # suffix longer than the file: all of it
])
def test_range_requests(env, rng, start, end):
    data = shard_file(env)
    status, h, body = request(env, URL_AA, headers={"Range": rng})
    assert status == 206
    assert body == data[start:end + 1]
    assert h["content-range"] == f"bytes {start}-{end}/{len(data)}"
    assert h["content-length"] == str(end - start + 1)
    status, h, body = request(env, URL_AA, "HEAD", headers={"Range": rng})
    assert status == 206 and body == b"" and h["content-length"] == str(end - start + 1)


@pytest.mark.parametrize("rng", ["bytes=100000-", "bytes=200000-300000", "bytes=500-100", "bytes=-0",
                                 "bytes=abc", "bytes=-", "bytes=1-2-3"])
def test_invalid_ranges_get_416(env, rng):
    status, h, _ = request(env, URL_AA, headers={"Range": rng})
    assert status == 416
    assert h["content-range"] == f"bytes */{SHARD_BYTES}"


def test_if_range_mismatch_sends_whole_file_and_multi_range_too(env):
    data = shard_file(env)
    status, _, body = request(env, URL_AA, headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert status == 200 and body == data
    status, _, body = request(env, URL_AA, headers={"Range": "bytes=0-9,20-29"})
    assert status == 200 and body == data


def test_parse_range_unit():
    assert parse_range("bytes=0-0", 10) == (0, 0)
    assert parse_range("bytes=-3", 10) == (7, 9)
    assert parse_range("items=0-3", 10) is None
    assert parse_range("bytes=10-", 10) == "invalid"
    assert parse_range("bytes=0-", 0) == "invalid"


@pytest.mark.parametrize("path", [
    "/../secret.txt", "/../../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/%2e%2e/secret.txt",
    "/%2e%2e%2fsecret.txt", "/..%2fsecret.txt", "/..%5csecret.txt", "/evil.txt", "/evil-dir/secret.txt",
    "/pyodide/../secret.txt", "/pyodide/%2e%2e/%2e%2e/secret.txt", "/shaders/..%2f..%2fsecret.txt",
    "/models/%2e%2e/secret.txt", "/models/..%2f..%2fsecret.txt/x", "/models/voxtral-q4-shards/..%2f..%2fsecret.txt",
    "/index.html%00.js", "//etc/passwd", "/%2fetc/passwd",
])
def test_traversal_is_refused(env, path):
    status, _, body = request(env, path)
    # under /models/<id>/ only the manifest's file names exist: anything else is simply not there
    assert status == (404 if path.startswith("/models/voxtral-q4-shards/") else 403), (path, status)
    assert b"TOP SECRET" not in body and b"root:" not in body


def test_encoded_traversal_gets_403(env):
    assert request(env, "/%2e%2e/secret.txt")[0] == 403
    assert request(env, "/evil.txt")[0] == 403  # symlink out of the root


@pytest.mark.parametrize("path", ["/nope.js", "/models/voxtral-q4-shards/shard-zz", "/models/unknown/shard-aa",
                                  "/models/voxtral-q4-shards/manifest.json", "/pyodide/nothing.wasm", "/.hidden",
                                  "/api/nothing", "/shaders/none.wgsl", "/models/"])
def test_unknown_paths_404(env, path):
    assert request(env, path)[0] == 404


def test_only_get_and_head(env):
    for m in ("POST", "PUT", "DELETE", "PATCH"):
        status, h, _ = request(env, URL_AA, m)
        assert status == 405 and "GET" in h["allow"]


def test_static_and_api(env):
    status, h, body = request(env, "/")
    assert status == 200 and b"<title>t</title>" in body and h["content-type"].startswith("text/html")
    status, h, _ = request(env, "/app.js")
    assert status == 200 and h["content-type"].startswith("text/javascript")
    assert request(env, "/shaders/q4_matvec.wgsl")[0] == 200
    assert request(env, "/pyodide/pyodide.js")[0] == 200
    status, _, body = request(env, "/api/info")
    info = json.loads(body)
    m, tts = info["models"]  # the real ASR shards, and the TTS demo (no TTS weights there)
    assert m["id"] == "voxtral-q4-shards" and m["kind"] == "asr" and not m["demo"] and not info["demo"]
    assert tts["id"] == "demo-tts-tiny-shards" and tts["kind"] == "tts" and tts["demo"]
    sizes = [s["size"] for s in m["shards"]]
    assert sum(sizes) == m["total_size"] and len(sizes) >= 3
    for s in m["shards"]:
        assert s["sha256"] == hashlib.sha256(shard_file(env, s["name"])).hexdigest()
        assert s["url"] == f"/models/voxtral-q4-shards/{s['name']}"


def test_concurrent_downloads(env):
    names = [s.name for s in env["cfg"].models[0].shards]
    want = {n: shard_file(env, n) for n in names}
    jobs = [(n, None) for n in names] * 4 + [(n, "bytes=5000-60000") for n in names] * 2

    def get(job):
        name, rng = job
        status, _, body = request(env, f"/models/voxtral-q4-shards/{name}", headers={"Range": rng} if rng else None)
        return name, rng, status, body

    before = len(env["cfg"].shard_requests)
    with ThreadPoolExecutor(8) as ex:
        results = list(ex.map(get, jobs))
    for name, rng, status, body in results:
        if rng:
            assert status == 206 and body == want[name][5000:60001]
        else:
            assert status == 200 and body == want[name]
    assert len(env["cfg"].shard_requests) - before == len(jobs)
    status, _, body = request(env, "/api/stats")
    assert len(json.loads(body)["shard_requests"]) == len(env["cfg"].shard_requests)


def test_demo_model_when_no_real_weights(tmp_path):
    cfg = build_config(str(tmp_path / "models"), str(tmp_path / "data"), log=lambda m: None)
    m, tts = cfg.models
    assert m.demo and m.kind == "asr" and m.id == "demo-asr-tiny-shards"
    assert len(m.shards) >= 2  # several shards even for the tiny model
    assert (tmp_path / "models" / "demo-asr-tiny-shards" / "shard-aa").exists()
    assert tts.demo and tts.kind == "tts" and tts.id == "demo-tts-tiny-shards" and len(tts.shards) >= 2
    assert (tmp_path / "models" / "demo-tts-tiny-shards" / "manifest.json").exists()
    assert "Hugging Face" in cfg.how_to_get_weights


def test_certificate_made_once_and_reused(tmp_path):
    cert, key, created = ensure_certificate(str(tmp_path))
    assert created and oct(os.stat(key).st_mode & 0o777) == "0o600"
    cert2, key2, created2 = ensure_certificate(str(tmp_path))
    assert (cert2, key2, created2) == (cert, key, False)
    from cryptography import x509
    c = x509.load_pem_x509_certificate(open(cert, "rb").read())
    san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)


def test_certificate_with_openssl_cli(tmp_path):
    import shutil
    if not shutil.which("openssl"):
        pytest.skip("no openssl command")
    from voxtral.serve import tls
    cert, key = str(tmp_path / "c.pem"), str(tmp_path / "k.pem")
    tls._make_with_openssl(cert, key, ["localhost", "127.0.0.1"])
    server_ssl_context(cert, key)  # loads


def test_package_zip_holds_only_browser_modules(tmp_path):
    data, etag = PackageZip().get()
    assert PackageZip().get()[1] == etag  # deterministic
    names = zipfile.ZipFile(__import__("io").BytesIO(data)).namelist()
    for must in ("voxtral/__init__.py", "voxtral/browser.py", "voxtral/asr_pipeline.py", "voxtral/transcript.py",
                 "voxtral/audio/wav.py", "voxtral/tokenizer/bpe.py", "voxtral/weights/gguf.py",
                 "voxtral/models/asr/model.py", "voxtral/backends/numpy_backend.py", "voxtral/data/tts_params.json",
                 "voxtral/backends/webgpu/js_host.py", "voxtral/backends/webgpu/selftest.py",
                 "voxtral/shaders/q4_matvec.wgsl"):  # the WebGPU backend compiles the zip's shaders
        assert must in names
    for never in ("voxtral/cli.py", "voxtral/serve/app.py", "voxtral/testmodel.py", "voxtral/transcribe_cli.py"):
        assert never not in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    # the zip alone (plus numpy) runs the browser session: extract it first on sys.path
    out = tmp_path / "pkg"
    zipfile.ZipFile(__import__("io").BytesIO(data)).extractall(out)
    models = tmp_path / "m"
    make_test_model("asr", str(models), fmt="shards", shard_bytes=SHARD_BYTES)
    code = f"""
import sys, json, os
sys.path.insert(0, {str(out)!r})
import voxtral, voxtral.browser as b
assert voxtral.__file__.startswith({str(out)!r}), voxtral.__file__
names = sorted(n for n in os.listdir({str(models)!r}) if n.startswith('shard-'))
s = b.Session()
s.load([open(os.path.join({str(models)!r}, n), 'rb').read() for n in names])
print(json.loads(s.transcribe_samples(b'\\0' * 4 * 16000))['text'] is not None)
bad = [m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'soundfile', 'gguf', 'tqdm', 'mistral_common')]
print(bad)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["True", "[]"]


def test_serve_command_prints_url_and_demo_note(tmp_path):
    env = dict(os.environ, VOXTRAL_DATA_DIR=str(tmp_path / "data"))
    p = subprocess.Popen([sys.executable, "-m", "voxtral", "serve", "--port", "0", "--models", str(tmp_path / "models")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = p.stdout.readline()
        assert line.startswith("serving https://127.0.0.1:")
    finally:
        p.terminate()
        _, err = p.communicate(timeout=30)
    assert "RANDOM-WEIGHT DEMO MODEL" in err and "Hugging Face" in err
    assert "RANDOM-WEIGHT TTS DEMO MODEL" in err and "voxtral shard models/voxtral-tts-q4.gguf" in err
    assert os.path.exists(tmp_path / "data" / "tls" / "localhost-cert.pem")


def test_static_export_has_everything_the_page_fetches(env, tmp_path):
    """`voxtral serve --export`: /api/info as a file whose URLs all resolve inside the folder, the
    package zip (with the benchmark modules), the runtime and the shards linked."""
    from voxtral.serve.export import export_site
    out = tmp_path / "site"
    pyo = tmp_path / "pyodide"
    pyo.mkdir()
    (pyo / "pyodide.js").write_text("// fake runtime")
    (pyo / "READY.json").write_text("{}")
    e = env["cfg"]
    cfg = ServerConfig(web_dir=e.web_dir, shaders_dir=e.shaders_dir, pyodide_dir=str(pyo), models=e.models)
    export_site(cfg, str(out))
    info = json.loads((out / "api" / "info").read_text())
    assert info["package_url"] == "/py/voxtral.zip" and info["pyodide"]["ready"] is True
    names = zipfile.ZipFile(out / "py" / "voxtral.zip").namelist()
    assert {"voxtral/asr_bench.py", "voxtral/random_weights.py", "voxtral/browser.py"} <= set(names)
    assert (out / "index.html").read_text() == (env["base"] / "web" / "index.html").read_text()
    assert (out / "pyodide" / "pyodide.js").read_text() == "// fake runtime"
    model = info["models"][0]
    for s in model["shards"]:
        data = (out / s["url"].lstrip("/")).read_bytes()
        assert len(data) == s["size"] and hashlib.sha256(data).hexdigest() == s["sha256"]
    # --copy: real files, no links out of the folder
    copied = tmp_path / "copied"
    export_site(cfg, str(copied), link=False)
    assert not any(p.is_symlink() for p in copied.rglob("*"))
    assert (copied / model["shards"][0]["url"].lstrip("/")).read_bytes() == shard_file(env)


def test_export_refuses_without_runtime_or_app(env, tmp_path):
    from voxtral.errors import VoxtralError
    from voxtral.serve.export import export_site
    cfg = env["cfg"]  # its runtime folder has no READY.json
    ready = ServerConfig(web_dir=cfg.web_dir, shaders_dir=cfg.shaders_dir, pyodide_dir=str(tmp_path / "none"),
                         models=[])
    with pytest.raises(VoxtralError, match="Pyodide runtime is missing"):
        export_site(ready, str(tmp_path / "a"))
    no_app = ServerConfig(web_dir=str(tmp_path / "noweb"), shaders_dir=cfg.shaders_dir,
                          pyodide_dir=cfg.pyodide_dir, models=[])
    with pytest.raises(VoxtralError, match="browser app is not at"):
        export_site(no_app, str(tmp_path / "b"))


def test_serve_export_command(tmp_path):
    """`voxtral serve --export DIR` from the command line: the checkout's page, /api/info as a file
    with no model (--no-demo, empty --models), the package zip; exit code 0."""
    assets = tmp_path / "assets" / "pyodide"
    assets.mkdir(parents=True)
    (assets / "READY.json").write_text("{}")
    (assets / "pyodide.js").write_text("// runtime")
    env = dict(os.environ, VOXTRAL_WEB_ASSETS=str(tmp_path / "assets"), VOXTRAL_DATA_DIR=str(tmp_path / "data"))
    out = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "voxtral", "serve", "--export", str(out), "--no-demo",
                        "--models", str(tmp_path / "models")], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "static files" in r.stderr
    assert json.loads((out / "api" / "info").read_text())["models"] == []
    assert (out / "index.html").is_file() and (out / "worker.js").is_file()
    assert (out / "pyodide" / "pyodide.js").read_text() == "// runtime"
    assert "voxtral/asr_bench.py" in zipfile.ZipFile(out / "py" / "voxtral.zip").namelist()


def test_malformed_requests_are_logged_in_one_line(tmp_path, caplog):
    """A bad method or an over-long request line gets 400 and one WARNING-or-lower line in the
    log, not an ERROR with a traceback (a client's mistake, not the server's)."""
    import logging
    import socket
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("x")
    cfg = ServerConfig(web_dir=str(web), shaders_dir=str(tmp_path), pyodide_dir=str(tmp_path), models=[])
    caplog.set_level(logging.DEBUG, logger="aiohttp.server")
    srv = ServerThread(make_app(cfg), "127.0.0.1", 0).start()
    try:
        for payload in (b"GARBAGE / HTTP/1.1\r\n\r\n", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
                s.sendall(payload)
                assert b" 400 Bad Request" in s.recv(64)
    finally:
        srv.stop()
    records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(records) == 2, [r.getMessage() for r in records]
    for r in records:
        assert r.exc_info is None and r.levelno <= logging.WARNING
        assert "refused with 400" in r.getMessage() and "Traceback" not in r.getMessage()
