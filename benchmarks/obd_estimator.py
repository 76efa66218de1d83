"""OBD's Gauss-Newton diagonal, exact or cheaper: validation accuracy and scoring time.

OBD's saliency ``½·h_kk·w_k²`` needs the diagonal of the Gauss-Newton matrix. The exact
diagonal (``OBD(estimator="ggn")``) takes one backward pass per class. Three cheaper ones:
the columns of each example's 3 most probable classes only (``OBD(classes=3)``, three
passes; the columns dropped carry the probability mass outside them); the 2 most probable
exactly and one column drawn from the rest, weighted by the inverse of its probability
(``OBD(estimator="stratified", classes=2)``, three passes, unbiased); and one label drawn
from the model's own prediction per example (``OBD(estimator="sampled")``, one pass,
unbiased). This benchmark chooses among them by
the protocol of benchmarks/README.md: ``kf.prune(model, data, sparsity=s, method=OBD(...))``
with the library's other defaults (8 re-scored rounds, global ranking), no retraining, on
the two MLPs and the VGG-style CNN of benchmarks/obd_diagnosis.py and on a MobileNetV2
(alpha 0.35, 32×32 RGB digits), over seeds 0/1/2, measured on a stratified 20 % validation
split of the digits training part. The test split is never read.

Rule (fixed before the run): the default is the cheapest estimator whose mean validation
accuracy over every architecture × sparsity × seed is at most 0.5 pt below the exact
one's (the tolerance benchmarks/obd_diagnosis.py uses for rounds); the time of each
estimator's calls over the exact ones', measured in the same process, is reported beside
it.

    python benchmarks/obd_estimator.py [--seeds 0 1 2] [--archs mlp mlp2 vgg mobilenetv2]
        [--quick] [--quiet] [--out PATH]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from compression import mobilenet, rgb32  # noqa: E402
from discedit_cnn import train as train_cnn  # noqa: E402
from discedit_cnn import vgg  # noqa: E402
from obd_diagnosis import MLPS, mlp, split, spread  # noqa: E402
from provenance import provenance  # noqa: E402

import keras_forget as kf  # noqa: E402
from keras_forget.files import write_json  # noqa: E402
from keras_forget.scores.obd import OBD  # noqa: E402

OUT = os.path.join(HERE, "results", "obd_estimator.json")
ARCHS = ("mlp", "mlp2", "vgg", "mobilenetv2")
#: label: OBD keyword arguments, from the most to the least expensive.
ESTIMATORS = {
    "ggn": {"estimator": "ggn"},
    "top3": {"estimator": "ggn", "classes": 3},
    "strat2": {"estimator": "stratified", "classes": 2},
    "sampled": {"estimator": "sampled"},
}
TOLERANCE = 0.005


def trained(arch: str, seed: int, fit, args):
    """``(model, fit, validation)`` for one architecture, inputs shaped for it."""
    fit, val = fit
    if arch in MLPS:
        return mlp(MLPS[arch], seed, fit, args.epochs), fit, val
    if arch == "vgg":
        return train_cnn(vgg(seed=seed), (fit, None), epochs=args.cnn_epochs, seed=seed), fit, val
    fit, val = rgb32(fit), rgb32(val)
    return mobilenet(seed, fit, args.mobilenet_epochs), fit, val


def rows_for(arch: str, seed: int, model, fit, val, args) -> list[dict]:
    """Validation accuracy and seconds of each estimator at each sparsity."""
    examples = args.score_examples if arch in MLPS else args.cnn_score_examples
    sparsities = args.sparsities if arch in MLPS else args.cnn_sparsities
    data = (fit[0][:examples], fit[1][:examples])
    dense = kf.evaluate(model, val).accuracy
    rows = []
    for estimator, kwargs in ESTIMATORS.items():
        for s in sparsities:
            tick = time.perf_counter()
            result = kf.prune(model, data, sparsity=s, method=OBD(**kwargs),
                              eval_data=val, verbose=False)  # fmt: skip
            rows.append({"arch": arch, "seed": seed, "estimator": estimator, "sparsity": s,
                         "dense_val_acc": dense, "val_acc": result.report.after.accuracy,
                         "seconds": time.perf_counter() - tick})  # fmt: skip
        if not args.quiet:
            done = [r for r in rows if r["estimator"] == estimator]
            print(f"  [{arch} seed {seed}] dense {dense:.3f} {estimator:<8}"
                  + " ".join(f"{r['sparsity']}: {r['val_acc']:.3f}" for r in done)
                  + f"  ({sum(r['seconds'] for r in done):.1f}s)", flush=True)  # fmt: skip
    return rows


def summarize(rows: list[dict]) -> dict:
    """``{arch: {sparsity: {estimator: spread}}}``, time ratios and the overall means."""
    table: dict = {}
    for r in rows:
        cell = table.setdefault(r["arch"], {}).setdefault(f"{r['sparsity']:.2f}", {})
        cell.setdefault(r["estimator"], []).append(r["val_acc"])
    table = {a: {s: {e: spread(v) for e, v in c.items()} for s, c in by.items()}
             for a, by in table.items()}  # fmt: skip
    seconds: dict = {}
    for r in rows:
        seconds.setdefault(r["arch"], {}).setdefault(r["estimator"], []).append(r["seconds"])
    ratio = {a: {e: float(np.sum(by[e]) / np.sum(by["ggn"])) for e in by}
             for a, by in seconds.items()}  # fmt: skip
    means = {e: float(np.mean([r["val_acc"] for r in rows if r["estimator"] == e]))
             for e in ESTIMATORS}  # fmt: skip
    within = [e for e in ESTIMATORS if means["ggn"] - means[e] <= TOLERANCE]
    return {"table": table, "seconds_over_exact": ratio, "means": means, "chosen": within[-1]}


def fmt(cell: dict) -> str:
    return f"{cell['mean']:.3f} [{cell['min']:.3f}, {cell['max']:.3f}]"


def report(summary: dict, args) -> str:
    lines = [f"Validation accuracy without retraining, mean [min, max] over seeds {args.seeds}; "
             "kf.prune(method=OBD(estimator=...)), 8 rounds, global",
             f"{'arch':<12}{'sparsity':>9}" + "".join(f"{e:>26}" for e in ESTIMATORS)]  # fmt: skip
    for arch, by in summary["table"].items():
        for s, cell in by.items():
            lines.append(f"{arch:<12}{s:>9}" + "".join(f"{fmt(cell[e]):>26}" for e in ESTIMATORS))
    lines.append("\nseconds of each estimator's calls / the exact ones', same process:")
    for arch, by in summary["seconds_over_exact"].items():
        lines.append(f"  {arch:<12}" + ", ".join(f"{e} {r:.2f}" for e, r in by.items()))
    means = summary["means"]
    lines.append("mean over every cell: " + ", ".join(f"{e} {m:.4f}" for e, m in means.items())
                 + f"; rule: the cheapest within {TOLERANCE * 100:.1f} pt of ggn -> "
                 f"{summary['chosen']} ({ESTIMATORS[summary['chosen']]}); library default: "
                 f"{OBD().get_config()}")  # fmt: skip
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--archs", nargs="+", choices=ARCHS, default=list(ARCHS))
    parser.add_argument("--epochs", type=int, default=30, help="MLP training epochs")
    parser.add_argument("--cnn-epochs", type=int, default=15, help="VGG training epochs")
    parser.add_argument("--mobilenet-epochs", type=int, default=30)
    parser.add_argument("--score-examples", type=int, default=512)
    parser.add_argument("--cnn-score-examples", type=int, default=128)
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.5, 0.75, 0.9, 0.95])
    parser.add_argument("--cnn-sparsities", type=float, nargs="+", default=[0.5, 0.75])
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 epochs, 1 sparsity")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.sparsities, args.cnn_sparsities = args.seeds[:1], [0.5], [0.5]
        args.epochs = args.cnn_epochs = args.mobilenet_epochs = 2
        args.score_examples = args.cnn_score_examples = 64
    start, origin, rows = time.perf_counter(), provenance(), []
    for seed in args.seeds:
        for arch in args.archs:
            model, fit, val = trained(arch, seed, split(seed), args)
            rows += rows_for(arch, seed, model, fit, val, args)
            keras.backend.clear_session()
    summary = summarize(rows)
    print("\n" + report(summary, args))
    seconds = time.perf_counter() - start
    path = write_json(args.out, {
        "protocol": {"split": "stratified 20 % validation split of the digits training part "
                              "(benchmarks/obd_diagnosis.py split); test split never read",
                     "seeds": args.seeds, "architectures": args.archs,
                     "rule": f"the cheapest estimator with mean(ggn) - mean(it) <= "
                             f"{TOLERANCE} over every cell",
                     "estimators": ESTIMATORS},
        "config": {k: v for k, v in vars(args).items() if k not in ("out", "quiet")},
        "provenance": origin, "summary": summary, "rows": rows, "seconds": seconds,
    })  # fmt: skip
    print(f"\n{seconds:.0f}s; wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
