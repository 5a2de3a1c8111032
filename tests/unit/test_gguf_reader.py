"""GGUF reader: files written by the `gguf` package, read whole, from memory shards and from files
split at random byte positions; checked against what was written and against gguf.GGUFReader."""
import gc
import os
import secrets
import tracemalloc

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as QT
from gguf import GGUFValueType as VT

from voxtral.weights import (BufferSource, FileSource, GGMLType, Q4Tensor, ShardedBytes,
                             open_gguf, quantize_q4_0, shard_sources_from_dir)


@pytest.fixture
def rng():
    seed = int(os.environ.get("VOXTRAL_TEST_SEED", secrets.randbits(32)))
    print(f"random seed {seed} (rerun with VOXTRAL_TEST_SEED={seed})")
    return np.random.default_rng(seed)


def _random_metadata(rng):
    """key -> (value as written, GGUF value type, array element type, value as it reads back)."""
    ints = lambda lo, hi, n=None: rng.integers(lo, hi, size=n, endpoint=True)  # noqa: E731
    f32 = float(rng.standard_normal())
    words = ["".join(rng.choice(list("abcxyzé€😀 \n\"\\"), size=rng.integers(1, 9))) for _ in range(5)]
    md = {
        "t.u8": (int(ints(0, 255)), VT.UINT8, None),
        "t.i8": (int(ints(-128, 127)), VT.INT8, None),
        "t.u16": (int(ints(0, 65535)), VT.UINT16, None),
        "t.i16": (int(ints(-32768, 32767)), VT.INT16, None),
        "t.u32": (int(ints(0, 2**32 - 1)), VT.UINT32, None),
        "t.i32": (int(ints(-2**31, 2**31 - 1)), VT.INT32, None),
        "t.u64": (int(rng.integers(0, 2**64 - 1, dtype=np.uint64, endpoint=True)), VT.UINT64, None),
        "t.i64": (int(ints(-2**63, 2**63 - 1)), VT.INT64, None),
        "t.f32": (f32, VT.FLOAT32, None),
        "t.f64": (float(rng.standard_normal()), VT.FLOAT64, None),
        "t.bool": (bool(rng.integers(0, 2)), VT.BOOL, None),
        "t.str": (words[0], VT.STRING, None),
        "t.arr_i32": ([int(v) for v in ints(-2**31, 2**31 - 1, 7)], VT.ARRAY, VT.INT32),
        "t.arr_u8": ([int(v) for v in ints(0, 255, 5)], VT.ARRAY, VT.UINT8),
        "t.arr_i64": ([int(v) for v in ints(-2**63, 2**63 - 1, 3)], VT.ARRAY, VT.INT64),
        "t.arr_f32": ([float(v) for v in rng.standard_normal(4)], VT.ARRAY, VT.FLOAT32),
        "t.arr_bool": ([bool(v) for v in ints(0, 1, 6)], VT.ARRAY, VT.BOOL),
        "t.arr_str": (words, VT.ARRAY, VT.STRING),
        "t.arr_nested": ([[1, 2], [3]], VT.ARRAY, VT.ARRAY),
    }
    out = {}
    for k, (v, vt, st) in md.items():
        back = v
        if vt == VT.FLOAT32:
            back = float(np.float32(v))
        elif st == VT.FLOAT32:
            back = [float(np.float32(x)) for x in v]
        out[k] = (v, vt, st, back)
    return out


def _random_tensors(rng):
    """name -> (ggml type, data as passed to the writer, expected float32 values or raw bytes)."""
    t = {}
    # shapes are PyTorch order; odd and even dims, 1-D to 4-D
    for name, shape in [("f32.vec", (int(rng.integers(1, 40)),)), ("f32.conv", (8, 5, 3)),
                        ("f32.4d", (2, 3, 1, 5))]:
        x = rng.standard_normal(shape, dtype=np.float32)
        t[name] = (QT.F32, x, x)
    x = rng.standard_normal((6, 11)).astype(np.float16)  # [out, in]
    t["f16.w"] = (QT.F16, x, x.astype(np.float32))
    x = rng.standard_normal((4, 9), dtype=np.float32) * 100
    q = gguf.quants.quantize(x, QT.BF16)  # uint8 [4, 18]
    t["bf16.w"] = (QT.BF16, q, gguf.quants.dequantize(q, QT.BF16))
    for name, shape in [("q4.w", (5, 64)), ("q4.3d", (2, 3, 32)), ("q4.wide", (3, 96))]:
        x = rng.standard_normal(shape, dtype=np.float32)
        q = gguf.quants.quantize(x, QT.Q4_0)  # uint8 [..., in/32*18]
        t[name] = (QT.Q4_0, q, gguf.quants.dequantize(q, QT.Q4_0))
    return t


