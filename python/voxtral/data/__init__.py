"""Small data files shipped with the package (the published TTS params.json)."""
import json
from importlib import resources


def tts_params_json() -> dict:
    return json.loads(resources.files(__package__).joinpath("tts_params.json").read_text())


def sample_wav_path() -> str:
    """A short English sample (espeak-ng, 16 kHz PCM16) used by the demo command."""
    return str(resources.files(__package__).joinpath("sample_hello.wav"))
