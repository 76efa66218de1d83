"""Where weight-level forgetting cuts: forget and retain accuracy along the amount grid.

A diagnosis on the validation split (the test split is never touched): one
``keras.applications`` model (``weights=None``, 32×32 RGB digits, trained as in
``unit_forget.py --zoo``) is scored once per class with the default forgetting score
(grad×weight, forget side signed); then, for each contrast floor in ``--floors``, the
weights ``kf.prune_for_class`` would remove are masked at every amount of
``amount="auto"``'s grid and the validation part is predicted. Each row gives forget
accuracy (the class), retain accuracy (the rest), how many validation examples each
class receives, and the four layers that lose the largest fraction of their weights.

    python benchmarks/forget_diagnosis.py [--model EfficientNetB0] [--classes 4]
        [--floors 0.01 0.1 1.0] [--epochs 10] [--seed 0] [--limit N] [--out PATH]

Prints the rows and writes benchmarks/results/forget_diagnosis_<model>.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import protocol  # noqa: E402
from provenance import provenance  # noqa: E402
from unit_forget import _zoo_model  # noqa: E402

import keras_forget as kf  # noqa: E402
from keras_forget import _keras, selection  # noqa: E402
from keras_forget.api import _method  # noqa: E402
from keras_forget.files import write_json  # noqa: E402
from keras_forget.introspect.registry import prunable_weights  # noqa: E402
from keras_forget.scores import Objective  # noqa: E402
from keras_forget.scores.accumulate import score_split  # noqa: E402
from keras_forget.selection import amount as amount_search  # noqa: E402


def masked_predictions(model):
    """``masks -> predicted labels`` of a working copy of ``model`` with ``masks`` applied."""
    work = _keras.clone(model)
    variables = {k: w.variable for k, w in prunable_weights(work).items()}
    original = {k: v.numpy() for k, v in variables.items()}

    def predict(masks, x):
        for key, value in original.items():
            mask = masks.get(key)
            variables[key].assign(value if mask is None else value * mask)
        return np.asarray(work.predict(x, verbose=0)).argmax(-1)

    return predict


def sweep(model, fit, held, target, floors, grid) -> list[dict]:
    """One scoring pass for ``target``, then every floor × grid amount on ``held``."""
    data = kf.Data.of(fit, model)
    method = _method(None, "forget", "weight")
    forget, retain = score_split(model, data, method, Objective(from_logits=True), [target])
    predict = masked_predictions(model)
    x, y = held
    rows = []
    for floor in floors:
        ranked = selection.contrast(forget, retain, floor=floor)
        for amount in grid:
            masks = selection.select(ranked, amount, scope="global", highest=True)
            p = predict(masks, x)
            cut = {k: float(1 - m.mean()) for k, m in masks.items() if m.mean() < 1}
            rows.append({
                "class": target, "floor": floor, "amount": amount,
                "forget": float(np.mean(p[y == target] == target)),
                "retain": float(np.mean(p[y != target] == y[y != target])),
                "predicted": np.bincount(p, minlength=10).tolist(),
                "most_cut": sorted(cut.items(), key=lambda kv: -kv[1])[:4],
            })  # fmt: skip
            print(_line(rows[-1]), flush=True)
    return rows


def _line(r: dict) -> str:
    cut = ", ".join(f"{k} {v:.3f}" for k, v in r["most_cut"])
    return (
        f"class {r['class']} floor {r['floor']:<5} amount {r['amount']:.4f} forget "
        f"{r['forget']:.3f} retain {r['retain']:.3f} predicted {r['predicted']} most cut: {cut}"
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="EfficientNetB0")
    p.add_argument("--classes", type=int, nargs="+", default=[4])
    p.add_argument("--floors", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    p.add_argument("--grid-points", type=int, default=14, help="first N amounts of the grid")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="use the first N examples of each part")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    origin = provenance()
    start = time.perf_counter()
    parts = protocol.splits("validation", args.seed)
    if args.limit:
        parts = tuple((x[: args.limit], y[: args.limit]) for x, y in parts)
    model, fit, held = _zoo_model(args.model, args.seed, parts, args.epochs)
    dense = kf.evaluate(model, held).accuracy
    print(f"{args.model}: validation accuracy {dense:.3f}", flush=True)
    grid = amount_search.GRID[: args.grid_points]
    rows = [r for c in args.classes for r in sweep(model, fit, held, c, args.floors, grid)]
    out = args.out or os.path.join(HERE, "results", f"forget_diagnosis_{args.model}.json")
    result = {"split": "validation", "settings": vars(args), "dense_accuracy": dense,
              "rows": rows, "provenance": origin}  # fmt: skip
    path = write_json(out, result)
    print(f"{len(rows)} rows, {time.perf_counter() - start:.0f}s; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
