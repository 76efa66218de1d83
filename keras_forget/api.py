"""The verbs: :func:`prune_for_class` (forgetting) and :func:`prune` (compression).

Both run the same stages — scores → selection → masking → (fine-tuning) — and
return a :class:`Result`; the model passed in is never changed.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from keras_forget import _keras, scoring, selection
from keras_forget import amount as amount_search
from keras_forget.data import Data, first_batch, input_rank
from keras_forget.errors import InvalidArgumentError, NonFiniteError
from keras_forget.metrics import Evaluation, evaluate
from keras_forget.report import Report
from keras_forget.scores import Objective
from keras_forget.scores import get as get_score
from keras_forget.scores.objective import outputs_are_probabilities
from keras_forget.surgery import masking
from keras_forget.surgery.registry import prunable_weights
from keras_forget.training import FineTune, fine_tune, without_classes

#: Defaults of :func:`prune_for_class`, chosen from ``benchmarks/forget_digits.py``.
FORGET_METHOD = "gradxweight"
FORGET_AMOUNT = "auto"
#: The forget accuracy, on the given data, that ``amount="auto"`` aims for.
FORGET_ACCURACY = 0.0
FORGET_FLOOR = 0.1


@dataclasses.dataclass
class Result:
    """What a pruning call returns.

    Attributes:
        model: the new, masked model (mask constraints on Keras 3, tfmot
            wrappers on tf_keras; :func:`keras_forget.strip` or
            :func:`keras_forget.export` removes them).
        masks: ``{weight key: bool array}``, ``False`` = pruned.
        report: a :class:`~keras_forget.report.Report`.
    """

    model: Any
    masks: dict[str, np.ndarray]
    report: Report


def _targets(target_class: Any, classes: int) -> tuple[int, ...]:
    values = [target_class] if isinstance(target_class, (int, np.integer)) else target_class
    try:
        targets = tuple(int(c) for c in values)
    except TypeError:
        raise InvalidArgumentError(
            f"`target_class` must be an int or a list of ints, got {target_class!r}."
        ) from None
    if not targets:
        raise InvalidArgumentError("`target_class` is empty: name at least one class.")
    for c in targets:
        if not 0 <= c < classes:
            raise InvalidArgumentError(
                f"`target_class` {c} is outside the model's {classes} outputs (0..{classes - 1})."
            )
    if len(set(targets)) == classes:
        raise InvalidArgumentError("`target_class` names every class: nothing would be retained.")
    return targets


def _check_num_classes(num_classes: Any, tune: Any, eval_data: Any) -> int:
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise InvalidArgumentError(
            f"`num_classes` (an int >= 2) is required with `output_fn`; got {num_classes!r}."
        )
    if tune is not None or eval_data is not None:
        raise InvalidArgumentError(
            "`fine_tune` and `eval_data` need a classifier; they are not accepted with `output_fn`."
        )
    return int(num_classes)


def _check_labels(model: Any, data: Data, classes: int) -> None:
    _, y = first_batch(data, 32, input_rank=input_rank(model))
    if y.size and (y.min() < 0 or y.max() >= classes):
        raise InvalidArgumentError(
            f"`data`: labels must be in 0..{classes - 1} (`num_classes`={classes}); "
            f"found {int(y.min())}..{int(y.max())}."
        )


def _check_model(model: Any, data: Data | None, classifier: bool = True) -> int:
    """Validates the model; returns its number of outputs (classifiers)."""
    _keras.flavor(model)  # TypeError if not a Keras model
    if not model.built:
        raise InvalidArgumentError("`model` is not built: call it on data or build() it first.")
    weights = prunable_weights(model)
    for key, w in weights.items():
        if not np.all(np.isfinite(w.variable.numpy())):
            raise NonFiniteError(f"`model` weight {key!r} contains NaN or infinity.")
    if not classifier:
        return 0
    sample = None if data is None else first_batch(data, 32, input_rank=input_rank(model))[0]
    return _keras.output_size(model, sample)


def _check_batch(model: Any, data: Data, classes: int, name: str = "data") -> bool:
    """Checks the first batch against the model; returns whether outputs are logits."""
    shape = _keras.input_shape(model)
    rank = input_rank(model)
    x, y = first_batch(data, 32, input_rank=rank, name=name)
    expected = tuple(shape[1:]) if isinstance(shape, tuple) else None
    if expected is not None and (
        len(x.shape) != rank or any(e is not None and e != a for e, a in zip(expected, x.shape[1:]))
    ):
        raise InvalidArgumentError(
            f"`{name}`: inputs of shape {x.shape[1:]} do not match the model's input {expected}."
        )
    if y.size and (y.min() < 0 or y.max() >= classes):
        raise InvalidArgumentError(
            f"`{name}`: labels must be in 0..{classes - 1} for a model with {classes} outputs; "
            f"found {int(y.min())}..{int(y.max())}."
        )
    out = np.asarray(model(x, training=False))
    if out.ndim != 2 or out.shape[-1] != classes:
        raise InvalidArgumentError(f"`model` must output (batch, classes); got {out.shape}.")
    return not outputs_are_probabilities(out)


def _present(data: Data, targets: Sequence[int]) -> None:
    """For array data, checks that the target classes have examples (cheap, before work)."""
    if isinstance(data, (tuple, list)) and len(data) == 2:
        y = np.asarray(data[1])
        labels = y.argmax(-1) if y.ndim >= 2 and y.shape[-1] > 1 else y.reshape(-1)
        missing = [c for c in targets if not np.any(labels == c)]
        if missing:
            raise InvalidArgumentError(f"`data` has no example of target class(es) {missing}.")


def _evaluate(model: Any, data: Data | None, targets: tuple[int, ...]) -> Evaluation | None:
    return None if data is None else evaluate(model, data, targets or None)


def _no_eval(*args: Any) -> None:
    return None


def prune_for_class(
    model: Any,
    data: Data,
    target_class: int | Sequence[int],
    *,
    method: Any = None,
    amount: float | str | None = None,
    scope: str | None = None,
    granularity: str = "weight",
    floor: float = FORGET_FLOOR,
    forget_accuracy: float = FORGET_ACCURACY,
    fine_tune: FineTune | None = None,
    eval_data: Data | None = None,
    output_fn: Callable[[Any, Any, Any], Any] | None = None,
    num_classes: int | None = None,
    batch_size: int = 64,
    verbose: bool = True,
) -> Result:
    """Makes a classifier forget one or more classes by pruning the weights specific to them.

    Each weight is scored on the examples of the target classes and, in the
    same pass, on the rest; :func:`keras_forget.selection.contrast` ranks the
    weights by how much more they serve the target than the rest, and the top
    ``amount`` are pruned.

    Args:
        model: a trained Keras 3 or tf_keras classifier (logits or softmax).
        data: labelled ``(x, y)`` or a ``tf.data.Dataset`` (integer or one-hot
            labels), containing the classes to forget and the rest.
        target_class: the class or classes to forget.
        method: score name (``keras_forget.scores.names()``), config or
            instance; default ``"gradxweight"`` (``"discedit"`` for units).
        amount: fraction in (0, 1) of prunable weights to prune, or
            ``"auto"`` (the default): the smallest amount (on a geometric grid)
            at which the accuracy on the target classes' examples of ``data``
            is at most ``forget_accuracy`` (see :mod:`keras_forget.amount`).
            For units: a fraction of units, or a count per layer (default 0.1).
        scope: ``"global"`` (rank all weights together, the default) or ``"layer"``.
        granularity: ``"weight"`` (default) or ``"unit"``: mask whole Dense
            units / Conv filters with DISCEDIT-U class-moment scores (see
            :func:`keras_forget.components.forget_units`).
        floor: the contrast's floor (see :func:`keras_forget.selection.contrast`).
        forget_accuracy: the goal of ``amount="auto"``, in [0, 1).
        fine_tune: optional :class:`FineTune`; by default on ``data`` without
            the target classes.
        eval_data: data for the report's accuracies (default: ``data``).
        output_fn: for a model that is not a classifier (a conditional
            generator, say): ``(model, x, y) -> tensor [batch]``, the
            per-example output whose sensitivity is scored, ``x`` a batch of
            the model's inputs and ``y`` the integer labels of ``data``. The
            report then has no accuracies, and ``fine_tune`` is not accepted.
        num_classes: number of labels, required with ``output_fn``.
        batch_size: scoring batch size.
        verbose: show progress.

    Returns:
        A :class:`Result` with the new model, its masks and a report.

    Raises:
        InvalidArgumentError: a bad argument (named in the message).
        UnsupportedLayerError: a layer that cannot be pruned.
        NotPrunableError: a model with no prunable weight.
        NonFiniteError: NaN or infinite weights or scores.
    """
    from keras_forget import components

    if components.check_granularity(granularity) == "unit":
        if output_fn is not None:
            raise InvalidArgumentError("`granularity='unit'` needs a classifier, not `output_fn`.")
        return components.forget_units(
            model,
            data,
            target_class,
            method="discedit" if method is None else method,
            amount=components.FORGET_AMOUNT if amount is None else amount,
            scope=components.FORGET_SCOPE if scope is None else scope,
            fine_tune=fine_tune,
            eval_data=eval_data,
            batch_size=batch_size,
            verbose=verbose,
        )
    method = FORGET_METHOD if method is None else method
    amount = FORGET_AMOUNT if amount is None else amount
    scope = "global" if scope is None else scope
    if output_fn is None:
        classes = _check_model(model, data)
    else:
        _check_model(model, data, classifier=False)
        classes = _check_num_classes(num_classes, fine_tune, eval_data)
    targets = _targets(target_class, classes)
    amount = amount_search.check(amount)
    if amount == "auto" and output_fn is not None:
        raise InvalidArgumentError("`amount='auto'` needs a classifier; give a fraction.")
    selection.check_amount(forget_accuracy, "forget_accuracy", allow_zero=True)
    selection.check_scope(scope)
    score = get_score(method)
    if output_fn is None:
        from_logits = _check_batch(model, data, classes)
        if eval_data is not None:
            _check_batch(model, eval_data, classes, "eval_data")
        objective = Objective(from_logits=from_logits)
    else:
        _check_labels(model, data, classes)
        from_logits, objective = False, Objective(output_fn=output_fn)
    _present(data, targets)

    def choose() -> tuple[float, dict[str, np.ndarray]]:
        if not score.needs_data:
            ranked = scoring.score(model, None, score, objective, verbose=verbose)
        else:
            forget, retain = scoring.score_split(
                model, data, score, objective, targets, batch_size=batch_size, verbose=verbose
            )
            ranked = selection.contrast(forget, retain, floor=floor)
        if amount == "auto":
            examples = amount_search.forget_examples(model, data, targets)
            return amount_search.search(
                model, ranked, examples, scope=scope, forget_accuracy=forget_accuracy
            )
        return amount, selection.select(ranked, amount, scope=scope, highest=True)

    return _run(
        model,
        data,
        choose,
        score.name,
        amount,
        scope,
        targets,
        from_logits,
        fine_tune,
        eval_data,
        verbose,
        evaluator=_evaluate if output_fn is None else _no_eval,
    )


def prune(
    model: Any,
    data: Data | None = None,
    *,
    sparsity: float = 0.5,
    method: Any = None,
    scope: str | None = None,
    granularity: str = "weight",
    shrink: bool = False,
    fine_tune: FineTune | None = None,
    eval_data: Data | None = None,
    schedule: Any = None,
    batch_size: int = 64,
    verbose: bool = True,
) -> Result:
    """Compresses a model by pruning the ``sparsity`` fraction of least salient weights.

    One-shot by default. With a ``schedule``, pruning is gradual and happens
    during ``fine_tune``: at each of the schedule's pruning steps the weights
    are scored again (on the current weights) and the sparsity rises along the
    schedule's ramp; a weight once pruned stays pruned and the final sparsity
    is exact (see :mod:`keras_forget.gradual`).

    Args:
        model: a trained Keras 3 or tf_keras classifier.
        data: labelled data for data-driven scores (``obd``, ``fisher``,
            ``gradxweight``); may be None for ``magnitude`` and ``random``.
        sparsity: fraction in [0, 1) of prunable weights to prune.
        method: score name, config or instance; default ``"magnitude"``
            (``"discedit"`` for units).
        scope: ``"global"`` (default for weights) or ``"layer"`` (default for units).
        granularity: ``"weight"`` (default) or ``"unit"``: remove whole units
            and filters that discriminate no class (DISCEDIT-SP, see
            :func:`keras_forget.components.prune_units`); ``sparsity`` is then
            the fraction of units.
        shrink: with ``granularity="unit"``, return a physically smaller model
            instead of a masked one.
        fine_tune: optional :class:`FineTune` (by default on ``data``).
        eval_data: data for the report's accuracies (default: ``data``).
        schedule: optional :class:`keras_forget.GradualSchedule` for
            score-driven gradual pruning; needs ``fine_tune``. The report's
            ``after`` is then None (there is no one-shot state).
        batch_size: scoring batch size.
        verbose: show progress.

    Returns:
        A :class:`Result`.

    Raises:
        InvalidArgumentError: a bad argument (named in the message).
        NotPrunableError: a model with no prunable weight.
    """
    from keras_forget import components, gradual

    if components.check_granularity(granularity) == "unit":
        return components.prune_units(
            model,
            data,
            sparsity=sparsity,
            method="discedit" if method is None else method,
            scope="layer" if scope is None else scope,
            shrink=shrink,
            fine_tune=fine_tune,
            eval_data=eval_data,
            batch_size=batch_size,
            verbose=verbose,
        )
    if shrink:
        raise InvalidArgumentError("`shrink=True` needs `granularity='unit'`.")
    method = "magnitude" if method is None else method
    scope = "global" if scope is None else scope
    classes = _check_model(model, data)
    selection.check_amount(sparsity, "sparsity", allow_zero=True)
    selection.check_scope(scope)
    score = get_score(method)
    if schedule is not None:
        gradual.check(schedule, sparsity, fine_tune)
    if data is None and (score.needs_data or fine_tune is not None and fine_tune.data is None):
        raise InvalidArgumentError(f"`data` is required for method {score.name!r} / fine-tuning.")
    from_logits = True
    if data is not None:
        from_logits = _check_batch(model, data, classes)
    elif fine_tune is not None:  # data-free score: learn the output kind from the training data
        from_logits = _check_batch(model, fine_tune.data, classes, "fine_tune.data")
    if eval_data is not None:
        _check_batch(model, eval_data, classes, "eval_data")
    objective = Objective(from_logits=from_logits, target="log_likelihood")
    if schedule is not None:
        run = gradual.prune_gradually(
            model,
            data,
            score=score,
            objective=objective,
            sparsity=sparsity,
            scope=scope,
            schedule=schedule,
            tune=fine_tune,
            eval_data=eval_data,
            batch_size=batch_size,
            verbose=verbose,
        )
        return Result(run.model, run.masks, run.report)

    def choose() -> dict[str, np.ndarray]:
        ranked = scoring.score(
            model, data, score, objective, batch_size=batch_size, verbose=verbose
        )
        return selection.select(ranked, sparsity, scope=scope, highest=False)

    return _run(
        model,
        data,
        choose,
        score.name,
        sparsity,
        scope,
        (),
        from_logits,
        fine_tune,
        eval_data,
        verbose,
    )


def _run(
    model: Any,
    data: Data | None,
    choose: Callable[[], Any],
    method: str,
    amount: float,
    scope: str,
    targets: tuple[int, ...],
    from_logits: bool,
    tune: FineTune | None,
    eval_data: Data | None,
    verbose: bool,
    evaluator: Callable[..., Evaluation | None] = _evaluate,
) -> Result:
    """The shared stages after validation: select, mask, fine-tune, evaluate."""
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    chosen = choose()
    if isinstance(chosen, tuple):
        amount, masks = chosen
    else:
        masks = chosen
    seconds["scoring"] = time.perf_counter() - start
    tick = time.perf_counter()
    masked = masking.mask_model(model, masks)
    seconds["masking"] = time.perf_counter() - tick
    check = eval_data if eval_data is not None else data
    before = evaluator(model, check, targets)
    after = evaluator(masked, check, targets)
    tuned = None
    if tune is not None:
        tick = time.perf_counter()
        train = tune.data if tune.data is not None else without_classes(data, targets)
        fine_tune(masked, tune, train, from_logits=from_logits, verbose=verbose)
        seconds["fine_tune"] = time.perf_counter() - tick
        tuned = evaluator(masked, check, targets)
    seconds["total"] = time.perf_counter() - start
    pruned = sum(int(m.size - np.count_nonzero(m)) for m in masks.values())
    total = sum(int(m.size) for m in masks.values())
    report = Report(
        method, float(amount), scope, targets, pruned, total, before, after, tuned, seconds
    )
    return Result(masked, masks, report)
