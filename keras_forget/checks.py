"""Argument checks the verbs run before any work; each error names the argument."""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_forget import _keras
from keras_forget.data import Data
from keras_forget.errors import InvalidArgumentError, NonFiniteError
from keras_forget.introspect.registry import LeftWhole, left_whole, prunable_weights
from keras_forget.scores.objective import outputs_are_probabilities

GRANULARITIES = ("weight", "unit")


def granularity(value: Any) -> str:
    """Validates ``granularity`` (``"weight"`` or ``"unit"``)."""
    if value not in GRANULARITIES:
        raise InvalidArgumentError(f"`granularity` must be one of {GRANULARITIES}, got {value!r}.")
    return value


def flag(value: Any, name: str) -> bool:
    """Validates a boolean argument."""
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidArgumentError(f"`{name}` must be True or False, got {value!r}.")
    return bool(value)


def batch_size(value: Any) -> int:
    """Validates ``batch_size`` (an int >= 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidArgumentError(f"`batch_size` must be an int >= 1, got {value!r}.")
    return int(value)


def model(model: Any, *, strict: bool = False) -> list[LeftWhole]:
    """A built Keras 3 or tf_keras model with finite prunable weights.

    Args:
        model: the model a verb was given.
        strict: refuse layers whose weights cannot be pruned, instead of
            leaving them whole.

    Returns:
        The layers that will be left whole (see
        :func:`keras_forget.introspect.registry.left_whole`).

    Raises:
        TypeError: not a Keras model (the error derives from TypeError).
        InvalidArgumentError: not built.
        UnsupportedLayerError: with ``strict``, a layer that cannot be pruned.
        NotPrunableError: nothing prunable.
        NonFiniteError: NaN or infinite weights.
    """
    _keras.flavor(model)
    if not model.built:
        raise InvalidArgumentError("`model` is not built: call it on data or build() it first.")
    for key, w in prunable_weights(model, strict=strict).items():
        if not np.all(np.isfinite(w.variable.numpy())):
            raise NonFiniteError(f"`model` weight {key!r} contains NaN or infinity.")
    return left_whole(model)


def outputs(model: Any, sample: Any) -> tuple[int, bool]:
    """``(number of outputs, from_logits)`` of a classifier, from one batch of inputs.

    Raises:
        InvalidArgumentError: the model's output is not ``(batch, classes)``.
    """
    out = np.asarray(model(sample, training=False))
    if out.ndim != 2 or out.shape[-1] < 2:
        raise InvalidArgumentError(
            f"`model` must output (batch, classes) with classes >= 2; got {out.shape}. "
            f"For other models pass `output_fn` and `num_classes`."
        )
    return int(out.shape[-1]), not outputs_are_probabilities(out)


def num_classes(value: Any) -> int:
    """``num_classes`` for a model that is not a classifier (with ``output_fn``)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 2:
        raise InvalidArgumentError(
            f"`num_classes` (an int >= 2) is required with `output_fn`; got {value!r}."
        )
    return int(value)


def target_classes(target_class: Any, classes: int, data: Data) -> tuple[int, ...]:
    """The target classes as a tuple: some, not all, of ``0..classes-1``, present in ``data``."""
    values = [target_class] if isinstance(target_class, (int, np.integer)) else target_class
    try:
        if isinstance(values, (str, bytes)):
            raise TypeError
        targets = tuple(int(c) for c in values)
    except (TypeError, ValueError):
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
    missing = [c for c in targets if c not in data.counts]
    if missing:
        raise InvalidArgumentError(
            f"`{data.name}` has no example of target class(es) {missing} "
            f"(classes present: {list(data.classes)})."
        )
    if not set(data.classes) - set(targets):
        raise InvalidArgumentError(
            f"`{data.name}` has only examples of the target class(es): nothing to retain."
        )
    return targets
