"""The one pipeline both verbs run, at either granularity.

    scores -> ranking -> masks (amount given, or searched) -> mask or shrink
           -> evaluate -> fine-tune -> evaluate -> Result

The verbs in :mod:`keras_forget.api` check every argument and build a
:class:`Job`; this module only runs it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from keras_forget import _keras, selection
from keras_forget.data import Data
from keras_forget.introspect.graph import Graph
from keras_forget.introspect.registry import all_weights, prunable_weights
from keras_forget.metrics import Evaluation, evaluate, evaluate_examples
from keras_forget.results import Report, Result
from keras_forget.scores.accumulate import rescorer, score, score_split, score_units
from keras_forget.scores.objective import Objective
from keras_forget.selection import amount as amount_search
from keras_forget.surgery import masking, obs, reconstruct, structured
from keras_forget.training import FineTune, fine_tune

#: Most forget examples the amount search keeps in memory.
MAX_SEARCH_EXAMPLES = 4096

MaskMap = Mapping[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class Job:
    """Everything a verb decided, checked.

    Attributes:
        granularity: ``"weight"`` or ``"unit"``.
        method: the resolved score (a weight ``Score`` or a ``UnitScore``).
        amount: a fraction, a count of units per layer, or ``"auto"``.
        scope: ``"global"`` or ``"layer"``.
        targets: classes to forget; empty for compression.
        objective: what the model's output means (weight scores).
        num_classes: the number of labels.
        classifier: whether accuracies can be measured.
        floor: the contrast's floor (weight-level forgetting).
        forget_accuracy: the goal of ``amount="auto"`` (class forgetting).
        subset: forgetting given examples rather than classes (``targets`` is
            then empty).
        shrink: remove units physically (unit granularity).
        reconstruct: after shrinking, refit the layers that read removed units
            to reproduce the original outputs on ``data``
            (:mod:`keras_forget.surgery.reconstruct`).
        tune: the fine-tuning, or None.
        batch_size: scoring batch size.
        verbose: show progress.
        rounds: compression in rounds, re-scoring the pruned network (weights).
        normalize: None or ``"lamp"``, how compression ranks (weights).
        min_density: fraction of every weight compression keeps (weights).
        forgotten: for a model that is not a classifier, ``(model, targets) ->
            bool``: the test ``amount="auto"`` stops on.
    """

    granularity: str
    method: Any
    amount: float | int | str
    scope: str
    targets: tuple[int, ...]
    objective: Objective
    num_classes: int
    classifier: bool = True
    floor: float = selection.FLOOR
    forget_accuracy: float = 0.0
    subset: bool = False
    shrink: bool = False
    reconstruct: bool = False
    tune: FineTune | None = None
    batch_size: int = 64
    verbose: bool = True
    rounds: int = 1
    normalize: str | None = None
    min_density: float = 0.0
    forgotten: Callable[[Any, tuple[int, ...]], bool] | None = None

    @property
    def forgetting(self) -> bool:
        return bool(self.targets) or self.subset


def _weight_masks_for(
    model: Any, job: Job, data: Data | None, forget: Data | None = None
) -> Callable[[Any], MaskMap]:
    """``amount -> MaskMap`` over the prunable weights, from one scoring pass."""
    if not job.forgetting:
        return _compression_masks_for(model, job, data)
    run = dict(batch_size=job.batch_size, verbose=job.verbose)
    if job.subset and job.method.needs_data:
        forget_scores = score(model, forget, job.method.forget_variant(), job.objective, **run)
        retain_scores = score(model, data, job.method.fresh(), job.objective, **run)
        ranked = selection.contrast(forget_scores, retain_scores, floor=job.floor)
    elif job.forgetting and job.method.needs_data:
        forget, retain = score_split(model, data, job.method, job.objective, job.targets, **run)
        ranked = selection.contrast(forget, retain, floor=job.floor)
    else:
        ranked = score(model, data, job.method, job.objective, **run)
    return lambda a: selection.select(ranked, a, scope=job.scope, highest=job.forgetting)


def _compression_masks_for(model: Any, job: Job, data: Data | None) -> Callable[[Any], MaskMap]:
    """``amount -> MaskMap`` pruning the lowest scores, re-scored over ``job.rounds`` rounds."""
    run = dict(batch_size=job.batch_size, verbose=job.verbose)
    ranking = dict(scope=job.scope, normalize=job.normalize, min_density=job.min_density)
    if job.rounds > 1:
        rescore = rescorer(model, data, job.method, job.objective, **run)
        return lambda a: selection.prune_in_rounds(rescore, a, rounds=job.rounds, **ranking)
    ranked = score(model, data, job.method, job.objective, **run)
    return lambda a: selection.select(ranked, a, **ranking)


def _surgeon(model: Any, job: Job, data: Data) -> tuple[Any, MaskMap]:
    """OBS: ``(a copy of model whose kept weights make up for the pruned, masks)``."""
    return job.method.prune(
        model,
        data,
        job.amount,
        scope=job.scope,
        min_density=job.min_density,
        batch_size=job.batch_size,
        verbose=job.verbose,
    )


def _unit_masks_for(graph: Graph, job: Job, data: Data | None) -> Callable[[Any], MaskMap]:
    """``amount -> unit MaskMap`` over the prunable unit groups, from one scoring pass."""
    scores = score_units(
        graph,
        data,
        job.method,
        num_classes=job.num_classes,
        target_classes=job.targets or None,
        batch_size=job.batch_size,
        verbose=job.verbose,
        objective=job.objective,
    )
    return lambda a: selection.select_units(scores, a, scope=job.scope, highest=job.forgetting)


def _outputs(model: Any, x: Any, y: np.ndarray) -> np.ndarray:
    """The model's outputs on ``(x, y)``, in chunks."""
    chunks = Data.of((x, y), batch_size=256).batches()
    return np.concatenate([np.asarray(model(xb, training=False)) for xb, _ in chunks])


