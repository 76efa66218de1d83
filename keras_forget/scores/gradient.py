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

from keras_forget.introspect.registry import PrunableWeight
from keras_forget.scores.base import Score, ScoreMap
from keras_forget.scores.factored import gradient_sums
from keras_forget.scores.objective import Objective


class _PerExampleGradientScore(Score):
    """Accumulates a statistic of each example's gradient of the objective.

    Args:
        factored: compute the sums of Dense and convolution kernels from one
            backward pass (:mod:`keras_forget.scores.factored`); False runs one
            per-example gradient per example everywhere. Both give the same scores.
    """

    #: What is summed over examples (see ``factored.STATISTICS``).
    statistic = "square"

    def __init__(self, factored: bool = True) -> None:
        self.factored = bool(factored)

    def get_config(self) -> dict[str, Any]:
        return {"factored": self.factored}

    def reset(
        self, model: Any, weights: Mapping[str, PrunableWeight], objective: Objective
    ) -> None:
        super().reset(model, weights, objective)
        if self._rebound:  # same model and variables: keep the traced function
            return
        self._run = gradient_sums(
            model,
            weights,
            self.statistic,
            objective.of_outputs if objective.is_classifier else None,
            lambda x, y: objective(model, x, y),
            factored=self.factored,
            autograph=objective.autograph(model),
        )

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

    def __init__(self, signed: bool = False, factored: bool = True) -> None:
        super().__init__(factored)
        self.signed = bool(signed)

    @property
    def statistic(self) -> str:  # type: ignore[override]
        """``Σ ∂f/∂w`` when signed, else ``Σ |∂f/∂w|``: ``w`` is constant over examples."""
        return "sum" if self.signed else "abs"

    def get_config(self) -> dict[str, Any]:
        return {"signed": self.signed, **super().get_config()}

    def forget_variant(self) -> GradXWeight:
        """Scores the data to forget by how much each weight *supports* it."""
        return GradXWeight(signed=True, factored=self.factored)

    def _accumulate(self, x: np.ndarray, y: np.ndarray) -> Mapping[str, Any]:
        sums = super()._accumulate(x, y)
        scale = {k: w.variable.numpy().astype(np.float64) for k, w in self._weights.items()}
        if not self.signed:
            scale = {k: np.abs(v) for k, v in scale.items()}
        return {k: s * scale[k] for k, s in sums.items()}


class Fisher(_PerExampleGradientScore):
    """Diagonal empirical Fisher information: mean over examples of (∂f/∂w)².

    The importance that Selective Synaptic Dampening compares between the data
    to forget and the data to keep.
    """

    name = "fisher"


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
