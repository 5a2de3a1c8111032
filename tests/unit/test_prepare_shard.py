"""`voxtral shard` and the manifest checks in the loader: split like `split -b`, detect a flipped
byte, a truncated, a missing or an extra shard with an error that names the shard."""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from voxtral.errors import ModelFormatError, VoxtralError
from voxtral.prepare.inspect import inspect_path
from voxtral.prepare.shard import parse_size, shard_gguf, split_file
from voxtral.testmodel import make_test_model
from voxtral.weights.loader import check_manifest, open_model, read_manifest, verify_shards

SEED = int(np.random.default_rng().integers(0, 2**31))


@pytest.fixture(scope="module")
def gguf_path(tmp_path_factory):
    return make_test_model("asr", str(tmp_path_factory.mktemp("g")), seed=SEED, fmt="gguf")


@pytest.fixture
def shards(gguf_path, tmp_path):
    d = str(tmp_path / "shards")
    shard_gguf(gguf_path, d, 150_000)
    return d


def test_split_like_split_b(tmp_path):
    data = os.urandom(1_000_003)
    src = tmp_path / "f.bin"
    src.write_bytes(data)
    m = split_file(str(src), str(tmp_path / "out"), 300_000)
    names = ["shard-aa", "shard-ab", "shard-ac", "shard-ad"]
    assert [e["name"] for e in m["shards"]] == names
    assert [e["size"] for e in m["shards"]] == [300_000, 300_000, 300_000, 100_003]
    assert b"".join((tmp_path / "out" / n).read_bytes() for n in names) == data
    for e in m["shards"]:
        assert e["sha256"] == hashlib.sha256((tmp_path / "out" / e["name"]).read_bytes()).hexdigest()
    assert m["total_size"] == len(data) and m["sha256"] == hashlib.sha256(data).hexdigest()
    assert m["format"] == "gguf-shards" and m["source"] == "f.bin"
    assert json.loads((tmp_path / "out" / "manifest.json").read_text()) == m
    # an exact multiple gives no empty trailing shard; re-sharding replaces the old set
    m2 = split_file(str(src), str(tmp_path / "out"), 1_000_003)
    assert [e["name"] for e in m2["shards"]] == ["shard-aa"]
    assert sorted(os.listdir(tmp_path / "out")) == ["manifest.json", "shard-aa"]


def test_parse_size():
    assert parse_size("512M") == 512 * 2**20 == parse_size("512MiB") == parse_size("512mb")
    assert parse_size("100K") == 102400 and parse_size("2G") == 2 * 2**30 and parse_size("1234") == 1234
    assert parse_size("1.5K") == 1536
    for bad in ("", "12Q", "-1M", "0"):
        with pytest.raises(VoxtralError):
            parse_size(bad)


def test_shards_load_and_verify(gguf_path, shards):
    m = verify_shards(shards)
    assert len(m["shards"]) > 3 and m["total_size"] == os.path.getsize(gguf_path)
    a, b = open_model(gguf_path), open_model(shards, verify=True)
    for n in a.shapes:
        assert a._reader.read_raw(n) == b._reader.read_raw(n)
    assert inspect_path(shards)["ok"]


def _flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x10]))


def test_flipped_byte(shards):
    _flip(os.path.join(shards, "shard-ac"), 1234)  # inside tensor data: the GGUF still parses
    check_manifest(shards)  # names and sizes are fine ...
    open_model(shards)  # ... so the cheap check on open passes,
    with pytest.raises(ModelFormatError, match="shard 'shard-ac' is corrupted: sha256"):
        verify_shards(shards)  # but the sha256 catches it
    with pytest.raises(ModelFormatError, match="shard-ac"):
        open_model(shards, verify=True)
    info = inspect_path(shards)
    assert not info["ok"] and any("shard-ac" in p for p in info["problems"])
    assert [r["status"] for r in info["shards"]["shards"]][2] == "sha256 mismatch"


def test_truncated_shard(shards):
    p = os.path.join(shards, "shard-ab")
    size = os.path.getsize(p)
    os.truncate(p, size - 10)
    msg = f"shard 'shard-ab' is {size - 10} bytes but manifest.json says {size} .truncated"
    with pytest.raises(ModelFormatError, match=msg):
        open_model(shards)
    with pytest.raises(ModelFormatError, match=msg):
        verify_shards(shards)


def test_missing_shard(shards):
    os.remove(os.path.join(shards, "shard-ab"))
    with pytest.raises(ModelFormatError, match="shard 'shard-ab' listed in manifest.json is missing"):
        open_model(shards)
    os.remove(os.path.join(shards, "shard-aa"))  # even the first: named from the manifest
    with pytest.raises(ModelFormatError, match="shard 'shard-aa' listed in manifest.json is missing"):
        open_model(shards)


