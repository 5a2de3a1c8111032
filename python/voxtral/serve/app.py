"""The HTTPS dev server (aiohttp): the browser app, the Pyodide runtime, the package zip, model shards.

URL space (GET and HEAD only; anything else 405; anything not listed 404):
  /                      web/index.html
  /<file>                web/<file>                      (app.js, worker.js, ...)
  /shaders/<file>        shaders/<file>                  (WGSL kernels for the WebGPU backend)
  /pyodide/<file>        the Pyodide 0.27.7 runtime + numpy wheel (scripts/fetch_web_assets.py)
  /py/voxtral.zip        the in-browser part of the package (+ shaders/*.wgsl), zipped on the fly
  /models/<id>/<file>    a model's shards and side files (Range, ETag), only those in the manifest
  /api/info              JSON: models (sizes, sha256, URLs), demo flag, how to get real weights
  /api/stats             JSON: shard requests served (tests check the browser cache with it)

Paths are resolved by hand from the raw URL: `..` (plain or percent-encoded), absolute paths,
backslashes, NUL bytes and symlinks that leave a root are refused with 403. Request lines and
header fields are limited to 8 KiB and 64 headers (HANDLER_LIMITS): larger requests get a 4xx and
their connection is closed.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from voxtral.serve.files import Refused, safe_path, send_file
from voxtral.serve.models import ModelEntry
from voxtral.serve.pkgzip import PackageZip

PYODIDE_VERSION = "0.27.7"


def repo_root() -> str:
    """The checkout the package was installed from (editable install): web/ and shaders/ live there."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.abspath(os.path.join(here, "..", "..", ".."))
    if os.path.isfile(os.path.join(root, "web", "index.html")):
        return root
    cwd = os.getcwd()
    if os.path.isfile(os.path.join(cwd, "web", "index.html")):
        return cwd
    return root


def default_assets_dir(root: str | None = None) -> str:
    return os.environ.get("VOXTRAL_WEB_ASSETS") or os.path.join(root or repo_root(), ".cache", "web-assets")


@dataclass
class ServerConfig:
    web_dir: str
    shaders_dir: str
    pyodide_dir: str
    models: list[ModelEntry]
    how_to_get_weights: str = ""
    shard_requests: list = field(default_factory=list)  # (model id, shard name, Range header or None)

    @property
    def pyodide_ready(self) -> bool:
        return os.path.isfile(os.path.join(self.pyodide_dir, "READY.json"))


# Request limits (the server only answers GET/HEAD of files; nothing legitimate comes near them).
# Over-long request lines get 414/400, over-long or too many headers 431/400, a body over
# client_max_size 413 if a handler ever read one - and the connection is closed, nobody else is affected.
HANDLER_LIMITS = {"max_line_size": 8190, "max_field_size": 8190, "max_headers": 64,
                  "keepalive_timeout": 75.0, "lingering_time": 2.0}
LIMITS = {"client_max_size": 64 * 1024, **HANDLER_LIMITS}

SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                    "Cross-Origin-Resource-Policy": "same-origin"}


