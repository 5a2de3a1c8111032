"""The dev server offers a shard folder only if its shards are the ones its manifest.json describes.

A flipped byte, a truncated shard, a missing shard or an unreadable manifest must not reach the
page as a model: `voxtral serve` leaves that model out with one WARNING line (folder, shard, why) and
goes on serving the others. The sha256 of every shard is computed once and remembered by the file's
stat (size, mtime, ctime, inode); these tests also check that the remembered hash is never reused
for changed bytes, even when the mtime is set back.

References are independent of the code under test: hashlib over the files' bytes, and the
manifest.json that `voxtral shard` wrote.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import time

import numpy as np
import pytest

from voxtral.errors import ModelFormatError
from voxtral.serve import models as serve_models
from voxtral.serve.app import ServerConfig, ServerThread, make_app
from voxtral.serve.models import discover_models, scan_model
from voxtral.testmodel import make_test_model

SHARD_BYTES = 100_000
RNG = np.random.default_rng()  # fresh damage positions each run


def _make(path, kind="asr"):
    make_test_model(kind, str(path), fmt="shards", shard_bytes=SHARD_BYTES)
    names = json.loads((path / "manifest.json").read_text())["shards"]
    assert len(names) >= 3, "want a first, a middle and a last shard"
    return path


def _hashed_long_ago(monkeypatch):
    """Pretend the hashing happens well after the files were written, so hashes are remembered
    (freshly written files are hashed again at each scan: see RACY_NS)."""
    monkeypatch.setattr(serve_models, "_now_ns", lambda: time.time_ns() + 10 * serve_models.RACY_NS)


def _flip_byte(path, keep_mtime: bool) -> None:
    """XOR one random byte; with keep_mtime, set the mtime back as `touch -r` or `cp -p` would.
    Written until the file's ctime moves (file times tick coarsely), so the change is visible to
    a stat, as it always is outside a test."""
    before = os.stat(path)
    pos = int(RNG.integers(0, before.st_size))
    with open(path, "r+b") as f:
        f.seek(pos)
        flipped = bytes([f.read(1)[0] ^ (1 << int(RNG.integers(0, 8)))])
    for _ in range(500):
        with open(path, "r+b") as f:
            f.seek(pos)
            f.write(flipped)
        if keep_mtime:
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        if os.stat(path).st_ctime_ns != before.st_ctime_ns:
            break
        time.sleep(0.01)
    assert os.stat(path).st_size == before.st_size


def _damage(d, how: str) -> str:
    """Damage model folder d; returns the shard (or file) the warning must name."""
    names = [s["name"] for s in json.loads((d / "manifest.json").read_text())["shards"]]
    if how == "flip":
        name = names[int(RNG.integers(0, len(names)))]
        _flip_byte(d / name, keep_mtime=False)
    elif how == "truncate":
        name = names[int(RNG.integers(0, len(names) - 1))]  # not the last: all others are full size
        p = d / name
        os.truncate(p, int(RNG.integers(0, p.stat().st_size)))
    elif how == "missing":
        name = names[int(RNG.integers(1, len(names)))]
        (d / name).unlink()
    elif how == "bad-manifest":
        name = "manifest.json"
        (d / name).write_text('{"format": "gguf-shards", "shards": [')
    else:
        raise AssertionError(how)
    return name


def _file_hashes(d) -> list[str]:
    m = json.loads((d / "manifest.json").read_text())
    return [hashlib.sha256((d / s["name"]).read_bytes()).hexdigest() for s in m["shards"]]


def test_good_model_is_checked_once_then_remembered(tmp_path, monkeypatch):
    d = _make(tmp_path / "voxtral-q4-shards")
    manifest = json.loads((d / "manifest.json").read_text())
    cache = str(tmp_path / "data")
    logs = []
    e = scan_model(str(d), "m", "asr", False, cache, logs.append)
    assert [s.name for s in e.shards] == [s["name"] for s in manifest["shards"]]
    assert [s.sha256 for s in e.shards] == [s["sha256"] for s in manifest["shards"]] == _file_hashes(d)
    assert [s.size for s in e.shards] == [s["size"] for s in manifest["shards"]]
    assert len(logs) == 1 and "computing the sha256" in logs[0]
    # just written: not remembered yet (a change within the same clock tick would keep the stamp)
    scan_model(str(d), "m", "asr", False, cache, logs.append)
    assert len(logs) == 2
    _hashed_long_ago(monkeypatch)
    scan_model(str(d), "m", "asr", False, cache, logs.append)
    assert len(logs) == 3
    e2 = scan_model(str(d), "m", "asr", False, cache, logs.append)
    assert len(logs) == 3, "the remembered hashes were not used"
    assert [s.sha256 for s in e2.shards] == [s.sha256 for s in e.shards]


def test_folder_without_manifest_is_served_with_hashes_of_its_files(tmp_path):
    d = _make(tmp_path / "voxtral-q4-shards")
    want = _file_hashes(d)
    (d / "manifest.json").unlink()
    e = scan_model(str(d), "m", "asr", False, str(tmp_path / "data"), lambda m: None)
    assert [s.sha256 for s in e.shards] == want


@pytest.mark.parametrize("keep_mtime", [False, True], ids=["flip", "flip-mtime-restored"])
def test_flipped_byte_after_the_hash_was_remembered(tmp_path, monkeypatch, keep_mtime):
    d = _make(tmp_path / "voxtral-q4-shards")
    cache = str(tmp_path / "data")
    _hashed_long_ago(monkeypatch)
    scan_model(str(d), "m", "asr", False, cache, lambda m: None)  # remembered now
    names = [s["name"] for s in json.loads((d / "manifest.json").read_text())["shards"]]
    name = names[int(RNG.integers(0, len(names)))]
    _flip_byte(d / name, keep_mtime)
    with pytest.raises(ModelFormatError, match=rf"shard '{name}' is corrupted: its sha256 is [0-9a-f]+\.\.\. "
                                               r"but manifest\.json says"):
        scan_model(str(d), "m", "asr", False, cache, lambda m: None)


@pytest.mark.parametrize("how,pattern", [
    ("flip", r"shard '{name}' is corrupted: its sha256"),
    ("truncate", r"shard '{name}' is \d+ bytes but manifest\.json says \d+ \(truncated"),
    ("missing", r"shard '{name}' listed in manifest\.json is missing"),
    ("bad-manifest", r"manifest\.json"),
])
def test_damaged_model_is_refused(tmp_path, how, pattern):
    d = _make(tmp_path / "voxtral-q4-shards")
    name = _damage(d, how)
    with pytest.raises(ModelFormatError, match=pattern.format(name=name)):
        scan_model(str(d), "m", "asr", False, str(tmp_path / "data"), lambda m: None)


def _get(port: int, path: str):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


@pytest.mark.parametrize("how", ["flip", "truncate", "missing", "bad-manifest"])
def test_server_skips_the_broken_model_and_serves_the_rest(tmp_path, how):
    models = tmp_path / "models"
    asr = _make(models / "voxtral-q4-shards")
    tts = _make(models / "voxtral-tts-q4-shards", "tts")
    tts_manifest = json.loads((tts / "manifest.json").read_text())
    name = _damage(asr, how)
    logs = []
    found = discover_models(str(models), str(tmp_path / "data"), logs.append, allow_demo=False)
    assert [m.id for m in found] == ["voxtral-tts-q4-shards"]
    warnings = [line for line in logs if "WARNING" in line]
    assert len(warnings) == 1, logs
    assert str(asr) in warnings[0] and name in warnings[0] and "\n" not in warnings[0]
    assert "Traceback" not in "".join(logs)

    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("x")
    cfg = ServerConfig(web_dir=str(web), shaders_dir=str(tmp_path), pyodide_dir=str(tmp_path), models=found)
    srv = ServerThread(make_app(cfg), "127.0.0.1", 0).start()
    try:
        status, body = _get(srv.port, "/api/info")
        assert status == 200
        info = json.loads(body)
        assert [m["id"] for m in info["models"]] == ["voxtral-tts-q4-shards"]
        assert "voxtral-q4-shards" not in body.decode().replace("voxtral-tts-q4-shards", "")
        assert [s["sha256"] for s in info["models"][0]["shards"]] == [s["sha256"] for s in tts_manifest["shards"]]
        assert _get(srv.port, "/models/voxtral-q4-shards/shard-aa")[0] == 404
        status, body = _get(srv.port, "/models/voxtral-tts-q4-shards/shard-aa")
        assert status == 200 and body == (tts / "shard-aa").read_bytes()
    finally:
        srv.stop()


def test_broken_real_model_falls_back_to_the_demo(tmp_path):
    """With the real ASR model refused, the page still gets a (labelled) demo ASR model."""
    models = tmp_path / "models"
    asr = _make(models / "voxtral-q4-shards")
    _make(models / "voxtral-tts-q4-shards", "tts")
    name = _damage(asr, "flip")
    logs = []
    found = discover_models(str(models), str(tmp_path / "data"), logs.append)
    assert [(m.id, m.demo) for m in found] == [("voxtral-tts-q4-shards", False), ("demo-asr-tiny-shards", True)]
    assert any("WARNING" in line and name in line for line in logs)


def test_damaged_demo_model_is_written_again(tmp_path):
    models = tmp_path / "models"
    discover_models(str(models), str(tmp_path / "data"), lambda m: None)
    demo = models / "demo-asr-tiny-shards"
    name = _damage(demo, "truncate")
    logs = []
    found = discover_models(str(models), str(tmp_path / "data"), logs.append)
    assert [m.id for m in found] == ["demo-asr-tiny-shards", "demo-tts-tiny-shards"]
    assert any("WARNING" in line and "demo model" in line and name in line for line in logs), logs
    assert [s.sha256 for s in found[0].shards] == _file_hashes(demo)


def test_unreadable_shard_is_a_warning_not_a_crash(tmp_path, monkeypatch):
    """An OSError while hashing (e.g. a shard without read permission) skips the model too.
    Simulated, since a test running as root reads any file whatever its mode."""
    models = tmp_path / "models"
    _make(models / "voxtral-q4-shards")
    real = serve_models._sha256

    def denied(path):
        if os.path.basename(path) == "shard-ab":
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(serve_models, "_sha256", denied)
    logs = []
    found = discover_models(str(models), str(tmp_path / "data"), logs.append, allow_demo=False)
    assert found == []
    warnings = [line for line in logs if "WARNING" in line]
    assert len(warnings) == 1 and "shard-ab" in warnings[0] and "Permission denied" in warnings[0], logs
