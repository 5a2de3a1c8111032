"""The browser worker's shard check (web/worker.js `downloadShard`), without a browser.

The page downloads every shard and compares its size and sha256 with what /api/info advertised
(the server's manifest) before the bytes reach Python. Here worker.js runs in a Node `vm` context
with stubs for the worker globals (postMessage, importScripts, fetch) and Node's WebCrypto as
`crypto.subtle`; the expected sha256 comes from hashlib. The headless-browser tests (tests/e2e)
cover the page itself; this covers the error paths a good server never takes.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NODE = shutil.which("node") or shutil.which("nodejs")

pytestmark = pytest.mark.skipif(NODE is None, reason="needs Node.js (scripts/setup.sh installs npm, which brings it)")

# Runs worker.js in a fresh context and calls downloadShard(shard, 0, null) (no Cache Storage) with
# a fetch that streams `body` in 7 KiB pieces; prints {"ok", "bytes_equal"} or {"error"}.
HARNESS = r"""
const fs = require('fs');
const vm = require('vm');
const [workerPath, bodyPath, shardJson] = process.argv.slice(2);
const body = new Uint8Array(fs.readFileSync(bodyPath));
const posts = [];
const fakeFetch = async () => {
  let off = 0;
  return { ok: true, status: 200, body: { getReader: () => ({
    read: async () => {
      if (off >= body.length) return { done: true };
      const piece = body.slice(off, off + 7168);
      off += piece.length;
      return { done: false, value: piece };
    } }) } };
};
const ctx = {
  self: { postMessage: (m) => posts.push(m), location: { origin: 'https://localhost:8443' } },
  importScripts: () => {}, fetch: fakeFetch, crypto: globalThis.crypto, performance, URL, Response,
  WebAssembly, console, setTimeout,
};
vm.createContext(ctx);
vm.runInContext(fs.readFileSync(workerPath, 'utf8'), ctx, { filename: 'worker.js' });
const shard = JSON.parse(shardJson);
ctx.downloadShard(shard, 0, null).then(
  (r) => console.log(JSON.stringify({ ok: true, source: r.source,
    bytes_equal: Buffer.compare(Buffer.from(r.u8), Buffer.from(body)) === 0,
    done: posts.some((p) => p.type === 'shardProgress' && p.done) })),
  (e) => console.log(JSON.stringify({ error: String(e && e.message || e) })));
"""

RNG = np.random.default_rng()


def _download(tmp_path, served: bytes, advertised_size: int, advertised_sha: str) -> dict:
    body = tmp_path / "body.bin"
    body.write_bytes(served)
    harness = tmp_path / "harness.js"
    harness.write_text(HARNESS)
    shard = {"name": "shard-ab", "size": advertised_size, "sha256": advertised_sha,
             "url": "/models/m/shard-ab"}
    r = subprocess.run([NODE, str(harness), os.path.join(ROOT, "web", "worker.js"), str(body), json.dumps(shard)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def _shard_bytes() -> bytes:
    return RNG.integers(0, 256, size=int(RNG.integers(20_000, 60_000)), dtype=np.uint8).tobytes()


def test_good_shard_is_accepted(tmp_path):
    data = _shard_bytes()
    r = _download(tmp_path, data, len(data), hashlib.sha256(data).hexdigest())
    assert r == {"ok": True, "source": "network", "bytes_equal": True, "done": True}


def test_flipped_byte_is_a_sha256_mismatch(tmp_path):
    data = _shard_bytes()
    bad = bytearray(data)
    bad[int(RNG.integers(0, len(bad)))] ^= 1 << int(RNG.integers(0, 8))
    want = hashlib.sha256(data).hexdigest()
    r = _download(tmp_path, bytes(bad), len(data), want)
    assert "error" in r, r
    assert r["error"].startswith("shard-ab: sha256 mismatch"), r
    assert f"got {hashlib.sha256(bad).hexdigest()[:12]}" in r["error"] and f"expected {want[:12]}" in r["error"]


def test_short_and_long_downloads_are_refused(tmp_path):
    data = _shard_bytes()
    sha = hashlib.sha256(data).hexdigest()
    cut = int(RNG.integers(1, len(data)))
    r = _download(tmp_path, data[:cut], len(data), sha)
    assert r.get("error") == f"shard-ab: got {cut} bytes, expected {len(data)} (interrupted download?)", r
    r = _download(tmp_path, data + b"x", len(data), sha)
    assert r.get("error") == f"shard-ab: the server sent more than the manifest's {len(data)} bytes", r
