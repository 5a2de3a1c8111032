"""safetensors: our reader and BF16 writer against the `safetensors` package (torch and numpy)."""
import os
import secrets

import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch

from voxtral.weights import SafetensorsFile, write_safetensors_bf16


@pytest.fixture
def rng():
    seed = int(os.environ.get("VOXTRAL_TEST_SEED", secrets.randbits(32)))
    print(f"random seed {seed} (rerun with VOXTRAL_TEST_SEED={seed})")
    return np.random.default_rng(seed)


def tricky_f32(rng, shape):
    """Random float32 with specials: infinities, NaN, subnormals, exact BF16 rounding ties."""
    x = (rng.standard_normal(shape) * 10.0 ** rng.integers(-30, 30, shape)).astype(np.float32)
    flat = x.reshape(-1)
    k = flat.size
    if k >= 8:
        flat[:8] = [np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-40, -3e38, 3.4e38]
    u = flat.view(np.uint32)
    ties = rng.choice(k, size=k // 4, replace=False)
    u[ties] = (u[ties] & 0xFFFF0000) | 0x8000  # exactly half-way: round to even
    return x


def test_our_bf16_file_reads_in_safetensors_torch(tmp_path, rng):
    tensors = {
        "enc.conv.weight": tricky_f32(rng, (8, 5, 3)),  # [out, in, k]
        "layers.0.attention.wq.weight": tricky_f32(rng, (16, 12)),  # [out, in]
        "norm.weight": tricky_f32(rng, (int(rng.integers(1, 50)),)),
        "empty": np.zeros((0, 4), np.float32),
    }
    path = tmp_path / "ours.safetensors"
    write_safetensors_bf16(path, tensors, metadata={"format": "pt"})
    theirs = safetensors.torch.load_file(str(path))
    assert set(theirs) == set(tensors)
    with SafetensorsFile(path) as f:
        assert f.names == list(tensors)
        assert f.metadata == {"format": "pt"}
        for name, x in tensors.items():
            t = theirs[name]
            assert t.dtype == torch.bfloat16 and tuple(t.shape) == x.shape
            assert f.shape(name) == x.shape and f.dtype(name) == "BF16"
            # our rounding equals torch's float32 -> bfloat16 (round to nearest even)
            want = torch.from_numpy(x).to(torch.bfloat16)
            nan = torch.isnan(want)
            assert torch.equal(t.view(torch.int16)[~nan], want.view(torch.int16)[~nan])
            assert torch.equal(torch.isnan(t), nan)
            ours = f.tensor(name)
            assert ours.dtype == np.float32 and ours.shape == x.shape
            np.testing.assert_array_equal(ours, t.float().numpy())  # NaN == NaN here


def test_torch_written_file_reads_bit_exact(tmp_path, rng):
    tensors = {
        "a.bf16": torch.from_numpy(tricky_f32(rng, (7, 9))).to(torch.bfloat16),
        "b.bf16": torch.from_numpy(tricky_f32(rng, (3, 4, 5))).to(torch.bfloat16),
        "c.f32": torch.from_numpy(tricky_f32(rng, (6,))),
        "d.f16": torch.from_numpy(rng.standard_normal((5, 2)).astype(np.float16)),
    }
    path = tmp_path / "torch.safetensors"
    safetensors.torch.save_file(tensors, str(path))
    f = SafetensorsFile(path)
    assert sorted(f.names) == sorted(tensors)
    assert {n: f.dtype(n) for n in tensors} == {"a.bf16": "BF16", "b.bf16": "BF16",
                                                "c.f32": "F32", "d.f16": "F16"}
    for name, t in tensors.items():
        ours = f.tensor(name)
        assert ours.dtype == np.float32 and ours.shape == tuple(t.shape)
        assert ours.tobytes() == t.float().numpy().tobytes()  # bit-exact, NaN payloads included
    f.close()


def test_numpy_written_file_and_iter(tmp_path, rng):
    arrays = {"x": rng.standard_normal((4, 3)).astype(np.float32),
              "y": rng.standard_normal((2, 8)).astype(np.float16)}
    path = tmp_path / "np.safetensors"
    safetensors.numpy.save_file(arrays, str(path))
    f = SafetensorsFile(path)
    got = dict(f.iter_tensors())
    assert set(got) == set(arrays)
    for name, a in arrays.items():
        np.testing.assert_array_equal(got[name], a.astype(np.float32))
    assert [n for n, _ in f.iter_tensors(["y"])] == ["y"]
    # numpy has no bfloat16, so safetensors.numpy can't load our BF16 file; its header must still
    # parse in the library's own reader (values were compared through torch above)
    write_safetensors_bf16(tmp_path / "w.safetensors", {"z": arrays["x"]})
    with safetensors.safe_open(str(tmp_path / "w.safetensors"), framework="pt") as sf:
        assert sf.get_slice("z").get_shape() == [4, 3]
        assert sf.get_slice("z").get_dtype() == "BF16"
