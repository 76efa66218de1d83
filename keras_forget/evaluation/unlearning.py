"""How well a model has forgotten: accuracies, membership inference, distance to retraining.

:func:`evaluate_unlearning` measures one model on the three sets the
unlearning literature uses (forget, retain, test), runs the three
membership-inference attacks of :mod:`keras_forget.evaluation.membership`,
and, given a model retrained without the forget set (the gold standard),
how far the model's outputs are from it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from keras_forget import _keras, checks
from keras_forget.data import Data
from keras_forget.errors import InvalidArgumentError, NotAModelError
from keras_forget.evaluation import membership
from keras_forget.evaluation.membership import Outputs
from keras_forget.metrics import accuracies
from keras_forget.scores.objective import outputs_are_probabilities

_TINY = 1e-12


@dataclasses.dataclass(frozen=True)
class UnlearningEvaluation:
    """What :func:`evaluate_unlearning` measured.

    Attributes:
        forget_accuracy: accuracy on the forget set.
        retain_accuracy: accuracy on the retain set.
        test_accuracy: accuracy on the test set.
        mia_efficacy: SalUn's MIA-efficacy: fraction of forget examples an
            SVC on confidence judges non-member (higher = forgotten; a model
            retrained without a class ≈ 1). See
            :func:`~keras_forget.evaluation.membership.mia_efficacy`.
        mia_entropy: SSD's entropy attack: fraction of forget examples judged
            member (lower = forgotten; retrained without a class ≈ 0). See
            :func:`~keras_forget.evaluation.membership.entropy_attack`.
        mia_loss: SCRUB's loss attack: cross-validated accuracy telling forget
            from test examples (ideal ≈ 0.5). See
            :func:`~keras_forget.evaluation.membership.loss_attack`.
        per_class: ``{class: test accuracy}``.
        forgotten_classes: classes present in the forget set and absent
            from the retain set (the forgotten classes of class forgetting;
            empty when a subset of examples was forgotten).
        sizes: number of examples of ``forget``, ``retain`` and ``test``.
        retrain_agreement: with ``retrained``, the fraction of test examples
            on which both models predict the same class.
        retrain_forget_agreement: the same on the forget set.
        retrain_kl: with ``retrained``, the mean over test examples of
            ``KL(p_retrained ‖ p_model)``, in nats (0 = identical outputs).
        seconds: the unlearning call's wall time, if given.
        retrain_seconds: the retraining's wall time, if given.
    """

    forget_accuracy: float
    retain_accuracy: float
    test_accuracy: float
    mia_efficacy: float
    mia_entropy: float
    mia_loss: float
    per_class: dict[int, float]
    forgotten_classes: tuple[int, ...]
    sizes: dict[str, int]
    retrain_agreement: float | None = None
    retrain_forget_agreement: float | None = None
    retrain_kl: float | None = None
    seconds: float | None = None
    retrain_seconds: float | None = None

    @property
    def time_ratio(self) -> float | None:
        """``seconds / retrain_seconds`` when both are known (< 1: faster than retraining)."""
        if self.seconds is None or not self.retrain_seconds:
            return None
        return self.seconds / self.retrain_seconds

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serializable Python objects, ``time_ratio`` included."""
        out = dataclasses.asdict(self)
        out["per_class"] = {int(k): v for k, v in self.per_class.items()}
        out["time_ratio"] = self.time_ratio
        return out


def _seconds(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise InvalidArgumentError(f"`{name}` must be a number of seconds or None, got {value!r}.")
    if not (math.isfinite(value) and value >= 0):
        raise InvalidArgumentError(f"`{name}` must be finite and >= 0, got {value!r}.")
    return float(value)


def classifier(model: Any, name: str, sample: Any) -> tuple[int, bool]:
    """``(classes, from_logits)`` of a built Keras classifier, from one batch of inputs.

    Raises:
        NotAModelError: not a Keras 3 or tf_keras model.
        InvalidArgumentError: not built, or its output is not ``(batch, classes)``.
    """
    try:
        _keras.flavor(model)
    except NotAModelError:
        raise NotAModelError(
            f"`{name}` must be a Keras 3 or tf_keras model, got {type(model).__name__}."
        ) from None
    if not model.built:
        raise InvalidArgumentError(f"`{name}` is not built: call it on data or build() it first.")
    try:
        out = np.asarray(model(sample, training=False))
    except Exception as error:  # a Keras error about shapes: say which argument
        raise InvalidArgumentError(
            f"`{name}` cannot take these inputs: {type(error).__name__}: {str(error)[:200]}"
        ) from error
    if out.ndim != 2 or out.shape[-1] < 2:
        raise InvalidArgumentError(
            f"`{name}` must output (batch, classes) with classes >= 2; got {out.shape}."
        )
    return int(out.shape[-1]), not outputs_are_probabilities(out)


def outputs(model: Any, data: Data, from_logits: bool, batch_size: int = 256) -> Outputs:
    """The model's softmax probabilities and the labels over ``data``, batch by batch."""
    probs, labels = [], []
    for x, y in data.batches(batch_size):
        out = np.asarray(model(x, training=False), np.float64)
        if from_logits:
            out = np.exp(out - out.max(-1, keepdims=True))
            out /= out.sum(-1, keepdims=True)
        probs.append(out)
        labels.append(y)
    return Outputs(np.concatenate(probs), np.concatenate(labels))


def _accuracy(o: Outputs) -> float:
    return float(np.mean(o.probabilities.argmax(-1) == o.labels))


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    """Mean over rows of ``KL(p ‖ q)``."""
    p, q = np.maximum(p, _TINY), np.maximum(q, _TINY)
    return float(np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=1)))