class MalformedRequestFilter(logging.Filter):
    """aiohttp answers a malformed request (bad method, over-long line or header) with 400 itself but
    logs it with a full traceback, at ERROR level for some kinds: that is a client's mistake, not
    the server's. Such records become one WARNING line without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            what = " ".join(str(getattr(exc, "message", "") or exc).split())[:160]
            record.msg = f"{record.getMessage()}: refused with {exc.code}: {what}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
            if record.levelno > logging.WARNING:
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _quiet_malformed_requests() -> None:
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequestFilter) for f in logger.filters):
        logger.addFilter(MalformedRequestFilter())


def _json(data, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(data, indent=1), content_type="application/json",
                        headers={"Cache-Control": "no-store"})


def _not_found() -> web.Response:
    return web.Response(status=404, text="404 not found\n")


def site_info(cfg: ServerConfig) -> dict:
    """/api/info: where the page finds the runtime, the package and the models."""
    return {"pyodide": {"version": PYODIDE_VERSION, "index_url": "/pyodide/", "ready": cfg.pyodide_ready,
                        "how_to_fetch": "python scripts/fetch_web_assets.py (or bash scripts/setup.sh)"},
            "package_url": "/py/voxtral.zip",
            "models": [m.to_json() for m in cfg.models],
            "demo": any(m.demo for m in cfg.models) and not any(not m.demo and m.kind == "asr"
                                                                for m in cfg.models),
            "how_to_get_weights": cfg.how_to_get_weights}


def make_app(cfg: ServerConfig) -> web.Application:
    _quiet_malformed_requests()
    pkg_zip = PackageZip(shaders_dir=cfg.shaders_dir if os.path.isdir(cfg.shaders_dir) else None)
    models = {m.id: m for m in cfg.models}

    def info() -> dict:
        return site_info(cfg)

    async def static_under(request, root: str, rel: str, **kw):
        try:
            path = safe_path(root, rel)
        except (Refused, UnicodeDecodeError):
            return web.Response(status=403, text="403 forbidden\n")
        if path is None:
            return _not_found()
        return await send_file(request, path, **kw)

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, text="405 method not allowed\n", headers={"Allow": "GET, HEAD"})
        raw = request.rel_url.raw_path
        if raw in ("", "/"):
            raw = "/index.html"
        if raw == "/api/info":
            return _json(info())
        if raw == "/api/stats":
            return _json({"shard_requests": [list(r) for r in cfg.shard_requests]})
        if raw == "/py/voxtral.zip":
            data, etag = pkg_zip.get()
            if request.headers.get("If-None-Match") == etag:
                return web.Response(status=304, headers={"ETag": etag})
            body = b"" if request.method == "HEAD" else data
            resp = web.Response(body=body, content_type="application/zip",
                                headers={"ETag": etag, "Cache-Control": "no-cache"})
            if request.method == "HEAD":
                resp.content_length = len(data)
            return resp
        if raw.startswith("/pyodide/"):
            return await static_under(request, cfg.pyodide_dir, raw[len("/pyodide/"):],
                                      cache_control="public, max-age=3600")
        if raw.startswith("/shaders/"):
            return await static_under(request, cfg.shaders_dir, raw[len("/shaders/"):])
        if raw.startswith("/models/"):
            parts = raw[len("/models/"):].split("/")
            if len(parts) != 2 or parts[0] not in models:
                try:  # traversal attempts under /models/ are refused like everywhere else
                    safe_path(cfg.web_dir, raw[len("/models/"):])
                except (Refused, UnicodeDecodeError):
                    return web.Response(status=403, text="403 forbidden\n")
                return _not_found()
            m = models[parts[0]]
            name = parts[1]
            shard = next((s for s in m.shards if s.name == name), None)
            if shard is None and name not in m.side_files:
                return _not_found()

            def count(req, mid=m.id, n=name):
                cfg.shard_requests.append((mid, n, req.headers.get("Range")))

            return await static_under(request, m.dir, name, cache_control="no-cache",
                                      on_body=count if shard is not None else None)
        return await static_under(request, cfg.web_dir, raw[1:])

    async def add_headers(request, resp):  # on_response_prepare: also reaches streamed responses
        for k, v in SECURITY_HEADERS.items():
            resp.headers.setdefault(k, v)

    app = web.Application(client_max_size=LIMITS["client_max_size"], handler_args=dict(HANDLER_LIMITS))
    app.on_response_prepare.append(add_headers)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


class ServerThread:
    """Run the app in a background thread (tests, embedding). .url is known after start()."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 0, ssl_context=None):
        self.app, self.host, self.port, self.ssl_context = app, host, port, ssl_context
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner = None

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self) -> "ServerThread":
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        self.port = fut.result(30)
        return self

    async def _start(self) -> int:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context)
        await site.start()
        return site._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
