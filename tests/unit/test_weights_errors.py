"""Corrupt and incomplete weight files raise the project's errors with messages naming the problem."""
import json
import os
import secrets
import struct

import gguf
import numpy as np
import pytest
import safetensors.numpy
from gguf import GGMLQuantizationType as QT

from voxtral.errors import MissingTensorError, ModelFormatError, VoxtralError
from voxtral.weights import (BufferSource, FileSource, SafetensorsFile, ShardedBytes, open_gguf,
                             shard_sources_from_dir, write_safetensors_bf16)


@pytest.fixture
def rng():
    seed = int(os.environ.get("VOXTRAL_TEST_SEED", secrets.randbits(32)))
    print(f"random seed {seed} (rerun with VOXTRAL_TEST_SEED={seed})")
    return np.random.default_rng(seed)


def small_gguf(path, rng, extra=None):
    """A valid GGUF with a string key and three tensors, the last one named 'last'."""
    w = gguf.GGUFWriter(str(path), "x")
    w.add_string("general.name", "tiny")
    w.add_tensor("a", rng.standard_normal((4, 8), dtype=np.float32))  # [out, in]
    if extra:
        extra(w)
    w.add_tensor("last", rng.standard_normal((16, 16), dtype=np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    return path.read_bytes()


def s(text):
    b = text.encode()
    return struct.pack("<Q", len(b)) + b


def hand_gguf(kvs=b"", n_kv=0, infos=b"", n_tensors=0, version=3):
    """Raw GGUF bytes from pre-packed kv pairs and tensor infos (for corruptions the writer refuses)."""
    head = b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv) + kvs + infos
    return head + bytes(-len(head) % 32) + bytes(64)


def info(name, dims, type_id, offset=0):
    return s(name) + struct.pack(f"<I{len(dims)}QIQ", len(dims), *dims, type_id, offset)


def test_errors_are_project_errors():
    assert issubclass(MissingTensorError, ModelFormatError) and issubclass(ModelFormatError, VoxtralError)


def test_wrong_magic(rng, tmp_path):
    blob = small_gguf(tmp_path / "m.gguf", rng)
    with pytest.raises(ModelFormatError, match=r"first 4 bytes are b'PK\\x03\\x04'.*starts with 'GGUF'"):
        open_gguf(b"PK\x03\x04" + blob[4:])
    with pytest.raises(ModelFormatError, match="not a GGUF file"):
        open_gguf(json.dumps({"a": 1}).encode())


@pytest.mark.parametrize("version", [1, 4, 0x03000000])
def test_unsupported_version(rng, tmp_path, version):
    blob = bytearray(small_gguf(tmp_path / "m.gguf", rng))
    blob[4:8] = struct.pack("<I", version)
    with pytest.raises(ModelFormatError, match=f"unsupported GGUF version {version}"):
        open_gguf(bytes(blob))


def test_unknown_ggml_type(rng, tmp_path):
    def q8(w):  # a Q8_0 tensor (ggml type 8) between the others
        w.add_tensor("q8.weight", gguf.quants.quantize(np.ones((2, 32), np.float32), QT.Q8_0),
                     raw_dtype=QT.Q8_0)
    blob = small_gguf(tmp_path / "m.gguf", rng, extra=q8)
    with pytest.raises(ModelFormatError, match=r"'q8.weight' has unsupported ggml type 8"):
        open_gguf(blob)


def test_truncated_header(rng, tmp_path):
    path = tmp_path / "m.gguf"
    blob = small_gguf(path, rng)
    end = open_gguf(path).header_nbytes
    for cut in [0, 3, 7, 15, 23, *rng.integers(24, end, size=6)]:
        with pytest.raises(ModelFormatError, match="truncated GGUF"):
            open_gguf(blob[:cut])
    # the message says which part was being read (the last info ends with type u32 + offset u64)
    with pytest.raises(ModelFormatError, match=r"truncated GGUF tensor info of 'last'"):
        open_gguf(blob[:end - int(rng.integers(1, 12))])


def test_truncated_data_names_tensor(rng, tmp_path):
    blob = small_gguf(tmp_path / "m.gguf", rng)
    cut = len(blob) - int(rng.integers(1, 16 * 16 * 4))
    with pytest.raises(ModelFormatError,
                       match=rf"tensor 'last' runs past the end.* up to \d+ but the file is only {cut} bytes"):
        open_gguf(blob[:cut])
    # the same when the last shard of a split file is missing
    parts = [BufferSource(blob[:100]), BufferSource(blob[100:cut])]
    with pytest.raises(ModelFormatError, match="'last' runs past the end"):
        open_gguf(parts)


def test_malformed_tables():
    with pytest.raises(ModelFormatError, match="unknown GGUF value type 13"):
        open_gguf(hand_gguf(s("k") + struct.pack("<I", 13), n_kv=1))
    with pytest.raises(ModelFormatError, match="unknown GGUF value type 99 in the array"):
        open_gguf(hand_gguf(s("k") + struct.pack("<IIQ", 9, 99, 1), n_kv=1))
    with pytest.raises(ModelFormatError, match="truncated GGUF metadata value 'k'"):
        open_gguf(hand_gguf(s("k") + struct.pack("<IIQ", 9, 4, 10**12), n_kv=1))  # huge array
    with pytest.raises(ModelFormatError, match="invalid general.alignment 24"):
        open_gguf(hand_gguf(s("general.alignment") + struct.pack("<II", 4, 24), n_kv=1))
    with pytest.raises(ModelFormatError, match="'t' has 5 dims"):
        open_gguf(hand_gguf(infos=info("t", [1, 1, 1, 1, 1], 0), n_tensors=1))
    with pytest.raises(ModelFormatError, match="'t': Q4_0 needs the innermost dimension"):
        open_gguf(hand_gguf(infos=info("t", [16, 2], 2), n_tensors=1))
    with pytest.raises(ModelFormatError, match="duplicate tensor 't'"):
        open_gguf(hand_gguf(infos=info("t", [4], 0) + info("t", [4], 0, 32), n_tensors=2))
    f = open_gguf(hand_gguf(infos=info("t", [3, 2], 0), n_tensors=1))  # the happy path
    assert f.tensor("t").shape == (2, 3)


def test_missing_tensor(rng, tmp_path):
    f = open_gguf(small_gguf(tmp_path / "m.gguf", rng))
    with pytest.raises(MissingTensorError, match=r"'lst' is not in the GGUF.*similar names: \['last'\]"):
        f.tensor("lst")
    with pytest.raises(MissingTensorError, match="'nope'"):
        f.read_raw("nope")
    with pytest.raises(MissingTensorError, match="'nope'"):
        list(f.iter_tensors(["a", "nope"]))


def test_shard_directory_errors(rng, tmp_path):
    blob = small_gguf(tmp_path / "m.gguf", rng)
    d = tmp_path / "gap"
    d.mkdir()
    (d / "shard-aa").write_bytes(blob[:50])
    (d / "shard-ac").write_bytes(blob[50:])
    (d / "params.json").write_text("{}")
    with pytest.raises(ModelFormatError, match="missing shard shard-ab"):
        shard_sources_from_dir(d)
    with pytest.raises(ModelFormatError, match="missing shard shard-ab"):
        open_gguf(d)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "tekken.json").write_text("{}")
    with pytest.raises(ModelFormatError, match="no shards in"):
        open_gguf(empty)
    (d / "shard-ab").write_bytes(b"")  # an empty shard is harmless
    assert [os.path.basename(x.path) for x in shard_sources_from_dir(d)] == \
        ["shard-aa", "shard-ab", "shard-ac"]
    assert open_gguf(d).tensor("a").shape == (4, 8)
    with pytest.raises(ModelFormatError, match="does not exist"):
        open_gguf(tmp_path / "nothing.gguf")


