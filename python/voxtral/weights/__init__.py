"""Weight files: GGUF (Q4_0, possibly byte-split into shards) and safetensors (BF16).

numpy + standard library only: this package also runs inside Pyodide.
"""
from .gguf import GGMLType, GGUFFile, TensorInfo, open_gguf
from .q4 import Q4Tensor, dequantize_q4_0, quantize_q4_0
from .safetensors import SafetensorsFile, write_safetensors_bf16
from .sources import BufferSource, ByteSource, FileSource, ShardedBytes, shard_sources_from_dir

__all__ = [
    "ByteSource", "FileSource", "BufferSource", "ShardedBytes", "shard_sources_from_dir",
    "GGMLType", "TensorInfo", "GGUFFile", "open_gguf",
    "Q4Tensor", "dequantize_q4_0", "quantize_q4_0",
    "SafetensorsFile", "write_safetensors_bf16",
]