def evaluate_unlearning(
    model: Any,
    *,
    forget: Any,
    retain: Any,
    test: Any,
    retrained: Any = None,
    seconds: float | None = None,
    retrain_seconds: float | None = None,
    seed: int = 0,
    batch_size: int = 256,
) -> UnlearningEvaluation:
    """Measures how well ``model`` has forgotten ``forget`` while keeping ``retain``.

    Args:
        model: the Keras 3 or tf_keras classifier to measure (logits or
            softmax outputs); not modified.
        forget: the forgotten training examples, ``(x, y)`` or a
            ``tf.data.Dataset`` (see :meth:`~keras_forget.data.Data.of`).
        retain: the training examples kept (members for the attacks).
        test: examples no model here trained on (non-members).
        retrained: optionally, the gold standard: the same architecture
            trained from scratch on ``retain`` only.
        seconds: optionally, how long the unlearning took.
        retrain_seconds: optionally, how long retraining took; with
            ``seconds`` it gives :attr:`UnlearningEvaluation.time_ratio`.
        seed: the attacks' random draws.
        batch_size: batch size of the predictions over array data.

    Returns:
        An :class:`UnlearningEvaluation`.

    Raises:
        InvalidArgumentError: an empty or malformed set, inputs that do not fit
            the model, labels outside its outputs, a retrained model with
            another number of outputs, fewer than
            :data:`~keras_forget.evaluation.membership.MIN_LOSS_ATTACK`
            forget examples (or test examples of their classes), or bad times.
        NotAModelError: ``model`` or ``retrained`` is not a Keras model.
    """
    seconds = _seconds(seconds, "seconds")
    retrain_seconds = _seconds(retrain_seconds, "retrain_seconds")
    checks.batch_size(batch_size)
    _keras.flavor(model)
    sets = {
        name: Data.of(value, model, name=name, batch_size=batch_size)
        for name, value in (("forget", forget), ("retain", retain), ("test", test))
    }
    classes, from_logits = classifier(model, "model", sets["forget"].first(32))
    for part in sets.values():
        part.check_classes(classes)
    forget_classes = set(sets["forget"].classes)
    membership.check_loss_attack_sizes(
        sets["forget"].size, sum(n for c, n in sets["test"].counts.items() if c in forget_classes)
    )
    if retrained is not None:
        gold_classes, gold_logits = classifier(retrained, "retrained", sets["test"].first(32))
        if gold_classes != classes:
            raise InvalidArgumentError(
                f"`retrained` has {gold_classes} outputs but `model` has {classes}."
            )
    out = {name: outputs(model, part, from_logits, batch_size) for name, part in sets.items()}
    test_eval = accuracies(out["test"].labels, out["test"].probabilities.argmax(-1), classes)
    result = UnlearningEvaluation(
        forget_accuracy=_accuracy(out["forget"]),
        retain_accuracy=_accuracy(out["retain"]),
        test_accuracy=_accuracy(out["test"]),
        mia_efficacy=membership.mia_efficacy(out["forget"], out["retain"], out["test"], seed=seed),
        mia_entropy=membership.entropy_attack(out["forget"], out["retain"], out["test"]),
        mia_loss=membership.loss_attack(out["forget"], out["test"], seed=seed),
        per_class=test_eval.per_class,
        forgotten_classes=tuple(sorted(forget_classes - set(sets["retain"].classes))),
        sizes={name: part.size for name, part in sets.items()},
        seconds=seconds,
        retrain_seconds=retrain_seconds,
    )
    if retrained is None:
        return result
    gold_test = outputs(retrained, sets["test"], gold_logits, batch_size)
    gold_forget = outputs(retrained, sets["forget"], gold_logits, batch_size)
    return dataclasses.replace(
        result,
        retrain_agreement=float(
            np.mean(gold_test.probabilities.argmax(-1) == out["test"].probabilities.argmax(-1))
        ),
        retrain_forget_agreement=float(
            np.mean(gold_forget.probabilities.argmax(-1) == out["forget"].probabilities.argmax(-1))
        ),
        retrain_kl=_kl(gold_test.probabilities, out["test"].probabilities),
    )
