"""Scores built from per-example gradients of the objective.

``gradxweight`` (sensitivity, ∂output/∂w · w) and ``fisher`` (diagonal
empirical Fisher). The objective is the log-likelihood of the label for a
classifier, or the user's ``output_fn``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from keras_forget.introspect.registry import PrunableWeight
from keras_forget.scores.base import Score
from keras_forget.scores.objective import Objective
from keras_forget.scores.per_example import reduce_per_example


class _PerExampleGradientScore(Score):
    """Accumulates a statistic of each example's gradient of the objective."""

    def reset(
        self, model: Any, weights: Mapping[str, PrunableWeight], objective: Objective
    ) -> None:
        super().reset(model, weights, objective)
        if self._rebound:  # same model and variables: keep the traced function
            return
        variables = {k: w.variable for k, w in weights.items()}
        self._run = reduce_per_example(
            lambda x, y: objective(model, x, y), variables, self._reduce_fn(variables)
        )

    def _reduce_fn(self, variables: Mapping[str, Any]):
        raise NotImplementedError

    def _accumulate(self, x: np.ndarray, y: np.ndarray) -> Mapping[str, Any]:
        return self._run(x, y)


class GradXWeight(_PerExampleGradientScore):
    """Sensitivity of the output to each weight, ``w · ∂f/∂w``.

    As in Singh & Roy, "Forgetibility through pruning in deep learning".

    ``f`` is the per-example objective (the centred logit of the label for a
    classifier). ``w · ∂f/∂w`` is the first-order estimate of how much ``f``
    falls when ``w`` is set to zero.

    Args:
        signed: average the signed sensitivity, so a weight scores high only if
            removing it lowers ``f`` on the data (the forget side of
            forgetting). By default the absolute value is taken per example, so
            opposite-signed contributions of different examples do not cancel
            (how much removing the weight would *change* ``f``).
    """

    name = "gradxweight"

    def __init__(self, signed: bool = False) -> None:
        self.signed = bool(signed)

    def get_config(self) -> dict[str, Any]:
        return {"signed": self.signed}

    def forget_variant(self) -> GradXWeight:
        """Scores the data to forget by how much each weight *supports* it."""
        return GradXWeight(signed=True)

    def _reduce_fn(self, variables: Mapping[str, Any]):
        signed = self.signed

        def reduce(key: str, grads: tf.Tensor) -> tf.Tensor:
            terms = grads * variables[key][None]
            return tf.reduce_sum(terms if signed else tf.abs(terms), axis=0)

        return reduce


class Fisher(_PerExampleGradientScore):
    """Diagonal empirical Fisher information: mean over examples of (∂f/∂w)².

    The importance that Selective Synaptic Dampening compares between the data
    to forget and the data to keep.
    """

    name = "fisher"

    def _reduce_fn(self, variables: Mapping[str, Any]):
        def reduce(key: str, grads: tf.Tensor) -> tf.Tensor:
            return tf.reduce_sum(tf.square(grads), axis=0)

        return reduce
