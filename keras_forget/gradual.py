"""Score-driven gradual pruning: sparsity ramps up during fine-tuning, masks from fresh scores.

At each pruning step of a :class:`GradualSchedule` the weights are scored
again (OBD, Fisher, … on the *current* weights) and the lowest are pruned up
to the ramp's sparsity. Masks only shrink, so the final sparsity is exact, and
pruned weights are exactly zero after every training step. Keras 3 models hold
masks in a :class:`LiveMaskConstraint` (mask in a variable, so the compiled
train step sees new masks); tf_keras models train inside tfmot's wrappers with
a schedule that never lets tfmot compute a mask
(:func:`keras_forget.integrations.tfmot.score_driven_schedule`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np

from keras_forget import _keras, selection
from keras_forget.data import Data
from keras_forget.errors import InvalidArgumentError
from keras_forget.introspect.registry import prunable_weights
from keras_forget.metrics import evaluate
from keras_forget.results import PruningStep, Report, Result
from keras_forget.scores.accumulate import score as run_score
from keras_forget.scores.base import Score, ScoreMap
from keras_forget.scores.objective import Objective
from keras_forget.selection.schedule import GradualSchedule
from keras_forget.surgery import masking
from keras_forget.training import FineTune, fine_tune

MaskMap = dict[str, np.ndarray]


def check(
    schedule: Any, sparsity: float, tune: FineTune | None, train: Data | None = None
) -> GradualSchedule:
    """Validates a schedule against the final sparsity and the fine-tuning, before work.

    Returns:
        The schedule; with ``train``, fitted to the fine-tuning's steps
        (``end_step`` and ``frequency`` left None are set, see
        :meth:`GradualSchedule.fitted`).

    Raises:
        InvalidArgumentError: not a :class:`GradualSchedule`, no ``fine_tune``
            to prune during, an initial sparsity above the final one, or a
            ``begin_step`` or ``end_step`` the fine-tuning never reaches
            (``train`` given).
    """
    if not isinstance(schedule, GradualSchedule):
        raise InvalidArgumentError(
            f"`schedule` must be a keras_forget.GradualSchedule, got {type(schedule).__name__}."
        )
    if tune is None:
        raise InvalidArgumentError(
            "`schedule` prunes during fine-tuning: pass `fine_tune=kf.FineTune(...)` too."
        )
    if schedule.initial_sparsity > sparsity:
        raise InvalidArgumentError(
            f"`GradualSchedule.initial_sparsity` ({schedule.initial_sparsity}) is above the "
            f"final `sparsity` ({sparsity})."
        )
    if train is not None:
        per_epoch = train.num_batches(tune.batch_size)
        last = tune.epochs * per_epoch - 1
        if schedule.begin_step > last:
            raise InvalidArgumentError(
                f"`GradualSchedule.begin_step` ({schedule.begin_step}) is past the last "
                f"training step ({last}: {tune.epochs} epoch(s) x {per_epoch} batches of "
                f"fine-tuning data); lower `begin_step` or fine-tune longer."
            )
        schedule = schedule.fitted(last)
        if schedule.end_step > last:
            raise InvalidArgumentError(
                f"`GradualSchedule.end_step` ({schedule.end_step}) is past the last training "
                f"step ({last}: {tune.epochs} epoch(s) x {per_epoch} batches of fine-tuning "
                f"data); lower `end_step` or fine-tune longer."
            )
    return schedule


class LiveMaskConstraint(masking.MaskConstraint):
    """A :class:`MaskConstraint` whose mask can change while a compiled model trains.

    The mask is read from a non-trainable variable, which a traced train step
    captures by reference; :meth:`set` changes it. ``mask`` (numpy) mirrors it
    for :func:`keras_forget.masks_of` and ``get_config``.
    """

    def __init__(self, mask: np.ndarray, inner: Any = None, dtype: str = "float32") -> None:
        super().__init__(mask, inner)
        self.variable = keras.Variable(self.mask.astype(dtype), trainable=False, name="mask")

    def __call__(self, w: Any) -> Any:
        if self.inner is not None:
            w = self.inner(w)
        return w * keras.ops.cast(self.variable, w.dtype)

    def set(self, mask: np.ndarray) -> None:
        """Replaces the mask (``False`` = pruned)."""
        self.mask = np.asarray(mask, bool)
        self.variable.assign(self.mask.astype(self.variable.dtype))


class ScoreDrivenPruner:
    """Rescores a training model at the schedule's pruning steps and shrinks its masks.

    Args:
        rescore: ``model -> ScoreMap`` of the model's current weights.
        sparsity: final sparsity.
        scope: ``"global"`` or ``"layer"``.
        schedule: the :class:`GradualSchedule`, fitted.
        normalize: None or ``"lamp"`` (see :func:`keras_forget.selection.tighten`).
        min_density: fraction of every weight kept whatever the ranking.
    """

    def __init__(
        self,
        rescore: Callable[[Any], ScoreMap],
        sparsity: float,
        scope: str,
        schedule: GradualSchedule,
        normalize: str | None = None,
        min_density: float = 0.0,
    ) -> None:
        self.rescore, self.schedule = rescore, schedule
        self.final, self.scope = float(sparsity), scope
        self.normalize, self.min_density = normalize, float(min_density)
        self.masks: MaskMap = {}
        self.history: list[PruningStep] = []
        self._steps = schedule.steps()

    @property
    def done(self) -> bool:
        """Whether the last pruning step (``end_step``) has run."""
        return not self._steps

    def start(self, model: Any) -> None:
        """Binds to a prepared model (see :func:`prepare`), all weights kept."""
        self.masks = {
            k: np.ones(w.variable.shape, bool) for k, w in prunable_weights(model).items()
        }

    def maybe_prune(self, model: Any, step: int) -> None:
        """Prunes if a pruning step is due at or before ``step``."""
        if self._steps and step >= self._steps[0]:
            while self._steps and self._steps[0] <= step:
                self._steps.pop(0)
            target = self.final if self.done else self.schedule.sparsity_at(step, self.final)
            self.prune(model, step, target)

    def finish(self, model: Any, step: int) -> None:
        """At the end of training, prunes to the final sparsity if the schedule did not."""
        if self.done:
            return
        warnings.warn(
            f"Training ended at step {step}, before the schedule's end_step "
            f"{self.schedule.end_step}: pruned to the final sparsity without further training.",
            stacklevel=2,
        )
        self._steps.clear()
        self.prune(model, step, self.final)

    def prune(self, model: Any, step: int, target: float) -> None:
        """Scores the current weights and prunes the lowest up to ``target``."""
        tick = time.perf_counter()
        leaked = _leaked(model, self.masks)
        self.masks = selection.tighten(
            self.rescore(model),
            self.masks,
            target,
            self.scope,
            normalize=self.normalize,
            min_density=self.min_density,
        )
        assign(model, self.masks)
        seconds = time.perf_counter() - tick
        achieved = selection.sparsity(self.masks)
        self.history.append(PruningStep(int(step), float(target), achieved, leaked, seconds))

    @property
    def seconds(self) -> float:
        """Time spent in pruning steps."""
        return sum(h.seconds for h in self.history)


def _leaked(model: Any, masks: Mapping[str, np.ndarray]) -> int:
    """Nonzero weights at pruned positions."""
    weights = prunable_weights(model)
    return sum(int(np.count_nonzero(weights[k].variable.numpy()[~m])) for k, m in masks.items())


def prepare(model: Any, schedule: GradualSchedule, sparsity: float) -> Any:
    """A trainable copy of ``model`` whose masks can change during training (all kept)."""
    copy = _keras.clone(model)
    ones = {k: np.ones(w.variable.shape, bool) for k, w in prunable_weights(copy).items()}
    if _keras.flavor(model) == "tf_keras":
        from keras_forget.integrations import tfmot

        return tfmot.wrap_with_masks(copy, ones, tfmot.score_driven_schedule(schedule, sparsity))
    for key, weight in prunable_weights(copy).items():
        variable = weight.variable
        inner = variable.constraint
        if isinstance(inner, masking.MaskConstraint):
            inner = inner.inner
        variable.constraint = LiveMaskConstraint(ones[key], inner, variable.dtype)
    return copy


def assign(model: Any, masks: Mapping[str, np.ndarray]) -> None:
    """Writes new masks into a prepared model and zeroes the newly pruned weights."""
    if _keras.flavor(model) == "tf_keras":
        from keras_forget.integrations import tfmot

        tfmot.assign_masks(model, masks)
        return
    weights = prunable_weights(model)
    for key, mask in masks.items():
        variable = weights[key].variable
        variable.constraint.set(mask)
        variable.assign(variable.numpy() * np.asarray(mask, variable.dtype))


def callbacks(model: Any, pruner: ScoreDrivenPruner) -> list[Any]:
    """The callbacks that run ``pruner`` while ``model`` (prepared) trains."""
    km = _keras.keras_module(model)
    tf_keras = _keras.flavor(model) == "tf_keras"

    class ScoreDrivenPruning(km.callbacks.Callback):
        """Prunes at the schedule's steps; on tf_keras, re-masks after every step."""

        def _step(self) -> int:
            return int(np.asarray(self.model.optimizer.iterations))

        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            pruner.maybe_prune(self.model, self._step())

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if tf_keras:  # tfmot masks on the next forward pass; keep variables zero now
                from keras_forget.integrations import tfmot

                tfmot.remask(self.model)

        def on_train_end(self, logs: Any = None) -> None:
            pruner.finish(self.model, self._step())

    extra = []
    if tf_keras:
        from keras_forget.integrations import tfmot

        extra = tfmot.callbacks(model)
    return [*extra, ScoreDrivenPruning()]


