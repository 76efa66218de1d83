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
import numpy as np

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


#: Packages whose layers are written for graph mode: they never need AutoGraph.
_GRAPH_SAFE = (
    "keras.",
    "tf_keras.",
    "tensorflow.",
    "tensorflow_model_optimization.",
    "keras_forget.",
)


def autograph(model: Any) -> bool:
    """Whether a ``tf.function`` that calls ``model`` needs AutoGraph.

    tf_keras converts a layer's ``call`` with AutoGraph when the enclosing
    ``tf.function`` (or the functional graph being built) has it on, so a user's
    tf_keras layer, subclassed model or ``Lambda`` may branch on a tensor with a
    Python ``if``. The library layers of tf_keras and tfmot are written for
    graph mode, Keras 3 never converts layer code, and our own traced code is
    static Python: for those AutoGraph only costs time (transpiling, about a
    second per process for the scores and tfmot's wrapper).

    Args:
        model: a Keras 3 or tf_keras model.

    Returns:
        True for a tf_keras model holding code of its user's.
    """
    if flavor(model) != "tf_keras":
        return False
    return any(
        type(layer).__name__ == "Lambda" or not type(layer).__module__.startswith(_GRAPH_SAFE)
        for layer in _layers(model)
    )


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
    """Returns an independent copy of a model, with the same weights and layer names.

    The copy is made layer by layer, never by a config round-trip of the whole
    model (which Keras refuses for ``Lambda`` layers holding a Python lambda,
    and which cannot rebuild a class without ``get_config``):

    * Sequential and functional models, nested ones included, go through
      ``clone_model`` with :func:`_copy_layer` for each layer; shared layers
      stay shared. (As in Keras, a subclass of a functional model comes back
      as a plain functional model unless its constructor takes
      ``(inputs, outputs)``.)
    * A ``Lambda`` layer is rebuilt around the same Python function object.
    * Any other layer, or a subclassed model, is made again by its class: from
      its config, else (no config) by calling the class with no arguments,
      which is accepted only if the copy then computes what the original does
      on a random batch.

    The copy's layers then take the original's names, position by position in
    the layer tree (a subclassed model made again gets fresh automatic names,
    ``dense_7`` for ``dense_3``), so weight keys ``"<layer name>/<weight name>"``
    are the same in both; the weights are copied by position. As with Keras'
    own cloning, the copy's variables hold the constraints their layers declare:
    constraints set on the original's variables later (masks) are not carried,
    nor is a subclassed model's compiled state.

    Args:
        model: a built Keras 3 or tf_keras model.

    Returns:
        A new model of the same flavor; changing it never touches ``model``.

    Raises:
        NotAModelError: if the model cannot be copied; the message says what was
            tried and why it failed.
    """
    flavor(model)
    what = f"Cannot copy model {model.name!r} of class {type(model).__name__}"
    guessed: list[str] = []  # layers made by calling their class with no arguments
    try:
        copy = _copy_layer(model, guessed)
        if not copy.built:
            copy.build_from_config(model.get_build_config())
        if not _take_names(model, copy):
            raise _CopyError(
                f"the copy's layers ({_tree(copy)}) differ from the original's ({_tree(model)})"
            )
        copy.set_weights(model.get_weights())
    except _CopyError as error:
        raise NotAModelError(f"{what}: {error}.") from error
    except Exception as error:
        raise NotAModelError(
            f"{what}: the copy does not take the original's weights ({_brief(error)})."
        ) from error
    if guessed:
        _check_outputs(model, copy, what, guessed)
    return copy


class _CopyError(Exception):
    """A layer could not be made again; the message says what was tried."""


