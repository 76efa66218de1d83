"""Forget and retain accuracy, per-class accuracy.

*Forget accuracy* is the accuracy on examples of the forgotten class(es) and
*retain accuracy* the accuracy on all other examples: the accuracies
themselves, not their drops.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix

from keras_forget.data import Data
from keras_forget.errors import InvalidArgumentError
from keras_forget.introspect.inputs import forward_batch


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Accuracies of a classifier on labelled data.

    Attributes:
        accuracy: over all examples.
        per_class: ``{class: accuracy on that class's examples}`` (recall).
        forget_accuracy: accuracy on the target classes' examples (None
            without targets).
        retain_accuracy: accuracy on every other example (None without targets).
        target_classes: the classes treated as forgotten.
    """

    accuracy: float
    per_class: dict[int, float]
    forget_accuracy: float | None = None
    retain_accuracy: float | None = None
    target_classes: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def predict_labels(
    model: Any, data: Data, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray, int]:
    """``(true labels, predicted labels, number of outputs)`` over ``data``, batch by batch.

    Batches are cut to ``forward_batch(model, batch_size)`` examples, so a large model's
    eager forward pass holds a bounded amount of memory.
    """
    truth, predicted, classes = [], [], 0
    for x, y in data.batches(forward_batch(model, batch_size)):
        out = np.asarray(model(x, training=False))
        truth.append(y)
        predicted.append(out.argmax(axis=-1))
        classes = out.shape[-1]
    return np.concatenate(truth), np.concatenate(predicted), int(classes)


def _targets(target_class: int | Sequence[int] | None) -> tuple[int, ...]:
    if target_class is None:
        return ()
    if isinstance(target_class, (int, np.integer)):
        return (int(target_class),)
    return tuple(int(c) for c in target_class)


def accuracies(
    truth: np.ndarray, predicted: np.ndarray, classes: int, target_class: Any = None
) -> Evaluation:
    """Builds an :class:`Evaluation` from labels (pure array code)."""
    targets = _targets(target_class)
    matrix = confusion_matrix(truth, predicted, labels=list(range(classes)))
    support = matrix.sum(axis=1)
    per_class = {c: float(matrix[c, c] / support[c]) for c in range(classes) if support[c] > 0}
    result = Evaluation(float(accuracy_score(truth, predicted)), per_class, target_classes=targets)
    if not targets:
        return result
    forget = np.isin(truth, targets)
    fa = float(accuracy_score(truth[forget], predicted[forget])) if forget.any() else float("nan")
    ra = (
        float(accuracy_score(truth[~forget], predicted[~forget]))
        if (~forget).any()
        else float("nan")
    )
    return dataclasses.replace(result, forget_accuracy=fa, retain_accuracy=ra)


def evaluate(model: Any, data: Any, target_class: int | Sequence[int] | None = None) -> Evaluation:
    """Accuracy, per-class accuracy, and forget/retain accuracy of a classifier.

    Args:
        model: a Keras 3 or tf_keras classifier (logits or probabilities).
        data: labelled ``(x, y)``, a ``tf.data.Dataset`` of ``(x, y)``, or a
            :class:`~keras_forget.data.Data`.
        target_class: the forgotten class or classes, if any.

    Returns:
        An :class:`Evaluation`.

    Raises:
        InvalidArgumentError: bad data, or a target class outside the model's outputs.
    """
    truth, predicted, classes = predict_labels(model, Data.of(data, model))
    for c in _targets(target_class):
        if not 0 <= c < classes:
            raise InvalidArgumentError(
                f"`target_class` {c} is outside the model's {classes} outputs (0..{classes - 1})."
            )
    return accuracies(truth, predicted, classes, target_class)


def evaluate_examples(model: Any, forget: Data, retain: Data, test: Data | None) -> Evaluation:
    """Accuracies after forgetting a subset of examples rather than a class.

    Args:
        model: a Keras 3 or tf_keras classifier.
        forget: the forgotten examples.
        retain: the rest of the training examples.
        test: unseen examples, or None.

    Returns:
        An :class:`Evaluation` whose ``forget_accuracy`` is on ``forget``, whose
        ``retain_accuracy`` is on ``retain``, and whose ``accuracy`` and
        ``per_class`` are on ``test`` (on ``retain`` without ``test``).
    """
    on_forget = predict_labels(model, forget)
    on_retain = predict_labels(model, retain)
    truth, predicted, classes = on_retain if test is None else predict_labels(model, test)
    result = accuracies(truth, predicted, classes)
    return dataclasses.replace(
        result,
        forget_accuracy=float(accuracy_score(on_forget[0], on_forget[1])),
        retain_accuracy=float(accuracy_score(on_retain[0], on_retain[1])),
    )
