"""Component-level editing: score, select and remove whole units and filters.

The unit-level versions of the verbs: :func:`forget_units` (class unlearning,
DISCEDIT-U by default) and :func:`prune_units` (structured pruning,
DISCEDIT-SP by default, physically shrinking the model). The stages are the
weight-level ones with units in place of weights::

    unit scores  ->  unit masks {group key: bool [units]}  ->  weight masks / shrink

Unit groups come from :class:`~keras_forget.surgery.graph.Graph`: units that
must go together (a residual stream) are one group, scored on the group's
post-BN, post-activation block output.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from keras_forget import _keras, checks
from keras_forget import amount as amount_search
from keras_forget.data import Data, batches, first_batch, input_rank
from keras_forget.errors import InvalidArgumentError
from keras_forget.metrics import evaluate
from keras_forget.report import Report
from keras_forget.scores import units as unit_scores
from keras_forget.scores.objective import outputs_are_probabilities
from keras_forget.surgery import masking, structured
from keras_forget.surgery.graph import Graph
from keras_forget.training import FineTune, fine_tune, without_classes

GRANULARITIES = ("weight", "unit")
SCOPES = ("layer", "global")
#: What ``method="discedit"`` means for each verb (chosen on ``benchmarks/discedit.py``).
DISCEDIT: dict[str, Any] = {
    "forget": {"class_name": "exp_norm", "config": {"direction": "active"}},
    "prune": {"class_name": "fisher_bound", "config": {}},
}
FORGET_AMOUNT = 0.1
FORGET_SCOPE = "global"


def check_granularity(granularity: str) -> str:
    """Validates ``granularity`` (``"weight"`` or ``"unit"``)."""
    if granularity not in GRANULARITIES:
        raise InvalidArgumentError(
            f"`granularity` must be one of {GRANULARITIES}, got {granularity!r}."
        )
    return granularity


def resolve(method: Any, task: str) -> unit_scores.UnitScore:
    """A unit score from ``method``; ``"discedit"`` picks the task's witness."""
    if isinstance(method, str) and method == "discedit":
        method = DISCEDIT[task]
    return unit_scores.get(method)


def feature_model(graph: Graph, keys: Sequence[str]) -> Any:
    """A model from the inputs to each group's score layer output (in ``keys`` order)."""
    model = graph.model
    km = _keras.keras_module(model)
    outputs = [model.get_layer(graph.groups[k].score_layer).output for k in keys]
    inputs = model.inputs
    return km.Model(inputs[0] if len(inputs) == 1 else inputs, outputs)


def score_units(
    model: Any,
    data: Data | None,
    method: Any,
    *,
    target_classes: Sequence[int] | None = None,
    graph: Graph | None = None,
    batch_size: int = 64,
    verbose: bool = False,
) -> dict[str, np.ndarray]:
    """Scores every prunable unit group of ``model`` over all of ``data``.

    Args:
        model: a built Sequential or functional classifier.
        data: labelled ``(x, y)`` or a ``tf.data.Dataset``; None for data-free scores.
        method: unit score name (``scores.units.names()``), config or instance.
        target_classes: classes to forget, or None for pruning saliency.
        graph: the model's :class:`Graph`, if already built.
        batch_size: batch size for array data.
        verbose: show a progress bar.

    Returns:
        ``{group key: float32 scores [units]}``.
    """
    graph = graph or Graph(model)
    groups = graph.prunable()
    if not groups:
        raise InvalidArgumentError(f"`model` {model.name!r} has no unit that can be removed.")
    score = unit_scores.get(method)
    score.reset(graph, groups, int(model.output_shape[-1]))
    if score.needs_data:
        if data is None:
            raise InvalidArgumentError(f"`data` is required for unit method {score.name!r}.")
        keys = list(groups)
        extract = tf.function(feature_model(graph, keys), reduce_retracing=True)
        with tqdm(desc=f"scoring ({score.name})", unit="batch", disable=not verbose) as bar:
            for x, y in batches(data, batch_size, input_rank=input_rank(model)):
                outs = extract(x, training=False)
                outs = outs if isinstance(outs, (list, tuple)) else [outs]
                score.update({k: np.asarray(o) for k, o in zip(keys, outs)}, y)
                bar.update(1)
    return score.result(target_classes)


def _count(amount: float | int, size: int) -> int:
    if isinstance(amount, (int, np.integer)) and not isinstance(amount, bool):
        return int(amount)
    return int(round(float(amount) * size))


def check_unit_amount(amount: Any, name: str = "amount") -> float | int:
    """A fraction in (0, 1) or a count >= 1 of units per layer."""
    if isinstance(amount, (int, np.integer)) and not isinstance(amount, bool):
        if amount < 1:
            raise InvalidArgumentError(f"`{name}` as a count must be >= 1, got {amount}.")
        return int(amount)
    try:
        value = float(amount)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"`{name}` must be a number, got {amount!r}.") from None
    if not 0 < value < 1:
        raise InvalidArgumentError(
            f"`{name}` must be a fraction in (0, 1) or a count >= 1, got {amount!r}."
        )
    return value


