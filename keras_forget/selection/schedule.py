"""When to prune during fine-tuning and how much: the sparsity ramp of gradual pruning.

Pure arithmetic; :mod:`keras_forget.gradual` runs it during training.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from keras_forget.errors import InvalidArgumentError
from keras_forget.selection.weights import check_amount


@dataclasses.dataclass(frozen=True)
class GradualSchedule:
    """When to prune during fine-tuning and how much: tfmot's ``PolynomialDecay`` ramp.

    At training step ``t`` the target sparsity is
    ``final + (initial - final) · (1 - p)^power`` with
    ``p = clip((t - begin_step) / (end_step - begin_step), 0, 1)``; ``final``
    is the ``sparsity`` given to :func:`keras_forget.prune`. Pruning happens at
    ``begin_step``, every ``frequency`` steps after it, and always at
    ``end_step`` (so the final sparsity is reached even when ``end_step -
    begin_step`` is not a multiple of ``frequency``).

    Attributes:
        begin_step: first pruning step (optimizer steps, from 0).
        end_step: last pruning step, >= ``begin_step``.
        frequency: steps between pruning steps, >= 1.
        initial_sparsity: sparsity of the first pruning step, in [0, 1).
        power: exponent of the ramp (> 0); 3 prunes fast early, then slowly.
    """

    begin_step: int = 0
    end_step: int = 1000
    frequency: int = 100
    initial_sparsity: float = 0.0
    power: float = 3.0

    def __post_init__(self) -> None:
        for name in ("begin_step", "end_step", "frequency"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise InvalidArgumentError(
                    f"`GradualSchedule.{name}` must be an int >= 0, got {value!r}."
                )
        if self.end_step < self.begin_step:
            raise InvalidArgumentError(
                f"`GradualSchedule.end_step` ({self.end_step}) is before `begin_step` "
                f"({self.begin_step})."
            )
        if self.frequency < 1:
            raise InvalidArgumentError(
                f"`GradualSchedule.frequency` must be >= 1, got {self.frequency}."
            )
        check_amount(self.initial_sparsity, "GradualSchedule.initial_sparsity", allow_zero=True)
        if not float(self.power) > 0:
            raise InvalidArgumentError(f"`GradualSchedule.power` must be > 0, got {self.power}.")

    def sparsity_at(self, step: int, final: float) -> float:
        """The ramp's target sparsity at ``step`` for a final sparsity ``final``."""
        span = self.end_step - self.begin_step
        progress = 1.0 if span == 0 else (step - self.begin_step) / span
        progress = min(1.0, max(0.0, progress))
        return final + (self.initial_sparsity - final) * (1.0 - progress) ** self.power

    def steps(self) -> list[int]:
        """The pruning steps, in order: begin, every ``frequency`` after it, and end."""
        steps = list(range(self.begin_step, self.end_step + 1, self.frequency))
        return steps if steps[-1] == self.end_step else [*steps, self.end_step]

    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> GradualSchedule:
        return cls(**config)
