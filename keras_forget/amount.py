"""Choosing how much to prune for forgetting: the least that makes the model forget.

How many weights must go for a class to be forgotten differs from model to
model (a small CNN on digits needs a quarter of what an MLP needs). With
``amount="auto"``, the contrast ranking is computed once and the amount grows
along a geometric grid until the model's accuracy on the target classes'
examples of the given data falls to ``forget_accuracy``. Fewer pruned weights
means less harm to the other classes, so the first amount that forgets is kept.
Each step costs one forward pass over the forget examples.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from keras_forget import _keras, selection
from keras_forget.data import Data, batches, input_rank, take
from keras_forget.errors import InvalidArgumentError
from keras_forget.surgery.registry import prunable_weights

#: Amounts tried by ``amount="auto"``, smallest first (ratio √2).
GRID = tuple(float(a) for a in np.geomspace(0.0005, 0.256, 19))
#: Most forget examples kept in memory for the search.
MAX_EXAMPLES = 4096


def check(amount: Any) -> float | str:
    """Validates ``amount``: ``"auto"`` or a fraction in (0, 1)."""
    if isinstance(amount, str):
        if amount != "auto":
            raise InvalidArgumentError(
                f"`amount` must be 'auto' or a fraction in (0, 1), got {amount!r}."
            )
        return amount
    return selection.check_amount(amount)


def forget_examples(model: Any, data: Data, targets: Sequence[int]) -> tuple[Any, np.ndarray]:
    """Up to :data:`MAX_EXAMPLES` examples of the target classes from ``data``."""
    xs, ys, count = [], [], 0
    for x, y in batches(data, 256, input_rank=input_rank(model)):
        keep = np.isin(y, targets)
        if keep.any():
            xs.append(take(x, keep))
            ys.append(y[keep])
            count += int(keep.sum())
        if count >= MAX_EXAMPLES:
            break
    if not ys:
        raise InvalidArgumentError(f"`data` has no example of target class(es) {list(targets)}.")
    import tensorflow as tf

    x = tf.nest.map_structure(lambda *parts: np.concatenate(parts)[:MAX_EXAMPLES], *xs)
    return x, np.concatenate(ys)[:MAX_EXAMPLES]


def _accuracy(model: Any, x: Any, y: np.ndarray) -> float:
    predicted = np.concatenate(
        [np.asarray(model(xb, training=False)).argmax(-1) for xb, _ in batches((x, y), 256)]
    )
    return float(np.mean(predicted == y))


def search(
    model: Any,
    masks_for: Callable[[float], Mapping[str, np.ndarray]],
    examples: tuple[Any, np.ndarray],
    *,
    forget_accuracy: float,
    grid: Sequence[float] = GRID,
    variables_of: Callable[[Any], Mapping[str, Any]] | None = None,
) -> tuple[float, Mapping[str, np.ndarray]]:
    """The smallest grid amount whose masks bring forget accuracy to the goal.

    Args:
        model: the original model (not modified; a working copy is used).
        masks_for: ``amount -> MaskMap`` (the ranking is computed once, by the
            caller; this only thresholds it).
        examples: ``(x, labels)`` of the target classes.
        forget_accuracy: the accuracy on ``examples`` to reach, in [0, 1).
        grid: the amounts to try, smallest first.
        variables_of: ``model -> {mask key: variable}``; by default the
            prunable weights.

    Returns:
        ``(amount, masks)``; the largest grid amount, with a warning, if none
        reaches the goal.
    """
    work = _keras.clone(model)
    variables = (variables_of or _prunable_variables)(work)
    original = {k: v.numpy() for k, v in variables.items()}
    x, y = examples
    for amount in grid:
        masks = masks_for(amount)
        for key, value in original.items():
            mask = masks.get(key)
            variables[key].assign(value if mask is None else value * mask)
        if _accuracy(work, x, y) <= forget_accuracy:
            return amount, masks
    warnings.warn(
        f"amount='auto' did not bring forget accuracy to {forget_accuracy} even at "
        f"{grid[-1]:.3f}; using that amount.",
        stacklevel=3,
    )
    return grid[-1], masks


def _prunable_variables(model: Any) -> dict[str, Any]:
    return {k: w.variable for k, w in prunable_weights(model).items()}
