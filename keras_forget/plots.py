"""Pictures of what forgetting did: per-class accuracy before and after."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from keras_forget.errors import InvalidArgumentError
from keras_forget.files import atomic_path


def subplots(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """``(figure, axes)`` drawn off-screen, without pyplot: the user's backend is untouched."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=kwargs.pop("figsize", None))
    return figure, figure.subplots(*args, **kwargs)


def save_figure(figure: Any, path: str) -> str:
    """Writes a matplotlib figure to ``path`` atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=120, bbox_inches="tight", format=_format(path))
    return path


def _format(path: str) -> str:
    return os.path.splitext(path)[1].lstrip(".").lower() or "png"


def per_class_bars(report: Any, path: str, title: str | None = None) -> str:
    """Bar chart of per-class accuracy before / after (/ fine-tuned) forgetting.

    Args:
        report: a :class:`keras_forget.results.Report` with evaluations.
        path: where to write the PNG.
        title: optional title; by default it names the method and classes.

    Returns:
        ``path``.

    Raises:
        InvalidArgumentError: the report holds no evaluation.
    """
    evals = [
        (name, e)
        for name, e in (
            ("before", report.before),
            ("after", report.after),
            ("fine-tuned", report.fine_tuned),
        )
        if e is not None
    ]
    if not evals:
        raise InvalidArgumentError("`report` holds no evaluation to plot.")
    classes = sorted(evals[0][1].per_class)
    width = 0.8 / len(evals)
    figure, axis = subplots(figsize=(8, 3.5))
    for i, (name, evaluation) in enumerate(evals):
        values = [evaluation.per_class.get(c, np.nan) for c in classes]
        axis.bar(np.arange(len(classes)) + i * width, values, width, label=name)
    axis.set_xticks(np.arange(len(classes)) + width * (len(evals) - 1) / 2)
    axis.set_xticklabels([f"{c}*" if c in report.target_classes else str(c) for c in classes])
    axis.set_ylim(0, 1.05)
    axis.set_xlabel("class (* = forgotten)")
    axis.set_ylabel("accuracy")
    axis.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axis.set_title(
        title
        or f"{report.method}: forget {list(report.target_classes)}, "
        f"{report.sparsity:.2%} of weights pruned"
    )
    return save_figure(figure, path)