def test_source_reads_past_end(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"0123456789")
    with pytest.raises(ModelFormatError, match="truncated"):
        FileSource(p).read(8, 3)
    with pytest.raises(ModelFormatError, match="truncated"):
        BufferSource(b"abc").read(0, 4)
    sb = ShardedBytes([BufferSource(b"abc"), FileSource(p), BufferSource(b"")])
    assert sb.size == 13 and sb.read(1, 5) == b"bc012" and sb.read(12, 1) == b"9"
    with pytest.raises(ModelFormatError, match=r"missing range \[13, 15\)"):
        sb.read(11, 4)


# --- safetensors ---

def good_safetensors(path):
    write_safetensors_bf16(path, {"a": np.ones((2, 3), np.float32), "last": np.zeros(4, np.float32)})
    return path.read_bytes()


def test_safetensors_truncated_and_absurd_header(tmp_path):
    blob = good_safetensors(tmp_path / "g.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(blob[:5])
    with pytest.raises(ModelFormatError, match="truncated safetensors file"):
        SafetensorsFile(bad)
    bad.write_bytes(struct.pack("<Q", 1 << 40) + blob[8:])
    with pytest.raises(ModelFormatError, match="bad safetensors header length 1099511627776"):
        SafetensorsFile(bad)
    bad.write_bytes(blob[:20])  # header cut short
    with pytest.raises(ModelFormatError, match="header length"):
        SafetensorsFile(bad)
    bad.write_bytes(struct.pack("<Q", 4) + b"{x: " + bytes(8))
    with pytest.raises(ModelFormatError, match="bad safetensors JSON header"):
        SafetensorsFile(bad)


def test_safetensors_data_past_end_names_tensor(tmp_path):
    blob = good_safetensors(tmp_path / "g.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(blob[:-3])
    with pytest.raises(ModelFormatError, match="tensor 'last' runs past the end of the file"):
        SafetensorsFile(bad)


def test_safetensors_dtypes_and_missing(tmp_path):
    p = tmp_path / "i.safetensors"
    safetensors.numpy.save_file({"ids": np.arange(6, dtype=np.int64), "w": np.ones(2, np.float32)}, str(p))
    f = SafetensorsFile(p)
    assert f.dtype("ids") == "I64"
    with pytest.raises(ModelFormatError, match="'ids' has unsupported dtype I64"):
        f.tensor("ids")
    with pytest.raises(MissingTensorError, match="'v' is not in"):
        f.tensor("v")
    with pytest.raises(MissingTensorError, match="'v'"):
        f.shape("v")
    header = json.dumps({"q": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 2]}}).encode()
    p.write_bytes(struct.pack("<Q", len(header)) + header + b"xx")
    with pytest.raises(ModelFormatError, match="'q' has unknown safetensors dtype 'Q4'"):
        SafetensorsFile(p)
    header = json.dumps({"q": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}).encode()
    p.write_bytes(struct.pack("<Q", len(header)) + header + b"xxxx")
    with pytest.raises(ModelFormatError, match=r"'q': 4 data bytes do not match shape \[2\] of F32"):
        SafetensorsFile(p)
