"""Checks of the numeric options of fitting, solving and forgetting."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from keras_forget.errors import InvalidArgumentError


def positive_int(value: Any, name: str) -> int:
    """``value`` as an int, or an error naming ``name`` unless it is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidArgumentError(f"`{name}` must be an int >= 1, got {value!r}.")
    return int(value)


def positive_float(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """``value`` as a float, or an error naming ``name`` unless finite and > 0 (>= 0)."""
    ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise InvalidArgumentError(f"`{name}` must be a finite number {bound}, got {value!r}.")
    return float(value)
