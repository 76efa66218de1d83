"""Forgetting each digit class with weight-level scores, against retraining from scratch.

Follows the protocol of benchmarks/README.md, in two halves:

- ``--split validation`` chooses: on a stratified 20 % validation part carved from the
  training part (``random_state=seed``; the test part is never read), every floor in
  ``--floors`` of the default method's forget-vs-retain contrast is run on every class,
  seed and architecture, and the floor recommended is the one with the highest mean
  retain accuracy among those that forget every class (forget accuracy <= 5 %); floors
  within ``TIE`` of the best are a tie, which the library's default wins.
- ``--split test`` reports once: the library's defaults (``kf.prune_for_class(model,
  data, c, eval_data=test)``, weight level, ``amount="auto"``) and other scores as
  baselines, trained on the whole training part and measured on the untouched test part.
  Each row gives forget accuracy (on the forgotten class) and retain accuracy (on the rest)
  before, right after pruning (NoFT) and after one fine-tuning epoch on the retained
  training data (FT, default method only), and the time to forget as a ratio of the time to
  retrain measured in the same run. Retraining without the class (the gold standard) runs
  for ``--retrain-classes`` classes per seed and architecture.

Architectures: an MLP (softmax output) and the VGG- and ResNet-style CNNs of
``examples/discedit_cnn.py`` (logits). Summaries are mean [min, max] over seeds × classes.

    python benchmarks/forget_digits.py --split test [--seeds 0 1 2] [--archs mlp vgg resnet]
        [--methods gradxweight fisher random] [--classes 0 ... 9] [--quiet] [--out DIR]

Prints the tables and writes benchmarks/results/forget_digits_<split>.json.
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
from protocol import ARCHITECTURES, fmt, spread  # noqa: E402
from provenance import provenance  # noqa: E402

import keras_forget as kf  # noqa: E402
from keras_forget import selection  # noqa: E402

METHODS = ("gradxweight", "fisher", "random")
FLOORS = (0.01, 0.1, 1.0)
FORGOTTEN = 0.05  # forget accuracy at or below this counts as forgotten
#: Mean retain accuracies closer than this count as a tie (0.1 point: about a third of one
#: validation image per run).
TIE = 1e-3
FINE_TUNE = kf.FineTune(epochs=1)


def forget_row(model, fit, held, target, method, floor=None, tune=False) -> dict:
    """One forgetting call: accuracies before / NoFT (/ FT) on ``held`` and seconds."""
    start = time.perf_counter()
    result = kf.prune_for_class(
        model, fit, target, method=method, floor=floor, eval_data=held, verbose=False
    )
    seconds = time.perf_counter() - start
    r = result.report
    row = {
        "amount": r.amount,
        "auto_reached": r.auto_reached,
        "forget_before": r.before.forget_accuracy,
        "retain_before": r.before.retain_accuracy,
        "forget_noft": r.after.forget_accuracy,
        "retain_noft": r.after.retain_accuracy,
        "seconds": seconds,
    }
    if tune:
        tuned = kf.prune_for_class(
            model,
            fit,
            target,
            method=method,
            floor=floor,
            amount=r.amount,
            fine_tune=FINE_TUNE,
            eval_data=held,
            verbose=False,
        ).report.fine_tuned
        row.update(forget_ft=tuned.forget_accuracy, retain_ft=tuned.retain_accuracy)
    return row


def retrain_row(arch, seed, fit, held, target, epochs) -> dict:
    """The gold standard: the same architecture trained from scratch without ``target``."""
    build, train = ARCHITECTURES[arch]
    x, y = fit
    keep = y != target
    start = time.perf_counter()
    model = train(build(seed=seed), ((x[keep], y[keep]), None), epochs=epochs, seed=seed)
    seconds = time.perf_counter() - start
    e = kf.evaluate(model, held, target)
    return {"forget_noft": e.forget_accuracy, "retain_noft": e.retain_accuracy, "seconds": seconds}


def summarize(rows, key_fields) -> list[dict]:
    """Mean [min, max] of every measure, per combination of ``key_fields``."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if "error" not in r:
            groups.setdefault(tuple(r[k] for k in key_fields), []).append(r)
    out = []
    for key, group in groups.items():
        cell = dict(zip(key_fields, key), n=len(group))
        for m in ("forget_noft", "retain_noft", "forget_ft", "retain_ft", "time_vs_retrain"):
            cell[m] = spread([g.get(m) for g in group])
        cell["retain_drop_noft"] = spread(
            [g["retain_noft"] - g["retain_before"] for g in group if "retain_before" in g]
        )
        cell["forgotten"] = sum(g["forget_noft"] <= FORGOTTEN for g in group)
        out.append(cell)
    return out


