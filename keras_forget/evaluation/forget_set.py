"""What a baseline forgets: one or more classes, or given examples, and what it keeps.

Every baseline takes the forget set the way :func:`keras_forget.prune_for_class`
does: ``target_class`` (every example of those classes) or ``forget`` (given
examples, each of which must be in ``data``, matched by content: inputs and
label). The rest of ``data`` is the retain set.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from keras_forget import checks
from keras_forget.data import Data
from keras_forget.errors import InvalidArgumentError
from keras_forget.evaluation.unlearning import classifier


@dataclasses.dataclass(frozen=True)
class ForgetSet:
    """``data`` split into what is forgotten and what is kept.

    Attributes:
        data: all of the data, checked.
        forget: the examples to forget (part of ``data``).
        retain: every other example of ``data``.
        targets: the forgotten classes (empty when examples are forgotten).
        classes: the classifier's number of outputs.
        from_logits: whether the classifier outputs logits.
    """

    data: Data
    forget: Data
    retain: Data
    targets: tuple[int, ...]
    classes: int
    from_logits: bool

    @property
    def forgotten_examples(self) -> int:
        """How many given examples are forgotten (0 for class forgetting)."""
        return 0 if self.targets else self.forget.size


def check_choice(target_class: Any, forget: Any) -> None:
    """Exactly one of ``target_class`` and ``forget`` must be given.

    Raises:
        InvalidArgumentError: both or neither.
    """
    if (target_class is None) == (forget is None):
        raise InvalidArgumentError(
            "Give either `target_class` (classes to forget) or `forget` (examples to forget), "
            f"not {'both' if forget is not None else 'neither'}."
        )


def resolve(
    model: Any, data: Any, *, target_class: Any, forget: Any, batch_size: int = 64
) -> ForgetSet:
    """Checks the data and the forget set against ``model`` and splits ``data``.

    Args:
        model: a built Keras 3 or tf_keras classifier.
        data: ``(x, y)`` or a ``tf.data.Dataset`` of ``(x, y)``: all the
            training data, forget set included.
        target_class: the class or classes to forget, or None.
        forget: the examples to forget, ``(x, y)`` or a dataset, or None.
        batch_size: batch size for array data.

    Returns:
        A :class:`ForgetSet`.

    Raises:
        InvalidArgumentError: both or neither of ``target_class`` and
            ``forget``; bad data; a class not in ``data``; an empty forget set,
            one with an example not in ``data``, or one that is all of it.
    """
    check_choice(target_class, forget)
    checks.batch_size(batch_size)
    data = Data.of(data, model, batch_size=batch_size)
    classes, from_logits = classifier(model, "model", data.first(32))
    data.check_classes(classes)
    if target_class is not None:
        targets = checks.target_classes(target_class, classes, data)
        chosen = np.isin(data.labels, targets)
    else:
        targets = ()
        chosen = data.matching(Data.of(forget, model, name="forget", batch_size=batch_size))
    return ForgetSet(data, data.select(chosen), data.select(~chosen), targets, classes, from_logits)
