"""`voxtral inspect`: what a model file or directory holds, and whether it is intact.

Two layers, so a broken model still gets a useful report: first the raw container (GGUF header,
metadata and tensor table; safetensors header; shard manifest with size and sha256 checks), then
the model view through `open_model` (kind, config, tokenizer, layout check, voices). Problems are
collected in `problems` instead of stopping at the first, and the CLI exits 1 when there are any.
"""
from __future__ import annotations

import json
import math
import os
from collections import Counter

from voxtral.errors import VoxtralError
from voxtral.weights.loader import KEY_KIND, KEY_PARAMS, KEY_TEKKEN, MANIFEST_NAME, VOICE_PREFIX

_BIG_KEYS = (KEY_PARAMS, KEY_TEKKEN)  # shown as a size, not inline


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    return str(n)


def _count(n: int) -> str:
    return f"{n / 1e9:.3f} B" if n >= 1e9 else f"{n / 1e6:.2f} M"


def _metadata_summary(md: dict) -> dict:
    out = {}
    for k, v in md.items():
        if k in _BIG_KEYS or (isinstance(v, str) and len(v) > 200):
            out[k] = f"<{len(v)} chars>"
        elif isinstance(v, list) and len(v) > 16:
            out[k] = f"<array of {len(v)}>"
        else:
            out[k] = v
    return out


def _tensor_rows(items) -> list[dict]:
    return [{"name": n, "shape": list(s), "type": t, "nbytes": b} for n, s, t, b in items]


def _describe_gguf(gg) -> dict:
    rows = _tensor_rows((t.name, t.shape, t.ggml_type.name, t.nbytes) for t in gg.tensors.values())
    return {"gguf_version": gg.version, "alignment": gg.alignment, "data_offset": gg.data_offset,
            "size": gg.source.size, "metadata": _metadata_summary(gg.metadata), "tensors": rows}


def _describe_safetensors(path: str) -> dict:
    from voxtral.weights.safetensors import _ITEMSIZE, SafetensorsFile
    with SafetensorsFile(path) as st:
        rows = _tensor_rows((n, st.shape(n), st.dtype(n), math.prod(st.shape(n)) * _ITEMSIZE[st.dtype(n)])
                            for n in st.names)
        return {"size": os.path.getsize(path), "metadata": st.metadata, "tensors": rows}


def _check_shards(path: str, verify: bool, problems: list) -> dict:
    """Manifest checks, every shard reported (not only the first bad one)."""
    from voxtral.weights.loader import check_manifest, file_sha256, read_manifest
    out: dict = {"manifest": None}
    try:
        m = read_manifest(path)
    except VoxtralError as e:
        problems.append(str(e))
        return out
    if m is None:
        out["note"] = f"no {MANIFEST_NAME}: shard sizes and checksums cannot be checked"
        return out
    out["manifest"] = MANIFEST_NAME
    out["total_size"] = m.get("total_size")
    try:
        check_manifest(path, m)
        out["names_sizes"] = "ok"
    except VoxtralError as e:
        out["names_sizes"] = "failed"
        problems.append(str(e))
    shards = []
    for e in m["shards"]:
        p = os.path.join(path, e["name"])
        row = {"name": e["name"], "size": e["size"]}
        if not os.path.isfile(p):
            row["status"] = "missing"
        elif os.path.getsize(p) != e["size"]:
            row["status"] = f"size {os.path.getsize(p)}"
        elif verify:
            ok = file_sha256(p) == e["sha256"].lower()
            row["status"] = "ok" if ok else "sha256 mismatch"
            if not ok:
                problems.append(f"{path}: shard {e['name']!r} is corrupted: its sha256 does not match "
                                f"{MANIFEST_NAME}")
        else:
            row["status"] = "size ok"
        shards.append(row)
    out["shards"] = shards
    if not verify:
        out["sha256"] = "not checked (--no-verify)"
    else:
        out["sha256"] = "ok" if all(r["status"] == "ok" for r in shards) else "FAILED"
    return out


