"""What the unlearning baselines share: argument checks, training a copy, the Result they return."""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_forget import _keras, checks
from keras_forget.data import Data
from keras_forget.errors import InvalidArgumentError, NotAModelError
from keras_forget.evaluation.dampening import trainable_variables
from keras_forget.evaluation.forget_set import ForgetSet, check_choice
from keras_forget.metrics import Evaluation, evaluate, evaluate_examples
from keras_forget.results import Report, Result


def positive(value: Any, name: str, kind: type = float) -> Any:
    """``value`` as a ``kind`` (int: >= 1; float: > 0, finite).

    Raises:
        InvalidArgumentError: naming ``name``.
    """
    ok = isinstance(value, (int, np.integer)) or (kind is float and isinstance(value, float))
    if isinstance(value, bool) or not ok or not np.isfinite(value) or value <= 0:
        expected = "an int >= 1" if kind is int else "a number > 0"
        raise InvalidArgumentError(f"`{name}` must be {expected}, got {value!r}.")
    return kind(value)


def is_model(value: Any) -> bool:
    """Whether ``value`` is a Keras 3 or tf_keras model."""
    try:
        _keras.flavor(value)
    except NotAModelError:
        return False
    return True


def _evaluation(model: Any, split: ForgetSet, check: Data, eval_given: bool) -> Evaluation:
    """As the verbs report it: classes on ``check``; examples on forget, retain (and ``check``)."""
    if split.targets:
        return evaluate(model, check, split.targets)
    return evaluate_examples(model, split.forget, split.retain, check if eval_given else None)


def checked_eval_data(model: Any, eval_data: Any, split: ForgetSet) -> Data | None:
    """``eval_data`` checked against the model (None stays None), before any work."""
    if eval_data is None:
        return None
    return Data.of(eval_data, model, name="eval_data", num_classes=split.classes)


def baseline_result(
    name: str,
    model: Any,
    original: Any,
    split: ForgetSet,
    eval_data: Data | None,
    seconds: dict[str, float],
    *,
    pruned: int = 0,
    scope: str = "none",
) -> Result:
    """The :class:`Result` of a baseline, its report evaluating before and after.

    Args:
        name: the method's name.
        model: the model after unlearning.
        original: the model before, or None (retraining has none).
        split: the forget and retain sets.
        eval_data: the checked ``eval_data``, or None for ``data``.
        seconds: the wall time of each stage and ``"total"``.
        pruned: weights changed by SSD (0 for the others).
        scope: ``"global"`` for SSD, ``"none"`` for the others.
    """
    given = eval_data is not None
    check = eval_data if given else split.data
    total = int(sum(np.size(v) for v in trainable_variables(model).values()))
    before = None if original is None else _evaluation(original, split, check, given)
    report = Report(
        method=name,
        amount=pruned / total if total else 0.0,
        scope=scope,
        target_classes=split.targets,
        pruned=pruned,
        total=total,
        before=before,
        after=_evaluation(model, split, check, given),
        fine_tuned=None,
        seconds=seconds,
        eval_split="eval_data" if given else "data",
        forgotten_examples=split.forgotten_examples,
    )
    return Result(model=model, masks={}, report=report)


def train(
    model: Any,
    data: Data,
    *,
    from_logits: bool,
    optimizer: Any,
    epochs: int,
    batch_size: int,
    seed: int,
    verbose: bool,
    ascent: bool = False,
) -> None:
    """Fits ``model`` in place on ``data`` (integer labels), descending or ascending the loss."""
    km = _keras.keras_module(model)
    cross_entropy = km.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    loss = (lambda y, p: -cross_entropy(y, p)) if ascent else cross_entropy
    model.compile(optimizer=optimizer, loss=loss)
    model.fit(
        data.to_dataset(batch_size, shuffle_seed=seed),
        epochs=epochs,
        shuffle=False,
        verbose=1 if verbose else 0,
    )


def sgd(model: Any, learning_rate: float) -> Any:
    """SGD with momentum 0.9 of the model's Keras, as the SalUn and ℓ1-sparse code uses."""
    return _keras.keras_module(model).optimizers.SGD(learning_rate, momentum=0.9)


def common(
    model: Any, target_class: Any, forget: Any, epochs: Any, learning_rate: Any, batch_size: Any
) -> None:
    """Checks the arguments every baseline takes (None: not taken), before any work.

    Raises:
        InvalidArgumentError: both or neither of ``target_class`` and ``forget``, or a
            bad number, named in the message.
        NotAModelError: ``model`` is not a Keras model.
    """
    check_choice(target_class, forget)
    _keras.flavor(model)
    if epochs is not None:
        positive(epochs, "epochs", int)
    if learning_rate is not None:
        positive(learning_rate, "learning_rate")
    checks.batch_size(batch_size)


def concatenate(a: Any, b: Any) -> Any:
    """Two inputs (arrays, or tuples of arrays for several inputs) one after the other."""
    if isinstance(a, tuple):
        return tuple(np.concatenate([p, q]) for p, q in zip(a, b))
    return np.concatenate([a, b])
