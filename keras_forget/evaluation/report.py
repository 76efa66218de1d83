"""One self-contained HTML page (and a Markdown twin) comparing unlearning methods.

:func:`report` takes what :func:`~keras_forget.evaluation.evaluate_unlearning`
measured for each method and writes a page that opens offline in any browser:
no script, no stylesheet or image fetched from anywhere, every chart an inline
base64 PNG drawn by matplotlib off-screen. The Markdown file next to it holds
the same tables (its charts are in the HTML). Both files are written
atomically: after an error neither is left half-written.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from keras_forget.errors import InvalidArgumentError
from keras_forget.evaluation.unlearning import UnlearningEvaluation
from keras_forget.files import atomic_path
from keras_forget.plots import subplots

#: ``(attribute, column header, what is better)`` of the metric table.
COLUMNS = (
    ("forget_accuracy", "forget acc", "retrain's value"),
    ("retain_accuracy", "retain acc", "higher"),
    ("test_accuracy", "test acc", "higher"),
    ("mia_efficacy", "MIA-efficacy (SalUn)", "retrain's value; class: ≈ 1"),
    ("mia_entropy", "MIA entropy (SSD)", "retrain's value; class: ≈ 0"),
    ("mia_loss", "MIA loss CV (SCRUB)", "≈ 0.5"),
    ("retrain_agreement", "agreement w/ retrain (test)", "higher"),
    ("retrain_kl", "KL(retrain ‖ model) (test)", "lower"),
    ("time_ratio", "time / retrain", "lower"),
)
MIA = ("mia_efficacy", "mia_entropy", "mia_loss")
Runs = Sequence[UnlearningEvaluation]


def _runs(results: Any) -> dict[str, list[UnlearningEvaluation]]:
    """``{method: [evaluations]}``; raises on anything else."""
    if not isinstance(results, Mapping) or not results:
        raise InvalidArgumentError(
            "`results` must be a non-empty mapping {method name: UnlearningEvaluation or a "
            f"list of them}}; got {type(results).__name__}"
            + (" (empty)." if isinstance(results, Mapping) else ".")
        )
    out = {}
    for name, value in results.items():
        runs = [value] if isinstance(value, UnlearningEvaluation) else value
        if (
            not isinstance(name, str)
            or not isinstance(runs, Sequence)
            or not runs
            or not all(isinstance(r, UnlearningEvaluation) for r in runs)
        ):
            raise InvalidArgumentError(
                f"`results[{name!r}]` must be an UnlearningEvaluation or a non-empty list of "
                f"them, under a str name; got {type(value).__name__}."
            )
        out[name] = list(runs)
    return out


def _curves(curves: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{label: (amounts, accuracies)}`` from a mapping of pairs or a sweep's ``Curve``."""
    if curves is None:
        return {}
    if hasattr(curves, "lines"):  # keras_forget.sweep.Curve
        curves = {k: (v.fraction_pruned, v.accuracy) for k, v in curves.lines.items()}
    if not isinstance(curves, Mapping):
        raise InvalidArgumentError(
            f"`curves` must map labels to (amounts, accuracies); got {type(curves).__name__}."
        )
    out = {}
    for label, pair in curves.items():
        try:
            x, y = (np.asarray(a, np.float64) for a in pair)
        except (TypeError, ValueError):
            raise InvalidArgumentError(
                f"`curves[{label!r}]` must be a pair (amounts, accuracies) of numbers."
            ) from None
        if x.ndim != 1 or x.shape != y.shape or not x.size:
            raise InvalidArgumentError(
                f"`curves[{label!r}]`: amounts and accuracies must be equally long, non-empty "
                f"lists; got shapes {x.shape} and {y.shape}."
            )
        out[str(label)] = (x, y)
    return out


def _values(runs: Runs, attr: str) -> np.ndarray:
    values = [getattr(r, attr) for r in runs]
    return np.asarray([v for v in values if v is not None], np.float64)


def cell(runs: Runs, attr: str) -> str:
    """``mean`` or ``mean [min, max]`` over the runs; ``—`` when not measured."""
    v = _values(runs, attr)
    if not v.size:
        return "—"
    if v.size == 1:
        return f"{v[0]:.3f}"
    return f"{v.mean():.3f} [{v.min():.3f}, {v.max():.3f}]"


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _grouped_bars(groups: Sequence[str], series: Mapping[str, Sequence[float]], **labels: Any):
    """A figure of bars: one group per entry of ``groups``, one bar per series."""
    figure, axis = subplots(figsize=(max(6.0, 0.9 * len(groups) + 2.5), 3.4))
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        axis.bar(np.arange(len(groups)) + i * width, values, width, label=name)
    axis.set_xticks(np.arange(len(groups)) + width * (len(series) - 1) / 2)
    axis.set_xticklabels(groups)
    axis.set(**labels)
    axis.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    return figure