def _config_summary(kind: str, p: dict) -> dict:
    dec = {k: p.get(k) for k in ("dim", "n_layers", "n_heads", "n_kv_heads", "head_dim", "hidden_dim", "vocab_size")}
    out = {"decoder" if kind == "asr" else "backbone": dec}
    mm = p.get("multimodal", {})
    if kind == "asr":
        enc = mm["whisper_model_args"]["encoder_args"]
        out["encoder"] = {k: enc.get(k) for k in ("dim", "n_layers", "n_heads", "head_dim", "hidden_dim")}
    else:
        am, ac = mm["audio_model_args"], mm["audio_tokenizer_args"]
        fm = am["acoustic_transformer_args"]
        out["flow_matching"] = {k: fm.get(k) for k in ("dim", "n_layers", "n_heads", "hidden_dim")}
        out["codec"] = {k: ac.get(k) for k in ("dim", "hidden_dim", "n_heads", "sampling_rate")}
    return out


def _describe_model(path: str, info: dict, problems: list) -> None:
    from voxtral.weights.loader import open_model
    try:
        mf = open_model(path)
    except VoxtralError as e:
        info["layout"] = "failed"
        problems.append(str(e))
        return
    info["kind"] = mf.kind
    info["layout"] = "ok"
    info["config"] = _config_summary(mf.kind, mf.params)
    if mf.tekken is not None:
        cfg = mf.tekken.get("config", {})
        info["tokenizer"] = {"vocab_size": cfg.get("default_vocab_size"),
                             "special_tokens": cfg.get("default_num_special_tokens"),
                             "version": cfg.get("version"), "audio": "audio" in mf.tekken}
    else:
        info["tokenizer"] = None
        problems.append(f"{path}: no tokenizer (tekken.json) found with this model")
    voices = {}
    for name in sorted(mf.voices):
        voices[name] = list(mf.voice(name).shape)
    if voices:
        info["voices"] = voices
    info["params"] = mf.params


def _form(path: str) -> tuple[str, str]:
    """(form, concrete path): gguf | safetensors | mistral | shards."""
    if os.path.isfile(path):
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic == b"GGUF":
            return "gguf", path
        if path.endswith(".safetensors"):
            return "safetensors", path
        if os.path.basename(path) == MANIFEST_NAME:
            return "shards", os.path.dirname(path) or "."
        raise VoxtralError(f"{path}: not a GGUF (magic {magic!r}) or .safetensors file")
    if not os.path.isdir(path):
        raise VoxtralError(f"{path}: no such file or directory")
    if os.path.exists(os.path.join(path, "params.json")):
        return "mistral", path
    ggufs = sorted(f for f in os.listdir(path) if f.endswith(".gguf"))
    if len(ggufs) == 1:
        return "gguf", os.path.join(path, ggufs[0])
    return "shards", path


def inspect_path(path: str, verify: bool = True) -> dict:
    """A JSON-able report; `problems` lists everything found wrong (empty = all good)."""
    path = os.fspath(path)
    form, real = _form(path)
    problems: list[str] = []
    info: dict = {"path": path, "format": form}
    if form == "safetensors":
        try:
            info.update(_describe_safetensors(real))
        except VoxtralError as e:
            problems.append(str(e))
    elif form == "mistral":
        info["files"] = {f: os.path.getsize(os.path.join(real, f)) for f in sorted(os.listdir(real))
                         if os.path.isfile(os.path.join(real, f))}
        st = os.path.join(real, "consolidated.safetensors")
        if os.path.exists(st):
            try:
                info.update(_describe_safetensors(st))
            except VoxtralError as e:
                problems.append(str(e))
        _describe_model(real, info, problems)
    else:
        from voxtral.weights.gguf import open_gguf
        if form == "shards":
            info["shards"] = _check_shards(real, verify, problems)
        try:
            gg = open_gguf(real)
            info.update(_describe_gguf(gg))
            info["kind_metadata"] = gg.metadata.get(KEY_KIND)
            gg.close()
        except VoxtralError as e:
            problems.append(str(e))
        if "tensors" in info:
            _describe_model(real if form == "shards" else path, info, problems)
    rows = info.get("tensors", [])
    info["n_tensors"] = len(rows)
    info["types"] = dict(Counter(r["type"] for r in rows))
    info["data_bytes"] = sum(r["nbytes"] for r in rows)
    info["parameters"] = sum(math.prod(r["shape"]) for r in rows if not r["name"].startswith(VOICE_PREFIX))
    info["problems"] = list(dict.fromkeys(problems))  # the loader may report what a check already did
    info["ok"] = not problems
    return info


