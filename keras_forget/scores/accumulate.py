"""Running a score over data: one pass, batch by batch, with progress.

Weight scores see the model's inputs and labels; unit scores see the
activations of each unit group's score layer, extracted by one feature model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from keras_forget import _keras
from keras_forget.data import Data, take
from keras_forget.errors import InvalidArgumentError, NotPrunableError
from keras_forget.introspect import heads
from keras_forget.introspect.graph import Graph
from keras_forget.introspect.registry import PrunableWeight, prunable_weights
from keras_forget.scores.base import Score, ScoreMap
from keras_forget.scores.objective import Objective
from keras_forget.scores.units import UnitScore


def _progress(data: Data | None, batch_size: int, desc: str, verbose: bool) -> tqdm:
    total = None if data is None or data.steps is not None else -(-data.size // batch_size)
    return tqdm(total=total, desc=desc, unit="batch", disable=not verbose, leave=False)


def _require(data: Data | None, score: Any) -> Data:
    if data is None:
        raise InvalidArgumentError(f"`data` is required for method {score.name!r}.")
    return data


def score(
    model: Any,
    data: Data | None,
    method: Score,
    objective: Objective,
    *,
    batch_size: int = 64,
    verbose: bool = True,
    weights: Mapping[str, PrunableWeight] | None = None,
) -> ScoreMap:
    """Scores every prunable weight of ``model`` over all of ``data``.

    Args:
        model: the model to score (not modified).
        data: the checked :class:`Data`; None for data-free scores.
        method: the score; it is reset, so an instance may be reused.
        objective: what the model's output means.
        batch_size: batch size for array data.
        verbose: show a progress bar.
        weights: the weights to score instead of the prunable ones.

    Returns:
        The ScoreMap.
    """
    method.reset(model, prunable_weights(model) if weights is None else weights, objective)
    if method.needs_data:
        data = _require(data, method)
        with _progress(data, batch_size, f"scoring ({method.name})", verbose) as bar:
            for x, y in data.batches(batch_size):
                method.update(x, y)
                bar.update(1)
    return method.result()


def rescorer(
    model: Any,
    data: Data | None,
    method: Score,
    objective: Objective,
    *,
    batch_size: int = 64,
    verbose: bool = True,
) -> Callable[[Mapping[str, np.ndarray] | None], ScoreMap]:
    """``masks -> ScoreMap`` of ``model`` with ``masks`` applied (None: unpruned).

    One working copy of ``model`` is made; each call writes ``weight · mask`` into
    it and scores it over all of ``data``, so a score that traces a function for
    its model traces it once for every call. ``model`` is not modified.

    Args:
        model: the model to score.
        data: the checked :class:`Data`; None for data-free scores.
        method: the score.
        objective: what the model's output means.
        batch_size: batch size for array data.
        verbose: show a progress bar for each scoring pass.

    Returns:
        The function.
    """
    work = _keras.clone(model)
    weights = prunable_weights(work)
    original = {k: w.variable.numpy() for k, w in weights.items()}

    def rescore(masks: Mapping[str, np.ndarray] | None) -> ScoreMap:
        for key, value in original.items():
            mask = None if masks is None else masks.get(key)
            weights[key].variable.assign(value if mask is None else value * mask)
        return score(work, data, method, objective, batch_size=batch_size, verbose=verbose)

    return rescore


def score_split(
    model: Any,
    data: Data,
    method: Score,
    objective: Objective,
    target_classes: Sequence[int],
    *,
    batch_size: int = 64,
    verbose: bool = True,
    weights: Mapping[str, PrunableWeight] | None = None,
) -> tuple[ScoreMap, ScoreMap]:
    """Scores the examples of ``target_classes`` and the rest separately, in one pass.

    Memory holds two accumulators per weight, whatever the number of classes, and
    at most one batch of each side's examples waiting to fill a batch.
    ``weights`` replaces the prunable weights as the weights scored.

    Returns:
        ``(forget scores, retain scores)``.
    """
    weights = prunable_weights(model) if weights is None else weights
    forget, retain = method.forget_variant(), method.fresh()
    forget.reset(model, weights, objective)
    retain.reset(model, weights, objective)
    targets = np.asarray(list(target_classes))
    sides = [(forget, _Pending()), (retain, _Pending())]
    with _progress(data, batch_size, f"scoring ({method.name})", verbose) as bar:
        for x, y in data.batches(batch_size):
            in_target = np.isin(y, targets)
            for (side, pending), chosen in zip(sides, (in_target, ~in_target)):
                for part in pending.add(take(x, chosen), y[chosen], full=len(y)):
                    side.update(*part)
            bar.update(1)
    for side, pending in sides:
        for part in pending.rest():
            side.update(*part)
    return forget.result(), retain.result()


class _Pending:
    """One side's examples, set aside until they fill a batch.

    Splitting each batch leaves small parts, a tenth of a batch for one class of
    ten; scored as they come, each costs a whole call. At most one batch is held.
    """

    def __init__(self) -> None:
        self._xs: list[Any] = []
        self._ys: list[np.ndarray] = []
        self._count = 0
        self._full = 1

    def add(self, x: Any, y: np.ndarray, full: int) -> Iterator[tuple[Any, np.ndarray]]:
        """Keeps ``(x, y)``; yields whole batches while there are enough examples.

        A whole batch is the largest batch split so far, ``full`` examples or more.
        """
        self._full = max(self._full, full)
        if len(y):
            self._xs.append(x)
            self._ys.append(y)
            self._count += len(y)
        while self._count >= self._full:
            yield self._cut(self._full)

    def rest(self) -> Iterator[tuple[Any, np.ndarray]]:
        """The examples left, as one short batch (if any)."""
        if self._count:
            yield self._cut(self._count)

    def _cut(self, size: int) -> tuple[Any, np.ndarray]:
        x = tf.nest.map_structure(lambda *a: np.concatenate(a), *self._xs)
        y = np.concatenate(self._ys)
        head = (take(x, slice(0, size)), y[:size])
        self._xs, self._ys = [take(x, slice(size, None))], [y[size:]]
        self._count = len(y) - size
        return head


def feature_model(graph: Graph, keys: Sequence[str]) -> Any:
    """A model from the inputs to each group's features (in ``keys`` order).

    A channel group's features are its score layer's output (for a
    ``Bidirectional`` layer's concatenated directions, reshaped so that each
    direction's unit j is the same unit at another position); an attention
    layer's heads', each head's attention output norm ``[batch, tokens, heads]``
    (:func:`keras_forget.introspect.heads.norms`).
    """
    model = graph.model
    km = _keras.keras_module(model)
    outputs = [_features(graph, k) for k in keys]
    inputs = model.inputs
    return km.Model(inputs[0] if len(inputs) == 1 else inputs, outputs)


def _features(graph: Graph, key: str) -> Any:
    """The symbolic tensor of group ``key``'s features."""
    group = graph.groups[key]
    layer = graph.model.get_layer(group.score_layer)
    if group.kind == "heads":
        return heads.norms(layer)
    if group.fold == 1:
        return layer.output
    shape = tuple(layer.output.shape)[1:-1]  # each block's unit j at another position
    folded = (*[-1 if d is None else int(d) for d in shape], group.fold, group.size)
    return _keras.keras_module(graph.model).layers.Reshape(folded)(layer.output)


def _from_gradients(
    graph: Graph,
    data: Data,
    method: Any,
    objective: Objective | None,
    target_classes: Sequence[int] | None,
    run: dict,
) -> dict[str, np.ndarray]:
    """A unit score made of weight-level gradient scores (``method.needs_gradients``)."""
    objective = objective or Objective()
    weight_score = method.weight_score()
    run = dict(run, weights=method.weights(graph))
    if target_classes:
        forget, retain = score_split(
            graph.model, data, weight_score, objective, target_classes, **run
        )
        return method.from_weight_scores(graph, forget, retain)
    everything = score(graph.model, data, weight_score, objective, **run)
    return method.from_weight_scores(graph, None, everything)


def score_units(
    graph: Graph,
    data: Data | None,
    method: UnitScore,
    *,
    num_classes: int,
    target_classes: Sequence[int] | None = None,
    batch_size: int = 64,
    verbose: bool = False,
    objective: Objective | None = None,
) -> dict[str, np.ndarray]:
    """Scores every prunable unit group of ``graph.model`` over all of ``data``.

    Args:
        graph: the model's :class:`Graph`.
        data: the checked :class:`Data`; None for data-free scores.
        method: the unit score (reset here, so an instance may be reused).
        num_classes: the classifier's number of outputs.
        target_classes: classes to forget, or None for pruning saliency.
        batch_size: batch size for array data.
        verbose: show a progress bar.
        objective: what the output means, for scores computed from gradients
            (``needs_gradients``); by default, a classifier's logits.

    Returns:
        ``{group key: float32 scores [units]}``.

    Raises:
        NotPrunableError: the model has no unit group that can be removed.
    """
    groups = graph.prunable()
    if not groups:
        raise NotPrunableError(f"`model` {graph.model.name!r} has no unit that can be removed.")
    method.reset(graph, groups, num_classes)
    if getattr(method, "needs_gradients", False):
        run = dict(batch_size=batch_size, verbose=verbose)
        return _from_gradients(
            graph, _require(data, method), method, objective, target_classes, run
        )
    if method.needs_data:
        data = _require(data, method)
        keys = list(groups)
        extract = tf.function(feature_model(graph, keys), reduce_retracing=True)
        with _progress(data, batch_size, f"scoring ({method.name})", verbose) as bar:
            for x, y in data.batches(batch_size):
                outs = extract(x, training=False)
                outs = outs if isinstance(outs, (list, tuple)) else [outs]
                method.update({k: np.asarray(o) for k, o in zip(keys, outs)}, y)
                bar.update(1)
    return method.result(target_classes)
