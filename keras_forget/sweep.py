"""Accuracy as a function of the fraction of weights pruned, without retraining.

:func:`sweep` prunes exactly as :func:`keras_forget.prune` does at each sparsity:
the same scores (``"fisher"`` is compression's ½·F·w²) and the same rounds (OBD
and Fisher-OBD re-score the pruned network in 8 rounds by default). A one-shot
score is computed once per method, since scores do not depend on the threshold;
then every method × scope × sparsity writes ``weight · mask`` into one working
copy and evaluates it, so a 100-point one-shot sweep costs one scoring pass plus
100 cheap evaluations per line. A score pruned in rounds costs ``rounds``
scoring passes per point (``rounds=1``: the cheap one-shot look).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from keras_forget import checks, selection
from keras_forget.data import Data
from keras_forget.errors import InvalidArgumentError
from keras_forget.introspect.registry import prunable_weights
from keras_forget.plots import save_figure, subplots
from keras_forget.scores import COMPRESS_ALIASES, Objective
from keras_forget.scores import get as get_score
from keras_forget.scores.accumulate import rescorer
from keras_forget.scores.accumulate import score as run_score
from keras_forget.scores.base import Score
from keras_forget.surgery import masking

#: 0%, 5%, …, 95%.
DEFAULT_SPARSITIES = tuple(np.round(np.arange(0.0, 1.0, 0.05), 10))
_EVAL_BATCH = 1024


@dataclasses.dataclass(frozen=True)
class Line:
    """One method × scope of a sweep.

    Attributes:
        method: the score's name.
        scope: ``"global"`` or ``"layer"``.
        sparsity: the requested sparsities, ascending.
        pruned: number of weights pruned at each point (exact).
        accuracy: accuracy on the evaluation data at each point.
        total: number of prunable weights.
    """

    method: str
    scope: str
    sparsity: tuple[float, ...]
    pruned: tuple[int, ...]
    accuracy: tuple[float, ...]
    total: int

    @property
    def label(self) -> str:
        """``"method/scope"``, the line's key in :attr:`Curve.lines`."""
        return f"{self.method}/{self.scope}"

    @property
    def fraction_pruned(self) -> tuple[float, ...]:
        """The exact fraction of prunable weights pruned at each point."""
        return tuple(p / self.total for p in self.pruned)

    def accuracy_at(self, sparsity: float) -> float:
        """Accuracy at the point whose requested sparsity is closest to ``sparsity``.

        Args:
            sparsity: a fraction in [0, 1).

        Returns:
            The accuracy at that point.
        """
        index = int(np.argmin(np.abs(np.asarray(self.sparsity) - sparsity)))
        return self.accuracy[index]

    def to_dict(self) -> dict[str, Any]:
        """The line as plain lists, with ``fraction_pruned`` added."""
        out = dataclasses.asdict(self)
        out["fraction_pruned"] = list(self.fraction_pruned)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