def prune_gradually(
    model: Any,
    data: Data | None,
    *,
    score: Score,
    objective: Objective,
    sparsity: float,
    scope: str,
    schedule: GradualSchedule,
    tune: FineTune,
    train: Data,
    check: Data | None,
    eval_split: str,
    normalize: str | None = None,
    min_density: float = 0.0,
    batch_size: int = 64,
    verbose: bool = True,
) -> Result:
    """Fine-tunes a copy of ``model`` while pruning it to ``sparsity`` by fresh scores.

    Arguments are validated by :func:`keras_forget.prune`, which calls this
    with ``schedule=``; ``model`` itself is not changed.

    Args:
        model: a trained Keras 3 or tf_keras classifier.
        data: scoring data.
        score: the score re-run at each pruning step.
        objective: what the model's output means.
        sparsity: final sparsity, reached exactly.
        scope: ``"global"`` or ``"layer"``.
        schedule: when and how fast to prune (fitted, see :func:`check`).
        tune: the fine-tuning that pruning happens during.
        train: the fine-tuning data.
        check: data for the report's accuracies, or None.
        eval_split: what ``check`` is, for the report.
        normalize: None or ``"lamp"``, how each pruning step ranks.
        min_density: fraction of every weight kept whatever the ranking.
        batch_size: scoring batch size.
        verbose: show Keras' progress bar.

    Returns:
        A :class:`~keras_forget.results.Result` whose ``history`` lists the
        pruning steps (its report's ``after`` is None: there is no one-shot state).
    """
    start = time.perf_counter()
    before = None if check is None else evaluate(model, check)
    working = prepare(model, schedule, sparsity)

    def rescore(current: Any) -> ScoreMap:
        return run_score(current, data, score, objective, batch_size=batch_size, verbose=False)

    pruner = ScoreDrivenPruner(rescore, sparsity, scope, schedule, normalize, min_density)
    pruner.start(working)
    tick = time.perf_counter()
    fine_tune(
        working,
        tune,
        train,
        from_logits=objective.from_logits,
        verbose=verbose,
        callbacks=callbacks(working, pruner),
    )
    fit_seconds = time.perf_counter() - tick
    if _keras.flavor(working) == "keras3":
        masking.mask_model(working, pruner.masks, inplace=True)  # plain MaskConstraints
    tuned = None if check is None else evaluate(working, check)
    masks = pruner.masks
    pruned = sum(int(m.size - np.count_nonzero(m)) for m in masks.values())
    total = sum(int(m.size) for m in masks.values())
    seconds = {
        "scoring": pruner.seconds,
        "fine_tune": fit_seconds - pruner.seconds,
        "total": time.perf_counter() - start,
    }
    report = Report(
        score.name,
        float(sparsity),
        scope,
        (),
        pruned,
        total,
        before,
        None,
        tuned,
        seconds,
        eval_split=eval_split,
    )
    return Result(working, masks, report, history=pruner.history)
