"""The one place that tells Keras 3 models from tf_keras (Keras 2) models.

tensorflow-model-optimization (tfmot) sets ``TF_USE_LEGACY_KERAS=1`` when it is
imported, which flips what ``tf.keras`` means for the rest of the process. It is
therefore imported lazily, through :func:`tfmot`, and only once a tf_keras model
has been handed to us: a user who only ever passes Keras 3 models never has it
imported.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType
from typing import Any, Literal

import keras

from keras_forget.errors import NotAModelError

Flavor = Literal["keras3", "tf_keras"]


def _tf_keras_module() -> ModuleType | None:
    """Returns the tf_keras module if the process already imported it."""
    return sys.modules.get("tf_keras")


def flavor(model: Any) -> Flavor:
    """Tells which Keras a model belongs to.

    Args:
        model: any object.

    Returns:
        ``"keras3"`` or ``"tf_keras"``.

    Raises:
        NotAModelError: if ``model`` is not a Keras model of either kind.
    """
    if isinstance(model, keras.Model):
        return "keras3"
    tfk = _tf_keras_module()
    if tfk is not None and isinstance(model, tfk.Model):
        return "tf_keras"
    raise NotAModelError(
        f"`model` must be a Keras 3 `keras.Model` or a tf_keras `tf_keras.Model`, "
        f"got {type(model).__module__}.{type(model).__name__}."
    )


def keras_module(model: Any) -> ModuleType:
    """Returns the Keras package (``keras`` or ``tf_keras``) a model was built with."""
    return keras if flavor(model) == "keras3" else _tf_keras_module()


def tfmot() -> ModuleType:
    """Imports tensorflow-model-optimization without changing the user's ``tf.keras``.

    tfmot sets ``TF_USE_LEGACY_KERAS=1`` on import; the variable is restored to
    what it was before, so code that reads it later sees the user's setting.

    Returns:
        The ``tensorflow_model_optimization`` module.
    """
    if "tensorflow_model_optimization" in sys.modules:
        return sys.modules["tensorflow_model_optimization"]
    before = os.environ.get("TF_USE_LEGACY_KERAS")
    try:
        return importlib.import_module("tensorflow_model_optimization")
    finally:
        if before is None:
            os.environ.pop("TF_USE_LEGACY_KERAS", None)
        else:
            os.environ["TF_USE_LEGACY_KERAS"] = before


def clone(model: Any) -> Any:
    """Returns an independent copy of a model with the same weights.

    Args:
        model: a built Keras 3 or tf_keras model (Sequential, functional, or a
            subclassed model whose ``get_config`` round-trips).

    Returns:
        A new model of the same flavor; changing it never touches ``model``.

    Raises:
        NotAModelError: if the model cannot be copied (a subclassed model without
            ``get_config``/``from_config``).
    """
    km = keras_module(model)
    try:
        copy = km.models.clone_model(model)
    except Exception as clone_error:  # subclassed models
        try:
            copy = type(model).from_config(model.get_config())
        except Exception as config_error:
            raise NotAModelError(
                f"Cannot copy model {model.name!r} of class {type(model).__name__}: "
                f"clone_model failed ({clone_error}) and from_config failed "
                f"({config_error}). Implement get_config()/from_config() on the class."
            ) from config_error
    if not copy.built:
        copy.build(_input_shape(model))
    copy.set_weights(model.get_weights())
    return copy


def _input_shape(model: Any) -> Any:
    """The batch input shape a built model was built with."""
    shape = getattr(model, "_build_shapes_dict", None)
    if shape:
        return next(iter(shape.values()))
    return model.input_shape


def input_shape(model: Any) -> Any:
    """The model's batch input shape (a list for several inputs), or None if unknown."""
    try:
        return model.input_shape
    except (AttributeError, ValueError):
        shapes = getattr(model, "_build_shapes_dict", None)
        return tuple(next(iter(shapes.values()))) if shapes else None


def output_size(model: Any, sample: Any = None) -> int:
    """Size of the model's last output axis (the number of classes of a classifier).

    Args:
        model: a built model.
        sample: a batch of inputs, used when the model does not declare its
            output shape (subclassed models).
    """
    try:
        return int(model.output_shape[-1])
    except (AttributeError, ValueError, TypeError):
        if sample is None:
            raise
        return int(model(sample, training=False).shape[-1])