@dataclasses.dataclass(frozen=True)
class Curve:
    """What :func:`sweep` returns: one :class:`Line` per method × scope.

    Attributes:
        lines: ``{"method/scope": Line}``.
        dense_accuracy: accuracy of the unpruned model.
        seconds: ``"scoring/<method>"`` per method, and ``"evaluation"``.
    """

    lines: dict[str, Line]
    dense_accuracy: float
    seconds: dict[str, float]

    def line(self, method: str, scope: str) -> Line:
        """The line of ``method`` and ``scope``."""
        return self.lines[f"{method}/{scope}"]

    def to_dict(self) -> dict[str, Any]:
        """The curve as plain, JSON-serializable Python objects."""
        return {
            "lines": {k: v.to_dict() for k, v in self.lines.items()},
            "dense_accuracy": self.dense_accuracy,
            "seconds": dict(self.seconds),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Curve:
        """The inverse of :meth:`to_dict`."""
        fields = ("method", "scope", "sparsity", "pruned", "accuracy", "total")
        lines = {
            k: Line(**{f: tuple(v[f]) if isinstance(v[f], list) else v[f] for f in fields})
            for k, v in data["lines"].items()
        }
        return cls(lines, float(data["dense_accuracy"]), dict(data["seconds"]))

    def plot(self, path: str | os.PathLike[str], title: str | None = None) -> str:
        """Plots accuracy vs % of weights pruned, one line per method × scope.

        Args:
            path: the image file (format from its extension; PNG by default),
                written atomically.
            title: optional title.

        Returns:
            ``path``.
        """
        return plot_curves({"": self}, path, title)


def plot_curves(
    curves: Mapping[str, Curve], path: str | os.PathLike[str], title: str | None = None
) -> str:
    """Plots several curves on one chart (e.g. a model with and without dropout).

    Args:
        curves: ``{name: Curve}``; the name prefixes each line's label.
        path: the image file, written atomically (temp file + rename).
        title: optional title.

    Returns:
        ``path``.
    """
    figure, axis = subplots(figsize=(7, 4.5))
    for name, curve in curves.items():
        for line in curve.lines.values():
            style = "-" if line.scope == "global" else "--"
            label = f"{name}: {line.label}" if name else line.label
            percent = 100 * np.asarray(line.fraction_pruned)
            axis.plot(percent, line.accuracy, style, label=label, linewidth=1.5)
    axis.set_xlabel("% of weights pruned (no retraining)")
    axis.set_ylabel("test accuracy")
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    axis.set_title(title or "Accuracy vs. weights pruned")
    return save_figure(figure, os.fspath(path))


def _sparsities(values: Iterable[float]) -> tuple[float, ...]:
    try:
        array = np.asarray(list(values), np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"`sparsities` must be numbers, got {values!r}.") from None
    if array.size == 0:
        raise InvalidArgumentError("`sparsities` is empty.")
    for value in array:
        selection.check_amount(value, "sparsities", allow_zero=True)
    return tuple(float(v) for v in np.unique(array))


def _scores(methods: Sequence[Any]) -> list[Score]:
    if isinstance(methods, (str, Score, Mapping)):
        methods = [methods]
    scores = [get_score(COMPRESS_ALIASES.get(m, m) if isinstance(m, str) else m) for m in methods]
    names = [s.name for s in scores]
    if not scores or len(set(names)) != len(names):
        raise InvalidArgumentError(f"`methods` must name distinct scores, got {names}.")
    return scores


def _rounds(rounds: int | None, scores: list[Score]) -> dict[str, int]:
    """Rounds per score: ``rounds`` for the data scores, else as :func:`keras_forget.prune`."""
    if rounds is not None:
        rounds = selection.check_rounds(rounds)
    return {
        s.name: (rounds or selection.DEFAULT_ROUNDS.get(s.name, 1)) if s.needs_data else 1
        for s in scores
    }


def _scopes(scopes: Sequence[str] | str) -> list[str]:
    values = [scopes] if isinstance(scopes, str) else list(scopes)
    if not values:
        raise InvalidArgumentError("`scopes` is empty.")
    return [selection.check_scope(s) for s in dict.fromkeys(values)]


def _validate(
    model: Any, data: Any, eval_data: Any, scores: list[Score], batch_size: int
) -> tuple[Data | None, Data, bool]:
    """Checks everything before work: ``(data, eval_data, from_logits)``."""
    checks.model(model)
    if data is None and any(s.needs_data for s in scores):
        names = [s.name for s in scores if s.needs_data]
        raise InvalidArgumentError(f"`data` is required for method(s) {names}.")
    eval_data = Data.of(eval_data, model, name="eval_data", batch_size=batch_size)
    classes, from_logits = checks.outputs(model, eval_data.first(32))
    eval_data.check_classes(classes)
    if data is not None:
        data = Data.of(data, model, num_classes=classes, batch_size=batch_size)
    return data, eval_data, from_logits


class _Evaluator:
    """Writes ``weight · mask`` into a working copy and measures its accuracy."""

    def __init__(self, working: Any, eval_data: Data) -> None:
        self.x, self.y = eval_data.arrays()
        self.weights = prunable_weights(working)
        self.original = {k: w.variable.numpy().copy() for k, w in self.weights.items()}
        self.model = working
        self._predict = tf.function(self._forward, reduce_retracing=True, autograph=False)

    def _forward(self, x: Any) -> Any:
        return self.model(x, training=False)

    def accuracy(self, masks: Mapping[str, np.ndarray] | None = None) -> float:
        """Accuracy with ``masks`` applied to the original weights (None: dense)."""
        for key, value in self.original.items():
            kept = value if masks is None else value * masks[key]
            self.weights[key].variable.assign(kept)
        correct = 0
        for start in range(0, len(self.y), _EVAL_BATCH):
            window = slice(start, start + _EVAL_BATCH)
            x = tf.nest.map_structure(lambda a, w=window: a[w], self.x)
            logits = np.asarray(self._predict(x))
            correct += int(np.sum(logits.argmax(-1) == self.y[window]))
        return correct / len(self.y)


def sweep(
    model: Any,
    data: Any,
    eval_data: Any,
    *,
    methods: Sequence[Any] = ("magnitude", "obd"),
    scopes: Sequence[str] = ("global", "layer"),
    sparsities: Iterable[float] = DEFAULT_SPARSITIES,
    rounds: int | None = None,
    batch_size: int = 64,
    verbose: bool = True,
) -> Curve:
    """Accuracy vs fraction pruned for several scores and scopes, without retraining.

    Each point prunes exactly the weights :func:`keras_forget.prune` would with
    the same ``method``, ``scope``, ``sparsity`` and ``rounds``.

    Args:
        model: a trained Keras 3 or tf_keras classifier (not changed).
        data: labelled data the scores are computed on; may be None when every
            method is data-free (``magnitude``, ``random``).
        eval_data: labelled data the accuracy is measured on.
        methods: score names, configs or instances (``"fisher"`` is ½·F·w², as
            for :func:`keras_forget.prune`).
        scopes: ``"global"`` and/or ``"layer"``.
        sparsities: fractions in [0, 1) (sorted, duplicates dropped).
        rounds: prune each point in this many re-scored rounds (data scores
            only). None: as :func:`keras_forget.prune`, 8 for ``obd`` and
            ``fisher_obd`` (:data:`keras_forget.selection.DEFAULT_ROUNDS`), 1
            otherwise; each round is one scoring pass per point.
        batch_size: scoring batch size.
        verbose: show scoring progress.

    Returns:
        A :class:`Curve`.

    Raises:
        InvalidArgumentError: a bad argument (named in the message), including
            evaluation data without labels.
        NotPrunableError: a model with no prunable weight.
        NonFiniteError: NaN or infinite weights or scores.
        TypeError: ``model`` is not a Keras model.
    """
    scores = _scores(methods)
    scopes = _scopes(scopes)
    points = _sparsities(sparsities)
    per_score = _rounds(rounds, scores)
    data, eval_data, from_logits = _validate(model, data, eval_data, scores, batch_size)
    objective = Objective(from_logits=from_logits, target="log_likelihood")
    working = masking.strip(model)
    seconds: dict[str, float] = {}
    masks_for = {}
    run = dict(batch_size=batch_size, verbose=verbose)
    for score in scores:  # all scores first, while the working copy is unpruned
        tick = time.perf_counter()
        if per_score[score.name] == 1:
            masks_for[score.name] = _one_shot(run_score(working, data, score, objective, **run))
        else:
            rescore = rescorer(working, data, score, objective, **run)
            masks_for[score.name] = _in_rounds(rescore, per_score[score.name])
        seconds[f"scoring/{score.name}"] = time.perf_counter() - tick
    tick = time.perf_counter()
    evaluator = _Evaluator(working, eval_data)
    dense = evaluator.accuracy()
    lines = {}
    for name, masks_of in masks_for.items():
        for scope in scopes:
            start = time.perf_counter()
            line = _line(evaluator, masks_of, name, scope, points)
            lines[line.label] = line
            if per_score[name] > 1:  # its rescoring happens here
                seconds[f"scoring/{name}"] += time.perf_counter() - start
    seconds["evaluation"] = (
        time.perf_counter()
        - tick
        - sum(seconds[f"scoring/{n}"] for n in masks_for if per_score[n] > 1)
    )
    return Curve(lines, dense, seconds)


MasksAt = Callable[[float, str], Mapping[str, np.ndarray]]


def _one_shot(ranked: Mapping[str, np.ndarray]) -> MasksAt:
    """``(sparsity, scope) -> masks`` thresholding one ranking."""
    return lambda sparsity, scope: selection.select(ranked, sparsity, scope=scope, highest=False)


def _in_rounds(rescore: Callable, rounds: int) -> MasksAt:
    """``(sparsity, scope) -> masks`` pruned in ``rounds`` re-scored rounds.

    The unpruned network's scores, which every point starts from, are computed once.
    """
    first: list[Any] = []

    def cached(masks: Any) -> Any:
        if masks is not None:
            return rescore(masks)
        if not first:
            first.append(rescore(None))
        return first[0]

    return lambda sparsity, scope: selection.prune_in_rounds(
        cached, sparsity, rounds=rounds, scope=scope
    )


def _line(
    evaluator: _Evaluator,
    masks_at: MasksAt,
    method: str,
    scope: str,
    points: tuple[float, ...],
) -> Line:
    pruned, accuracy, total = [], [], 0
    for sparsity in points:
        masks = masks_at(sparsity, scope)
        pruned.append(sum(int(m.size - np.count_nonzero(m)) for m in masks.values()))
        accuracy.append(evaluator.accuracy(masks))
        total = sum(int(m.size) for m in masks.values())
    return Line(method, scope, points, tuple(pruned), tuple(accuracy), total)