def table(summary, key_fields) -> str:
    head = "  ".join(f"{k:<11}" for k in key_fields)
    lines = [
        f"{head}  {'n':>3}  {'forgot':>6}  {'forget NoFT':<21}  {'retain NoFT':<21}  "
        f"{'Δretain NoFT':<24}  {'forget FT':<21}  {'retain FT':<21}  {'t/retrain':<21}"
    ]
    for c in summary:
        keys = "  ".join(f"{c[k]!s:<11}" for k in key_fields)
        lines.append(
            f"{keys}  {c['n']:>3}  {c['forgotten']:>6}  {fmt(c['forget_noft']):<21}  "
            f"{fmt(c['retain_noft']):<21}  {fmt(c['retain_drop_noft']):<24}  "
            f"{fmt(c['forget_ft']):<21}  {fmt(c['retain_ft']):<21}  "
            f"{fmt(c['time_vs_retrain']):<21}"
        )
    return "\n".join(lines)


def recommend(summary) -> dict:
    """The floor with the highest mean retain accuracy among those that forget every run."""
    floors = sorted({c["floor"] for c in summary})
    score = {}
    for floor in floors:
        cells = [c for c in summary if c["floor"] == floor]
        every = all(c["forgotten"] == c["n"] for c in cells)
        score[floor] = {
            "forgets_every_run": every,
            "mean_retain_noft": float(np.mean([c["retain_noft"]["mean"] for c in cells])),
        }
    ok = [f for f in floors if score[f]["forgets_every_run"]] or floors
    top = max(score[f]["mean_retain_noft"] for f in ok)
    tied = [f for f in ok if score[f]["mean_retain_noft"] >= top - TIE]
    # Within TIE of the best the library's current default stays: no change without evidence.
    best = (
        selection.FLOOR
        if selection.FLOOR in tied
        else max(tied, key=lambda f: score[f]["mean_retain_noft"])
    )
    return {"floor": best, "library_default": selection.FLOOR, "tie": TIE, "by_floor": score}


def run(args, say) -> list[dict]:
    rows = []
    for seed, arch, fit, held, model, epochs in protocol.trained(args, say):
        retrain_seconds = []
        for i, target in enumerate(args.classes):
            base = {"seed": seed, "arch": arch, "class": target}
            if args.split == "test" and i < args.retrain_classes:
                gold = retrain_row(arch, seed, fit, held, target, epochs)
                retrain_seconds.append(gold["seconds"])
                rows.append(dict(base, method="retrain", time_vs_retrain=1.0, **gold))
            settings = (
                [(m, None) for m in args.methods]
                if args.split == "test"
                else [(args.methods[0], f) for f in args.floors]
            )
            for method, floor in settings:
                row = dict(base, method=method, floor=floor or selection.FLOOR)
                try:
                    tune = args.split == "test" and method == args.methods[0]
                    row.update(forget_row(model, fit, held, target, method, floor, tune))
                except Exception as err:  # a failed run is counted, not dropped
                    row["error"] = f"{type(err).__name__}: {err}"
                    traceback.print_exc()
                rows.append(row)
                say(
                    f"  class {target} {method} floor {row['floor']}: "
                    + (
                        row.get("error")
                        or f"forget {row['forget_noft']:.3f} retain "
                        f"{row['retain_before']:.3f}->{row['retain_noft']:.3f} "
                        f"amount {row['amount']:.4f}"
                    )  # fmt: skip
                )
        per_retrain = float(np.mean(retrain_seconds)) if retrain_seconds else None
        for r in rows:
            if r["seed"] == seed and r["arch"] == arch and r["method"] != "retrain":
                if per_retrain and "seconds" in r:
                    r["time_vs_retrain"] = r["seconds"] / per_retrain
    return rows


def main(argv=None) -> int:
    p = protocol.parser(__doc__)
    p.add_argument("--methods", nargs="+", default=list(METHODS), help="the first is the default")
    p.add_argument("--floors", type=float, nargs="+", default=list(FLOORS))
    p.add_argument("--classes", type=int, nargs="+", default=list(range(10)))
    p.add_argument("--retrain-classes", type=int, default=2)
    args = p.parse_args(argv)
    say = protocol.speaker(args.quiet)
    origin = provenance()
    start = time.perf_counter()
    rows = run(args, say)
    keys = ("arch", "method") if args.split == "test" else ("arch", "floor")
    summary = summarize(rows, keys)
    where = protocol.where(args.split)
    print(
        f"\nweight-level forgetting, amount='auto', on the {where}; mean [min, max] over seeds "
        f"{args.seeds} × classes {args.classes}; forgot = runs with forget accuracy <= "
        f"{FORGOTTEN}; FT = {FINE_TUNE.epochs} epoch (default method only)\n" + table(summary, keys)
    )
    out = {"split": args.split, "rows": rows, "summary": summary, "provenance": origin}
    if args.split == "validation":
        out["recommendation"] = recommend(summarize(rows, ("arch", "floor")))
        print(f"\nrecommended floor: {out['recommendation']}")
    errors = sum("error" in r for r in rows)
    return protocol.finish("forget_digits", args, out, errors, start)


if __name__ == "__main__":
    sys.exit(main())
