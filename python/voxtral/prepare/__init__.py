"""Model preparation: download the published files, quantize them to Q4_0 GGUF, shard, inspect.

Submodules are imported on use (`voxtral.prepare.quantize`, `.shard`, `.inspect`, `.download`):
the shard/manifest code is standard library only, while quantize needs `gguf` and download needs
`huggingface_hub`, which a runtime that only loads models (Pyodide) does not have.
"""
