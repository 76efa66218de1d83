"""ScoreMap -> MaskMap for single weights. Pure array code, no model access.

A MaskMap is ``{weight key: bool array shaped like the weight}``, ``True`` for
a weight that is kept and ``False`` for one that is pruned.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from keras_forget.errors import InvalidArgumentError, NonFiniteError

ScoreMap = Mapping[str, np.ndarray]
MaskMap = dict[str, np.ndarray]
SCOPES = ("global", "layer")
#: The forget-vs-retain contrast's floor, in units of the mean retain score
#: (see :func:`contrast`); the one default every caller uses.
FLOOR = 0.1


def check_amount(amount: float, name: str = "amount", *, allow_zero: bool = False) -> float:
    """Validates a fraction in (0, 1) (or [0, 1) with ``allow_zero``)."""
    try:
        value = float(amount)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"`{name}` must be a number, got {amount!r}.") from None
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value < 1):
        interval = "[0, 1)" if allow_zero else "(0, 1)"
        raise InvalidArgumentError(f"`{name}` must be in {interval}, got {amount!r}.")
    return value


def check_scope(scope: str) -> str:
    """Validates ``scope`` (``"global"`` or ``"layer"``)."""
    if scope not in SCOPES:
        raise InvalidArgumentError(f"`scope` must be one of {SCOPES}, got {scope!r}.")
    return scope


def check_floor(floor: float) -> float:
    """Validates the contrast's ``floor`` (a number > 0)."""
    try:
        value = float(floor)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"`floor` must be a number > 0, got {floor!r}.") from None
    if not value > 0:
        raise InvalidArgumentError(f"`floor` must be > 0, got {floor!r}.")
    return value


def check_finite(scores: ScoreMap, what: str = "scores") -> None:
    """Raises NonFiniteError naming the first weight whose scores are not finite."""
    for key, value in scores.items():
        if not np.all(np.isfinite(value)):
            raise NonFiniteError(f"The {what} of weight {key!r} contain NaN or infinity.")


def _prune_order(values: np.ndarray, highest: bool) -> np.ndarray:
    """Indices in pruning order (first = pruned first); stable for ties."""
    order = np.argsort(-values if highest else values, kind="stable")
    return order


def select(
    scores: ScoreMap, amount: float, *, scope: str = "global", highest: bool = False
) -> MaskMap:
    """Prunes exactly ``round(amount · n)`` weights, chosen by score.

    Args:
        scores: the ScoreMap.
        amount: fraction of weights to prune, in [0, 1).
        scope: ``"global"`` ranks all weights together; ``"layer"`` prunes
            ``amount`` of each weight separately.
        highest: prune the highest scores (forgetting) instead of the lowest
            (compression).

    Returns:
        The MaskMap (``False`` = pruned).
    """
    check_amount(amount, allow_zero=True)
    check_scope(scope)
    check_finite(scores)
    if scope == "layer":
        return {k: select({k: v}, amount, highest=highest)[k] for k, v in scores.items()}
    keys = list(scores)
    flat = np.concatenate([np.asarray(scores[k], np.float64).ravel() for k in keys])
    count = int(round(amount * flat.size))
    keep = np.ones(flat.size, bool)
    keep[_prune_order(flat, highest)[:count]] = False
    masks, start = {}, 0
    for k in keys:
        size = int(np.prod(np.shape(scores[k])))
        masks[k] = keep[start : start + size].reshape(np.shape(scores[k]))
        start += size
    return masks


def normalize(scores: ScoreMap, what: str = "scores") -> dict[str, np.ndarray]:
    """Divides every score by the mean over all weights (a map with mean 1).

    Raises:
        NonFiniteError: the mean is not positive (every score is zero or
            negative), so there is no scale to compare on; ``what`` names the map.
    """
    total = sum(float(np.sum(v, dtype=np.float64)) for v in scores.values())
    count = sum(np.size(v) for v in scores.values())
    mean = total / count if count else 0.0
    if not mean > 0:
        raise NonFiniteError(
            f"The {what} are zero (or negative) for every weight: nothing singles out a "
            f"weight to prune. Check that the data has examples the model responds to, or "
            f"use another `method`."
        )
    return {k: np.asarray(v, np.float64) / mean for k, v in scores.items()}


def contrast(forget: ScoreMap, retain: ScoreMap, *, floor: float = FLOOR) -> dict[str, np.ndarray]:
    """How much more a weight matters to the data to forget than to the rest.

    Each group's scores are first normalised to mean 1, so that a class the
    model fits well (small gradients everywhere) is compared on its own scale,
    then ``contrast = max(forget, 0) / (retain + floor)`` (a signed forget
    score counts only where removing the weight lowers the output). The ``floor`` (in units of
    the mean retain score) keeps weights that matter to nothing from ranking
    first only because their retain score is near zero.

    Args:
        forget: ScoreMap over the examples to forget.
        retain: ScoreMap over the examples to keep.
        floor: added to the normalised retain score; larger values move the
            ranking toward the forget score alone.

    Returns:
        The contrast ScoreMap (higher = more specific to the data to forget).

    Raises:
        InvalidArgumentError: the maps have different keys or shapes, or
            ``floor`` is not positive.
    """
    if set(forget) != set(retain):
        raise InvalidArgumentError("`forget` and `retain` score maps must have the same keys.")
    check_floor(floor)
    check_finite(forget, "forget scores")
    check_finite(retain, "retain scores")
    f = normalize({k: np.maximum(v, 0.0) for k, v in forget.items()}, "forget scores")
    r = normalize(retain, "retain scores")
    return {k: f[k] / (r[k] + floor) for k in f}


def sparsity(masks: Mapping[str, np.ndarray]) -> float:
    """Fraction of pruned entries over all masks."""
    pruned = sum(int(np.size(m) - np.count_nonzero(m)) for m in masks.values())
    total = sum(int(np.size(m)) for m in masks.values())
    return pruned / total if total else 0.0


def tighten(
    scores: ScoreMap, masks: Mapping[str, np.ndarray], sparsity: float, scope: str = "global"
) -> MaskMap:
    """Prunes the lowest scores up to ``sparsity``, keeping every weight already pruned.

    Pruned weights are ranked first, so the new masks are a subset of ``masks``
    whenever ``sparsity`` is at least the current one (gradual pruning).

    Args:
        scores: the ScoreMap of the current weights.
        masks: the current MaskMap (``False`` = pruned).
        sparsity: target fraction of pruned weights (per weight for ``"layer"``).
        scope: ``"global"`` or ``"layer"``.

    Returns:
        The new MaskMap.
    """
    check_finite(scores)
    low = min(float(np.min(v)) for v in scores.values())
    floor = low - max(1.0, abs(low))  # below every score: pruned weights rank first
    ranked = {k: np.where(masks[k], scores[k], floor) for k in scores}
    new = select(ranked, sparsity, scope=scope, highest=False)
    return {k: new[k] & np.asarray(masks[k], bool) for k in new}
