"""Selection: score maps -> masks: weights, units, gradual ramps, rounds, amount search.

Pure array code: nothing here touches a model.
"""

from keras_forget.contrast import FLOOR, check_finite, check_floor, contrast, normalize
from keras_forget.selection.amount import GRID, UNIT_GRID, search
from keras_forget.selection.iterative import (
    DEFAULT_ROUNDS,
    check_rounds,
    prune_in_rounds,
    ramp,
)
from keras_forget.selection.schedule import GradualSchedule
from keras_forget.selection.units import check_unit_amount, select_units
from keras_forget.selection.weights import (
    NORMALIZATIONS,
    SCOPES,
    MaskMap,
    ScoreMap,
    check_amount,
    check_min_density,
    check_normalization,
    check_scope,
    lamp,
    select,
    sparsity,
    tighten,
)

__all__ = [
    "FLOOR",
    "GRID",
    "NORMALIZATIONS",
    "SCOPES",
    "UNIT_GRID",
    "GradualSchedule",
    "MaskMap",
    "ScoreMap",
    "check_amount",
    "check_finite",
    "check_floor",
    "check_min_density",
    "check_normalization",
    "DEFAULT_ROUNDS",
    "check_rounds",
    "check_scope",
    "check_unit_amount",
    "contrast",
    "lamp",
    "normalize",
    "prune_in_rounds",
    "ramp",
    "search",
    "select",
    "select_units",
    "sparsity",
    "tighten",
]
