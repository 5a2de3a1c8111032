"""`voxtral transcribe`: a WAV file in, text / JSON / SRT / VTT out.

Without --model it looks for real weights under ./models (or $VOXTRAL_MODELS); with none there it
generates a small random-weight demo model, says so, and says how to get the real weights.
"""
from __future__ import annotations

import os
import sys

from voxtral.errors import VoxtralError
from voxtral.model_paths import ASR, resolve_model as _resolve



def _cmd_transcribe(args) -> int:
    from voxtral.audio.wav import WavReader
    from voxtral.outfiles import check_output_path

    if args.delay_ms is not None and (args.delay_ms <= 0 or args.delay_ms % 80 != 0):
        raise VoxtralError(f"--delay-ms must be a positive multiple of 80 (got {args.delay_ms})")
    if args.output:
        check_output_path(args.output)  # before minutes of work, not after
    # The file is read from disk piece by piece while it is transcribed (constant memory however
    # long it is); the header and any NaN samples are checked before the model is touched.
    reader = WavReader(args.audio)
    try:
        reader.check_finite()
        return _transcribe(args, reader)
    finally:
        reader.close()


def _transcribe(args, reader) -> int:
    from voxtral.asr_pipeline import FEED_SECONDS, ASRPipeline
    from voxtral.outfiles import atomic_output
    from voxtral.transcript import FORMATTERS
    from voxtral.weights.loader import open_model

    path, _ = _resolve(ASR, args.model, args.quiet)
    pipe = ASRPipeline(open_model(path), backend=args.backend)
    if pipe.backend_note and not args.quiet:
        print(f"voxtral: {pipe.backend_note}", file=sys.stderr)
    seconds = reader.seconds

    bar = None
    if not args.quiet and seconds > 5 and sys.stderr.isatty() or (args.progress and not args.quiet):
        from tqdm import tqdm
        bar = tqdm(total=round(seconds, 1), unit="s", desc="transcribing", file=sys.stderr, leave=False)

    def progress(done, total):
        if bar is not None:
            bar.n = round(done, 1)
            bar.refresh()

    def on_text(text):
        if args.stream:
            sys.stdout.write(text)
            sys.stdout.flush()

    try:
        tr = pipe.transcribe_pieces(reader.stream(16000, FEED_SECONDS), seconds, delay_ms=args.delay_ms,
                                    on_text=on_text if args.stream else None, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    if args.stream:
        sys.stdout.write("\n")
        if args.format == "text" and not args.output:
            return 0
    out = FORMATTERS[args.format](tr)
    if args.output:
        with atomic_output(args.output, "w", encoding="utf-8") as f:  # complete or absent
            f.write(out + ("\n" if not out.endswith("\n") else ""))
    else:
        print(out)
    return 0


def register(sub) -> None:
    t = sub.add_parser(
        "transcribe", help="transcribe a WAV file",
        description="Transcribe speech with Voxtral Mini 4B Realtime. AUDIO is a WAV file (PCM 8/16/24/32-bit "
                    "or float, any channel count and sample rate; resampled to 16 kHz mono).")
    t.add_argument("audio", help="WAV file")
    t.add_argument("--model", help="model directory, .gguf or shard directory (default: look under "
                                   "./models, else a generated random-weight demo model)")
    t.add_argument("--backend", choices=["auto", "webgpu", "numpy", "numpy64"], default="auto",
                   help="compute backend (auto: WebGPU on a hardware adapter, else numpy; numpy64: "
                        "the float64 reference)")
    t.add_argument("--delay-ms", type=float, default=None,
                   help="transcription delay in ms, a multiple of 80 (default: the model's, 480)")
    t.add_argument("--format", choices=["text", "json", "srt", "vtt"], default="text")
    t.add_argument("--stream", action="store_true", help="print text as it is decided")
    t.add_argument("-o", "--output", help="write the result to this file instead of stdout")
    t.add_argument("--progress", action="store_true", help="always show the progress bar")
    t.add_argument("--quiet", action="store_true", help="no progress bar or notices")
    t.set_defaults(func=_cmd_transcribe)