def _brief(error: BaseException) -> str:
    """An exception as one short line."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:200]}{'...' if len(text) > 200 else ''}"


def _layers(layer: Any) -> list[Any]:
    """``layer`` and every layer inside it, once each, in a stable order."""
    return list(layer._flatten_layers(include_self=True, recursive=True))


def _tree(layer: Any) -> str:
    return ", ".join(type(each).__name__ for each in _layers(layer))


def _is_graph(layer: Any) -> bool:
    """A Sequential or functional model (of either Keras)."""
    return any(c.__name__ in ("Sequential", "Functional") for c in type(layer).__mro__)


def _copy_layer(layer: Any, guessed: list[str]) -> Any:
    """A new layer like ``layer``, with the same name; weights are not copied.

    Appends to ``guessed`` the names of layers made without their arguments.
    An operation that is not a layer (a ``keras.ops`` node of a functional
    model) is made again from its config, as Keras itself does.
    """
    if not hasattr(layer, "_flatten_layers"):
        return type(layer).from_config(layer.get_config())
    if _is_graph(layer):
        try:
            return keras_module(layer).models.clone_model(
                layer, clone_function=lambda inner: _copy_layer(inner, guessed)
            )
        except _CopyError:
            raise
        except Exception as error:
            raise _CopyError(f"clone_model failed on {layer.name!r} ({_brief(error)})") from error
    if type(layer).__name__ == "Lambda" and callable(getattr(layer, "function", None)):
        return type(layer)(
            layer.function,
            output_shape=layer._output_shape,
            mask=layer.mask,
            arguments=dict(layer.arguments),
            name=layer.name,
            trainable=layer.trainable,
            dtype=layer.dtype_policy,
        )
    try:
        copy = type(layer).from_config(layer.get_config())
    except Exception as config_error:
        try:
            copy = type(layer)()
        except Exception as call_error:
            raise _CopyError(
                f"layer {layer.name!r} of class {type(layer).__name__} could not be made "
                f"again: from_config(get_config()) failed ({_brief(config_error)}) and "
                f"{type(layer).__name__}() failed ({_brief(call_error)}). Give the class a "
                f"get_config() returning its constructor arguments"
            ) from call_error
        guessed.append(layer.name)
    _take_names(layer, copy)  # before it is built: variables are named after their layers
    return copy


def _take_names(original: Any, copy: Any) -> bool:
    """Renames ``copy``'s layers like ``original``'s, position by position.

    Returns:
        Whether both have the same layers, of the same classes in the same order
        (nothing is renamed otherwise). The outermost class may differ: Keras
        clones a subclass of a functional model whose constructor does not take
        ``(inputs, outputs)`` as a plain functional model.
    """
    ours, theirs = _layers(original), _layers(copy)
    if [type(a) for a in ours[1:]] != [type(b) for b in theirs[1:]]:
        return False
    for a, b in zip(ours, theirs):
        if b.name != a.name:
            if isinstance(getattr(type(b), "name", None), property):  # tf_keras
                b._name = a.name
            else:
                b.name = a.name
    return True


def _check_outputs(model: Any, copy: Any, what: str, guessed: list[str]) -> None:
    """Raises unless ``copy`` computes what ``model`` does on a random batch.

    A layer made by calling its class with no arguments may differ from the
    original in what its weights do not show (an activation, a scale).
    """
    why = (
        f"{what}: {', '.join(map(repr, guessed))} had no config and was made by calling "
        f"its class with no arguments, "
    )
    try:
        x = _random_batch(model)
        ours = _flat(model(x, training=False))
        theirs = _flat(copy(x, training=False))
        same = len(ours) == len(theirs) and all(
            a.shape == b.shape and np.allclose(a, b, rtol=1e-4, atol=1e-5)
            for a, b in zip(ours, theirs)
        )
    except Exception as error:
        raise NotAModelError(
            f"{why}and the copy could not be checked against the original ({_brief(error)}). "
            f"Give the class a get_config() returning its constructor arguments."
        ) from error
    if not same:
        raise NotAModelError(
            f"{why}which computes something else than the original. Give the class a "
            f"get_config() returning its constructor arguments."
        )


def _random_batch(model: Any) -> Any:
    """Random inputs in [0, 1) shaped as the model was built (batch of 2 if unknown)."""
    shape = (model.get_build_config() or {}).get("input_shape")
    if shape is None:
        shape = model.input_shape
    rng = np.random.default_rng(0)

    def make(s: Any) -> Any:
        if isinstance(s, dict):
            return {k: make(v) for k, v in s.items()}
        if all(d is None or isinstance(d, int) for d in s):
            return rng.random([2 if d is None else d for d in s]).astype("float32")
        return [make(each) for each in s]

    return make(shape)


def _flat(outputs: Any) -> list[np.ndarray]:
    if isinstance(outputs, dict):
        return [a for k in sorted(outputs) for a in _flat(outputs[k])]
    if isinstance(outputs, (list, tuple)):
        return [a for each in outputs for a in _flat(each)]
    return [np.asarray(outputs)]


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
        shapes = getattr(model, "_build_shapes_dict", None)  # Keras 3
        if shapes:
            return tuple(next(iter(shapes.values())))
        built = getattr(model, "_build_input_shape", None)  # tf_keras
        if built is None or isinstance(built, (list, dict)):
            return None
        return (None, *tuple(built)[1:])


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
