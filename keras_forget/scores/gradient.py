"""Scores built from per-example gradients of the objective.

``gradxweight`` (sensitivity, ∂output/∂w · w), ``fisher`` (diagonal empirical
Fisher ``F``, what forgetting and Selective Synaptic Dampening compare) and
``fisher_obd`` (the OBD saliency with ``F`` in place of the Hessian diagonal,
``½ · F · w²``, what ``kf.prune(method="fisher")`` ranks by). The objective is
the log-likelihood of the label for a classifier, or the user's ``output_fn``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from keras_forget.introspect.registry import PrunableWeight
from keras_forget.scores.base import Score, ScoreMap
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


class FisherOBD(Fisher):
    """Empirical-Fisher OBD saliency ``½ · F_kk · w_k²``: the loss increase of removing ``w_k``.

    The diagonal empirical Fisher ``F`` (mean squared per-example gradient of the
    log-likelihood) stands in for the Hessian diagonal of Optimal Brain Damage. ``F``
    alone ranks by curvature only, so it removes large weights in flat directions
    first; compression by ``method="fisher"`` ranks by this saliency instead, while
    forgetting keeps ``F`` (:class:`Fisher`).
    """

    name = "fisher_obd"

    def result(self) -> ScoreMap:
        """``½ · F · w²`` with ``F`` averaged over the examples seen."""
        fisher = super().result()
        return {
            k: (0.5 * fisher[k] * np.square(self._weights[k].variable.numpy())).astype(np.float32)
            for k in fisher
        }