def select_units(
    scores: Mapping[str, np.ndarray],
    amount: float | int,
    *,
    scope: str = "layer",
    highest: bool = False,
) -> dict[str, np.ndarray]:
    """Unit masks removing ``amount`` units, chosen by score (pure array code).

    Args:
        scores: ``{group key: scores [units]}``.
        amount: a fraction in (0, 1) of the units (of each group with
            ``scope="layer"``, of all groups with ``"global"``), or an int: a
            count of units per group.
        scope: ``"layer"`` or ``"global"``.
        highest: remove the highest scores (forgetting) instead of the lowest.

    Returns:
        ``{group key: bool [units]}``, ``False`` = removed. Every group keeps
        at least one unit.
    """
    amount = check_unit_amount(amount)
    if scope not in SCOPES:
        raise InvalidArgumentError(f"`scope` must be one of {SCOPES}, got {scope!r}.")
    for key, value in scores.items():
        if not np.all(np.isfinite(value)):
            raise InvalidArgumentError(f"The unit scores of {key!r} contain NaN or infinity.")
    sign = -1.0 if highest else 1.0
    if scope == "layer" or isinstance(amount, int):
        out = {}
        for key, value in scores.items():
            count = min(_count(amount, value.size), value.size - 1)
            keep = np.ones(value.size, bool)
            keep[np.argsort(sign * np.asarray(value), kind="stable")[:count]] = False
            out[key] = keep
        return out
    keys = list(scores)
    flat = np.concatenate([sign * np.asarray(scores[k], np.float64) for k in keys])
    owner = np.concatenate([np.full(np.size(scores[k]), i) for i, k in enumerate(keys)])
    left = np.array([np.size(scores[k]) for k in keys])
    keep = np.ones(flat.size, bool)
    count = _count(amount, flat.size)
    for index in np.argsort(flat, kind="stable"):
        if count == 0:
            break
        if left[owner[index]] > 1:
            keep[index] = False
            left[owner[index]] -= 1
            count -= 1
    out, start = {}, 0
    for k in keys:
        out[k] = keep[start : start + np.size(scores[k])]
        start += np.size(scores[k])
    return out


def _from_logits(model: Any, data: Data) -> bool:
    x, _ = first_batch(data, 32, input_rank=input_rank(model))
    return not outputs_are_probabilities(np.asarray(model(x, training=False)))


def forget_units(
    model: Any,
    data: Data,
    target_class: int | Sequence[int],
    *,
    method: Any = "discedit",
    amount: float | int = FORGET_AMOUNT,
    scope: str = FORGET_SCOPE,
    shrink: bool = False,
    recalibrate: bool = True,
    fine_tune: FineTune | None = None,
    eval_data: Data | None = None,
    batch_size: int = 64,
    verbose: bool = True,
) -> Any:
    """Makes a classifier forget classes by masking the units most specific to them.

    Each prunable unit group is scored on its post-BN, post-activation output
    (DISCEDIT-U by default: :class:`~keras_forget.scores.class_moments.ExpNormBound`,
    a lower bound on the TV distance between the unit's activations on the
    target classes and on the rest, kept for units more active on the
    targets) and the highest-scoring units are masked: kernel column or
    filter, bias, and BatchNormalization gamma, beta and moving mean of the
    channel.

    Args:
        model: a trained Sequential or functional Keras 3 or tf_keras classifier.
        data: labelled ``(x, y)`` or ``tf.data.Dataset`` with the target
            classes and the rest.
        target_class: the class or classes to forget.
        method: ``"discedit"`` (``"exp_norm"``), or any unit score name, config
            or instance (``"fisher_bound"``, ``"l1"``, ``"random"``).
        amount: fraction in (0, 1) of the units, a count of units per layer,
            or ``"auto"``: the smallest fraction (on a geometric grid from 1 %
            to 32 %) at which accuracy on the target classes' examples of
            ``data`` is 0.
        scope: ``"layer"`` (``amount`` of each layer) or ``"global"``.
        shrink: remove the units physically (:func:`structured.shrink`)
            instead of masking them.
        recalibrate: after fine-tuning, re-estimate BatchNormalization
            moving statistics on the fine-tuning data
            (:func:`structured.recalibrate_batchnorm`).
        fine_tune: optional :class:`FineTune`; by default on ``data`` without
            the target classes.
        eval_data: data for the report's accuracies (default: ``data``).
        batch_size: scoring batch size.
        verbose: show progress.

    Returns:
        A :class:`keras_forget.api.Result`: the masked (or shrunk) model, the
        weight masks over the original model, and a report whose ``pruned`` /
        ``total`` count units.

    Raises:
        InvalidArgumentError: a bad argument, or too few examples of a class.
        UnsupportedLayerError: a model without a layer graph.
    """
    classes = checks.model(model, data)
    targets = checks.target_classes(target_class, classes)
    score = resolve(method, "forget")
    return _run(
        model,
        data,
        score,
        amount,
        scope,
        targets,
        True,
        shrink,
        recalibrate,
        fine_tune,
        eval_data,
        batch_size,
        verbose,
    )


