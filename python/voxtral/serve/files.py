"""Static files for the dev server: safe path resolution and GET/HEAD with HTTP Range and ETag.

Only single byte ranges are served (`bytes=a-b`, `bytes=a-`, `bytes=-n`): that is all the browser's
shard loader and resumable downloads use. A Range header we cannot satisfy or parse gets 416 with
`Content-Range: bytes */SIZE`; a multi-range request gets the whole file (allowed by RFC 9110).
"""
from __future__ import annotations

import asyncio
import mimetypes
import os
import re
from urllib.parse import unquote

from aiohttp import web

CHUNK_BYTES = 256 * 1024

MIME = {
    ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm",
    ".json": "application/json", ".html": "text/html", ".css": "text/css", ".wgsl": "text/plain",
    ".zip": "application/zip", ".whl": "application/zip", ".wav": "audio/wav", ".svg": "image/svg+xml",
    ".png": "image/png", ".ico": "image/x-icon", ".txt": "text/plain", ".md": "text/plain",
}


class Refused(Exception):
    """A path that tries to leave its root (.., encoded .., absolute, symlink out)."""


def safe_path(root: str, rel: str) -> str | None:
    """The real path of `rel` (still percent-encoded, as in the URL) inside `root`.

    Raises Refused for traversal attempts; returns None when nothing is there (-> 404)."""
    text = unquote(rel, errors="strict")
    if "\x00" in text or "\\" in text or text.startswith("/"):
        raise Refused(rel)
    parts = text.split("/")
    if any(p in ("..", ".") for p in parts):
        raise Refused(rel)
    if any(p.startswith(".") for p in parts if p):  # no dotfiles (.git, .env, ...)
        return None
    root_real = os.path.realpath(root)
    full = os.path.realpath(os.path.join(root_real, *[p for p in parts if p]))
    if full != root_real and not full.startswith(root_real + os.sep):
        raise Refused(rel)  # a symlink that points out of the root
    if not os.path.isfile(full):
        return None
    return full


def content_type(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    return MIME.get(ext) or mimetypes.guess_type(path)[0] or "application/octet-stream"


def etag_of(st: os.stat_result) -> str:
    return f'"{st.st_size:x}-{st.st_mtime_ns:x}"'


_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def parse_range(header: str, size: int) -> tuple[int, int] | None | str:
    """(start, end inclusive), None (serve the whole file), or "invalid" (-> 416)."""
    h = header.strip()
    if not h.lower().startswith("bytes"):
        return None  # another unit: ignore the header
    if "," in h:
        return None  # several ranges: we may send the whole representation
    m = _RANGE.match(h)
    if not m or (m.group(1) == "" and m.group(2) == ""):
        return "invalid"
    a, b = m.group(1), m.group(2)
    if a == "":  # suffix: the last n bytes
        n = int(b)
        if n == 0 or size == 0:
            return "invalid"
        return max(0, size - n), size - 1
    start = int(a)
    end = size - 1 if b == "" else int(b)
    if start >= size or end < start:
        return "invalid"
    return start, min(end, size - 1)


async def send_file(request: web.Request, path: str, *, cache_control: str = "no-cache",
                    extra_headers: dict | None = None, on_body=None) -> web.StreamResponse:
    """GET/HEAD `path` with Range, ETag and If-None-Match / If-Range. on_body(request) is called
    when a GET body is about to be sent (the shard request counter)."""
    st = os.stat(path)
    size = st.st_size
    etag = etag_of(st)
    headers = {"ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": cache_control,
               "Content-Type": content_type(path), **(extra_headers or {})}
    inm = request.headers.get("If-None-Match")
    if inm and (inm.strip() == "*" or etag in [t.strip() for t in inm.split(",")]):
        return web.Response(status=304, headers={k: v for k, v in headers.items() if k != "Content-Type"})

    start, end, status = 0, size - 1, 200
    rng = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if rng is not None and (if_range is None or if_range.strip() == etag):
        r = parse_range(rng, size)
        if r == "invalid":
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}",
                                                     "Accept-Ranges": "bytes", "ETag": etag})
        if r is not None:
            start, end = r
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    length = max(0, end - start + 1)
    headers["Content-Length"] = str(length)
    resp = web.StreamResponse(status=status, headers=headers)
    if request.method == "HEAD":
        resp.content_length = length
        await resp.prepare(request)
        await resp.write_eof()
        return resp
    if on_body is not None:
        on_body(request)
    await resp.prepare(request)
    loop = asyncio.get_running_loop()
    try:
        with open(path, "rb") as f:
            f.seek(start)
            left = length
            while left > 0:
                block = await loop.run_in_executor(None, f.read, min(CHUNK_BYTES, left))
                if not block:
                    break  # the file shrank while we sent it; the client sees a short body
                await resp.write(block)
                left -= len(block)
        await resp.write_eof()
    except ConnectionError:
        # The client went away mid-download (tab closed, network dropped): nothing to report;
        # the file is closed and the connection's resources are released by aiohttp.
        pass
    return resp
