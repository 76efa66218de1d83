"""The score contract: model + batches of data -> ScoreMap.

A score is a stateful object: :meth:`Score.reset` binds it to a model's
prunable weights, :meth:`Score.update` accumulates one batch, and
:meth:`Score.result` returns a ScoreMap, ``{weight key: array shaped like the
weight}``, averaged over the examples seen. Memory is one accumulator per
weight, whatever the amount of data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from keras_forget.errors import InvalidArgumentError
from keras_forget.introspect.registry import PrunableWeight
from keras_forget.scores.objective import Objective
from keras_forget.scores.resolver import Configurable, Resolver

ScoreMap = dict[str, np.ndarray]


class Score(Configurable):
    """Base class of every score.

    Subclasses set ``name`` and implement :meth:`_accumulate` (data scores) or
    :meth:`_data_free` (scores that look only at the weights).
    """

    name: ClassVar[str] = ""
    #: Whether the score reads data; data-free scores ignore update().
    needs_data: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            RESOLVER.register(cls)

    def reset(
        self, model: Any, weights: Mapping[str, PrunableWeight], objective: Objective
    ) -> None:
        """Binds the score to a model and clears its accumulators.

        Args:
            model: the model whose weights are scored.
            weights: its prunable weights, from ``introspect.registry.prunable_weights``.
            objective: what the model's output means (per-example log-likelihood).
        """
        binding = (id(model), tuple((k, id(w.variable)) for k, w in weights.items()), objective)
        #: Whether reset() bound the same model, variables and objective as before,
        #: so subclasses may keep what they compiled for them.
        self._rebound = getattr(self, "_binding", None) == binding
        self._binding = binding
        self._model = model
        self._weights = dict(weights)
        self._objective = objective
        self._sums = {k: np.zeros(w.variable.shape, np.float64) for k, w in weights.items()}
        self._count = 0

    def update(self, x: np.ndarray, y: np.ndarray) -> None:
        """Accumulates one batch of inputs ``x`` and integer labels ``y``."""
        if not self.needs_data or len(y) == 0:
            return
        for key, value in self._accumulate(x, y).items():
            self._sums[key] += np.asarray(value, np.float64)
        self._count += len(y)

    def result(self) -> ScoreMap:
        """The ScoreMap: per-weight scores averaged over the examples seen.

        Raises:
            InvalidArgumentError: a data score saw no example.
        """
        if not self.needs_data:
            return self._data_free()
        if self._count == 0:
            raise InvalidArgumentError(f"Score {self.name!r} saw no example: `data` is empty.")
        return {k: (s / self._count).astype(np.float32) for k, s in self._sums.items()}

    @property
    def count(self) -> int:
        """How many examples have been accumulated."""
        return self._count

    def _accumulate(self, x: np.ndarray, y: np.ndarray) -> Mapping[str, Any]:
        """Per-weight sums over one batch."""
        raise NotImplementedError

    def _data_free(self) -> ScoreMap:
        raise NotImplementedError

    def forget_variant(self) -> Score:
        """The score used on the data to forget when contrasting it with the rest.

        The same score by default; a score with a sign (``gradxweight``)
        returns its signed form, so weights that work *against* the class to
        forget are not picked.
        """
        return self.fresh()


RESOLVER = Resolver("score", Score)


def names() -> list[str]:
    """Names of the registered scores."""
    return RESOLVER.names()


#: What a score name means to compression when it differs from forgetting: ``"fisher"``
#: ranks by the empirical-Fisher OBD saliency ½·F·w² (F alone removes large weights in flat
#: directions first: 0.711 at 50 % where magnitude holds 0.971 on the digits MLP);
#: forgetting and SSD keep F.
COMPRESS_ALIASES = {"fisher": "fisher_obd"}


def get(identifier: str | Mapping[str, Any] | Score) -> Score:
    """Resolves a score from a name, a config dict or an instance.

    Args:
        identifier: ``"obd"``; ``{"class_name": "obd", "config": {...}}``; or a
            :class:`Score` instance (returned as is).

    Returns:
        A :class:`Score`.

    Raises:
        InvalidArgumentError: unknown name or unsupported identifier type.
    """
    return RESOLVER.get(identifier)


serialize = Resolver.serialize
