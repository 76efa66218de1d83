"""How much more each entry matters to the data to forget than to the rest.

Pure array code over score maps (``{key: array}``): weight scores keyed by weight,
or unit scores keyed by unit group. Forgetting ranks by this contrast, at either
granularity.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from keras_forget.errors import InvalidArgumentError, NonFiniteError

ScoreMap = Mapping[str, np.ndarray]

#: The forget-vs-retain contrast's floor, in units of the mean retain score
#: (see :func:`contrast`); the one default every caller uses. On validation splits
#: (benchmarks/forget_digits.py --split validation: 3 seeds × MLP, VGG- and ResNet-style
#: CNNs × 10 classes) floors 0.01, 0.1 and 1.0 all forgot every class, with mean retain
#: accuracy 0.9828 / 0.9828 / 0.9819: a tie, so it stays.
FLOOR = 0.1


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
