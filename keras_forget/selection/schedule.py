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

#: ``end_step=None``: the ramp ends this far into the fine-tuning, which then trains
#: the final sparsity for the rest (a quarter of the steps).
END_FRACTION = 0.75
#: ``frequency=None``: this many pruning steps over the ramp (plus its end).
PRUNING_STEPS = 10


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

    ``end_step`` and ``frequency`` default to None: they are then fitted to the
    fine-tuning (:meth:`fitted`), so the ramp ends :data:`END_FRACTION` of the
    way through the training steps, in :data:`PRUNING_STEPS` pruning steps.

    Attributes:
        begin_step: first pruning step (optimizer steps, from 0).
        end_step: last pruning step, >= ``begin_step``; None (default): fitted
            to the fine-tuning.
        frequency: steps between pruning steps, >= 1; None (default): a
            :data:`PRUNING_STEPS`-th of the ramp.
        initial_sparsity: sparsity of the first pruning step, in [0, 1).
        power: exponent of the ramp (> 0); 3 prunes fast early, then slowly.
    """

    begin_step: int = 0
    end_step: int | None = None
    frequency: int | None = None
    initial_sparsity: float = 0.0
    power: float = 3.0

    def __post_init__(self) -> None:
        for name in ("begin_step", "end_step", "frequency"):
            value = getattr(self, name)
            if value is None and name != "begin_step":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise InvalidArgumentError(
                    f"`GradualSchedule.{name}` must be an int >= 0, got {value!r}."
                )
        if self.end_step is not None and self.end_step < self.begin_step:
            raise InvalidArgumentError(
                f"`GradualSchedule.end_step` ({self.end_step}) is before `begin_step` "
                f"({self.begin_step})."
            )
        if self.frequency is not None and self.frequency < 1:
            raise InvalidArgumentError(
                f"`GradualSchedule.frequency` must be >= 1, got {self.frequency}."
            )
        check_amount(self.initial_sparsity, "GradualSchedule.initial_sparsity", allow_zero=True)
        if not float(self.power) > 0:
            raise InvalidArgumentError(f"`GradualSchedule.power` must be > 0, got {self.power}.")

    @property
    def is_fitted(self) -> bool:
        """Whether ``end_step`` and ``frequency`` are set (see :meth:`fitted`)."""
        return self.end_step is not None and self.frequency is not None

    def fitted(self, last_step: int) -> GradualSchedule:
        """This schedule with ``end_step`` and ``frequency`` set for a fine-tuning.

        Args:
            last_step: the fine-tuning's last optimizer step (steps count from 0).

        Returns:
            A schedule whose ``end_step`` (if None) is :data:`END_FRACTION` of the
            way from ``begin_step`` to ``last_step`` and whose ``frequency`` (if
            None) is a :data:`PRUNING_STEPS`-th of the ramp (at least 1).
        """
        end = self.end_step
        if end is None:
            end = self.begin_step + int(END_FRACTION * max(0, last_step - self.begin_step))
        frequency = self.frequency
        if frequency is None:
            frequency = max(1, (end - self.begin_step) // PRUNING_STEPS)
        return dataclasses.replace(self, end_step=int(end), frequency=int(frequency))

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise InvalidArgumentError(
                "This GradualSchedule has no `end_step` or `frequency` yet: fit it to the "
                "fine-tuning with `schedule.fitted(last_step)` (kf.prune does)."
            )

    def sparsity_at(self, step: int, final: float) -> float:
        """The ramp's target sparsity at ``step`` for a final sparsity ``final``."""
        self._require_fitted()
        span = self.end_step - self.begin_step
        progress = 1.0 if span == 0 else (step - self.begin_step) / span
        progress = min(1.0, max(0.0, progress))
        return final + (self.initial_sparsity - final) * (1.0 - progress) ** self.power

    def steps(self) -> list[int]:
        """The pruning steps, in order: begin, every ``frequency`` after it, and end."""
        self._require_fitted()
        steps = list(range(self.begin_step, self.end_step + 1, self.frequency))
        return steps if steps[-1] == self.end_step else [*steps, self.end_step]

    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> GradualSchedule:
        return cls(**config)
