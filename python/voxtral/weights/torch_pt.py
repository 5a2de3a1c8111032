"""Read and write single-tensor `torch.save` files without torch (TTS voice embeddings).

The published `voice_embedding/<name>.pt` is a zip holding a pickle that rebuilds one BF16 tensor
[N, 3072] from a raw storage member `<archive>/data/0` (TTS spec 5.3). The reader unpickles with
stand-ins for the two torch globals it references; the writer emits the same few pickle opcodes,
so test models carry voices in the published layout and `torch.load` reads them back.
"""
from __future__ import annotations

import io
import pickle
import struct
import zipfile

import numpy as np

from voxtral.errors import ModelFormatError
from voxtral.weights.safetensors import f32_to_bf16_bits

_DTYPES = {"BFloat16Storage": "bf16", "FloatStorage": np.float32, "HalfStorage": np.float16}


class _Storage:
    def __init__(self, kind: str):
        self.kind = kind


def _rebuild_tensor(storage, offset, shape, stride, *args):
    return ("tensor", storage, offset, tuple(shape), tuple(stride))


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and name in _DTYPES:
            return name
        if module == "collections" and name == "OrderedDict":
            return dict
        raise ModelFormatError(f"unexpected object {module}.{name} in a voice .pt file")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel)
        return ("storage", pid[1], str(pid[2]))


def bf16_bits_to_f32(bits: np.ndarray) -> np.ndarray:
    # BF16 is the high half of an IEEE f32: the conversion is exact.
    return (bits.astype(np.uint32) << 16).view(np.float32)


def read_pt_tensor(path_or_bytes) -> np.ndarray:
    """The single tensor of a torch.save file as float32."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes)
    except (zipfile.BadZipFile, OSError) as e:
        raise ModelFormatError(f"{path_or_bytes!r:.80}: not a torch.save zip file ({e})") from None
    with zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("data.pkl")]
        if not pkl:
            raise ModelFormatError("voice .pt file has no data.pkl")
        root = pkl[0][: -len("data.pkl")]
        obj = _Unpickler(io.BytesIO(zf.read(pkl[0]))).load()
        if not (isinstance(obj, tuple) and obj and obj[0] == "tensor"):
            raise ModelFormatError("voice .pt file does not hold a single tensor")
        _, (_, kind, key), offset, shape, stride = obj
        raw = zf.read(f"{root}data/{key}")
    dt = _DTYPES[kind]
    n = int(np.prod(shape))
    if dt == "bf16":
        flat = bf16_bits_to_f32(np.frombuffer(raw, dtype="<u2"))
    else:
        flat = np.frombuffer(raw, dtype=np.dtype(dt).newbyteorder("<")).astype(np.float32)
    if offset + n > flat.size:
        raise ModelFormatError(f"voice tensor {list(shape)} needs {offset + n} values, storage has {flat.size}")
    itemsize = 1
    out = np.lib.stride_tricks.as_strided(flat[offset:], shape=shape,
                                          strides=[s * flat.itemsize * itemsize for s in stride])
    return np.array(out, dtype=np.float32)


def _unicode(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _int(v: int) -> bytes:
    return b"J" + struct.pack("<i", v)


def _tuple(items: list[bytes]) -> bytes:
    return b"(" + b"".join(items) + b"t"


def write_pt_bf16(path: str, x: np.ndarray, archive: str = "voice") -> None:
    """Write a 2-D float32 array as a BF16 tensor in torch.save's zip format."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    rows, cols = x.shape
    pid = _tuple([_unicode("storage"), b"ctorch\nBFloat16Storage\n", _unicode("0"), _unicode("cpu"),
                  _int(x.size)])
    pkl = (b"\x80\x02" + b"ctorch._utils\n_rebuild_tensor_v2\n" + b"(" + pid + b"Q" + _int(0)
           + _tuple([_int(rows), _int(cols)]) + _tuple([_int(cols), _int(1)]) + b"\x89"
           + b"ccollections\nOrderedDict\n)R" + b"tR.")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{archive}/data.pkl", pkl)
        zf.writestr(f"{archive}/byteorder", "little")
        zf.writestr(f"{archive}/data/0", f32_to_bf16_bits(x).tobytes())
        zf.writestr(f"{archive}/version", "3\n")
