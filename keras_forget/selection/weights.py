"""ScoreMap -> MaskMap for single weights. Pure array code, no model access.

A MaskMap is ``{weight key: bool array shaped like the weight}``, ``True`` for
a weight that is kept and ``False`` for one that is pruned.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from keras_forget.contrast import check_finite
from keras_forget.errors import InvalidArgumentError

ScoreMap = Mapping[str, np.ndarray]
MaskMap = dict[str, np.ndarray]
SCOPES = ("global", "layer")
#: Score normalizations :func:`select` knows (None: the scores as they are).
NORMALIZATIONS = ("lamp",)


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


def _prune_order(values: np.ndarray, highest: bool) -> np.ndarray:
    """Indices in pruning order (first = pruned first); stable for ties."""
    order = np.argsort(-values if highest else values, kind="stable")
    return order


def check_normalization(normalization: str | None) -> str | None:
    """Validates ``normalize`` (None or one of :data:`NORMALIZATIONS`)."""
    if normalization is not None and normalization not in NORMALIZATIONS:
        raise InvalidArgumentError(
            f"`normalize` must be None or one of {NORMALIZATIONS}, got {normalization!r}."
        )
    return normalization


def check_min_density(min_density: float, amount: float | None = None) -> float:
    """Validates ``min_density``, a fraction in [0, 1) no larger than ``1 - amount``.

    Raises:
        InvalidArgumentError: not a fraction in [0, 1), or more weights kept per
            layer than a sparsity of ``amount`` leaves in all.
    """
    value = check_amount(min_density, "min_density", allow_zero=True)
    if amount is not None and value > 1.0 - float(amount) + 1e-12:
        raise InvalidArgumentError(
            f"`min_density` ({value}) keeps more of each layer than sparsity {amount} leaves "
            f"in all ({1.0 - float(amount):.4g}); lower `min_density` or the sparsity."
        )
    return value


def lamp(scores: ScoreMap) -> dict[str, np.ndarray]:
    """LAMP scores (Lee et al., 2021): each score over the sum of its layer's scores at or above it.

    ``lamp(u) = s_u / Σ_{v in the layer, s_v >= s_u} s_v``. The largest score of every
    layer becomes 1, so ranking globally never removes a layer whole, and a layer of
    many small scores is not pruned more only because its scores are small. The paper
    applies it to ``w²``; here it applies to whatever score it is given (zeros, such
    as weights already pruned, stay zero and leave the others unchanged).

    Raises:
        NonFiniteError: a score is NaN or infinite.
    """
    check_finite(scores)
    out = {}
    for key, value in scores.items():
        flat = np.maximum(np.asarray(value, np.float64).ravel(), 0.0)
        order = np.argsort(flat, kind="stable")
        ascending = flat[order]
        tails = np.cumsum(ascending[::-1])[::-1]  # sum of the scores at or above each
        normalized = np.empty_like(flat)
        normalized[order] = np.divide(
            ascending, tails, out=np.zeros_like(ascending), where=tails > 0
        )
        out[key] = normalized.reshape(np.shape(value))
    return out


def _protected(scores: ScoreMap, min_density: float, highest: bool) -> dict[str, np.ndarray]:
    """Per weight, the ``ceil(min_density · n)`` entries a selection must keep (best first)."""
    out = {}
    for key, value in scores.items():
        flat = np.asarray(value, np.float64).ravel()
        keep = int(np.ceil(min_density * flat.size - 1e-9))
        protect = np.zeros(flat.size, bool)
        if keep:
            protect[_prune_order(flat, not highest)[:keep]] = True
        out[key] = protect.reshape(np.shape(value))
    return out


def select(
    scores: ScoreMap,
    amount: float,
    *,
    scope: str = "global",
    highest: bool = False,
    normalize: str | None = None,
    min_density: float = 0.0,
) -> MaskMap:
    """Prunes exactly ``round(amount · n)`` weights, chosen by score.

    Args:
        scores: the ScoreMap.
        amount: fraction of weights to prune, in [0, 1).
        scope: ``"global"`` ranks all weights together; ``"layer"`` prunes
            ``amount`` of each weight separately.
        highest: prune the highest scores (forgetting) instead of the lowest
            (compression).
        normalize: None (rank the scores as they are) or ``"lamp"`` (rank
            :func:`lamp` scores; compression only).
        min_density: the fraction of every weight that is kept whatever the
            ranking (its best-scored entries), in [0, 1 - amount].

    Returns:
        The MaskMap (``False`` = pruned).

    Raises:
        InvalidArgumentError: a bad argument, or ``normalize`` with ``highest``.
    """
    check_amount(amount, allow_zero=True)
    check_scope(scope)
    check_finite(scores)
    check_min_density(min_density, amount)
    if check_normalization(normalize) is not None:
        if highest:
            raise InvalidArgumentError("`normalize` ranks weights to keep: not with highest=True.")
        scores = lamp(scores)
    if scope == "layer":
        return {k: select({k: v}, amount, highest=highest)[k] for k, v in scores.items()}
    keys = list(scores)
    flat = np.concatenate([np.asarray(scores[k], np.float64).ravel() for k in keys])
    count = int(round(amount * flat.size))
    order = _prune_order(flat, highest)
    if min_density > 0:
        protect = _protected(scores, min_density, highest)
        guarded = np.concatenate([protect[k].ravel() for k in keys])
        order = order[~guarded[order]]  # protected entries are never candidates
    keep = np.ones(flat.size, bool)
    keep[order[:count]] = False
    masks, start = {}, 0
    for k in keys:
        size = int(np.prod(np.shape(scores[k])))
        masks[k] = keep[start : start + size].reshape(np.shape(scores[k]))
        start += size
    return masks


def sparsity(masks: Mapping[str, np.ndarray]) -> float:
    """Fraction of pruned entries over all masks."""
    pruned = sum(int(np.size(m) - np.count_nonzero(m)) for m in masks.values())
    total = sum(int(np.size(m)) for m in masks.values())
    return pruned / total if total else 0.0


def tighten(
    scores: ScoreMap,
    masks: Mapping[str, np.ndarray],
    sparsity: float,
    scope: str = "global",
    *,
    normalize: str | None = None,
    min_density: float = 0.0,
) -> MaskMap:
    """Prunes the lowest scores up to ``sparsity``, keeping every weight already pruned.

    Pruned weights are ranked first, so the new masks are a subset of ``masks``
    whenever ``sparsity`` is at least the current one (gradual pruning).

    Args:
        scores: the ScoreMap of the current weights.
        masks: the current MaskMap (``False`` = pruned).
        sparsity: target fraction of pruned weights (per weight for ``"layer"``).
        scope: ``"global"`` or ``"layer"``.
        normalize: None or ``"lamp"``, computed over the weights still kept.
        min_density: fraction of every weight kept whatever the ranking (see
            :func:`select`); weights already pruned do not count toward it.

    Returns:
        The new MaskMap.
    """
    check_finite(scores)
    if check_normalization(normalize) is not None:
        scores = lamp({k: np.where(masks[k], np.maximum(scores[k], 0.0), 0.0) for k in scores})
    low = min(float(np.min(v)) for v in scores.values())
    floor = low - max(1.0, abs(low))  # below every score: pruned weights rank first
    ranked = {k: np.where(masks[k], scores[k], floor) for k in scores}
    new = select(ranked, sparsity, scope=scope, highest=False, min_density=min_density)
    return {k: new[k] & np.asarray(masks[k], bool) for k in new}