def write_gguf(path, rng, alignment=None):
    md = _random_metadata(rng)
    tensors = _random_tensors(rng)
    w = gguf.GGUFWriter(str(path), "voxtral_test")
    if alignment:
        w.add_custom_alignment(alignment)
    for k, (v, vt, st, _) in md.items():
        w.add_key_value(k, v, vt, sub_type=st)
    for name, (qt, data, _) in tensors.items():
        w.add_tensor(name, data, raw_dtype=None if qt in (QT.F32, QT.F16) else qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return md, tensors


def random_cuts(rng, size, header_end):
    """Sorted cut positions: some inside the header (even inside the magic), some in the data."""
    cuts = {int(rng.integers(1, 4)), int(rng.integers(4, header_end))}
    cuts |= {int(c) for c in rng.integers(1, size, size=int(rng.integers(2, 8)))}
    return sorted(cuts)


def pieces(blob, cuts):
    edges = [0, *cuts, len(blob)]
    return [blob[a:b] for a, b in zip(edges, edges[1:])]


def check_file(f, md, tensors, path):
    assert f.version == 3
    for k, (_, _, _, back) in md.items():
        assert f.metadata[k] == back, k
    assert f.metadata["general.architecture"] == "voxtral_test"
    assert list(f.tensors) == list(tensors)  # file order
    ref = gguf.GGUFReader(str(path))
    for k, field in ref.fields.items():
        if not k.startswith("GGUF.") and k != "t.arr_nested":  # GGUFReader can't read nested arrays
            assert f.metadata[k] == field.contents(), k
    for rt in ref.tensors:
        info = f.tensors[rt.name]
        assert info.shape == tuple(int(d) for d in reversed(rt.shape))  # ggml dims reversed
        assert info.ggml_type == int(rt.tensor_type)
        assert (info.offset, info.nbytes) == (rt.data_offset, rt.n_bytes)
        assert f.read_raw(rt.name) == rt.data.tobytes()
    for name, (qt, data, expect) in tensors.items():
        info = f.tensors[name]
        value = f.tensor(name)
        if qt == QT.Q4_0:
            assert isinstance(value, Q4Tensor) and info.ggml_type == GGMLType.Q4_0
            assert value.shape == expect.shape == info.shape
            assert value.raw.tobytes() == data.tobytes()
            np.testing.assert_array_equal(value.dequantize(), expect)
        else:
            assert value.dtype == np.float32 and value.shape == expect.shape == info.shape
            assert value.tobytes() == np.ascontiguousarray(expect).tobytes()  # bit-exact


@pytest.mark.parametrize("alignment", [None, 64])
def test_single_file_memory_and_split_shards(tmp_path, rng, alignment):
    path = tmp_path / "model.gguf"
    md, tensors = write_gguf(path, rng, alignment)
    blob = path.read_bytes()

    with open_gguf(path) as f:
        assert f.alignment == (alignment or 32)
        assert f.data_offset % f.alignment == 0
        check_file(f, md, tensors, path)
        header_end = f.data_offset

    check_file(open_gguf(blob), md, tensors, path)

    for _ in range(3):
        cuts = random_cuts(rng, len(blob), header_end)
        parts = pieces(blob, cuts)
        check_file(open_gguf([BufferSource(np.frombuffer(p, np.uint8)) for p in parts]),
                   md, tensors, path)
        shard_dir = tmp_path / f"shards{len(cuts)}_{cuts[-1]}"
        shard_dir.mkdir()
        for i, p in enumerate(parts):
            (shard_dir / f"voxtral-q4.gguf.part-{chr(97 + i // 26)}{chr(97 + i % 26)}").write_bytes(p)
        (shard_dir / "tekken.json").write_text("{}")  # unrelated files are ignored
        with open_gguf(shard_dir) as f:
            assert len(f.source.sources) == len(parts)
            check_file(f, md, tensors, path)


def test_version_2_is_accepted(tmp_path, rng):
    path = tmp_path / "v2.gguf"
    md, tensors = write_gguf(path, rng)
    blob = bytearray(path.read_bytes())
    blob[4:8] = (2).to_bytes(4, "little")
    f = open_gguf(bytes(blob))
    assert f.version == 2
    for name, (qt, _, expect) in tensors.items():
        if qt != QT.Q4_0:
            np.testing.assert_array_equal(f.tensor(name), expect)


def test_dims_reversed_out_in(tmp_path, rng):
    w_f32 = rng.standard_normal((48, 32), dtype=np.float32)  # [out, in]
    w_q4 = rng.standard_normal((24, 64), dtype=np.float32)  # [out, in]
    path = tmp_path / "dims.gguf"
    w = gguf.GGUFWriter(str(path), "x")
    w.add_tensor("lin.weight", w_f32)
    w.add_tensor("q.weight", quantize_q4_0(w_q4), raw_dtype=QT.Q4_0)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    f = open_gguf(path)
    assert f.tensors["lin.weight"].ggml_dims == (32, 48)  # stored innermost-first
    assert f.tensor("lin.weight").shape == (48, 32)
    q = f.tensor("q.weight")
    assert q.shape == (24, 64) and q.raw.shape == (24, 2 * 18)
    np.testing.assert_array_equal(q.row(5), q.dequantize()[5])


class CountingSource:
    """A ByteSource that records how many bytes were read through it."""

    def __init__(self, inner):
        self.inner, self.size, self.bytes_read = inner, inner.size, 0

    def read(self, offset, n):
        self.bytes_read += n
        return self.inner.read(offset, n)


def test_open_reads_only_header(tmp_path, rng):
    path = tmp_path / "big.gguf"
    w = gguf.GGUFWriter(str(path), "x")
    for i in range(4):
        w.add_tensor(f"t{i}", rng.standard_normal((256, 1024), dtype=np.float32))  # 1 MB each
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    src = CountingSource(FileSource(path))
    f = open_gguf(src)  # a plain ByteSource (read only, no read_into) is accepted too
    assert src.bytes_read <= f.data_offset + (64 << 10)
    assert f.tensor("t3").shape == (256, 1024)


def test_iter_tensors_peak_memory(tmp_path, rng):
    """Phase 2 over FileSource shards keeps about one tensor in memory at a time."""
    path = tmp_path / "m.gguf"
    w = gguf.GGUFWriter(str(path), "x")
    sizes = []
    for i in range(6):
        x = rng.random((1024, 2048), dtype=np.float32)  # [out, in], 8 MiB
        w.add_tensor(f"f32.{i}", x)
        sizes.append(x.nbytes)
    x16 = rng.random((1024, 2048), dtype=np.float32).astype(np.float16)  # 4 MiB raw, 8 MiB as f32
    w.add_tensor("f16", x16)
    sizes.append(x16.size * 4)
    q = quantize_q4_0(rng.standard_normal((1024, 4096), dtype=np.float32))  # 2.25 MiB raw
    w.add_tensor("q4", q, raw_dtype=QT.Q4_0)
    sizes.append(q.nbytes)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    del x, x16, q

    blob_size = path.stat().st_size
    shard_dir = tmp_path / "shards"
    shard_dir.mkdir()
    with open(path, "rb") as fin:  # 5 MiB shards: most tensors straddle a boundary
        i = 0
        while chunk := fin.read(5 << 20):
            (shard_dir / f"shard-a{chr(97 + i)}").write_bytes(chunk)
            i += 1
    path.unlink()
    sources = shard_sources_from_dir(shard_dir)
    assert len(sources) == i and sum(s.size for s in sources) == blob_size

    f = open_gguf(ShardedBytes(sources))
    gc.collect()
    tracemalloc.start()
    try:
        seen = []
        for info, value in f.iter_tensors():
            seen.append((info.name, value.shape, value.nbytes))
            del value  # a real consumer uploads to the GPU and drops the host copy
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [s[0] for s in seen] == list(f.tensors)
    largest, total = max(sizes), sum(sizes)
    print(f"peak {peak} largest {largest} total {total}")
    assert peak < 3 * largest, (peak, largest)
    assert peak < total / 4, (peak, total)


def test_iter_tensors_named_subset_in_order(tmp_path, rng):
    path = tmp_path / "m.gguf"
    _, tensors = write_gguf(path, rng)
    f = open_gguf(path)
    names = ["q4.w", "f32.vec"]
    got = list(f.iter_tensors(names))
    assert [i.name for i, _ in got] == names
    np.testing.assert_array_equal(got[1][1], tensors["f32.vec"][2])
