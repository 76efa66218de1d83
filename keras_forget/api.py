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

from keras_forget import amount as amount_search
from keras_forget import checks, scoring, selection
from keras_forget.data import Data
from keras_forget.errors import InvalidArgumentError
from keras_forget.metrics import Evaluation, evaluate
from keras_forget.report import Report
from keras_forget.scores import Objective
from keras_forget.scores import get as get_score
from keras_forget.surgery import masking
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
        classes = checks.model(model, data)
    else:
        checks.model(model, data, classifier=False)
        classes = checks.num_classes(num_classes, fine_tune, eval_data)
    targets = checks.target_classes(target_class, classes)
    amount = amount_search.check(amount)
    if amount == "auto" and output_fn is not None:
        raise InvalidArgumentError("`amount='auto'` needs a classifier; give a fraction.")
    selection.check_amount(forget_accuracy, "forget_accuracy", allow_zero=True)
    selection.check_scope(scope)
    score = get_score(method)
    if output_fn is None:
        from_logits = checks.batch(model, data, classes)
        if eval_data is not None:
            checks.batch(model, eval_data, classes, "eval_data")
        objective = Objective(from_logits=from_logits)
    else:
        checks.labels(model, data, classes)
        from_logits, objective = False, Objective(output_fn=output_fn)
    checks.present(data, targets)

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
                model,
                lambda a: selection.select(ranked, a, scope=scope, highest=True),
                examples,
                forget_accuracy=forget_accuracy,
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
    classes = checks.model(model, data)
    selection.check_amount(sparsity, "sparsity", allow_zero=True)
    selection.check_scope(scope)
    score = get_score(method)
    if schedule is not None:
        gradual.check(schedule, sparsity, fine_tune)
    if data is None and (score.needs_data or fine_tune is not None and fine_tune.data is None):
        raise InvalidArgumentError(f"`data` is required for method {score.name!r} / fine-tuning.")
    from_logits = True
    if data is not None:
        from_logits = checks.batch(model, data, classes)
    elif fine_tune is not None:  # data-free score: learn the output kind from the training data
        from_logits = checks.batch(model, fine_tune.data, classes, "fine_tune.data")
    if eval_data is not None:
        checks.batch(model, eval_data, classes, "eval_data")
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