def _per_class_figure(
    per_class: Mapping[str, Mapping[int, float]], forgotten: Sequence[int]
) -> Any:
    classes = sorted({int(c) for values in per_class.values() for c in values})
    series = {name: [values.get(c, np.nan) for c in classes] for name, values in per_class.items()}
    groups = [f"{c}*" if c in forgotten else str(c) for c in classes]
    figure = _grouped_bars(
        groups, series, ylim=(0, 1.05), ylabel="test accuracy", xlabel="class (* = forgotten)"
    )
    figure.axes[0].set_title("per-class test accuracy")
    return figure


def _mia_figure(runs: Mapping[str, Runs]) -> Any:
    series = {name: [float(_values(r, a).mean()) for a in MIA] for name, r in runs.items()}
    figure = _grouped_bars(
        ["MIA-efficacy (SalUn)\nretrain: class ≈ 1", "entropy (SSD)\nretrain: class ≈ 0",
         "loss CV (SCRUB)\nideal ≈ 0.5"],
        series, ylim=(0, 1.05), ylabel="mean over runs",
    )  # fmt: skip
    figure.axes[0].set_title("membership inference on the forget set")
    return figure


def _time_figure(runs: Mapping[str, Runs]) -> Any | None:
    means = {n: _values(r, "time_ratio") for n, r in runs.items()}
    means = {n: float(v.mean()) for n, v in means.items() if v.size}
    if not means:
        return None
    figure, axis = subplots(figsize=(6, 0.45 * len(means) + 1.2))
    axis.barh(list(means), list(means.values()))
    axis.axvline(1.0, color="black", linewidth=0.8)
    axis.set_xscale("log")
    axis.set_xlabel("time / retraining time (log scale; 1 = as long as retraining)")
    axis.invert_yaxis()
    return figure


def _curve_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Any:
    figure, axis = subplots(figsize=(6, 3.4))
    for label, (x, y) in curves.items():
        axis.plot(x, y, marker="o", label=label)
    axis.set(xlabel="amount", ylabel="accuracy", ylim=(0, 1.05))
    if all(x.min() > 0 for x, _ in curves.values()):
        axis.set_xscale("log")
    axis.legend(fontsize="small")
    axis.set_title("accuracy vs amount")
    return figure


def _default_per_class(runs: Mapping[str, Runs], before: Any) -> dict[str, dict[int, float]]:
    out = {} if before is None else {"before": dict(before.per_class)}
    for name, rs in runs.items():
        classes = sorted({c for r in rs for c in r.per_class})
        out[name] = {
            c: float(np.nanmean([r.per_class.get(c, np.nan) for r in rs])) for c in classes
        }
    return out


def _table_rows(runs: Mapping[str, Runs]) -> tuple[list[str], list[list[str]]]:
    header = ["method", "runs"] + [title for _, title, _ in COLUMNS]
    rows = [
        [name, str(len(rs))] + [cell(rs, attr) for attr, _, _ in COLUMNS]
        for name, rs in runs.items()
    ]
    return header, rows


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]], cls: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *map(line, rows)])


_STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:80em}"
    "table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #bbb;padding:.25em .6em;text-align:right}"
    "td:first-child,th:first-child{text-align:left}th{background:#eee}"
    "img{max-width:100%;display:block;margin:1em 0}"
)


