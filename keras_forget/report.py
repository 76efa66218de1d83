"""What a pruning call did: settings, accuracies before and after, time spent."""

from __future__ import annotations

import dataclasses
from typing import Any

from keras_forget.metrics import Evaluation


@dataclasses.dataclass(frozen=True)
class Report:
    """Summary of one pruning or forgetting call.

    Attributes:
        method: the score's name.
        amount: fraction of prunable weights pruned.
        scope: ``"global"`` or ``"layer"``.
        target_classes: the forgotten classes (empty for compression).
        pruned: number of weights set to zero by the masks.
        total: number of prunable weights.
        before: evaluation of the original model.
        after: evaluation right after masking (no fine-tuning).
        fine_tuned: evaluation after fine-tuning, if any.
        seconds: wall time of each stage (``scoring``, ``masking``,
            ``fine_tune``, ``total``).
        granularity: ``"weight"``, or ``"unit"`` when ``pruned`` and
            ``total`` count units (Dense units, Conv filters).
    """

    method: str
    amount: float
    scope: str
    target_classes: tuple[int, ...]
    pruned: int
    total: int
    before: Evaluation | None
    after: Evaluation | None
    fine_tuned: Evaluation | None
    seconds: dict[str, float]
    granularity: str = "weight"

    @property
    def sparsity(self) -> float:
        """Fraction of prunable weights that are zero because of the masks."""
        return self.pruned / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
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
        if self.target_classes:
            for label, attr in (("forget", "forget_accuracy"), ("retain", "retain_accuracy")):
                cells = "  ".join(f"{getattr(e, attr):>10.3f}" for _, e in evals)
                rows.append(f"{label:>6} {cells}")
        rows.append(f"{'all':>6} " + "  ".join(f"{e.accuracy:>10.3f}" for _, e in evals))
        return "\n".join(rows)

    def __str__(self) -> str:
        what = f"forget {list(self.target_classes)}" if self.target_classes else "compress"
        return (
            f"{what} with {self.method} ({self.scope}): pruned {self.pruned}/{self.total} "
            f"{self.granularity}s ({self.sparsity:.2%}) in {self.seconds.get('total', 0.0):.1f}s"
            + (f"\n{self.table()}" if self.table() else "")
        )