def _losses(outputs: np.ndarray, y: np.ndarray, from_logits: bool) -> np.ndarray:
    """Per-example cross-entropy of ``outputs`` (logits or probabilities) for labels ``y``."""
    if from_logits:
        shifted = outputs - outputs.max(-1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    else:
        log_p = np.log(np.clip(outputs, 1e-12, 1.0))
    return -log_p[np.arange(len(y)), y]


def membership_auc(member_losses: np.ndarray, unseen_losses: np.ndarray) -> float:
    """How well the loss tells members from unseen examples: the ROC AUC of ``-loss``.

    0.5: members are no more recognisable than unseen examples; above 0.5 they
    have lower losses, as examples a model was trained on do.
    """
    truth = np.r_[np.ones(len(member_losses)), np.zeros(len(unseen_losses))]
    return float(roc_auc_score(truth, -np.r_[member_losses, unseen_losses]))


def chance_auc(members: int, unseen: int, z: float = 1.645) -> float:
    """The largest membership AUC that chance explains: a one-sided test at 5 %.

    Uses the standard error of the AUC when both groups come from one
    distribution (Hanley & McNeil, 1982): ``sqrt((m + u + 1) / (12·m·u))``.
    """
    return 0.5 + z * float(np.sqrt((members + unseen + 1) / (12.0 * members * unseen)))


def _goal(job: Job, search: Data, forget: Data | None, scored: Data) -> Callable[[Any], bool]:
    """``model -> bool``: whether a model has forgotten, judged on examples never scored.

    Class forgetting: accuracy on the targets' examples of ``search`` (held out of
    scoring) is at most ``job.forget_accuracy``, and so is accuracy on those of
    ``scored``: a few held-out examples alone judge too coarsely. Subset forgetting:
    the forget examples are no more recognisable than the unseen examples ``search``:
    :func:`membership_auc` is within
    what chance explains (:func:`chance_auc`). A model that is not a classifier:
    the caller's ``job.forgotten`` test.
    """
    if job.forgotten is not None:
        return lambda m: bool(job.forgotten(m, job.targets))
    if not job.subset:
        sets = [d.arrays(job.targets, limit=MAX_SEARCH_EXAMPLES) for d in (search, scored)]
        return lambda m: all(
            float(np.mean(_outputs(m, x, y).argmax(-1) == y)) <= job.forget_accuracy
            for x, y in sets
        )
    fx, fy = forget.arrays(limit=MAX_SEARCH_EXAMPLES)
    ux, uy = search.arrays(limit=MAX_SEARCH_EXAMPLES)
    logits = job.objective.from_logits
    limit = chance_auc(len(fy), len(uy))

    def unrecognisable(m: Any) -> bool:
        members = _losses(_outputs(m, fx, fy), fy, logits)
        return membership_auc(members, _losses(_outputs(m, ux, uy), uy, logits)) <= limit

    return unrecognisable


class _Trials:
    """A working copy of a model on which masks are tried (``amount="auto"``).

    Args:
        model: the model (not changed).
        goal: ``model -> bool``, whether a masked copy has forgotten.
        variables_of: ``model -> {key: variable}``, the variables masks apply to.
    """

    def __init__(self, model: Any, goal: Callable[[Any], bool], variables_of: Callable) -> None:
        self.model = _keras.clone(model)
        self._goal = goal
        self._variables = variables_of(self.model)
        self._original = {k: v.numpy() for k, v in self._variables.items()}

    def __call__(self, masks: MaskMap) -> bool:
        """Whether the copy with these masks meets the goal."""
        self._set(masks)
        return self._goal(self.model)

    def unmasked(self) -> Any:
        """The copy with the original's weights back: a copy to edit for the result."""
        self._set({})
        return self.model

    def _set(self, masks: MaskMap) -> None:
        for key, value in self._original.items():
            mask = masks.get(key)
            self._variables[key].assign(value if mask is None else value * mask)


def _prunable_variables(model: Any) -> dict[str, Any]:
    return {k: w.variable for k, w in prunable_weights(model).items()}


def _choose(
    model: Any,
    job: Job,
    data: Data | None,
    graph: Graph | None,
    search: Data | None = None,
    forget: Data | None = None,
) -> tuple:
    """``(amount, weight masks, unit masks or None, reached, copy)`` for the job.

    ``copy``: an unedited copy of ``model`` that the search worked on, or None.
    """
    if graph is None:
        masks_for = _weight_masks_for(model, job, data, forget)
        to_weights, variables_of = (lambda m: m), _prunable_variables
    else:
        masks_for = _unit_masks_for(graph, job, data)
        to_weights, variables_of = (lambda u: structured.weight_masks(graph, u)), all_weights
    if job.amount != "auto":
        chosen = masks_for(job.amount)
        return job.amount, to_weights(chosen), None if graph is None else chosen, None, None
    trials = _Trials(model, _goal(job, search, forget, data), variables_of)
    amount, chosen, reached = amount_search.search(
        masks_for,
        lambda m: trials(to_weights(m)),
        amount_search.grid_for(job.granularity),
        hint=_weight_level_hint(job) if graph is not None else "",
    )
    units = None if graph is None else chosen
    return amount, to_weights(chosen), units, reached, trials.unmasked()


#: Retain accuracy lost to unit-level forgetting above which the report names the weight call.
RETAIN_LOSS_NOTE = 0.05


def _weight_level_hint(job: Job) -> str:
    """The call that forgets at weight level, for a unit-level job that fell short."""
    classes = job.targets[0] if len(job.targets) == 1 else list(job.targets)
    return (
        "What serves these classes is not held by whole units of this model; weight-level "
        f"forgetting is: kf.prune_for_class(model, data, {classes}) (granularity='weight', "
        "the default)."
    )


def _notes(job: Job, reached: bool | None, before: Any, after: Any) -> tuple[str, ...]:
    """Notes for the report: class forgetting that fell short or harmed the rest."""
    if not job.targets:
        return ()
    units = job.granularity == "unit"
    notes = []
    if reached is False and units:
        notes.append(f"amount='auto' did not reach its goal. {_weight_level_hint(job)}")
    if before is not None and after is not None and before.retain_accuracy is not None:
        lost = before.retain_accuracy - after.retain_accuracy
        if lost > RETAIN_LOSS_NOTE:
            what = "units" if units else "weights"
            advice = (
                _weight_level_hint(job)
                if units
                else (
                    "Fine-tuning on the retained data (`fine_tune=kf.FineTune()`) can recover it."
                )
            )
            notes.append(
                f"retain accuracy fell {lost:.3f} ({before.retain_accuracy:.3f} -> "
                f"{after.retain_accuracy:.3f}): the {what} removed also served other classes. "
                + advice
            )
    return tuple(notes)


def _edit(
    model: Any,
    job: Job,
    data: Data | None,
    masks: MaskMap,
    units: MaskMap | None,
    graph: Graph | None,
    copy: Any = None,
) -> Any:
    """The edited model; ``copy``, an unedited copy of ``model``, is edited in place if given."""
    if graph is None:
        if copy is not None:
            return masking.mask_model(copy, masks, inplace=True)
        return masking.mask_model(model, masks)
    if job.shrink:
        sample = None if data is None else data.first(32)
        shrunk = structured.shrink(model, units, sample=sample, graph=graph)
        if job.reconstruct and data is not None:
            reconstruct.reconstruct(
                model, shrunk, units, data, graph=graph, batch_size=job.batch_size
            )
        return shrunk
    return masking.mask_weights(model, masks)


def run(
    model: Any,
    job: Job,
    data: Data | None,
    *,
    check: Data | None,
    eval_split: str,
    train: Data | None,
    search: Data | None = None,
    forget: Data | None = None,
    search_split: str | None = None,
) -> Result:
    """Runs ``job`` on ``model`` (not changed) and returns the :class:`Result`.

    Args:
        model: the checked model.
        job: the checked :class:`Job`.
        data: the scoring data (None for data-free scores).
        check: the data the report's accuracies are measured on, or None.
        eval_split: what ``check`` is, for the report.
        train: the fine-tuning data (None without ``job.tune``).
        search: the examples ``amount="auto"`` decides on, never scored: held-out
            examples of the targets (class forgetting) or unseen examples
            (subset forgetting); default ``data``.
        forget: with ``job.subset``, the examples to forget (``data`` is then
            the rest of the training data).
        search_split: what ``search`` is, for the report.
    """
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    graph = Graph(model) if job.granularity == "unit" else None
    search = data if search is None else search
    source, copy = model, None
    if isinstance(job.method, obs.OBS):  # chooses the weights and updates the kept ones
        (source, masks), amount, units, reached = _surgeon(model, job, data), job.amount, None, None
    else:
        amount, masks, units, reached, copy = _choose(model, job, data, graph, search, forget)
    seconds["scoring"] = time.perf_counter() - start
    tick = time.perf_counter()
    edited = _edit(source, job, data, masks, units, graph, copy)
    seconds["masking"] = time.perf_counter() - tick

    def measure(m: Any) -> Evaluation | None:
        if job.subset:
            return evaluate_examples(m, forget, data, check)
        if check is None or not job.classifier:
            return None
        return evaluate(m, check, job.targets or None)

    before, after, tuned = measure(model), measure(edited), None
    if job.tune is not None:
        tick = time.perf_counter()
        fine_tune(
            edited, job.tune, train, from_logits=job.objective.from_logits, verbose=job.verbose
        )
        if graph is not None:
            structured.recalibrate_batchnorm(edited, train)
        seconds["fine_tune"] = time.perf_counter() - tick
        tuned = measure(edited)
    seconds["total"] = time.perf_counter() - start
    if units is None:
        pruned = sum(int(m.size - np.count_nonzero(m)) for m in masks.values())
        total = sum(int(m.size) for m in masks.values())
    else:
        pruned = sum(int(m.size - m.sum()) for m in units.values())
        total = sum(int(m.size) for m in units.values())
    report = Report(
        job.method.name,
        float(amount) if isinstance(amount, float) else amount,
        job.scope,
        job.targets,
        pruned,
        total,
        before,
        after,
        tuned,
        seconds,
        granularity=job.granularity,
        eval_split=eval_split,
        auto_reached=reached,
        search_split=search_split if job.amount == "auto" else None,
        forgotten_examples=forget.size if job.subset else 0,
        reconstructed=bool(job.shrink and job.reconstruct and data is not None),
        notes=_notes(job, reached, before, after),
    )
    return Result(edited, dict(masks), report, unit_masks=None if units is None else dict(units))
