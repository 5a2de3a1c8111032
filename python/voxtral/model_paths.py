"""Where the CLI finds a model when no --model is given, and the demo model when there is none.

Real weights are looked for under ./models (or $VOXTRAL_MODELS) by the names the published files and
the seed project's server use; with none there, a tiny random-weight demo model is generated (once)
and the command says plainly that its output is meaningless and how to get the real weights.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelKind:
    kind: str  # "asr" | "tts"
    candidates: tuple[str, ...]  # looked for under models_dir(), in order
    demo_dir: str
    what_it_makes: str  # "transcript" / "audio", for the notice
    how_to_get: str


ASR = ModelKind(
    "asr", ("voxtral-q4-shards", "voxtral-q4.gguf", "Voxtral-Mini-4B-Realtime-2602"), "demo-asr-tiny",
    "transcript is meaningless text",
    "To use the real model, download one of (Hugging Face hub; `voxtral download asr` does it):\n"
    "  mistralai/Voxtral-Mini-4B-Realtime-2602   (BF16: params.json, consolidated.safetensors, tekken.json)\n"
    "  TrevorJS/voxtral-mini-realtime-gguf       (Q4: voxtral-q4.gguf, or shard-aa .. shard-ae)\n"
    "and put it under models/ (e.g. models/voxtral-q4-shards/) or pass --model PATH.")
TTS = ModelKind(
    "tts", ("voxtral-tts-q4-shards", "voxtral-tts-q4.gguf", "Voxtral-4B-TTS-2603"), "demo-tts-tiny",
    "audio is noise from random weights",
    "To get real speech, download the published model (Hugging Face hub; `voxtral download tts`):\n"
    "  mistralai/Voxtral-4B-TTS-2603   (params.json, consolidated.safetensors, tekken.json, voice_embedding/)\n"
    "and put it under models/ (models/Voxtral-4B-TTS-2603/) or pass --model PATH.")


def models_dir() -> str:
    return os.environ.get("VOXTRAL_MODELS", "models")


def find_model(k: ModelKind) -> str | None:
    for name in k.candidates:
        p = os.path.join(models_dir(), name)
        if os.path.exists(p):
            return p
    return None


def demo_model(k: ModelKind, quiet: bool = False) -> str:
    """Path of the random-weight demo model, generated on first use."""
    path = os.path.join(models_dir(), k.demo_dir)
    if not os.path.exists(os.path.join(path, "params.json")):
        from voxtral.testmodel import make_test_model
        if not quiet:
            print(f"voxtral: generating a random-weight demo {k.kind.upper()} model in {path} ...",
                  file=sys.stderr)
        make_test_model(k.kind, path, seed=0, fmt="mistral", preset="tiny")
    return path


def resolve_model(k: ModelKind, arg: str | None, quiet: bool = False) -> tuple[str, bool]:
    """(path, is_demo). The demo notice is printed even when quiet: nobody should mistake the demo
    model's output for the real model's."""
    if arg:
        return arg, False
    found = find_model(k)
    if found:
        return found, False
    path = demo_model(k, quiet)
    print(f"voxtral: NOTE: no real {k.kind.upper()} weights found under {models_dir()}/; using a "
          f"RANDOM-WEIGHT DEMO MODEL ({path}).\n"
          f"voxtral: its {k.what_it_makes}; it only shows the pipeline works.\n"
          + "\n".join("voxtral: " + line for line in k.how_to_get.splitlines()), file=sys.stderr)
    return path, True
