"""The learning rate of ``kf.FineTune``: one short fine-tuning epoch after pruning or forgetting.

Follows the protocol of benchmarks/README.md, in two halves:

- ``--split validation`` chooses ``FineTune.learning_rate``: on a stratified 20 % validation part
  carved from the training part, for 3 seeds × 3 architectures, the library's default calls
  are run with one fine-tuning epoch at each rate in ``--rates``:

  * ``weight 90 %``: ``kf.prune(model, data, sparsity=0.9)`` (magnitude, global);
  * ``unit 50 %``: ``kf.prune(model, data, sparsity=0.5, granularity="unit", shrink=True)``;
  * ``forget``: ``kf.prune_for_class(model, data, c)`` for ``--classes`` (retain accuracy, and
    whether the class stays forgotten).

  For each task, the rate recommended has the highest mean FT accuracy over the architectures
  (for ``forget``, retain accuracy, among the rates that keep every forgotten class at <= 5 %
  after fine-tuning): no one rate served every task, so the library's default is per job
  (``keras_forget.training.DEFAULT_LEARNING_RATE``).
- ``--split test`` reports once, on the untouched test part, every rate given, so the chosen
  ones stand beside the others, and the accuracy before fine-tuning (NoFT).

    python benchmarks/fine_tune.py --split validation [--rates 1e-4 3e-4 1e-3]
    python benchmarks/fine_tune.py --split test [--rates 1e-4 1e-3]

Prints the tables and writes benchmarks/results/fine_tune_<split>.json.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import protocol  # noqa: E402
from protocol import fmt, spread  # noqa: E402
from provenance import provenance  # noqa: E402

import keras_forget as kf  # noqa: E402
from keras_forget import training  # noqa: E402

FORGOTTEN = 0.05
RATES = (1e-4, 3e-4, 1e-3)


def _calls(model, fit, held, classes, rate) -> list[tuple[str, dict]]:
    """``(task, measures)`` for every library call, fine-tuned one epoch at ``rate``."""
    tune = kf.FineTune(epochs=1, learning_rate=rate)
    run = dict(eval_data=held, fine_tune=tune, verbose=False)
    out = []
    for task, call in (
        ("weight 90%", lambda: kf.prune(model, fit, sparsity=0.9, **run)),
        (
            "unit 50%",
            lambda: kf.prune(model, fit, sparsity=0.5, granularity="unit", shrink=True, **run),
        ),  # fmt: skip
    ):
        r = call().report
        out.append((task, {"noft": r.after.accuracy, "ft": r.fine_tuned.accuracy}))
    for c in classes:
        r = kf.prune_for_class(model, fit, c, **run).report
        out.append(("forget", {"noft": r.after.retain_accuracy, "ft": r.fine_tuned.retain_accuracy,
                               "forget_ft": r.fine_tuned.forget_accuracy, "class": c}))  # fmt: skip
    return out


def run(args, say) -> list[dict]:
    rows = []
    for seed, arch, fit, held, model, _ in protocol.trained(args, say):
        dense = kf.evaluate(model, held).accuracy
        for rate in args.rates:
            base = {"seed": seed, "arch": arch, "rate": rate, "dense": dense}
            try:
                for task, measures in _calls(model, fit, held, args.classes, rate):
                    rows.append(dict(base, task=task, **measures))
            except Exception as err:  # a failed run is counted, not dropped
                rows.append(dict(base, task="error", error=f"{type(err).__name__}: {err}"))
                traceback.print_exc()
            say(f"[seed {seed}] {arch} lr {rate:g}: done")
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Mean [min, max] per architecture × task × rate."""
    out = []
    keys = sorted({(r["arch"], r["task"], r["rate"]) for r in rows if r["task"] != "error"})
    for arch, task, rate in keys:
        group = [r for r in rows if (r["arch"], r["task"], r["rate"]) == (arch, task, rate)]
        cell = {"arch": arch, "task": task, "rate": rate, "n": len(group)}
        cell["dense"] = spread(r["dense"] for r in group)
        cell["noft"] = spread(r["noft"] for r in group)
        cell["ft"] = spread(r["ft"] for r in group)
        if task == "forget":
            cell["still_forgotten"] = sum(r["forget_ft"] <= FORGOTTEN for r in group)
        out.append(cell)
    return out


def table(summary: list[dict]) -> str:
    lines = [
        f"{'arch':<7} {'task':<11} {'lr':>7} {'n':>3}  {'dense':<21} {'NoFT':<21} {'FT':<21} "
        "forgotten after FT"
    ]
    for c in summary:
        tail = f"{c['still_forgotten']}/{c['n']}" if "still_forgotten" in c else ""
        lines.append(
            f"{c['arch']:<7} {c['task']:<11} {c['rate']:>7g} {c['n']:>3}  {fmt(c['dense']):<21} "
            f"{fmt(c['noft']):<21} {fmt(c['ft']):<21} {tail}"
        )
    return "\n".join(lines)


def recommend(summary: list[dict], rates: list[float]) -> dict:
    """Per task, the rate with the highest mean FT accuracy over architectures (for
    ``forget``, among the rates that keep every class forgotten)."""
    out = {}
    for task in sorted({c["task"] for c in summary}):
        score = {}
        for rate in rates:
            cells = [c for c in summary if (c["task"], c["rate"]) == (task, rate)]
            kept = all(c.get("still_forgotten", c["n"]) == c["n"] for c in cells)
            score[rate] = {"keeps_forgotten": kept,
                           "mean_ft": float(np.mean([c["ft"]["mean"] for c in cells]))}  # fmt: skip
        ok = [r for r in rates if score[r]["keeps_forgotten"]] or list(rates)
        out[task] = {"learning_rate": max(ok, key=lambda r: score[r]["mean_ft"]), "by_rate": score}
    library = {f"{t}/{g}": r for (t, g), r in training.DEFAULT_LEARNING_RATE.items()}
    return {"by_task": out, "library_default": library}


def main(argv=None) -> int:
    p = protocol.parser(__doc__)
    p.add_argument("--rates", type=float, nargs="+", default=list(RATES))
    p.add_argument("--classes", type=int, nargs="+", default=[0, 4, 8])
    args = p.parse_args(argv)
    say = protocol.speaker(args.quiet)
    origin = provenance()
    start = time.perf_counter()
    rows = run(args, say)
    summary = summarize(rows)
    where = protocol.where(args.split)
    print(
        f"\none fine-tuning epoch (Adam) after the library's default calls, on the {where}; "
        f"mean [min, max] over seeds {args.seeds} (forget: × classes {args.classes}; its "
        "columns are retain accuracy)\n" + table(summary)
    )
    out = {"split": args.split, "settings": vars(args), "rows": rows, "summary": summary,
           "provenance": origin}  # fmt: skip
    if args.split == "validation":
        out["recommendation"] = recommend(summary, args.rates)
        print(f"\nrecommended FineTune.learning_rate per task: {out['recommendation']}")
    errors = sum(r["task"] == "error" for r in rows)
    return protocol.finish("fine_tune", args, out, errors, start)


if __name__ == "__main__":
    sys.exit(main())
