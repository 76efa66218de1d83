"""The unit-score contract: activations of unit groups -> ``{group key: scores [units]}``.

Component-level scores rank whole units (Dense units, Conv filters) rather
than single weights. A unit score is bound to the prunable groups of a
:class:`~keras_forget.introspect.graph.Graph` by :meth:`UnitScore.reset`,
accumulates batches of the groups' activations with :meth:`UnitScore.update`,
and :meth:`UnitScore.result` returns one score per unit. Data-free scores
(``l1``) read the producers' weights instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from keras_forget.errors import InvalidArgumentError
from keras_forget.introspect.graph import Graph, Group
from keras_forget.scores.resolver import Configurable, Resolver

UnitScoreMap = dict[str, np.ndarray]


class UnitScore(Configurable):
    """Base class of the unit scores.

    Subclasses set ``name`` and implement :meth:`_update` and :meth:`_result`
    (data scores) or :meth:`_data_free`.
    """

    name: ClassVar[str] = ""
    #: Whether the score reads activations.
    needs_data: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            RESOLVER.register(cls)

    def reset(self, graph: Graph, groups: Mapping[str, Group], num_classes: int) -> None:
        """Binds the score to unit groups and clears its accumulators.

        Args:
            graph: the model's graph (data-free scores read weights through it).
            groups: the groups to score, ``{key: Group}``.
            num_classes: number of labels (labels are ``0..num_classes-1``).
        """
        if num_classes < 2:
            raise InvalidArgumentError(f"`num_classes` must be >= 2, got {num_classes}.")
        self._graph = graph
        self._groups = dict(groups)
        self._classes = int(num_classes)
        self._count = 0

    def update(self, features: Mapping[str, np.ndarray], y: np.ndarray) -> None:
        """Accumulates one batch.

        Args:
            features: ``{group key: activations [batch, ..., units]}`` (the
                output of each group's score layer).
            y: integer labels ``[batch]``.
        """
        y = np.asarray(y, np.int64).reshape(-1)
        if not self.needs_data or len(y) == 0:
            return
        if y.min() < 0 or y.max() >= self._classes:
            raise InvalidArgumentError(
                f"Labels must be in 0..{self._classes - 1}; found {int(y.min())}..{int(y.max())}."
            )
        self._update({k: np.asarray(features[k], np.float64) for k in self._groups}, y)
        self._count += len(y)

    def result(self, target_classes: Sequence[int] | None = None) -> UnitScoreMap:
        """Scores per unit, ``{group key: float array [units]}``.

        Args:
            target_classes: the classes to forget (score how specific a unit is
                to them); None scores how much a unit serves any class
                (pruning: low = prunable).

        Raises:
            InvalidArgumentError: no example seen, or too few of a class.
        """
        if not self.needs_data:
            return self._data_free()
        if self._count == 0:
            raise InvalidArgumentError(f"Unit score {self.name!r} saw no example: `data` is empty.")
        targets = None if target_classes is None else tuple(int(c) for c in target_classes)
        return self._result(targets)

    @property
    def count(self) -> int:
        """How many examples have been accumulated."""
        return self._count

    def _update(self, features: Mapping[str, np.ndarray], y: np.ndarray) -> None:
        raise NotImplementedError

    def _result(self, targets: tuple[int, ...] | None) -> UnitScoreMap:
        raise NotImplementedError

    def _data_free(self) -> UnitScoreMap:
        raise NotImplementedError


RESOLVER = Resolver("unit score", UnitScore)


def names() -> list[str]:
    """Names of the registered unit scores."""
    return RESOLVER.names()


def get(identifier: str | Mapping[str, Any] | UnitScore) -> UnitScore:
    """Resolves a unit score from a name, a config dict or an instance.

    Raises:
        InvalidArgumentError: unknown name or unsupported identifier.
    """
    return RESOLVER.get(identifier)


serialize = Resolver.serialize
