"""What a pruning call returns: the edited model, its masks and a report of what it did."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from keras_forget.metrics import Evaluation


@dataclasses.dataclass(frozen=True)
class PruningStep:
    """What one step of gradual pruning did.

    Attributes:
        step: the optimizer step at which it ran.
        target: the ramp's sparsity at that step.
        sparsity: fraction of prunable weights pruned after it.
        leaked: nonzero weights found at already-pruned positions before it
            (0 when masks held between pruning steps).
        seconds: time spent scoring and assigning masks.
    """

    step: int
    target: float
    sparsity: float
    leaked: int
    seconds: float


@dataclasses.dataclass(frozen=True)
class Report:
    """Summary of one pruning or forgetting call.

    Attributes:
        method: the score's name.
        amount: how much was pruned: the ``amount`` of :func:`~keras_forget.prune_for_class`
            (resolved when it was ``"auto"``) or the ``sparsity`` of
            :func:`~keras_forget.prune`; a fraction, or a count of units per layer.
        scope: ``"global"`` or ``"layer"``.
        target_classes: the forgotten classes (empty for compression).
        pruned: number of weights (or units) removed.
        total: number of prunable weights (or units).
        before: evaluation of the original model.
        after: evaluation right after pruning, before any fine-tuning (None
            for gradual pruning, which has no such state).
        fine_tuned: evaluation after fine-tuning, if any.
        seconds: wall time of each stage (``scoring``, ``masking``,
            ``fine_tune``, ``total``).
        granularity: ``"weight"``, or ``"unit"`` when ``pruned`` and
            ``total`` count units (Dense units, Conv filters).
        eval_split: which data the evaluations are on (``"eval_data"`` or
            ``"data"``, the very examples that were scored).
        auto_reached: with ``amount="auto"``, whether the goal was met on the
            grid (None when the amount was given).
        search_split: with ``amount="auto"``, the examples the amount was
            decided on (never the scored ones); else None.
        forgotten_examples: when given examples were forgotten rather than
            classes, how many (then ``forget`` is their accuracy, ``retain`` the
            accuracy on the rest of the training data, and ``all`` and the
            per-class rows are on ``eval_split``); else 0.
        left_whole: names of the layers with trainable weights keras_forget
            cannot prune, kept as they were (``pruned`` and ``total`` do not
            count them); see
            :func:`keras_forget.introspect.registry.left_whole`.
        reconstructed: whether the layers reading removed units were refit
            after shrinking (``kf.prune(..., shrink=True, reconstruct=True)``).
        notes: what the caller should know about this result (a goal not
            reached, a better call to make), one sentence each.
    """

    method: str
    amount: float | int
    scope: str
    target_classes: tuple[int, ...]
    pruned: int
    total: int
    before: Evaluation | None
    after: Evaluation | None
    fine_tuned: Evaluation | None
    seconds: dict[str, float]
    granularity: str = "weight"
    eval_split: str = "data"
    auto_reached: bool | None = None
    left_whole: tuple[str, ...] = ()
    search_split: str | None = None
    forgotten_examples: int = 0
    reconstructed: bool = False
    notes: tuple[str, ...] = ()

    @property
    def sparsity(self) -> float:
        """Fraction of prunable weights (or units) removed."""
        return self.pruned / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The report as plain, JSON-serializable Python objects."""
        out = dataclasses.asdict(self)
        out["sparsity"] = self.sparsity
        return out

    def table(self) -> str:
        """Per-class accuracy before / after (/ fine-tuned), as aligned text."""
        evals = [("before", self.before), ("after", self.after), ("fine-tuned", self.fine_tuned)]
        evals = [(name, e) for name, e in evals if e is not None]
        if not evals:
            return ""
        classes = sorted(evals[0][1].per_class)
        head = "class  " + "  ".join(f"{name:>10}" for name, _ in evals)
        rows = [head]
        for c in classes:
            mark = "*" if c in self.target_classes else " "
            cells = "  ".join(f"{e.per_class.get(c, float('nan')):>10.3f}" for _, e in evals)
            rows.append(f"{c:>4}{mark}  {cells}")
        if evals[0][1].forget_accuracy is not None:
            for label, attr in (("forget", "forget_accuracy"), ("retain", "retain_accuracy")):
                cells = "  ".join(f"{getattr(e, attr):>10.3f}" for _, e in evals)
                rows.append(f"{label:>6} {cells}")
        rows.append(f"{'all':>6} " + "  ".join(f"{e.accuracy:>10.3f}" for _, e in evals))
        return "\n".join(rows)

    def __str__(self) -> str:
        what = f"forget {list(self.target_classes)}" if self.target_classes else "compress"
        if self.forgotten_examples:
            what = f"forget {self.forgotten_examples} examples"
        search = f"\namount decided on {self.search_split}" if self.search_split else ""
        table = self.table()
        left = f"\nleft whole (not prunable): {', '.join(self.left_whole)}"
        refit = "; the layers reading removed units were refit" if self.reconstructed else ""
        notes = "".join(f"\nnote: {n}" for n in self.notes)
        return (
            f"{what} with {self.method} ({self.scope}): pruned {self.pruned}/{self.total} "
            f"{self.granularity}s ({self.sparsity:.2%}) in {self.seconds.get('total', 0.0):.1f}s"
            + refit
            + (left if self.left_whole else "")
            + search
            + notes
            + (f"\naccuracy on {self.eval_split}:\n{table}" if table else "")
        )


@dataclasses.dataclass
class Result:
    """What :func:`~keras_forget.prune_for_class` and :func:`~keras_forget.prune` return.

    Attributes:
        model: the new model (mask constraints on Keras 3, tfmot wrappers on
            tf_keras; :func:`keras_forget.strip` or :func:`keras_forget.export`
            removes them), or a physically smaller model after ``shrink=True``.
        masks: ``{weight key: bool array}`` over the original model's weights,
            ``False`` = pruned.
        report: the :class:`Report`.
        unit_masks: with ``granularity="unit"``, ``{group key: bool [units]}``
            (``False`` = removed); else None.
        history: with a gradual schedule, one :class:`PruningStep` per
            pruning step; else None.
    """

    model: Any
    masks: dict[str, np.ndarray]
    report: Report
    unit_masks: dict[str, np.ndarray] | None = None
    history: list[PruningStep] | None = None
