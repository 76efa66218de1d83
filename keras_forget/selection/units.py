"""Unit scores -> unit masks: which whole units (Dense units, Conv filters) to remove.

Pure array code, no model access. A unit MaskMap is ``{group key: bool [units]}``,
``False`` for a unit that is removed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from keras_forget.contrast import check_finite
from keras_forget.errors import InvalidArgumentError
from keras_forget.selection.weights import check_scope

UnitMaskMap = dict[str, np.ndarray]


def _count(amount: float | int, size: int) -> int:
    if isinstance(amount, (int, np.integer)) and not isinstance(amount, bool):
        return int(amount)
    return int(round(float(amount) * size))


def check_unit_amount(amount: Any, name: str = "amount") -> float | int:
    """Validates a fraction in (0, 1) or a count >= 1 of units per layer."""
    if isinstance(amount, (int, np.integer)) and not isinstance(amount, bool):
        if amount < 1:
            raise InvalidArgumentError(f"`{name}` as a count must be >= 1, got {amount}.")
        return int(amount)
    try:
        value = float(amount)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"`{name}` must be a number, got {amount!r}.") from None
    if not 0 < value < 1:
        raise InvalidArgumentError(
            f"`{name}` must be a fraction in (0, 1) or a count >= 1, got {amount!r}."
        )
    return value


def select_units(
    scores: Mapping[str, np.ndarray],
    amount: float | int,
    *,
    scope: str = "layer",
    highest: bool = False,
) -> UnitMaskMap:
    """Unit masks removing ``amount`` units, chosen by score.

    Args:
        scores: ``{group key: scores [units]}``.
        amount: a fraction in (0, 1) of the units (of each group with
            ``scope="layer"``, of all groups with ``"global"``), or an int: a
            count of units per group.
        scope: ``"layer"`` or ``"global"``.
        highest: remove the highest scores (forgetting) instead of the lowest.

    Returns:
        ``{group key: bool [units]}``, ``False`` = removed. Every group keeps
        at least one unit.

    Raises:
        InvalidArgumentError: a bad ``amount`` or ``scope``.
        NonFiniteError: scores with NaN or infinity.
    """
    amount = check_unit_amount(amount)
    check_scope(scope)
    check_finite(scores, "unit scores")
    sign = -1.0 if highest else 1.0
    if scope == "layer" or isinstance(amount, int):
        out = {}
        for key, value in scores.items():
            count = min(_count(amount, value.size), value.size - 1)
            keep = np.ones(value.size, bool)
            keep[np.argsort(sign * np.asarray(value), kind="stable")[:count]] = False
            out[key] = keep
        return out
    keys = list(scores)
    flat = np.concatenate([sign * np.asarray(scores[k], np.float64) for k in keys])
    owner = np.concatenate([np.full(np.size(scores[k]), i) for i, k in enumerate(keys)])
    left = np.array([np.size(scores[k]) for k in keys])
    keep = np.ones(flat.size, bool)
    count = _count(amount, flat.size)
    for index in np.argsort(flat, kind="stable"):
        if count == 0:
            break
        if left[owner[index]] > 1:
            keep[index] = False
            left[owner[index]] -= 1
            count -= 1
    out, start = {}, 0
    for k in keys:
        out[k] = keep[start : start + np.size(scores[k])]
        start += np.size(scores[k])
    return out
