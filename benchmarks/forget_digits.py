"""Forgetting each digit class: every method against retraining from scratch.

For every class 0-9 and every score (plus retraining without the class, the
gold standard), measures on the test split the forget accuracy (accuracy on the
forgotten class) and retain accuracy (on the rest), right after pruning (NoFT)
and after one fine-tuning epoch on the retained data (FT), and the time to
forget as a ratio of the time to retrain, measured in the same run.

    python benchmarks/forget_digits.py [--methods gradxweight fisher ...] [--classes 0 1 ...]

Prints a table and writes benchmarks/results/forget_digits.json.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import keras_forget as kf
from keras_forget import models
from keras_forget.files import write_json

METHODS = ("gradxweight", "fisher", "obd", "magnitude", "random")


def retrain(train, test, target, epochs):
    """Trains the same architecture from scratch without ``target``; returns (eval, seconds)."""
    x, y = train
    keep = ~np.isin(y, [target])
    x, y = x[keep], y[keep]
    start = time.perf_counter()
    model = models.train(models.digits_mlp(), x, y, epochs=epochs)
    seconds = time.perf_counter() - start
    return kf.evaluate(model, test, target), seconds


def forget(model, train, test, target, method):
    start = time.perf_counter()
    result = kf.prune_for_class(model, train, target, method=method, eval_data=test, verbose=False)
    seconds = time.perf_counter() - start
    tuned = kf.prune_for_class(
        model,
        train,
        target,
        method=method,
        amount=result.report.amount,
        fine_tune=kf.FineTune(epochs=1),
        eval_data=test,
        verbose=False,
    ).report.fine_tuned
    return result.report, tuned, seconds


def row(method, target, before, after, tuned, amount, ratio):
    return {
        "method": method,
        "class": target,
        "amount": amount,
        "forget_acc_before": before.forget_accuracy,
        "retain_acc_before": before.retain_accuracy,
        "forget_acc_noft": after.forget_accuracy,
        "retain_acc_noft": after.retain_accuracy,
        "forget_acc_ft": tuned.forget_accuracy,
        "retain_acc_ft": tuned.retain_accuracy,
        "time_vs_retrain": ratio,
    }


def summarize(rows):
    lines = [
        f"{'method':<12}{'class':>6}{'amount':>9}{'FA0':>7}{'RA0':>7}{'FA':>7}{'RA':>7}"
        f"{'ΔRA':>7}{'FA-FT':>7}{'RA-FT':>7}{'t/retrain':>10}"
    ]
    for r in rows:
        lines.append(
            f"{r['method']:<12}{r['class']:>6}{r['amount']:>9.4f}{r['forget_acc_before']:>7.3f}"
            f"{r['retain_acc_before']:>7.3f}{r['forget_acc_noft']:>7.3f}{r['retain_acc_noft']:>7.3f}"
            f"{r['retain_acc_noft'] - r['retain_acc_before']:>+7.3f}{r['forget_acc_ft']:>7.3f}"
            f"{r['retain_acc_ft']:>7.3f}{r['time_vs_retrain']:>10.3f}"
        )
    lines.append("")
    lines.append(
        f"{'method':<12}{'max FA':>8}{'mean FA':>9}{'worst ΔRA':>11}{'mean ΔRA':>10}"
        f"{'max FA-FT':>11}{'worst ΔRA-FT':>14}{'t/retrain':>11}"
    )
    for method in dict.fromkeys(r["method"] for r in rows):
        sub = [r for r in rows if r["method"] == method]
        fa = np.array([r["forget_acc_noft"] for r in sub])
        dra = np.array([r["retain_acc_noft"] - r["retain_acc_before"] for r in sub])
        fa_ft = np.array([r["forget_acc_ft"] for r in sub])
        dra_ft = np.array([r["retain_acc_ft"] - r["retain_acc_before"] for r in sub])
        t = np.array([r["time_vs_retrain"] for r in sub])
        lines.append(
            f"{method:<12}{fa.max():>8.3f}{fa.mean():>9.3f}{dra.min():>+11.3f}"
            f"{dra.mean():>+10.3f}{fa_ft.max():>11.3f}{dra_ft.min():>+14.3f}{t.mean():>11.3f}"
        )
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--classes", nargs="+", type=int, default=list(range(10)))
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = p.parse_args()
    train, test = kf.datasets.load("digits")
    model = models.train(models.digits_mlp(), *train, epochs=args.epochs)
    rows = []
    for target in args.classes:
        gold, retrain_s = retrain(train, test, target, args.epochs)
        for method in args.methods:
            report, tuned, seconds = forget(model, train, test, target, method)
            rows.append(
                row(
                    method,
                    target,
                    report.before,
                    report.after,
                    tuned,
                    report.amount,
                    seconds / retrain_s,
                )
            )
            print(summarize(rows[-1:]).splitlines()[1], flush=True)
        rows.append(row("retrain", target, report.before, gold, gold, 0.0, 1.0))
    table = summarize(rows)
    print(table)
    path = write_json(
        os.path.join(args.out, "forget_digits.json"), {"rows": rows, "epochs": args.epochs}
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