def report(
    results: Mapping[str, UnlearningEvaluation | Runs],
    path: str | os.PathLike[str],
    *,
    before: Any = None,
    per_class: Mapping[str, Mapping[int, float]] | None = None,
    curves: Any = None,
    title: str = "Unlearning report",
    notes: Sequence[str] = (),
    meta: Mapping[str, Any] | None = None,
) -> tuple[str, str]:
    """Writes a self-contained HTML report and a Markdown file next to it.

    The page holds the metric table (one row per method: accuracies, the
    three membership-inference attacks, the distance to the retrained model
    and the time ratio, each as the mean and [min, max] over the runs given),
    per-class test accuracy before / after / retrain as a bar chart, the
    attacks per method as a bar chart, the time ratios, and the
    accuracy-vs-amount curves when given.

    Args:
        results: ``{method: UnlearningEvaluation or a list of them}`` (a
            list: several seeds or targets); name the gold standard
            ``"retrain"`` to have it read as the reference.
        path: the HTML file to write (``.html``); the Markdown file is the
            same path with ``.md``.
        before: the original model's evaluation (anything with a
            ``per_class`` mapping, such as an ``UnlearningEvaluation`` or an
            :class:`~keras_forget.metrics.Evaluation`), drawn as "before".
        per_class: ``{series: {class: accuracy}}`` for the per-class chart
            instead of the mean per-class test accuracy of each method (for
            instance one run of class forgetting, when the runs forget
            different classes).
        curves: ``{label: (amounts, accuracies)}``, or a
            :class:`keras_forget.sweep.Curve`.
        title: the page's title.
        notes: paragraphs of text shown under the title.
        meta: ``{key: value}`` shown as a table (provenance, settings).

    Returns:
        ``(html path, markdown path)``.

    Raises:
        InvalidArgumentError: bad ``results``, ``curves``, ``per_class`` or ``path``.
    """
    path = os.fspath(path)
    if os.path.splitext(path)[1].lower() != ".html":
        raise InvalidArgumentError(f"`path` must name an .html file, got {path!r}.")
    runs = _runs(results)
    lines = _curves(curves)
    if per_class is None:
        per_class = _default_per_class(runs, before)
    elif not isinstance(per_class, Mapping) or not all(
        isinstance(v, Mapping) for v in per_class.values()
    ):
        raise InvalidArgumentError("`per_class` must map series names to {class: accuracy}.")
    marks = {r.forgotten_classes for rs in runs.values() for r in rs}
    forgotten = next(iter(marks)) if len(marks) == 1 else ()
    header, rows = _table_rows(runs)
    figures = [("Per-class accuracy", _per_class_figure(per_class, forgotten)),
               ("Membership inference", _mia_figure(runs))]  # fmt: skip
    timing = _time_figure(runs)
    if timing is not None:
        figures.append(("Time as a fraction of retraining", timing))
    if lines:
        figures.append(("Accuracy vs amount", _curve_figure(lines)))
    images = [(name, _png(figure)) for name, figure in figures]
    meta_rows = [
        [str(k), v if isinstance(v, str) else json.dumps(v, default=str)]
        for k, v in (meta or {}).items()
    ]
    page = _html(title, notes, header, rows, images, lines, meta_rows)
    markdown = _markdown(title, notes, header, rows, lines, meta_rows, per_class)
    md_path = os.path.splitext(path)[0] + ".md"
    with atomic_path(path) as html_tmp, atomic_path(md_path) as md_tmp:
        with open(html_tmp, "w", encoding="utf-8") as f:
            f.write(page)
        with open(md_tmp, "w", encoding="utf-8") as f:
            f.write(markdown)
    return path, md_path


def _legend() -> list[list[str]]:
    return [[title, better] for _, title, better in COLUMNS]


def _curve_rows(lines: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> list[list[str]]:
    return [
        [label, f"{x:.4g}", f"{y:.3f}"] for label, (xs, ys) in lines.items() for x, y in zip(xs, ys)
    ]


def _html(title, notes, header, rows, images, lines, meta_rows) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        *(f"<p>{html.escape(n)}</p>" for n in notes),
        "<h2>Metrics</h2>",
        _html_table(header, rows, "metrics"),
        "<p>Each cell: the mean [min, max] over the runs. What is better:</p>",
        _html_table(["column", "better"], _legend(), "legend"),
    ]
    for name, data in images:
        alt = html.escape(name)
        parts += [f"<h2>{alt}</h2>", f'<img alt="{alt}" src="data:image/png;base64,{data}">']
    if lines:
        parts.append(_html_table(["curve", "amount", "accuracy"], _curve_rows(lines), "curves"))
    if meta_rows:
        parts += ["<h2>Provenance</h2>", _html_table(["key", "value"], meta_rows, "meta")]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _markdown(title, notes, header, rows, lines, meta_rows, per_class) -> str:
    classes = sorted({int(c) for v in per_class.values() for c in v})
    class_rows = [
        [name] + [f"{values.get(c, float('nan')):.3f}" for c in classes]
        for name, values in per_class.items()
    ]
    parts = [
        f"# {title}",
        *notes,
        "## Metrics",
        _md_table(header, rows),
        "Each cell: the mean [min, max] over the runs.",
        _md_table(["column", "better"], _legend()),
        "## Per-class test accuracy",
        _md_table(["series", *map(str, classes)], class_rows),
    ]
    if lines:
        parts += [
            "## Accuracy vs amount",
            _md_table(["curve", "amount", "accuracy"], _curve_rows(lines)),
        ]
    if meta_rows:
        parts += ["## Provenance", _md_table(["key", "value"], meta_rows)]
    parts.append("Charts: see the HTML file of the same name.")
    return "\n\n".join(parts) + "\n"
