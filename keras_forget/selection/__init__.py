"""Selection: score maps -> masks. Single weights, whole units, gradual ramps, amount search.

Pure array code: nothing here touches a model.
"""

from keras_forget.selection.amount import GRID, UNIT_GRID, search
from keras_forget.selection.schedule import GradualSchedule
from keras_forget.selection.units import check_unit_amount, select_units
from keras_forget.selection.weights import (
    FLOOR,
    SCOPES,
    MaskMap,
    ScoreMap,
    check_amount,
    check_finite,
    check_floor,
    check_scope,
    contrast,
    normalize,
    select,
    sparsity,
    tighten,
)

__all__ = [
    "FLOOR",
    "GRID",
    "SCOPES",
    "UNIT_GRID",
    "GradualSchedule",
    "MaskMap",
    "ScoreMap",
    "check_amount",
    "check_finite",
    "check_floor",
    "check_scope",
    "check_unit_amount",
    "contrast",
    "normalize",
    "search",
    "select",
    "select_units",
    "sparsity",
    "tighten",
]
