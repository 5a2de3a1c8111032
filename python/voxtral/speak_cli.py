"""`voxtral speak`: text in, a 24 kHz WAV out (Voxtral 4B TTS).

Without --model it looks for real weights under ./models (or $VOXTRAL_MODELS); with none there it
generates a tiny random-weight demo model, says plainly that its output is noise, and says how to
get the real weights.
"""
from __future__ import annotations

import os
import struct
import sys
import time

import numpy as np

from voxtral.errors import VoxtralError
from voxtral.model_paths import TTS, resolve_model as _resolve

DEFAULT_VOICE = "casual_male"



# ----------------------------------------------------------------------------------- WAV out
class WavStreamWriter:
    """Mono PCM16 WAV written chunk by chunk, byte-identical to `voxtral.audio.wav.encode_wav` of
    the concatenated samples. The RIFF and data sizes are patched on close when the file is
    seekable; on a pipe they stay 0xFFFFFFFF ("until the end", which WAV readers accept)."""

    def __init__(self, f, rate: int):
        self.f, self.rate, self.n_bytes = f, int(rate), 0
        fmt = struct.pack("<HHIIHH", 1, 1, self.rate, self.rate * 2, 2, 16)  # PCM, mono, 16-bit
        self.f.write(b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt))
                     + fmt + b"data" + struct.pack("<I", 0xFFFFFFFF))

    def write(self, samples) -> None:
        x = np.asarray(samples, dtype=np.float64).reshape(-1)
        pcm = np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2").tobytes()  # as encode_wav
        self.f.write(pcm)
        self.n_bytes += len(pcm)
        self.f.flush()

    def close(self) -> None:
        try:
            seekable = self.f.seekable()
        except (AttributeError, OSError):
            seekable = False
        if seekable:
            self.f.seek(4)
            self.f.write(struct.pack("<I", 36 + self.n_bytes))  # "WAVE" + fmt chunk (24) + data header (8)
            self.f.seek(40)
            self.f.write(struct.pack("<I", self.n_bytes))
            self.f.seek(0, os.SEEK_END)
        self.f.flush()


def _open_out(path: str):
    """A context manager giving the binary file to write: stdout for '-', else a temporary file
    renamed to `path` once complete (an error or Ctrl-C leaves no partial WAV behind)."""
    import contextlib
    from voxtral.outfiles import atomic_output
    if path == "-":
        return contextlib.nullcontext(sys.stdout.buffer)
    return atomic_output(path, "wb", what="output WAV")


# ------------------------------------------------------------------------------------ command
def _read_text(arg: str | None) -> str:
    if arg is None:
        raise VoxtralError("no text given: voxtral speak TEXT --voice VOICE (or --list-voices)")
    return sys.stdin.read() if arg == "-" else arg


def _list_voices(model_files) -> int:
    from voxtral.tts_pipeline import TTSPipeline
    from voxtral.models.tts.prompt import voice_row_counts
    from voxtral.models.tts.voices import voice_language
    if model_files.kind != "tts":
        TTSPipeline(model_files)  # raises the clear "not a TTS model" error
    table = voice_row_counts(model_files.tokenizer())
    order = model_files.params["multimodal"].get("audio_tokenizer_args", {}).get("voice") or {}
    names = sorted(model_files.voices, key=lambda n: (order.get(n, len(order)), n))
    print(f"{'voice':<18}{'language':<12}rows")
    for n in names:
        rows = table.get(n, int(model_files.voice(n).shape[0]))
        print(f"{n:<18}{voice_language(n):<12}{rows}")
    return 0


def _check_voice(model_files, voice: str) -> None:
    """Fail on an unknown preset before the weights are loaded."""
    from voxtral.models.tts.voices import is_voice_path
    if model_files.kind == "tts" and not is_voice_path(voice) and voice not in model_files.voices:
        known = ", ".join(sorted(model_files.voices)) or "none"
        raise VoxtralError(f"unknown voice {voice!r}; valid voices: {known}")


