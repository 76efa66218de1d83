"""Forgetting each class with whole units (DISCEDIT-U), with the library's defaults.

Follows the protocol of benchmarks/README.md, in two halves:

- ``--split validation`` chooses the default ``scope`` (and, with ``--unit-methods``, the
  score) of unit forgetting (``kf.prune_for_class(..., granularity="unit")``,
  ``api.DEFAULT_SCOPE``): on a stratified 20 % validation part carved from the training part,
  every class × seed × architecture is forgotten with each of ``--scopes`` × ``--unit-methods``
  (``amount="auto"``, no fine-tuning), and the setting recommended is the one with the most
  runs that forget (forget accuracy <= 5 %) while keeping retain accuracy within 2 points,
  then the higher mean retain accuracy.
- ``--split test`` reports once, on the untouched test part: the unit defaults beside
  weight-level forgetting (``kf.prune_for_class``'s default), with no fine-tuning; also what
  the report's notes said (a unit search that fell short names the weight-level call).

``--zoo`` adds ``keras.applications`` models (``weights=None``, 32×32 upsampled RGB digits,
trained ``--zoo-epochs`` epochs, BatchNormalization statistics re-estimated on the training
data) to the test half, one seed.

Architectures: an MLP (softmax output) and the VGG- and ResNet-style CNNs of
``examples/discedit_cnn.py`` (logits). Summaries are mean [min, max] over seeds × classes.

    python benchmarks/unit_forget.py --split validation
    python benchmarks/unit_forget.py --split test \
        [--zoo MobileNetV2 ResNet50 DenseNet121 EfficientNetB0] [--zoo-classes 0 4 8]

Prints the tables and writes benchmarks/results/unit_forget_<split>.json.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import protocol  # noqa: E402
import tensorflow as tf  # noqa: E402
from protocol import fmt, splits, spread  # noqa: E402
from provenance import provenance  # noqa: E402

import keras_forget as kf  # noqa: E402
from keras_forget import api  # noqa: E402
from keras_forget.surgery import structured  # noqa: E402

FORGOTTEN = 0.05  # forget accuracy at or below this counts as forgotten
KEPT = 0.02  # retain accuracy within this of before counts as kept
SCOPES = ("global", "layer")
#: Unit scores ``--unit-methods`` can compare (``default``: the library's DISCEDIT-U).
METHODS = {
    "default": None,
    "exp_norm_both": {"class_name": "exp_norm", "config": {"direction": "both"}},
    "fisher_bound": "fisher_bound",
    "taylor": "taylor",
    "discedit": "discedit",
}


def forget_row(model, fit, held, target, granularity, scope=None, method=None) -> dict:
    """One ``kf.prune_for_class`` call (defaults unless given), measured on ``held``."""
    start = time.perf_counter()
    result = kf.prune_for_class(
        model, fit, target, granularity=granularity, scope=scope, method=METHODS.get(method),
        eval_data=held, verbose=False,
    )  # fmt: skip
    r = result.report
    return {
        "method": method or "default",
        "amount": r.amount,
        "auto_reached": r.auto_reached,
        "scope": r.scope,
        "forget_before": r.before.forget_accuracy,
        "retain_before": r.before.retain_accuracy,
        "forget_noft": r.after.forget_accuracy,
        "retain_noft": r.after.retain_accuracy,
        "seconds": time.perf_counter() - start,
        "notes": list(r.notes),
    }


def _ok(row: dict) -> bool:
    return row["forget_noft"] <= FORGOTTEN and row["retain_before"] - row["retain_noft"] <= KEPT


def summarize(rows: list[dict], keys: tuple[str, ...]) -> list[dict]:
    """Mean [min, max] of each measure per combination of ``keys``."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for key, group in groups.items():
        done = [g for g in group if "error" not in g]
        cell = dict(zip(keys, key), n=len(group), failed=len(group) - len(done))
        for m in ("amount", "forget_noft", "retain_noft", "seconds"):
            cell[m] = spread([g[m] for g in done])
        cell["retain_drop"] = spread([g["retain_before"] - g["retain_noft"] for g in done])
        cell["forgot"] = sum(g["forget_noft"] <= FORGOTTEN for g in done)
        cell["forgot_and_kept"] = sum(_ok(g) for g in done)
        cell["not_reached"] = sum(g["auto_reached"] is False for g in done)
        cell["noted"] = sum(bool(g["notes"]) for g in done)
        out.append(cell)
    return out


def table(summary: list[dict], keys: tuple[str, ...]) -> str:
    head = "  ".join(f"{k:<12}" for k in keys)
    lines = [
        f"{head}  {'n':>3} {'forgot':>6} {'& kept':>6} {'unreached':>9} {'noted':>5}  "
        f"{'amount':<24} {'forget NoFT':<21} {'retain NoFT':<21} {'retain drop':<21}"
    ]
    for c in summary:
        keys_ = "  ".join(f"{c[k]!s:<12}" for k in keys)
        lines.append(
            f"{keys_}  {c['n']:>3} {c['forgot']:>6} {c['forgot_and_kept']:>6} "
            f"{c['not_reached']:>9} {c['noted']:>5}  {fmt(c['amount'], 4):<24} "
            f"{fmt(c['forget_noft']):<21} {fmt(c['retain_noft']):<21} {fmt(c['retain_drop']):<21}"
            + (f"  {c['failed']} FAILED" if c["failed"] else "")
        )
    return "\n".join(lines)


