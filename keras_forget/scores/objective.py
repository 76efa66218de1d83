"""What a model's output means to a score.

For a classifier the default is the *centred logit* of the label,
``z_y − mean_k z_k`` (equal to ``log p_y − mean_k log p_k``, so it is computed
the same way from logits or probabilities). Unlike the log-likelihood, whose
gradient vanishes as ``p_y → 1``, it keeps measuring which weights produce a
class's evidence on examples the model already fits well, which is what
forgetting needs. ``"log_likelihood"`` (the training objective) is the other
choice. Other models (a generator, say) pass their own ``output_fn``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from keras_forget import _keras
from keras_forget.errors import InvalidArgumentError

TARGETS = ("centered_logit", "log_likelihood")


@dataclasses.dataclass(frozen=True)
class Objective:
    """Per-example scalar whose gradients the scores use.

    Attributes:
        from_logits: whether a classifier outputs logits (True) or
            probabilities (False).
        target: ``"centered_logit"`` or ``"log_likelihood"`` of the label.
        output_fn: optional ``(model, x, y) -> tensor [batch]`` replacing the
            classifier target, for models that are not classifiers.
    """

    from_logits: bool = True
    target: str = "centered_logit"
    output_fn: Callable[[Any, Any, Any], Any] | None = None

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise InvalidArgumentError(
                f"`Objective.target` must be one of {TARGETS}, got {self.target!r}."
            )

    @property
    def is_classifier(self) -> bool:
        return self.output_fn is None

    def autograph(self, model: Any) -> bool:
        """Whether a ``tf.function`` computing this objective needs AutoGraph.

        A user's ``output_fn`` may branch on tensors in Python, and so may a
        tf_keras model's layers (see :func:`keras_forget._keras.autograph`).
        """
        return self.output_fn is not None or _keras.autograph(model)

    def log_probs(self, outputs: tf.Tensor) -> tf.Tensor:
        """Log class probabilities ``[batch, classes]`` from the model outputs."""
        outputs = tf.cast(outputs, tf.float32)
        if self.from_logits:
            return tf.nn.log_softmax(outputs, axis=-1)
        return tf.math.log(tf.clip_by_value(outputs, 1e-12, 1.0))

    def __call__(self, model: Any, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        """Per-example objective ``[batch]`` of the label ``y``."""
        if self.output_fn is not None:
            return tf.reshape(tf.cast(self.output_fn(model, x, y), tf.float32), [-1])
        return self.of_outputs(model(x, training=False), y)

    def of_outputs(self, outputs: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        """A classifier's per-example objective ``[batch]`` from its outputs."""
        log_p = self.log_probs(outputs)
        picked = tf.gather(log_p, tf.cast(y, tf.int32), batch_dims=1)
        if self.target == "log_likelihood":
            return picked
        return picked - tf.reduce_mean(log_p, axis=-1)


def outputs_are_probabilities(outputs: np.ndarray) -> bool:
    """Whether a batch of classifier outputs looks like probabilities (rows sum to 1)."""
    outputs = np.asarray(outputs, np.float64)
    return bool(
        outputs.min() >= 0.0
        and outputs.max() <= 1.0
        and np.allclose(outputs.sum(-1), 1.0, atol=1e-3)
    )
