"""The project's own error types.

Every problem a user can cause (a wrong file, a truncated shard, an unreadable WAV) raises one of
these with a message that names the problem; the CLI prints the message without a traceback.
"""


class VoxtralError(Exception):
    """Base class: a user-facing problem with a readable message."""


class ModelFormatError(VoxtralError):
    """A weight file is not what it claims to be (magic, version, type, truncation, ...)."""


class MissingTensorError(ModelFormatError):
    """A tensor the model needs is not in the file."""


class TensorShapeError(ModelFormatError):
    """A tensor exists but has the wrong shape."""


class AudioFormatError(VoxtralError):
    """An audio file could not be read or is not usable."""


class TokenizerError(VoxtralError):
    """The tokenizer file is missing, malformed, or lacks a needed special token."""
