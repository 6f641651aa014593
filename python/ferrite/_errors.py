"""ferrite's exceptions: every one derives from :class:`ferrite.Error`, and from the built-in
exception a Python user would catch for the same fault."""

import builtins


class Error(Exception):
    """Any error ferrite raises."""


class FileNotFoundError(Error, builtins.FileNotFoundError):
    """A file that does not exist (an image, a model, a data set)."""


class IOError(Error, OSError):
    """A file that exists but cannot be read."""


class ImageError(Error, ValueError):
    """Bytes that are not a readable image (corrupt, truncated, unknown format)."""


class SettingError(Error, ValueError):
    """A setting outside what it accepts; the message names the setting and the value."""


class DataError(Error, ValueError):
    """A data set that cannot be read (bad folder layout, bad CSV row: file and line named)."""


class ModelError(Error, ValueError):
    """A model file that is not a ferrite model, or an unknown embedded model name."""


class VideoError(Error, RuntimeError):
    """A video source that ffmpeg cannot open or decode."""


class InputError(Error, TypeError):
    """An image of a kind ferrite does not take (not a path, bytes, numpy array or PIL image)."""


class TrainingError(Error, RuntimeError):
    """A training run that cannot start or go on: its directory already holds a run, it cannot
    be resumed, or its loss stopped being a number (the last good checkpoint is kept)."""