def test_extra_shard_and_bad_manifest(shards):
    last = sorted(n for n in os.listdir(shards) if n.startswith("shard-"))[-1]
    extra = "shard-" + last[-2] + chr(ord(last[-1]) + 1)
    open(os.path.join(shards, extra), "wb").write(b"junk")
    with pytest.raises(ModelFormatError, match=f"unexpected: {extra}"):
        open_model(shards)
    os.remove(os.path.join(shards, extra))
    mp = os.path.join(shards, "manifest.json")
    open(mp, "w").write('{"format": "something else"}')
    with pytest.raises(ModelFormatError, match="not a shard manifest"):
        open_model(shards)
    open(mp, "w").write(json.dumps({"format": "gguf-shards", "shards": [
        {"name": "../outside", "size": 1, "sha256": "00"}]}))
    with pytest.raises(ModelFormatError, match="not a shard manifest"):
        open_model(shards)
    open(mp, "w").write("{not json")
    with pytest.raises(ModelFormatError, match="not valid JSON"):
        open_model(shards)
    os.remove(mp)
    assert open_model(shards).format == "shards"  # without a manifest: loads, unchecked
    assert "no manifest.json" in inspect_path(shards)["shards"]["note"]


def test_cli_shard_and_inspect_report(gguf_path, tmp_path):
    d = str(tmp_path / "cli")
    r = subprocess.run([sys.executable, "-m", "voxtral", "shard", gguf_path, "-o", d, "--max-bytes", "100K"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "manifest.json" in r.stderr and read_manifest(d)["shard_bytes"] == 102400
    ok = subprocess.run([sys.executable, "-m", "voxtral", "inspect", d], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and "status:     OK" in ok.stdout and "sha256 ok" in ok.stdout
    _flip(os.path.join(d, "shard-ab"), 99)
    bad = subprocess.run([sys.executable, "-m", "voxtral", "inspect", d], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "shard-ab (sha256 mismatch)" in bad.stdout and "PROBLEMS" in bad.stdout
    fast = subprocess.run([sys.executable, "-m", "voxtral", "inspect", d, "--no-verify"], capture_output=True,
                          text=True, timeout=300)
    assert fast.returncode == 0 and "not checked" in fast.stdout
    os.remove(os.path.join(d, "shard-ac"))
    gone = subprocess.run([sys.executable, "-m", "voxtral", "inspect", d, "--json"], capture_output=True,
                          text=True, timeout=300)
    info = json.loads(gone.stdout)
    assert gone.returncode == 1 and not info["ok"]
    assert any("'shard-ac' listed in manifest.json is missing" in p for p in info["problems"])


@pytest.mark.parametrize("where", ["/proc/x", "{file}/sub"])
def test_cli_shard_to_an_unwritable_place(gguf_path, tmp_path, where):
    """A folder that cannot be made (under /proc, under a file): one line, exit status 2."""
    (tmp_path / "afile").write_text("x")
    out = where.format(file=tmp_path / "afile")
    r = subprocess.run([sys.executable, "-m", "voxtral", "shard", gguf_path, "-o", out, "--quiet"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("voxtral: error: cannot write shards to " + out), r.stderr


def test_shard_errors_and_tokenizer_copy(gguf_path, tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"NOPE" + b"\0" * 100)
    with pytest.raises(ModelFormatError, match="not a GGUF file"):
        shard_gguf(str(junk), str(tmp_path / "o"))
    with pytest.raises(VoxtralError, match="no such file"):
        shard_gguf(str(tmp_path / "none.gguf"), str(tmp_path / "o"))
    with pytest.raises(VoxtralError, match="must not be the directory of the source"):
        shard_gguf(gguf_path, os.path.dirname(gguf_path))
    # A GGUF without an embedded tokenizer (like the community file) gets tekken.json copied along.
    import gguf
    src = tmp_path / "community"
    src.mkdir()
    w = gguf.GGUFWriter(str(src / "m.gguf"), arch="voxtral-realtime")
    w.add_tensor("x", np.zeros(32, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    (src / "tekken.json").write_text("{}")
    shard_gguf(str(src / "m.gguf"), str(tmp_path / "o2"))
    assert (tmp_path / "o2" / "tekken.json").read_text() == "{}"
    shard_gguf(gguf_path, str(tmp_path / "o3"))  # ours embeds it: nothing copied
    assert not (tmp_path / "o3" / "tekken.json").exists()


def test_make_test_model_shards_carry_a_valid_manifest(tmp_path):
    d = make_test_model("tts", str(tmp_path / "t"), seed=SEED, fmt="shards", shard_bytes=300_000)
    m = verify_shards(d)
    assert len(m["shards"]) >= 2
    assert open_model(d, verify=True).kind == "tts"