def prune_units(
    model: Any,
    data: Data | None = None,
    *,
    sparsity: float | int = 0.5,
    method: Any = "discedit",
    scope: str = "layer",
    shrink: bool = True,
    recalibrate: bool = True,
    fine_tune: FineTune | None = None,
    eval_data: Data | None = None,
    batch_size: int = 64,
    verbose: bool = True,
) -> Any:
    """Structured pruning: removes the units that discriminate no class.

    Units are scored by DISCEDIT-SP
    (:class:`~keras_forget.scores.class_moments.FisherBound`, the largest over
    classes of a lower bound on the one-vs-rest TV distance) by default, and
    the lowest are removed. With ``shrink`` the model is rebuilt with fewer
    units and filters (checked against the masked model on a batch of
    ``data``); otherwise they are masked.

    Args:
        model: a trained Sequential or functional classifier.
        data: labelled data; may be None for ``method="l1"`` / ``"random"``.
        sparsity: fraction in (0, 1) of the units to remove, or a count per layer.
        method: ``"discedit"`` (``"fisher_bound"``) or any unit score.
        scope: ``"layer"`` or ``"global"``.
        shrink: return a physically smaller model (default) or a masked one.
        recalibrate: see :func:`forget_units`.
        fine_tune: optional :class:`FineTune` (by default on ``data``).
        eval_data: data for the report's accuracies (default: ``data``).
        batch_size: scoring batch size.
        verbose: show progress.

    Returns:
        A :class:`keras_forget.api.Result` (see :func:`forget_units`).

    Raises:
        InvalidArgumentError: a bad argument.
    """
    checks.model(model, data)
    score = resolve(method, "prune")
    if data is None and (score.needs_data or fine_tune is not None and fine_tune.data is None):
        raise InvalidArgumentError(f"`data` is required for unit method {score.name!r}.")
    return _run(
        model,
        data,
        score,
        sparsity,
        scope,
        (),
        False,
        shrink,
        recalibrate,
        fine_tune,
        eval_data,
        batch_size,
        verbose,
    )


#: Fractions of units tried by ``amount="auto"``, smallest first (ratio √2).
UNIT_GRID = tuple(round(float(a), 4) for a in np.geomspace(0.01, 0.32, 11))


def _auto_amount(
    model: Any,
    data: Data,
    graph: Graph,
    scores: Mapping[str, np.ndarray],
    scope: str,
    targets: tuple[int, ...],
) -> float:
    """The smallest fraction of units whose removal brings forget accuracy on ``data`` to 0."""
    chosen, _ = amount_search.search(
        model,
        lambda a: structured.weight_masks(
            graph, select_units(scores, a, scope=scope, highest=True)
        ),
        amount_search.forget_examples(model, data, targets),
        forget_accuracy=0.0,
        grid=UNIT_GRID,
        variables_of=masking.weights_by_key,
    )
    return chosen


def _run(
    model: Any,
    data: Data | None,
    score: unit_scores.UnitScore,
    amount: float | int,
    scope: str,
    targets: tuple[int, ...],
    highest: bool,
    shrink: bool,
    recalibrate: bool,
    tune: FineTune | None,
    eval_data: Data | None,
    batch_size: int,
    verbose: bool,
) -> Any:
    from keras_forget.api import Result  # the verbs' module imports this one

    auto = amount == "auto" and bool(targets)
    if not auto:
        amount = check_unit_amount(amount, "amount" if targets else "sparsity")
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    graph = Graph(model)
    scores = score_units(
        model,
        data,
        score,
        target_classes=targets or None,
        graph=graph,
        batch_size=batch_size,
        verbose=verbose,
    )
    if auto:
        amount = _auto_amount(model, data, graph, scores, scope, targets)
    units = select_units(scores, amount, scope=scope, highest=highest)
    masks = structured.weight_masks(graph, units)
    seconds["scoring"] = time.perf_counter() - start
    tick = time.perf_counter()
    if shrink:
        sample = None if data is None else first_batch(data, 32, input_rank=input_rank(model))[0]
        edited = structured.shrink(model, units, sample=sample, graph=graph)
    else:
        edited = masking.mask_weights(model, masks)
    seconds["masking"] = time.perf_counter() - tick
    check = eval_data if eval_data is not None else data

    def measure(m: Any) -> Any:
        return None if check is None else evaluate(m, check, targets or None)

    before, after, tuned = measure(model), measure(edited), None
    if tune is not None:
        tick = time.perf_counter()
        train = tune.data if tune.data is not None else without_classes(data, targets)
        fine_tune(edited, tune, train, from_logits=_from_logits(model, train), verbose=verbose)
        if recalibrate:
            structured.recalibrate_batchnorm(edited, train)
        seconds["fine_tune"] = time.perf_counter() - tick
        tuned = measure(edited)
    seconds["total"] = time.perf_counter() - start
    removed = sum(int(m.size - m.sum()) for m in units.values())
    total = sum(int(m.size) for m in units.values())
    report = Report(
        score.name,
        float(amount) if isinstance(amount, float) else amount,
        scope,
        targets,
        removed,
        total,
        before,
        after,
        tuned,
        seconds,
        granularity="unit",
    )
    return Result(edited, masks, report)