def recommend(summary: list[dict]) -> dict:
    """The scope × method with the most runs forgotten and kept, then the best retain accuracy."""
    score = {}
    for scope, method in sorted({(c["scope"], c["method"]) for c in summary}):
        cells = [c for c in summary if (c["scope"], c["method"]) == (scope, method)]
        score[f"{scope}/{method}"] = {
            "forgot_and_kept": sum(c["forgot_and_kept"] for c in cells),
            "runs": sum(c["n"] for c in cells),
            "mean_retain_noft": float(np.mean([c["retain_noft"]["mean"] for c in cells])),
        }
    library = f"{api.DEFAULT_SCOPE['forget', 'unit']}/default"
    best = max(
        score,
        key=lambda k: (score[k]["forgot_and_kept"], score[k]["mean_retain_noft"], k == library),
    )
    return {"scope/method": best, "library_default": library, "by_setting": score}


def _zoo_model(name: str, seed: int, data, epochs: int):
    """A ``keras.applications`` model trained on 32×32 RGB digits: (model, fit, held)."""
    (x, y), (xt, yt) = data

    def rgb(a):
        return np.repeat(tf.image.resize(a, (32, 32)).numpy(), 3, axis=-1).astype("float32")

    keras.utils.set_random_seed(seed)
    model = getattr(keras.applications, name)(
        weights=None, input_shape=(32, 32, 3), classes=10, classifier_activation=None
    )
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    fit = (rgb(x), y)
    model.fit(*fit, epochs=epochs, batch_size=32, verbose=0)
    # a few hundred steps leave BatchNormalization's slow moving averages (momentum 0.99) far
    # from the data: re-estimate them, as a user would before evaluating
    structured.recalibrate_batchnorm(model, kf.Data.of(fit, model))
    return model, fit, (rgb(xt), yt)


def _settings(args) -> list[tuple[str, str | None, str]]:
    if args.split == "validation":
        return [("unit", scope, m) for scope in args.scopes for m in args.unit_methods]
    weight = [] if args.no_weight else [("weight", None, "default")]
    return [("unit", None, m) for m in args.unit_methods] + weight


def _run_model(rows, say, base, model, fit, held, classes, settings) -> None:
    for target in classes:
        for granularity, scope, method in settings:
            row = dict(base, **{"class": target, "granularity": granularity})
            try:
                row.update(forget_row(model, fit, held, target, granularity, scope, method))
            except Exception as err:  # a failed run is counted, not dropped
                row["error"] = f"{type(err).__name__}: {err}"
                row["scope"] = scope or api.DEFAULT_SCOPE["forget", granularity]
                row["method"] = method
                traceback.print_exc()
            rows.append(row)
            say(
                f"  {base['arch']} class {target} {granularity}/{row['scope']}/{method}: "
                + (
                    row.get("error")
                    or f"forget {row['forget_noft']:.3f} retain {row['retain_before']:.3f}->"
                    f"{row['retain_noft']:.3f} amount {row['amount']:.4f}"
                )
            )


def run(args, say) -> list[dict]:
    rows: list[dict] = []
    settings = _settings(args)
    for seed, arch, fit, held, model, _ in protocol.trained(args, say):
        base = {"seed": seed, "arch": arch}
        _run_model(rows, say, base, model, fit, held, args.classes, settings)
    for name in args.zoo if args.split == "test" else ():
        tick = time.perf_counter()
        model, fit, held = _zoo_model(name, args.seeds[0], splits("test", args.seeds[0]),
                                      args.zoo_epochs)  # fmt: skip
        accuracy = kf.evaluate(model, held).accuracy
        say(f"[seed {args.seeds[0]}] {name}: trained in {time.perf_counter() - tick:.0f}s, "
            f"test accuracy {accuracy:.3f}")  # fmt: skip
        base = {"seed": args.seeds[0], "arch": name, "dense_accuracy": accuracy}
        _run_model(rows, say, base, model, fit, held, args.zoo_classes, settings)
    return rows


def main(argv=None) -> int:
    p = protocol.parser(__doc__)
    p.add_argument("--classes", type=int, nargs="+", default=list(range(10)))
    p.add_argument("--zoo", nargs="*", default=[], help="keras.applications names (test half)")
    p.add_argument("--zoo-classes", type=int, nargs="+", default=[0, 4, 8])
    p.add_argument("--zoo-epochs", type=int, default=10)
    p.add_argument("--scopes", nargs="+", choices=SCOPES, default=list(SCOPES),
                   help="scopes the validation half compares")  # fmt: skip
    p.add_argument("--unit-methods", nargs="+", choices=list(METHODS), default=["default"],
                   help="unit scores to compare (default: the library's)")  # fmt: skip
    p.add_argument("--no-weight", action="store_true",
                   help="test half: leave out the weight-level rows")  # fmt: skip
    args = p.parse_args(argv)
    say = protocol.speaker(args.quiet)
    origin = provenance()
    start = time.perf_counter()
    rows = run(args, say)
    keys = ("arch", "granularity", "scope", "method")
    summary = summarize(rows, keys)
    where = protocol.where(args.split)
    print(
        f"\nforgetting one class, amount='auto', no fine-tuning, on the {where}; mean [min, max] "
        f"over seeds {args.seeds} × classes; forgot: forget accuracy <= {FORGOTTEN}; & kept: "
        f"and retain accuracy within {KEPT:.0%} of before\n" + table(summary, keys)
    )
    out = {"split": args.split, "settings": vars(args), "rows": rows, "summary": summary,
           "provenance": origin}  # fmt: skip
    if args.split == "validation":
        out["recommendation"] = recommend(summary)
        print(f"\nrecommended unit-forgetting scope/method: {out['recommendation']}")
    errors = sum("error" in r for r in rows)
    return protocol.finish("unit_forget", args, out, errors, start)


if __name__ == "__main__":
    sys.exit(main())
