"""The verbs: :func:`prune_for_class` (forget) and :func:`prune` (compress).

Each takes ``granularity="weight"`` (single weights, the default) or
``"unit"`` (whole Dense units and Conv filters), with the same defaults
whatever the granularity. Every argument is checked here, before any work;
:mod:`keras_forget.pipeline` then runs the one shared pipeline. The model
passed in is never changed.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from keras_forget import _keras, checks, distribute, gradual, pipeline, scores, selection, training
from keras_forget.data import Data
from keras_forget.errors import InvalidArgumentError
from keras_forget.introspect.registry import LeftWhole
from keras_forget.results import Result
from keras_forget.scores import COMPRESS_ALIASES, Objective
from keras_forget.selection import DEFAULT_ROUNDS
from keras_forget.selection import amount as amount_search
from keras_forget.surgery import reconstruct as reconstruct_units
from keras_forget.surgery.obs import OBS
from keras_forget.training import FineTune

#: ``method=None`` for each verb and granularity.
DEFAULT_METHOD = {
    ("forget", "weight"): "gradxweight",
    ("forget", "unit"): "discedit",
    ("compress", "weight"): "magnitude",
    ("compress", "unit"): "discedit",
}
#: What ``method="discedit"`` means for each verb: DISCEDIT-U and DISCEDIT-SP.
DISCEDIT = {
    "forget": {"class_name": "exp_norm", "config": {"direction": "active"}},
    "compress": {"class_name": "fisher_bound", "config": {}},
}
#: ``scope=None`` for each verb and granularity. Compression ranks single weights
#: globally (magnitude at 75 %: 0.922 global vs 0.564 layer-wise on the digits MLP) but
#: units layer by layer: ranked globally, DISCEDIT-SP strips early convolutions down to one
#: filter and ends 5.7-6.8 points below layer-wise ranking after fine-tuning at 50 % on
#: VGG- and ResNet-style CNNs (validation split, 3 seeds; benchmarks/unit_scope.py).
DEFAULT_SCOPE = {
    ("forget", "weight"): "global",
    ("forget", "unit"): "global",
    ("compress", "weight"): "global",
    ("compress", "unit"): "layer",
}


#: The fraction of each class of ``data`` that ``amount="auto"`` holds out of scoring and
#: decides on, so the amount is judged on examples the ranking never saw.
SEARCH_HOLDOUT = 0.2


def _compress_method(method: Any, granularity: str) -> Any:
    """The compression method: a weight score (aliases resolved), a unit score, or OBS."""
    if granularity == "weight":
        if isinstance(method, OBS):
            return method
        if method == "obs":
            return OBS()
        if isinstance(method, Mapping) and method.get("class_name") == "obs":
            return OBS.from_config(method.get("config", {}))
        if isinstance(method, str):
            method = COMPRESS_ALIASES.get(method, method)
    return _method(method, "compress", granularity)


def _compress_options(
    method: Any,
    granularity: str,
    sparsity: Any,
    schedule: Any,
    rounds: Any,
    normalize: Any,
    min_density: Any,
) -> tuple[int, str | None, float]:
    """Checks ``rounds``, ``normalize`` and ``min_density``; ``rounds`` with its default."""
    normalize = selection.check_normalization(normalize)
    rounds = None if rounds is None else selection.check_rounds(rounds)
    if granularity == "unit":
        if rounds not in (None, 1) or normalize is not None or min_density:
            raise InvalidArgumentError(
                "`rounds`, `normalize` and `min_density` rank single weights: use "
                "granularity='weight'."
            )
        return 1, None, 0.0
    min_density = selection.check_min_density(min_density, sparsity)
    fixed = "OBS prunes each layer once" if isinstance(method, OBS) else None
    if schedule is not None:
        if fixed:
            raise InvalidArgumentError(f"{fixed}: it takes no `schedule`; pass a score.")
        fixed = "a `schedule` re-scores at each of its pruning steps"
    if fixed:
        if rounds not in (None, 1):
            raise InvalidArgumentError(f"`rounds` must be None or 1: {fixed}.")
        if normalize is not None and isinstance(method, OBS):
            raise InvalidArgumentError(
                "OBS shares the weights to remove between layers by `OBS(allocation=...)`; "
                "leave `normalize` unset."
            )
        return 1, normalize, min_density
    if rounds is None:
        rounds = DEFAULT_ROUNDS.get(method.name, 1) if method.needs_data else 1
    return rounds, normalize, min_density


def _method(method: Any, task: str, granularity: str) -> Any:
    method = DEFAULT_METHOD[task, granularity] if method is None else method
    if granularity == "weight":
        units_only = {"discedit", *scores.units.names()} - set(scores.names())
        if isinstance(method, str) and method in units_only:
            raise InvalidArgumentError(
                f"`method` {method!r} scores whole units: pass granularity='unit' with it."
            )
        return scores.get(method)
    if isinstance(method, str) and method == "discedit":
        method = DISCEDIT[task]
    return scores.units.get(method)


def _fraction(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value < high:
        raise InvalidArgumentError(f"`{name}` must be a number in [{low}, {high}), got {value!r}.")
    return float(value)


def _common(
    model: Any, granularity: str, batch_size: int, verbose: bool, tune: Any, strict: Any
) -> list[LeftWhole]:
    """Checks the arguments both verbs share; returns the layers to leave whole."""
    checks.granularity(granularity)
    checks.batch_size(batch_size)
    checks.flag(verbose, "verbose")
    training.check(tune)
    return checks.model(model, strict=checks.flag(strict, "strict"))


def _warn_left_whole(left: list[LeftWhole]) -> tuple[str, ...]:
    """One warning naming every layer left whole; their names, for the report."""
    if left:
        named = ", ".join(f"{item.name} ({item.class_name})" for item in left)
        params = sum(item.params for item in left)
        many = len(left) > 1
        warnings.warn(
            f"{len(left)} layer{'s' if many else ''} left whole: {named}. keras_forget "
            f"cannot prune {'their' if many else 'its'} weights ({params} parameters), which "
            f"are kept as they are; implement `get_prunable_weights()` to prune them, or pass "
            f"strict=True to refuse such layers.",
            UserWarning,
            stacklevel=3,
        )
    return tuple(item.name for item in left)


def _reporting(result: Result, left: tuple[str, ...]) -> Result:
    """``result`` with the layers left whole in its report."""
    if left:
        result.report = dataclasses.replace(result.report, left_whole=left)
    return result


def _eval_and_train(
    model: Any,
    data: Data | None,
    eval_data: Any,
    tune: FineTune | None,
    classes: int,
    targets: tuple[int, ...],
    steps: int | None,
    batch_size: int,
) -> tuple[Data | None, str, Data | None]:
    """The checked evaluation data (and its name) and fine-tuning data."""
    check, split = data, "data"
    if eval_data is not None:
        check = Data.of(
            eval_data, model, name="eval_data", num_classes=classes, batch_size=batch_size
        )
        split = "eval_data"
    train = None
    if tune is not None:
        if tune.data is not None:
            train = Data.of(
                tune.data,
                model,
                name="fine_tune.data",
                num_classes=classes,
                steps=steps,
                batch_size=batch_size,
            )
        elif data is None:
            raise InvalidArgumentError("`fine_tune` needs `data` or `FineTune(data=...)`.")
        else:
            train = data.without(targets) if targets else data
    return check, split, train


def _forget_examples(
    data: Data, forget: Any, model: Any, classes: int, batch_size: int
) -> tuple[Data, Data]:
    """``(forget examples, the rest)`` as parts of ``data``, matched by content.

    Raises:
        InvalidArgumentError: ``forget`` is empty, holds an example that is not
            in ``data`` (or more copies of it), or is all of ``data``.
    """
    forget = Data.of(forget, model, name="forget", batch_size=batch_size)
    forget.check_classes(classes)
    chosen = data.matching(forget)
    return data.select(chosen), data.select(~chosen)


def _check_forgotten(forgotten: Any, output_fn: Any, amount: Any) -> None:
    """``forgotten`` goes with ``output_fn``, and ``amount="auto"`` with ``output_fn`` needs it.

    Raises:
        InvalidArgumentError: otherwise.
    """
    if forgotten is not None and not callable(forgotten):
        raise InvalidArgumentError(
            f"`forgotten` must be a callable (model, targets) -> bool, got {type(forgotten)!r}."
        )
    if forgotten is not None and output_fn is None:
        raise InvalidArgumentError(
            "`forgotten` tests a model that is not a classifier; give it with `output_fn`. "
            "A classifier's amount='auto' is judged by accuracy (`forget_accuracy`)."
        )
    if output_fn is not None and amount == "auto" and forgotten is None:
        raise InvalidArgumentError(
            "amount='auto' with `output_fn` needs `forgotten` (model, targets) -> bool to "
            "stop on (ConditionalGenerator.prune_kwargs() gives one), or a fractional `amount`."
        )


def _search(
    data: Data, targets: tuple[int, ...], unseen: Data | None, subset: bool
) -> tuple[Data, Data, str]:
    """``(data to score, data amount="auto" decides on, what that is)``.

    Raises:
        InvalidArgumentError: subset forgetting without unseen examples, or a
            target class with too few examples to hold any out.
    """
    if subset:
        if unseen is None:
            raise InvalidArgumentError(
                "amount='auto' with `forget=` stops when the forget examples are no more "
                "recognisable than unseen ones: pass `eval_data` (examples the model never "
                "trained on), or give a fractional `amount`."
            )
        return data, unseen, "eval_data (unseen examples; loss membership AUC within chance)"
    scored, held = data.split(SEARCH_HOLDOUT, seed=0)
    count = sum(held.counts.get(c, 0) for c in targets)
    if not count:
        raise InvalidArgumentError(
            f"amount='auto' decides on {SEARCH_HOLDOUT:.0%} of each class of `data` held out of "
            f"scoring, but class(es) {list(targets)} have too few examples to hold any out. "
            f"Give more examples or a fractional `amount`."
        )
    return scored, held, f"{count} target examples held out of scoring ({SEARCH_HOLDOUT:.0%})"


def prune_for_class(
    model: Any,
    data: Any,
    target_class: int | Sequence[int] | None = None,
    *,
    forget: Any = None,
    method: Any = None,
    amount: float | int | str = "auto",
    scope: str | None = None,
    granularity: str = "weight",
    floor: float | None = None,
    forget_accuracy: float = 0.0,
    fine_tune: FineTune | None = None,
    eval_data: Any = None,
    output_fn: Callable[[Any, Any, Any], Any] | None = None,
    num_classes: int | None = None,
    forgotten: Callable[[Any, tuple[int, ...]], bool] | None = None,
    steps: int | None = None,
    batch_size: int = 64,
    verbose: bool = True,
    strict: bool = False,
    strategy: Any = None,
) -> Result:
    """Makes a model forget one or more classes, or given examples, by pruning what serves them.

    Each weight (or unit) is scored on the examples to forget (the target
    classes' examples, or ``forget``) and on the rest; the ones that serve the
    former far more than the rest are pruned.

    Args:
        model: a trained Keras 3 or tf_keras classifier (logits or softmax).
        data: labelled ``(x, y)`` or a ``tf.data.Dataset`` of ``(x, y)``
            (integer or one-hot labels) with the classes to forget and the rest.
        target_class: the class or classes to forget.
        forget: instead of ``target_class``, the examples to forget: ``(x, y)``
            or a dataset, each example also in ``data`` (matched by content).
            Weights only. With ``amount="auto"`` it needs ``eval_data``: the
            search stops when the loss tells the forget examples from those
            unseen examples no better than chance (its ROC AUC passes a one-sided
            5 % test of AUC = 0.5; :func:`keras_forget.pipeline.chance_auc`). The report's
            forget and retain accuracies are then on the forget examples and on
            the rest of ``data``.
        method: score name, config or instance. Default ``"gradxweight"``
            (weights) or ``"discedit"`` (units: the DISCEDIT-U witness).
        amount: how much to prune: a fraction in (0, 1) of the prunable
            weights (or units; for units also a count per layer), or
            ``"auto"`` (default): the smallest amount on a geometric grid at
            which the model forgets, judged on examples that were not scored:
            accuracy on the targets' examples in :data:`SEARCH_HOLDOUT` of
            ``data`` (held out of scoring) is at most ``forget_accuracy``
            (``report.search_split`` says which examples); with ``output_fn``,
            the first amount that passes ``forgotten``.
        scope: ``"global"`` (rank everything together) or ``"layer"``; None
            (default) is ``"global"`` (see :data:`DEFAULT_SCOPE`).
        granularity: ``"weight"`` (default) or ``"unit"``.
        floor: the forget-vs-retain contrast's floor (weights only; default
            :data:`keras_forget.selection.FLOOR`).
        forget_accuracy: the goal of ``amount="auto"`` for classes, in [0, 1).
        fine_tune: optional :class:`FineTune`; by default on ``data`` without
            the target classes. Masks hold: pruned weights stay exactly zero.
        eval_data: held-out data for the report's accuracies (default:
            ``data``, the training examples — ``report.eval_split`` says which).
        output_fn: for a model that is not a classifier (a conditional
            generator): ``(model, x, y) -> tensor [batch]``, the per-example
            output whose sensitivity is scored. Needs ``num_classes``; the
            report then has no accuracies.
        num_classes: number of labels, required with ``output_fn``.
        forgotten: with ``output_fn``, ``(model, targets) -> bool``: whether a
            pruned copy no longer produces the targets; ``amount="auto"``
            stops at the first grid amount that passes it (required for
            ``"auto"`` with ``output_fn``).
            :meth:`keras_forget.generative.ConditionalGenerator.prune_kwargs`
            gives one that judges fresh draws.
        steps: for a dataset, the most batches to read (required if it repeats).
        batch_size: scoring batch size.
        verbose: show progress.
        strict: raise :class:`~keras_forget.UnsupportedLayerError` (before any
            work) for a layer with trainable weights keras_forget cannot prune.
            By default such layers are left whole: one warning names them and
            ``report.left_whole`` lists them.
        strategy: a ``tf.distribute.Strategy`` to score under: each batch is
            split between its replicas and the sums added
            (:mod:`keras_forget.distribute`). By default, an enclosing
            ``strategy.scope()``'s, else none.

    Returns:
        A :class:`~keras_forget.results.Result`.

    Raises:
        InvalidArgumentError: a bad argument, named in the message.
        UnsupportedLayerError: with ``strict=True``, a layer that cannot be pruned.
        NotPrunableError: a model with nothing prunable.
        NonFiniteError: NaN or infinite weights or scores.
        TypeError: ``model`` is not a Keras model.
    """
    distribute.check(strategy)
    left = _common(model, granularity, batch_size, verbose, fine_tune, strict)
    fine_tune = training.resolve(fine_tune, "forget", granularity)
    score = _method(method, "forget", granularity)
    amount = amount_search.check(amount, granularity)
    scope = selection.check_scope(DEFAULT_SCOPE["forget", granularity] if scope is None else scope)
    if floor is not None and granularity == "unit":
        raise InvalidArgumentError(
            "`floor` weighs the forget-vs-retain contrast of weight scores; unit scores have "
            "none. Leave `floor` unset with granularity='unit'."
        )
    if (target_class is None) == (forget is None):
        raise InvalidArgumentError(
            "Give either `target_class` (classes to forget) or `forget` (examples to forget), "
            f"not {'both' if forget is not None else 'neither'}."
        )
    subset = forget is not None
    if subset and (granularity == "unit" or output_fn is not None):
        raise InvalidArgumentError(
            "`forget` (examples) works on single weights of a classifier: use "
            "granularity='weight' and no `output_fn`."
        )
    floor = selection.check_floor(selection.FLOOR if floor is None else floor)
    forget_accuracy = _fraction(forget_accuracy, "forget_accuracy", 0.0, 1.0)
    _check_forgotten(forgotten, output_fn, amount)
    if output_fn is not None:
        if granularity == "unit" or fine_tune or eval_data is not None:
            raise InvalidArgumentError(
                "With `output_fn` give no `granularity='unit'`, `fine_tune` or `eval_data`: "
                "they need a classifier's accuracy."
            )
        classes = checks.num_classes(num_classes)
        data = Data.of(data, model, num_classes=classes, steps=steps, batch_size=batch_size)
        objective = Objective(output_fn=output_fn)
    else:
        data = Data.of(data, model, steps=steps, batch_size=batch_size)
        classes, from_logits = checks.outputs(model, data.first(32))
        data.check_classes(classes)
        objective = Objective(from_logits=from_logits)
    examples = None
    if subset:
        targets = ()
        examples, data = _forget_examples(data, forget, model, classes, batch_size)
    else:
        targets = checks.target_classes(target_class, classes, data)
    check, split, train = _eval_and_train(
        model, data, eval_data, fine_tune, classes, targets, steps, batch_size
    )
    scored, search, search_split = data, None, None
    if amount == "auto" and forgotten is not None:
        search_split = getattr(forgotten, "split", "the caller's `forgotten` test")
    elif amount == "auto":
        unseen = check if eval_data is not None else None
        scored, search, search_split = _search(data, targets, unseen, subset)
    left_names = _warn_left_whole(left)
    job = pipeline.Job(
        granularity,
        score,
        amount,
        scope,
        targets,
        objective,
        classes,
        classifier=output_fn is None,
        floor=floor,
        forget_accuracy=forget_accuracy,
        subset=subset,
        tune=fine_tune,
        batch_size=batch_size,
        verbose=verbose,
        forgotten=forgotten,
    )
    with distribute.scoring_under(strategy):
        result = pipeline.run(
            model,
            job,
            scored,
            check=check,
            eval_split=split,
            train=train,
            search=search,
            forget=examples,
            search_split=search_split,
        )
    return _reporting(result, left_names)


def prune(
    model: Any,
    data: Any = None,
    *,
    sparsity: float | int = 0.5,
    method: Any = None,
    scope: str | None = None,
    granularity: str = "weight",
    shrink: bool = False,
    reconstruct: bool | None = None,
    fine_tune: FineTune | None = None,
    eval_data: Any = None,
    schedule: selection.GradualSchedule | None = None,
    rounds: int | None = None,
    normalize: str | None = None,
    min_density: float = 0.0,
    steps: int | None = None,
    batch_size: int = 64,
    verbose: bool = True,
    strict: bool = False,
    strategy: Any = None,
) -> Result:
    """Compresses a model by pruning the least salient weights (or units).

    One-shot by default. With a ``schedule`` (weights only), pruning happens
    during ``fine_tune``: at each pruning step the weights are scored again and
    the sparsity rises along the schedule's ramp (see :mod:`keras_forget.gradual`).

    Args:
        model: a trained Keras 3 or tf_keras classifier.
        data: labelled data for data-driven methods (``obd``, ``fisher``,
            ``gradxweight``, ``obs``, ``discedit``); may be None for
            ``magnitude``, ``random`` and ``l1``.
        sparsity: how much to prune: a fraction in (0, 1) of the prunable
            weights (or units; for units also a count per layer).
        method: score name, config or instance. Default ``"magnitude"``
            (weights) or ``"discedit"`` (units: DISCEDIT-SP). For weights,
            ``"fisher"`` ranks by ``½·F·w²`` (``"fisher_obd"``, see
            :data:`keras_forget.scores.COMPRESS_ALIASES`), and ``"obs"`` (or a
            :class:`~keras_forget.surgery.obs.OBS`) runs layer-wise Optimal
            Brain Surgeon, which also updates the weights it keeps.
        scope: ``"global"`` (rank everything together) or ``"layer"``; None
            (default): ``"global"`` for weights, ``"layer"`` for units
            (measured, see :data:`DEFAULT_SCOPE`).
        granularity: ``"weight"`` (default) or ``"unit"``.
        shrink: with ``granularity="unit"``, return a physically smaller
            model instead of a masked one (default False).
        reconstruct: with ``shrink=True``, refit each Dense / Conv layer that
            reads removed units, by ridge least squares on the first 1024
            examples of ``data``, so that its outputs match the original
            model's (:mod:`keras_forget.surgery.reconstruct`). None (default):
            :data:`~keras_forget.surgery.reconstruct.DEFAULT` when shrinking
            with ``data``, else False.
        fine_tune: optional :class:`FineTune` (by default on ``data``).
        eval_data: data for the report's accuracies (default: ``data``).
        schedule: a :class:`~keras_forget.GradualSchedule` for score-driven
            gradual pruning during ``fine_tune`` (weights only).
        rounds: one-shot pruning in this many rounds, each re-scoring the
            network pruned so far, without retraining (weights; see
            :mod:`keras_forget.selection.iterative`). None (default):
            :data:`keras_forget.selection.DEFAULT_ROUNDS` for the score, else 1. To retrain between
            rounds, give a ``schedule`` instead.
        normalize: None (default) or ``"lamp"``: rank LAMP-normalized scores
            (weights; see :func:`keras_forget.selection.lamp`).
        min_density: the fraction of every weight kept whatever the ranking,
            in [0, 1 - sparsity] (weights; default 0).
        steps: for a dataset, the most batches to read (required if it repeats).
        batch_size: scoring batch size.
        verbose: show progress.
        strict: raise :class:`~keras_forget.UnsupportedLayerError` (before any
            work) for a layer with trainable weights keras_forget cannot prune.
            By default such layers are left whole: one warning names them and
            ``report.left_whole`` lists them.
        strategy: a ``tf.distribute.Strategy`` to score under: each batch is
            split between its replicas and the sums added
            (:mod:`keras_forget.distribute`). By default, an enclosing
            ``strategy.scope()``'s, else none.

    Returns:
        A :class:`~keras_forget.results.Result` (with ``history`` when gradual).

    Raises:
        InvalidArgumentError: a bad argument, named in the message.
        UnsupportedLayerError: with ``strict=True``, a layer that cannot be pruned.
        NotPrunableError: a model with nothing prunable.
        TypeError: ``model`` is not a Keras model.
    """
    distribute.check(strategy)
    left = _common(model, granularity, batch_size, verbose, fine_tune, strict)
    fine_tune = training.resolve(fine_tune, "compress", granularity)
    score = _compress_method(method, granularity)
    if granularity == "unit":
        sparsity = selection.check_unit_amount(sparsity, "sparsity")
    else:
        sparsity = selection.check_amount(sparsity, "sparsity")
    rounds, normalize, min_density = _compress_options(
        score, granularity, sparsity, schedule, rounds, normalize, min_density
    )
    scope = selection.check_scope(
        DEFAULT_SCOPE["compress", granularity] if scope is None else scope
    )
    if checks.flag(shrink, "shrink") and granularity != "unit":
        raise InvalidArgumentError("`shrink=True` removes units: it needs `granularity='unit'`.")
    reconstruct = _reconstruct_option(reconstruct, shrink, data)
    if schedule is not None:
        if granularity == "unit":
            raise InvalidArgumentError(
                "`schedule` (gradual pruning) works on single weights: use granularity='weight'."
            )
        gradual.check(schedule, sparsity, fine_tune)
    if data is None and score.needs_data:
        raise InvalidArgumentError(f"`data` is required for method {score.name!r}.")
    data = None if data is None else Data.of(data, model, steps=steps, batch_size=batch_size)
    sample = _first_inputs(model, data, fine_tune, eval_data)
    classes, from_logits = (
        checks.outputs(model, sample) if sample is not None else (_keras.output_size(model), True)
    )
    if data is not None:
        data.check_classes(classes)
    check, split, train = _eval_and_train(
        model, data, eval_data, fine_tune, classes, (), steps, batch_size
    )
    objective = Objective(from_logits=from_logits, target="log_likelihood")
    if schedule is not None:
        schedule = gradual.check(schedule, sparsity, fine_tune, train)
        left_names = _warn_left_whole(left)
        with distribute.scoring_under(strategy):
            result = gradual.prune_gradually(
                model,
                data,
                score=score,
                objective=objective,
                sparsity=sparsity,
                scope=scope,
                schedule=schedule,
                normalize=normalize,
                min_density=min_density,
                tune=fine_tune,
                train=train,
                check=check,
                eval_split=split,
                batch_size=batch_size,
                verbose=verbose,
            )
        return _reporting(result, left_names)
    left_names = _warn_left_whole(left)
    job = pipeline.Job(
        granularity,
        score,
        sparsity,
        scope,
        (),
        objective,
        classes,
        shrink=shrink,
        reconstruct=reconstruct,
        tune=fine_tune,
        batch_size=batch_size,
        verbose=verbose,
        rounds=rounds,
        normalize=normalize,
        min_density=min_density,
    )
    with distribute.scoring_under(strategy):
        result = pipeline.run(model, job, data, check=check, eval_split=split, train=train)
    return _reporting(result, left_names)


def _reconstruct_option(value: Any, shrink: bool, data: Any) -> bool:
    """Validates ``reconstruct``; None becomes the default where it applies."""
    if value is None:
        return bool(shrink and data is not None and reconstruct_units.DEFAULT)
    if checks.flag(value, "reconstruct"):
        if not shrink:
            raise InvalidArgumentError(
                "`reconstruct=True` refits layers after units are removed: it needs "
                "`granularity='unit'` and `shrink=True`."
            )
        if data is None:
            raise InvalidArgumentError("`reconstruct=True` needs `data` (calibration examples).")
    return bool(value)


def _first_inputs(model: Any, data: Data | None, tune: FineTune | None, eval_data: Any) -> Any:
    """A batch of inputs to learn the model's outputs from, or None if none is given."""
    for source, name in (
        (data, "data"),
        (tune and tune.data, "fine_tune.data"),
        (eval_data, "eval_data"),
    ):
        if source is not None:
            return Data.of(source, model, name=name).first(32)
    return None
