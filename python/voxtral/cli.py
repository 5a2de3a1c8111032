"""The `voxtral` command line.

Subcommands register themselves in `build_parser`; each handler gets the parsed args and returns an
exit code. User mistakes raise `VoxtralError` and are printed as one clear line (exit 2), never as a
traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from voxtral.errors import VoxtralError


def _cmd_make_test_model(args) -> int:
    from voxtral.prepare.shard import parse_size  # the same sizes as `voxtral shard --max-bytes`
    from voxtral.testmodel import make_test_model
    out = make_test_model(args.kind, args.out_dir, seed=args.seed, fmt=args.format, preset=args.preset,
                          shard_bytes=parse_size(args.shard_bytes), progress=not args.quiet)
    print(out)
    return 0


def _cmd_tokenize(args) -> int:
    from voxtral.weights.loader import open_model
    model = open_model(args.model)
    tok = model.tokenizer()
    if args.voice:
        if model.kind != "tts":
            raise VoxtralError("--voice needs a TTS model")
        from voxtral.models.tts.prompt import build_tts_prompt  # lands with the TTS issue
        print(json.dumps(build_tts_prompt(tok, args.text, args.voice)))
        return 0
    print(json.dumps(tok.encode(args.text)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="voxtral",
        description="Voxtral Mini 4B Realtime (speech-to-text) and Voxtral 4B TTS, in Python with "
                    "WGSL kernels (browser via Pyodide + WebGPU, native via wgpu-py).")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    m = sub.add_parser("make-test-model", help="write a random-weight model in the published formats",
                       description="Write a random-weight model with the real tensor names, params.json "
                                   "keys and tokenizer layout, for tests and benchmarks.")
    m.add_argument("kind", choices=["asr", "tts"])
    m.add_argument("out_dir")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--format", choices=["mistral", "gguf", "shards"], default="mistral",
                   help="mistral: params.json + BF16 consolidated.safetensors + tekken.json; gguf: one "
                        "Q4_0 .gguf holding the quantization of the very BF16 weights the mistral form "
                        "has for the same --seed; shards: that .gguf byte-split into shard-aa, shard-ab, ...")
    m.add_argument("--preset", choices=["tiny", "full"], default="tiny",
                   help="tiny: seconds on a CPU; full: the real dimensions (GBs, minutes; for GPU benchmarks)")
    m.add_argument("--shard-bytes", default="512M", help="shard size for --format shards (default 512M)")
    m.add_argument("--quiet", action="store_true", help="no progress bar")
    m.set_defaults(func=_cmd_make_test_model)

    t = sub.add_parser("tokenize", help="print the token ids of TEXT as a JSON list",
                       description="Encode TEXT with the model's Tekken tokenizer (no BOS/EOS).")
    t.add_argument("text")
    t.add_argument("--model", required=True, help="model directory, .gguf or shard directory")
    t.add_argument("--voice", help="with a TTS model: print the full TTS prompt for this voice")
    t.set_defaults(func=_cmd_tokenize)

    for register in _extra_commands():
        register(sub)
    return p


def _extra_commands():
    """Subcommands that live next to their feature (transcribe, serve, bench, ...)."""
    import importlib
    mods = ("voxtral.transcribe_cli", "voxtral.speak_cli", "voxtral.serve", "voxtral.bench",
            "voxtral.prepare.cli")
    return [importlib.import_module(m).register for m in mods]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except VoxtralError as e:
        print(f"voxtral: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("voxtral: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `voxtral ... | head` closed the pipe: not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