def _cmd_speak(args) -> int:
    from voxtral.models.tts.text import check_text
    from voxtral.weights.loader import open_model

    if args.list_voices:
        path, _ = _resolve(TTS, args.model, args.quiet)
        return _list_voices(open_model(path))
    text = _read_text(args.text)
    check_text(text)  # empty / too long: before any model is touched
    if args.euler_steps < 1:
        raise VoxtralError(f"--euler-steps must be at least 1 (got {args.euler_steps})")
    if args.max_seconds is not None and args.max_seconds <= 0:
        raise VoxtralError(f"--max-seconds must be positive (got {args.max_seconds})")
    if args.out != "-":
        from voxtral.outfiles import check_output_path
        check_output_path(args.out, "output WAV")  # before the model is loaded, not after
    path, _ = _resolve(TTS, args.model, args.quiet)
    mf = open_model(path)
    _check_voice(mf, args.voice)

    from voxtral.tts_pipeline import TTSPipeline
    pipe = TTSPipeline(mf, backend=args.backend)
    if pipe.backend_note and not args.quiet:
        print(f"voxtral: {pipe.backend_note}", file=sys.stderr)
    t0 = time.perf_counter()
    if args.stream:
        with _open_out(args.out) as f:
            writer = WavStreamWriter(f, pipe.config.sampling_rate)
            done = [0.0]

            def on_audio(chunk):
                writer.write(chunk)
                done[0] += len(chunk) / pipe.config.sampling_rate
                if not args.quiet:
                    print(f"voxtral: {done[0]:.2f} s of audio after {time.perf_counter() - t0:.2f} s",
                          file=sys.stderr)

            speech = pipe.synthesize(text, args.voice, args.euler_steps, args.cfg_scale, args.seed,
                                     on_audio=on_audio, max_seconds=args.max_seconds)
            writer.close()
    else:
        speech = pipe.synthesize(text, args.voice, args.euler_steps, args.cfg_scale, args.seed,
                                 max_seconds=args.max_seconds)
        from voxtral.audio.wav import write_wav
        with _open_out(args.out) as f:
            write_wav(f, speech.audio, speech.sample_rate)
    if not args.quiet:
        t = speech.timings
        where = "stdout" if args.out == "-" else args.out
        print(f"voxtral: wrote {where}: {speech.seconds:.2f} s of {speech.sample_rate // 1000} kHz audio "
              f"({t['frames']} frames) in {t['total_s']:.2f} s on {pipe.backend}", file=sys.stderr)
    if len(speech.frames) == 0:
        print("voxtral: warning: the model ended the utterance before the first frame (no audio); "
              "try another --seed or voice", file=sys.stderr)
    return 0


def register(sub) -> None:
    from voxtral.models.tts.text import MAX_TEXT_CHARS
    s = sub.add_parser(
        "speak", help="speak TEXT into a WAV file (text-to-speech)",
        description="Synthesize speech with Voxtral 4B TTS: 24 kHz mono 16-bit WAV. TEXT is at most "
                    f"{MAX_TEXT_CHARS} characters ('-' reads it from stdin); texts over ~400 tokens are "
                    "spoken sentence by sentence.")
    s.add_argument("text", nargs="?", help="the text to speak ('-': read stdin)")
    s.add_argument("--voice", default=DEFAULT_VOICE,
                   help=f"preset voice name (see --list-voices) or a voice file (.pt, raw float32 .bin, "
                        f".npy); default {DEFAULT_VOICE}")
    s.add_argument("--model", help="model directory, .gguf or shard directory (default: look under "
                                   "./models, else a generated random-weight demo model)")
    s.add_argument("--euler-steps", type=int, default=7,
                   help="flow-matching Euler steps per frame (default 7, the reference; fewer is faster)")
    s.add_argument("--cfg-scale", type=float, default=1.2,
                   help="classifier-free guidance alpha (default 1.2, the reference)")
    s.add_argument("--seed", type=int, default=0, help="seed of the flow-matching noise (default 0)")
    s.add_argument("-o", "--out", default="speech.wav", help="output WAV file, '-' for stdout (default speech.wav)")
    s.add_argument("--backend", choices=["auto", "webgpu", "numpy", "numpy64"], default="auto",
                   help="compute backend (auto: WebGPU on a hardware adapter, else numpy; numpy64: "
                        "the float64 reference)")
    s.add_argument("--stream", action="store_true",
                   help="write the audio to --out as it is decoded (first chunk after 5 frames = 0.4 s); "
                        "with --out - it plays live through a pipe, a file appears complete at the end")
    s.add_argument("--max-seconds", type=float, default=None,
                   help="stop after this much audio (default: the model's END_AUDIO, at most 2048 frames "
                        "= 163.8 s per prompt)")
    s.add_argument("--list-voices", action="store_true", help="list the model's voices (name, language, rows)")
    s.add_argument("--quiet", action="store_true", help="no progress or summary lines")
    s.set_defaults(func=_cmd_speak)
