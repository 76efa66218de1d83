"""Input checks shared by the verbs: each raises a clear error naming the argument
before any work is done."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from keras_forget import _keras
from keras_forget.data import Data, first_batch, input_rank
from keras_forget.errors import InvalidArgumentError, NonFiniteError
from keras_forget.scores.objective import outputs_are_probabilities
from keras_forget.surgery.registry import prunable_weights


def labelled(data: Any, name: str) -> None:
    """Raises unless ``data`` is labelled: an ``(x, y)`` pair or a dataset of pairs."""
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        if isinstance(spec, tuple) and len(spec) >= 2:
            return
    elif isinstance(data, (tuple, list)) and len(data) == 2 and data[1] is not None:
        return
    raise InvalidArgumentError(
        f"`{name}` must be labelled: a pair (x, y) or a tf.data.Dataset of (x, y) pairs."
    )


def target_classes(target_class: Any, classes: int) -> tuple[int, ...]:
    """The target classes as a tuple; some, not all, of ``0..classes-1``."""
    values = [target_class] if isinstance(target_class, (int, np.integer)) else target_class
    try:
        targets = tuple(int(c) for c in values)
    except TypeError:
        raise InvalidArgumentError(
            f"`target_class` must be an int or a list of ints, got {target_class!r}."
        ) from None
    if not targets:
        raise InvalidArgumentError("`target_class` is empty: name at least one class.")
    for c in targets:
        if not 0 <= c < classes:
            raise InvalidArgumentError(
                f"`target_class` {c} is outside the model's {classes} outputs (0..{classes - 1})."
            )
    if len(set(targets)) == classes:
        raise InvalidArgumentError("`target_class` names every class: nothing would be retained.")
    return targets


def num_classes(num_classes: Any, tune: Any, eval_data: Any) -> int:
    """``num_classes`` given with ``output_fn``, which accepts no fine-tuning or eval data."""
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise InvalidArgumentError(
            f"`num_classes` (an int >= 2) is required with `output_fn`; got {num_classes!r}."
        )
    if tune is not None or eval_data is not None:
        raise InvalidArgumentError(
            "`fine_tune` and `eval_data` need a classifier; they are not accepted with `output_fn`."
        )
    return int(num_classes)


def labels(model: Any, data: Data, classes: int) -> None:
    """The first batch's labels lie in ``0..classes-1``."""
    _, y = first_batch(data, 32, input_rank=input_rank(model))
    if y.size and (y.min() < 0 or y.max() >= classes):
        raise InvalidArgumentError(
            f"`data`: labels must be in 0..{classes - 1} (`num_classes`={classes}); "
            f"found {int(y.min())}..{int(y.max())}."
        )


def model(model: Any, data: Data | None, classifier: bool = True) -> int:
    """Validates the model; returns its number of outputs (classifiers)."""
    _keras.flavor(model)  # TypeError if not a Keras model
    if not model.built:
        raise InvalidArgumentError("`model` is not built: call it on data or build() it first.")
    weights = prunable_weights(model)
    for key, w in weights.items():
        if not np.all(np.isfinite(w.variable.numpy())):
            raise NonFiniteError(f"`model` weight {key!r} contains NaN or infinity.")
    if not classifier:
        return 0
    sample = None if data is None else first_batch(data, 32, input_rank=input_rank(model))[0]
    return _keras.output_size(model, sample)


def batch(model: Any, data: Data, classes: int, name: str = "data") -> bool:
    """Checks the first batch against the model; returns whether outputs are logits."""
    labelled(data, name)
    shape = _keras.input_shape(model)
    rank = input_rank(model)
    x, y = first_batch(data, 32, input_rank=rank, name=name)
    expected = tuple(shape[1:]) if isinstance(shape, tuple) else None
    if expected is not None and (
        len(x.shape) != rank or any(e is not None and e != a for e, a in zip(expected, x.shape[1:]))
    ):
        raise InvalidArgumentError(
            f"`{name}`: inputs of shape {x.shape[1:]} do not match the model's input {expected}."
        )
    if y.size and (y.min() < 0 or y.max() >= classes):
        raise InvalidArgumentError(
            f"`{name}`: labels must be in 0..{classes - 1} for a model with {classes} outputs; "
            f"found {int(y.min())}..{int(y.max())}."
        )
    out = np.asarray(model(x, training=False))
    if out.ndim != 2 or out.shape[-1] != classes:
        raise InvalidArgumentError(f"`model` must output (batch, classes); got {out.shape}.")
    return not outputs_are_probabilities(out)


def present(data: Data, targets: Sequence[int]) -> None:
    """For array data, checks that the target classes have examples (cheap, before work)."""
    if isinstance(data, (tuple, list)) and len(data) == 2:
        y = np.asarray(data[1])
        labels = y.argmax(-1) if y.ndim >= 2 and y.shape[-1] > 1 else y.reshape(-1)
        missing = [c for c in targets if not np.any(labels == c)]
        if missing:
            raise InvalidArgumentError(f"`data` has no example of target class(es) {missing}.")
