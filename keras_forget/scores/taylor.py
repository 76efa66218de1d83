"""First-order Taylor scores of whole units, from the weight-level grad×weight sums.

Removing a unit sets its output to 0. The unit's output is scaled by ``s`` when
the weights of the *last* affine layer on its channel are: the
BatchNormalization ``gamma`` and ``beta`` after it (or the depthwise kernel and
bias), else its producers' kernel column and bias. So to first order removing
it changes the objective by ``Σ w · ∂f/∂w`` over those weights, the unit's
activation times its gradient (Molchanov et al., "Importance Estimation for
Neural Network Pruning", 2019). That sum is the weight-level grad×weight score
added up over those weights, so one scoring pass ranks every unit:

* forgetting: how much removing the unit lowers the forget examples' output
  (signed sum) against how much the unit matters to the rest (sum of
  per-example magnitudes), the same contrast as weight-level forgetting
  (:func:`keras_forget.selection.contrast`);
* pruning: how much the unit matters to any example (low = prunable).

Units are the unit groups of a :class:`~keras_forget.introspect.graph.Graph`
(filters, Dense units, attention heads).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from keras_forget.contrast import FLOOR, check_floor, contrast
from keras_forget.introspect import heads
from keras_forget.introspect.graph import Graph, Group
from keras_forget.introspect.registry import (
    PrunableWeight,
    all_weights,
    prunable_weights,
    short_name,
)
from keras_forget.scores.gradient import GradXWeight
from keras_forget.scores.units import UnitScore, UnitScoreMap


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
            ``{group key: float64 scores [units]}``. A group with no scored
            weight (its layer is left whole) scores 0 for forgetting, never
            chosen, and the top score for pruning, pruned last.
        """
        groups = graph.prunable()
        plans = {k: scaling_weights(graph, g) for k, g in groups.items() if g.kind != "heads"}
        kept = {k: unit_sums(graph, g, retain, plans.get(k)) for k, g in groups.items()}
        if forget is None:
            top = max((float(v.max()) for v in kept.values() if v.size), default=0.0)
            unscored = [k for k, g in groups.items() if not _scored(g, retain, plans.get(k))]
            return {k: np.full_like(v, top) if k in unscored else v for k, v in kept.items()}
        lost = {k: unit_sums(graph, g, forget, plans.get(k)) for k, g in groups.items()}
        return contrast(lost, kept, floor=self.floor)

    def weights(self, graph: Graph) -> dict[str, PrunableWeight]:
        """The weights whose grad×weight sums make up the unit scores."""
        model = graph.model
        variables = all_weights(model)
        out: dict[str, PrunableWeight] = {}
        prunable = prunable_weights(model, required=False)
        for group in graph.prunable().values():
            if group.kind == "heads":
                prefix = f"{group.score_layer}/"
                out.update({k: w for k, w in prunable.items() if k.startswith(prefix)})
                continue
            for key, _, _ in scaling_weights(graph, group):
                name = graph.owner(key.rsplit("/", 1)[0])  # a Bidirectional holds its directions
                out[key] = PrunableWeight(key, graph.layer(name), variables[key])
        return out

    def weight_score(self) -> GradXWeight:
        """The weight-level score the unit sums are taken of (its forget variant is signed)."""
        return GradXWeight()

    def _update(self, features: Mapping[str, np.ndarray], y: np.ndarray) -> None:
        raise NotImplementedError("Taylor scores are computed from gradients: see score_units.")


#: ``(weight key, its units' axis, the units' positions on it or None for all)``.
Scaling = tuple[str, int, "np.ndarray | None"]


def unit_sums(
    graph: Graph,
    group: Group,
    scores: Mapping[str, np.ndarray],
    plan: list[Scaling] | None = None,
) -> np.ndarray:
    """Adds up ``scores`` over the weights that scale each unit of ``group``.

    A channel group's weights are those of :func:`scaling_weights`; an
    attention layer's heads are found by its head masks.

    Args:
        graph: the model's graph.
        group: a prunable unit group.
        scores: a weight-level ScoreMap (``"<layer>/<weight>"`` keys).
        plan: ``scaling_weights(graph, group)``, if already found.

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
    for key, axis, positions in scaling_weights(graph, group) if plan is None else plan:
        if key in scores:
            value = np.moveaxis(np.asarray(scores[key], np.float64), axis, -1)
            sums = value.reshape(-1, value.shape[-1]).sum(axis=0)
            if positions is None:  # a producer's columns: one block per gate of a recurrent layer
                total += sums.reshape(-1, group.size).sum(axis=0)
            else:
                total += sums[positions]
    return total


def scaling_weights(graph: Graph, group: Group) -> list[Scaling]:
    """The weights that scale a channel group's unit outputs together.

    Of the layers a unit's removal masks (its producers' kernel columns and
    biases; the BatchNormalization and depthwise entries of its channel), the
    last on each path: one that no other of them follows.
    """
    touched: dict[str, list[Scaling]] = {}
    for name in group.producers:
        for variable in graph.layer(name).weights:
            if short_name(variable) != "depthwise_kernel":  # a SeparableConv's input side
                touched.setdefault(name, []).append((f"{name}/{short_name(variable)}", -1, None))
    removed = {group.key: np.zeros(group.size, bool)}
    for name in [n for n in graph.order if graph.roles.get(n) in ("channelwise", "grouped")]:
        positions = np.flatnonzero(~graph.channel_mask(graph.inputs[name][0], removed))
        if len(positions) != group.size:
            continue
        for variable in graph.layer(name).weights:
            weight = short_name(variable)
            if weight not in ("moving_mean", "moving_variance"):
                axis = graph.channel_axis(name, len(variable.shape))
                touched.setdefault(name, []).append((f"{name}/{weight}", axis, positions))
    upstream = {n: _ancestors(graph, graph.owner(n)) for n in touched}
    last = [n for n in touched if not any(graph.owner(n) in upstream[m] for m in touched)]
    return [entry for name in last for entry in touched[name]]


def _ancestors(graph: Graph, name: str) -> set[str]:
    """Every layer upstream of ``name``."""
    seen: set[str] = set()
    stack = list(graph.parents.get(name, ()))
    while stack:
        parent = stack.pop()
        if parent not in seen:
            seen.add(parent)
            stack.extend(graph.parents.get(parent, ()))
    return seen


def _scored(group: Group, scores: Mapping[str, np.ndarray], plan: list[Scaling] | None) -> bool:
    """Whether any weight of the group's units has a score."""
    if group.kind == "heads":
        return any(k.startswith(f"{group.score_layer}/") for k in scores)
    return any(k in scores for k, _, _ in plan or ())
