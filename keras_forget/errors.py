"""Exceptions raised by keras_forget.

Each class also derives from the built-in exception a caller would expect, so
``except ValueError`` keeps working.
"""

from __future__ import annotations


class KerasForgetError(Exception):
    """Base class of every error keras_forget raises on purpose."""


class InvalidArgumentError(KerasForgetError, ValueError):
    """An argument has the wrong value, kind or shape."""


class NonFiniteError(KerasForgetError, ValueError):
    """Scores or weights contain NaN or infinity."""


class UnsupportedLayerError(KerasForgetError, ValueError):
    """A layer has trainable weights keras_forget does not know how to prune."""


class NotPrunableError(KerasForgetError, ValueError):
    """A model has no prunable weight at all."""


class ExportError(KerasForgetError, RuntimeError):
    """An export failed: saving, converting, or the TFLite parity check."""


class SurgeryError(KerasForgetError, RuntimeError):
    """A structural edit went wrong: the smaller model does not compute what the masked one does."""


class NotAModelError(KerasForgetError, TypeError):
    """``model`` is not a Keras 3 or tf_keras model, or cannot be copied."""


class DatasetUnavailableError(KerasForgetError, RuntimeError):
    """A named dataset cannot be loaded here (not downloaded, or its loader is missing)."""


class PathExistsError(KerasForgetError, FileExistsError):
    """An output path already holds files and ``overwrite`` was not given."""
