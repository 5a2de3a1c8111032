"""CLI for model preparation: `voxtral download | quantize | shard | inspect`.

Registered by `voxtral.cli._extra_commands`. The usual path from nothing to what the app serves:

    voxtral download asr --dir models                        # 8.9 GB BF16, resumable
    voxtral quantize asr models/Voxtral-Mini-4B-Realtime-2602 -o models/voxtral-asr-q4.gguf
    voxtral shard models/voxtral-asr-q4.gguf -o models/voxtral-q4-shards
    voxtral inspect models/voxtral-q4-shards
"""
from __future__ import annotations

import argparse
import sys

_PIPELINE = """\
typical use:
  voxtral download asr --dir models
  voxtral quantize asr models/Voxtral-Mini-4B-Realtime-2602 -o models/voxtral-asr-q4.gguf
  voxtral shard models/voxtral-asr-q4.gguf -o models/voxtral-q4-shards
  voxtral inspect models/voxtral-q4-shards"""


def _log(quiet: bool):
    return (lambda *a: None) if quiet else (lambda msg: print(msg, file=sys.stderr))


def _cmd_download(args) -> int:
    from voxtral.prepare.download import download
    path = download(args.kind, args.dir, args.source, args.revision, args.endpoint, args.token,
                    args.include or (), args.dry_run, progress=not args.quiet, log=_log(args.quiet))
    print(path)
    return 0


def _cmd_quantize(args) -> int:
    from voxtral.prepare.quantize import quantize_model
    r = quantize_model(args.src_dir, args.output, args.kind, progress=not args.quiet)
    _log(args.quiet)(f"wrote {r['path']}: {r['tensors']} tensors ({r['q4']} Q4_0, {r['f32']} F32"
                     + (f", {r['voices']} voices" if r["voices"] else "") + f"), {r['bytes'] / 1e9:.3f} GB "
                     f"in {r['seconds']:.1f} s")
    print(r["path"])
    return 0


def _cmd_shard(args) -> int:
    from voxtral.prepare.shard import parse_size, shard_gguf
    m = shard_gguf(args.file, args.output, parse_size(args.max_bytes), progress=not args.quiet)
    _log(args.quiet)(f"wrote {len(m['shards'])} shards ({m['shards'][0]['name']} .. {m['shards'][-1]['name']}) "
                     f"and manifest.json to {args.output}")
    print(args.output)
    return 0


def _cmd_inspect(args) -> int:
    from voxtral.prepare.inspect import format_text, inspect_path, to_json
    info = inspect_path(args.path, verify=not args.no_verify)
    print(to_json(info) if args.json else format_text(info, tensors=args.tensors))
    return 0 if info["ok"] else 1


def register(sub) -> None:
    raw = argparse.RawDescriptionHelpFormatter

    d = sub.add_parser(
        "download", help="fetch the published weights from the Hugging Face hub (resumable)",
        formatter_class=raw,
        description="Fetch a published model with huggingface_hub. Interrupted downloads resume where they "
                    "stopped when the same command is run again; every file is checked against the hub's "
                    "sha256 before it is used.\n\n"
                    "  asr --source mistral  mistralai/Voxtral-Mini-4B-Realtime-2602 (BF16, 8.9 GB)\n"
                    "  asr --source gguf     TrevorJS/voxtral-mini-realtime-gguf voxtral-q4.gguf (Q4, 2.5 GB)\n"
                    "  asr --source shards   the same, as shard-aa .. shard-ae (+ a manifest.json is written)\n"
                    "  tts --source mistral  mistralai/Voxtral-4B-TTS-2603 (BF16 + voice presets)",
        epilog="environment: HF_ENDPOINT (a mirror), HF_TOKEN (gated or private repos), "
               "HF_HUB_DISABLE_PROGRESS_BARS.\n\n" + _PIPELINE)
    d.add_argument("kind", choices=["asr", "tts"])
    d.add_argument("--dir", default="models", help="where models live (default: models/)")
    d.add_argument("--source", choices=["mistral", "gguf", "shards"], default="mistral",
                   help="which published form (default: mistral, the BF16 original)")
    d.add_argument("--revision", default="main", help="branch, tag or commit (default: main)")
    d.add_argument("--endpoint", default=None, help="hub URL (default: $HF_ENDPOINT or https://huggingface.co)")
    d.add_argument("--token", default=None, help="hub token (default: $HF_TOKEN or the saved login)")
    d.add_argument("--include", action="append", metavar="PATTERN",
                   help="also fetch repo files matching this glob (repeatable), e.g. README.md")
    d.add_argument("--dry-run", action="store_true", help="list the files and sizes, download nothing")
    d.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    d.set_defaults(func=_cmd_download)

    q = sub.add_parser(
        "quantize", help="BF16 Mistral directory -> one Q4_0 GGUF",
        formatter_class=raw,
        description="Quantize a published BF16 model directory (params.json, consolidated.safetensors, "
                    "tekken.json; TTS also voice_embedding/*.pt) to a Q4_0 GGUF in the community file's "
                    "layout: the same tensor names, 2-D weights as Q4_0 (ggml's reference quantizer), the "
                    "rest F32. params.json and tekken.json travel as GGUF metadata and TTS voices as "
                    "tensors, so the .gguf alone is a complete model. Streams tensor by tensor: memory "
                    "stays at a few tens of MB whatever the input size.",
        epilog=_PIPELINE)
    q.add_argument("kind", choices=["asr", "tts"], help="the model the directory must hold")
    q.add_argument("src_dir", metavar="SRC_DIR", help="the BF16 Mistral directory")
    q.add_argument("-o", "--output", required=True, metavar="OUT.gguf", help="the GGUF to write")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=_cmd_quantize)

    s = sub.add_parser(
        "shard", help="byte-split a GGUF into shard-aa, shard-ab, ... + manifest.json",
        formatter_class=raw,
        description="Split FILE like `split -b` (shard-aa, shard-ab, ...) so browsers and static hosts can "
                    "fetch it in pieces, and write manifest.json (names, sizes, sha256, total) that the "
                    "loader, the server and the browser check. An earlier shard set in DIR is replaced. "
                    "A tekken.json beside FILE is copied when the GGUF does not embed the tokenizer.",
        epilog=_PIPELINE)
    s.add_argument("file", metavar="FILE.gguf")
    s.add_argument("-o", "--output", required=True, metavar="DIR", help="directory for the shards")
    s.add_argument("--max-bytes", default="512M",
                   help="largest shard, e.g. 512M (default, as the community shards), 100M, 2G")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_shard)

    i = sub.add_parser(
        "inspect", help="show what a model file or directory holds and check it",
        formatter_class=raw,
        description="Print the format (Mistral directory, GGUF, shards, safetensors), the model kind and "
                    "configuration, the tokenizer, the tensors and their types, the voices, and whether "
                    "everything the model needs is there. For shards, every shard is checked against "
                    "manifest.json (size and sha256). Exit status 1 when a problem is found.",
        epilog=_PIPELINE)
    i.add_argument("path", metavar="PATH", help="model directory, .gguf, shard directory or .safetensors")
    i.add_argument("--json", action="store_true", help="machine-readable output (includes the tensor table)")
    i.add_argument("--tensors", action="store_true", help="also list every tensor (text output)")
    i.add_argument("--no-verify", action="store_true", help="skip the sha256 of shards (sizes are still checked)")
    i.set_defaults(func=_cmd_inspect)

