"""First-order Taylor scores of whole units, from the weight-level grad×weight sums.

Removing a unit scales its producers' output columns by 0 instead of 1, so
to first order the objective changes by ``Σ w · ∂f/∂w`` over those columns
(Molchanov et al., "Importance Estimation for Neural Network Pruning", 2019).
That sum is the weight-level grad×weight score added up over the unit's
weights, so one weight-level scoring pass ranks every unit:

* forgetting: how much removing the unit lowers the forget examples' output
  (signed sum) against how much the unit matters to the rest (sum of
  per-example magnitudes), the same contrast as weight-level forgetting
  (:func:`keras_forget.selection.contrast`);
* pruning: how much the unit matters to any example (low = prunable).

Units are the unit groups of a :class:`~keras_forget.introspect.graph.Graph`
(filters, Dense units, attention heads).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from keras_forget.introspect import heads
from keras_forget.introspect.graph import Graph, Group
from keras_forget.scores.gradient import GradXWeight
from keras_forget.scores.units import UnitScore, UnitScoreMap
from keras_forget.selection.weights import FLOOR, check_floor, contrast


class Taylor(UnitScore):
    """How much removing a unit changes the output, to first order.

    Args:
        floor: the forget-vs-retain contrast's floor (forgetting only), in units
            of the mean retain score, as for weight-level forgetting.
    """

    name = "taylor"
    #: Scored from gradients of the whole model, not from activations alone.
    needs_gradients = True

    def __init__(self, floor: float = FLOOR) -> None:
        self.floor = check_floor(floor)

    def get_config(self) -> dict[str, Any]:
        return {"floor": self.floor}

    def from_weight_scores(
        self,
        graph: Graph,
        forget: Mapping[str, np.ndarray] | None,
        retain: Mapping[str, np.ndarray],
    ) -> UnitScoreMap:
        """Unit scores from weight-level grad×weight maps.

        Args:
            graph: the model's graph; its prunable groups are scored.
            forget: signed grad×weight sums over the examples to forget, or
                None to score pruning saliency.
            retain: per-example magnitude sums over the examples to keep (all
                examples when pruning).

        Returns:
            ``{group key: float64 scores [units]}``; groups whose producers have
            no scored weight get zeros.
        """
        groups = graph.prunable()
        kept = {k: unit_sums(graph, g, retain) for k, g in groups.items()}
        if forget is None:
            # a group with no scored weight (its layer is left whole) is kept first
            top = max((float(v.max()) for v in kept.values() if v.size), default=0.0)
            unscored = [k for k, g in groups.items() if not _scored(graph, g, retain)]
            return {k: np.full_like(v, top) if k in unscored else v for k, v in kept.items()}
        lost = {k: unit_sums(graph, g, forget) for k, g in groups.items()}
        return contrast(lost, kept, floor=self.floor)

    def weight_score(self) -> GradXWeight:
        """The weight-level score the unit sums are taken of (its forget variant is signed)."""
        return GradXWeight()

    def _update(self, features: Mapping[str, np.ndarray], y: np.ndarray) -> None:
        raise NotImplementedError("Taylor scores are computed from gradients: see score_units.")


def unit_sums(graph: Graph, group: Group, scores: Mapping[str, np.ndarray]) -> np.ndarray:
    """Adds up ``scores`` over the weights of each unit of ``group``.

    A producer's weight has its units on the last axis (a kernel's output
    columns, a bias); an attention layer's heads are found by its head masks.

    Args:
        graph: the model's graph.
        group: a prunable unit group.
        scores: a weight-level ScoreMap (``"<layer>/<weight>"`` keys).

    Returns:
        float64 ``[group.size]``.
    """
    total = np.zeros(group.size, np.float64)
    if group.kind == "heads":
        layer = graph.layer(group.score_layer)
        for unit in range(group.size):
            only = np.arange(group.size) == unit
            for key, mask in heads.weight_masks(layer, only).items():
                if key in scores:
                    total[unit] += float(np.sum(np.asarray(scores[key], np.float64)[mask]))
        return total
    for name in group.producers:
        for key in _keys_of(name, scores):
            value = np.asarray(scores[key], np.float64)
            if value.shape and value.shape[-1] == group.size:
                total += value.reshape(-1, group.size).sum(axis=0)
    return total


def _scored(graph: Graph, group: Group, scores: Mapping[str, np.ndarray]) -> bool:
    """Whether any weight of the group's units has a score."""
    if group.kind == "heads":
        return any(k.startswith(f"{group.score_layer}/") for k in scores)
    return any(_keys_of(name, scores) for name in group.producers)


def _keys_of(name: str, scores: Mapping[str, np.ndarray]) -> Sequence[str]:
    """The scored weight keys of layer ``name`` that carry its output units."""
    prefix = f"{name}/"
    return [
        k
        for k in scores
        if k.startswith(prefix) and "/" not in k[len(prefix) :] and "depthwise" not in k
    ]
