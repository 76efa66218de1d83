"""``keras-forget``: the main job on the embedded digits, from the command line.

Trains (or reuses) a small classifier, makes it forget a class, prints the
per-class accuracy before and after, exports a sparse TFLite file and saves a
per-class bar chart.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from keras_forget import api, datasets, models, plots, scores
from keras_forget.export import export
from keras_forget.training import FineTune


def _amount(text: str) -> float | int | str:
    if text == "auto":
        return text
    return int(text) if text.isdigit() else float(text)


def _methods() -> list[str]:
    return sorted({*scores.names(), *scores.units.names(), "discedit"})


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="keras-forget",
        description="Make a trained Keras classifier forget a class by pruning, then export it.",
    )
    p.add_argument("--dataset", default="digits", choices=datasets.NAMES)
    p.add_argument("--target-class", type=int, nargs="+", default=[3])
    p.add_argument(
        "--granularity",
        default="weight",
        choices=("weight", "unit"),
        help="prune single weights (default) or whole units / filters",
    )
    p.add_argument(
        "--method",
        default=None,
        choices=_methods(),
        help=f"score (default: {api.DEFAULT_METHOD['forget', 'weight']}; discedit for units)",
    )
    p.add_argument(
        "--amount",
        type=_amount,
        default="auto",
        help="fraction to prune, or 'auto' (default); for units also a count",
    )
    p.add_argument("--scope", default=None, choices=("global", "layer"))
    p.add_argument("--fine-tune-epochs", type=int, default=0)
    p.add_argument("--epochs", type=int, default=40, help="training epochs of the classifier")
    p.add_argument("--out", default="keras_forget_out", help="output directory")
    p.add_argument("--retrain", action="store_true", help="ignore the cached classifier")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def run(args: argparse.Namespace) -> dict:
    """Runs the main job; returns the report as a dict."""
    verbose = not args.quiet
    (x_train, y_train), (x_test, y_test) = datasets.load(args.dataset)
    cache = None if args.retrain else os.path.join(args.out, f"{args.dataset}_mlp.keras")
    model, loaded = models.cached(
        cache,
        lambda: models.digits_mlp(x_train.shape[1:], datasets.num_classes(args.dataset)),
        lambda m: models.train(m, x_train, y_train, epochs=args.epochs, verbose=verbose),
    )
    if verbose:
        print(f"classifier: {'reused ' + cache if loaded else 'trained'}")
    tune = FineTune(epochs=args.fine_tune_epochs) if args.fine_tune_epochs else None
    result = api.prune_for_class(
        model,
        (x_train, y_train),
        args.target_class,
        method=args.method,
        amount=args.amount,
        scope=args.scope,
        granularity=args.granularity,
        fine_tune=tune,
        eval_data=(x_test, y_test),
        verbose=verbose,
    )
    print(result.report)
    exported = export(
        result.model,
        os.path.join(args.out, "export"),
        tflite=True,
        sparse=True,
        sample=x_test[:16],
        overwrite=True,
        verbose=verbose,
    )
    chart = plots.per_class_bars(result.report, os.path.join(args.out, "per_class_accuracy.png"))
    summary = {"report": result.report.to_dict(), "export": exported.to_dict(), "chart": chart}
    with open(os.path.join(args.out, "report.json"), "w") as f:
        json.dump(summary, f, indent=2, default=float)
    print(f"TFLite: {exported.tflite_path}  chart: {chart}")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