def format_text(info: dict, tensors: bool = False) -> str:
    lines = [f"path:       {info['path']}"]
    fmt = info["format"]
    extra = ""
    if "gguf_version" in info:
        extra = f" (GGUF v{info['gguf_version']}, {_human(info['size'])}, data at byte {info['data_offset']})"
    elif "size" in info:
        extra = f" ({_human(info['size'])})"
    lines.append(f"format:     {fmt}{extra}")
    if "kind" in info:
        name = {"asr": "Voxtral Mini 4B Realtime (speech-to-text)", "tts": "Voxtral 4B TTS"}[info["kind"]]
        lines.append(f"model:      {info['kind'].upper()}, {name}")
        for part, d in info["config"].items():
            lines.append(f"  {part + ':':<15}" + ", ".join(f"{k} {v}" for k, v in d.items() if v is not None))
    if "tokenizer" in info:
        t = info["tokenizer"]
        lines.append("tokenizer:  " + ("none" if t is None else
                                       f"tekken {t['version']}, vocab {t['vocab_size']} ({t['special_tokens']} "
                                       f"special){', audio block' if t['audio'] else ''}"))
    types = ", ".join(f"{k} {v}" for k, v in sorted(info["types"].items()))
    lines.append(f"tensors:    {info['n_tensors']} ({types}), {_human(info['data_bytes'])} of data, "
                 f"{_count(info['parameters'])} parameters")
    if "layout" in info:
        lines.append(f"layout:     {'OK: every tensor the model needs, with the right shape' if info['layout'] == 'ok' else 'FAILED'}")
    if info.get("voices"):
        v = info["voices"]
        lines.append(f"voices:     {len(v)}: " + ", ".join(f"{n} {s[0]}" for n, s in v.items()))
    sh = info.get("shards")
    if sh is not None:
        if sh.get("manifest") is None:
            lines.append(f"shards:     {sh.get('note', 'manifest unreadable')}")
        else:
            rows = sh.get("shards", [])
            bad = [r for r in rows if r["status"] not in ("ok", "size ok")]
            lines.append(f"shards:     {len(rows)} in {MANIFEST_NAME}, names/sizes {sh.get('names_sizes')}, "
                         f"sha256 {sh['sha256']}" + (f"; BAD: " + ", ".join(f"{r['name']} ({r['status']})"
                                                                         for r in bad) if bad else ""))
    if "metadata" in info and info["metadata"]:
        lines.append("metadata:")
        for k, v in info["metadata"].items():
            lines.append(f"  {k} = {v}")
    if tensors:
        lines.append("tensor table (PyTorch-order shapes):")
        width = max((len(r["name"]) for r in info.get("tensors", [])), default=10)
        for r in info.get("tensors", []):
            lines.append(f"  {r['name']:<{width}}  {r['type']:<5} {str(r['shape']):<20} {r['nbytes']}")
    if info["problems"]:
        lines.append("PROBLEMS:")
        lines.extend(f"  - {p}" for p in info["problems"])
    else:
        lines.append("status:     OK")
    return "\n".join(lines)


def to_json(info: dict) -> str:
    return json.dumps(info, indent=2, default=str)
