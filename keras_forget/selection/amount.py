"""How much to prune for forgetting: the least that makes the model forget.

How many weights (or units) must go for a class to be forgotten differs from
model to model, so with ``amount="auto"`` the ranking is computed once and the
amount grows along a geometric grid until a test supplied by the caller says
the model forgets. Fewer pruned weights means less harm to the other classes,
so the first amount that passes is kept. Pure selection logic: the caller's
test is what touches a model.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from keras_forget.errors import InvalidArgumentError
from keras_forget.selection.units import check_unit_amount
from keras_forget.selection.weights import check_amount

#: Fractions of weights tried by ``amount="auto"``, smallest first (ratio √2).
GRID = tuple(float(a) for a in np.geomspace(0.0005, 0.256, 19))
#: Fractions of units tried by ``amount="auto"``, smallest first (ratio √2).
UNIT_GRID = tuple(round(float(a), 4) for a in np.geomspace(0.01, 0.32, 11))


def check(amount: Any, granularity: str = "weight") -> float | int | str:
    """Validates ``amount``: ``"auto"``, a fraction in (0, 1), or (units) a count >= 1.

    Raises:
        InvalidArgumentError: anything else.
    """
    if isinstance(amount, str):
        if amount != "auto":
            raise InvalidArgumentError(
                f"`amount` must be 'auto' or a fraction in (0, 1), got {amount!r}."
            )
        return amount
    if granularity == "unit":
        return check_unit_amount(amount)
    return check_amount(amount)


def grid_for(granularity: str) -> tuple[float, ...]:
    """The grid ``amount="auto"`` walks for ``"weight"`` or ``"unit"`` granularity."""
    return UNIT_GRID if granularity == "unit" else GRID


def search(
    masks_for: Callable[[float], Mapping[str, np.ndarray]],
    forgets: Callable[[Mapping[str, np.ndarray]], bool],
    grid: Sequence[float] = GRID,
    hint: str = "",
) -> tuple[float, Mapping[str, np.ndarray], bool]:
    """The smallest grid amount whose masks pass ``forgets``.

    Args:
        masks_for: ``amount -> MaskMap`` (the ranking is computed once, by the
            caller; this only thresholds it).
        forgets: ``MaskMap -> bool``, whether the model with these masks has
            forgotten.
        grid: the amounts to try, smallest first.
        hint: what to do instead, appended to the warning if none passes.

    Returns:
        ``(amount, masks, reached)``; the largest grid amount, with a warning
        and ``reached=False``, if none passes.
    """
    masks: Mapping[str, np.ndarray] = {}
    for amount in grid:
        masks = masks_for(amount)
        if forgets(masks):
            return amount, masks, True
    warnings.warn(
        f"amount='auto' did not reach its forget goal even at {grid[-1]:.4g}; using that "
        f"amount.{' ' + hint if hint else ''}",
        stacklevel=3,
    )
    return grid[-1], masks, False
