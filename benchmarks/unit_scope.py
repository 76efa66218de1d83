"""The default scope of unit-level compression: ``scope="layer"`` against ``"global"``.

Measures what ``kf.prune(granularity="unit")`` should rank units by when no scope is
given: DISCEDIT-SP (``method="discedit"``, ``shrink=True``) at 30 % and 50 % of the
units, each unit ranked within its layer or against all layers together, on a small
MLP (softmax output) and the VGG- and ResNet-style CNNs of ``examples/discedit_cnn.py``.

Follows the protocol of benchmarks/README.md. For every seed, the training part of
``kf.datasets.load("digits", seed=seed)`` is split (stratified, 20 %,
``random_state=seed``) into a fit part, on which the models are trained, scored and
fine-tuned, and a validation part, on which every accuracy is measured. The test
split is never touched. Each row: validation accuracy right after pruning (NoFT, the
report's ``after``) and after one fine-tuning epoch (FT, lr 1e-3) of the same call,
and the parameters the shrunk model keeps.

    python benchmarks/unit_scope.py [--seeds 0 1 2] [--epochs 25] [--quiet] [--out PATH]
                                    [--archs mlp vgg resnet] [--sparsities 0.3 0.5]

Prints a table (mean [min, max] over the seeds) and the scope recommended by the
numbers (the higher mean FT accuracy, averaged over architectures and sparsities),
and writes benchmarks/results/unit_scope.json.

With ``--reconstruct``, the compared dimension is instead the least-squares refit of the
layers that read removed units (``kf.prune(..., reconstruct=False|True)``, see
keras_forget/surgery/reconstruct.py), at ``scope="layer"``; the recommendation is the
setting with the higher mean FT accuracy, and it is written to
benchmarks/results/unit_scope_reconstruct.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from protocol import ARCHITECTURES, VAL_FRACTION, fmt, spread  # noqa: E402
from protocol import validation_split as split  # noqa: E402
from provenance import provenance  # noqa: E402

import keras_forget as kf  # noqa: E402
from keras_forget import api  # noqa: E402
from keras_forget.files import write_json  # noqa: E402
from keras_forget.surgery import reconstruct as reconstruct_units  # noqa: E402

OUT = os.path.join(HERE, "results", "unit_scope.json")
OUT_RECONSTRUCT = os.path.join(HERE, "results", "unit_scope_reconstruct.json")
SCOPES = ("layer", "global")
RECONSTRUCT = (False, True)
SPARSITIES = (0.3, 0.5)
FINE_TUNE = kf.FineTune(epochs=1, learning_rate=1e-3)  # benchmarks/discedit.py's PRUNE_FT


def prune_row(
    model, fit, val, seed: int, sparsity: float, scope: str, reconstruct: bool | None = None
) -> dict:
    """One pruning call: NoFT and FT validation accuracy, parameters and units kept
    (``reconstruct=None``: the library's default)."""
    keras.utils.set_random_seed(seed)
    result = kf.prune(
        model,
        fit,
        sparsity=sparsity,
        granularity="unit",
        method="discedit",
        scope=scope,
        shrink=True,
        reconstruct=reconstruct,
        fine_tune=FINE_TUNE,
        eval_data=val,
        verbose=False,
    )
    r = result.report
    return {
        "before_val_acc": r.before.accuracy,
        "noft_val_acc": r.after.accuracy,
        "ft_val_acc": r.fine_tuned.accuracy,
        "params": int(result.model.count_params()),
        "units_removed": int(r.pruned),
        "units_total": int(r.total),
        "units_kept": {k: int(m.sum()) for k, m in result.unit_masks.items()},
        "units": {k: int(m.size) for k, m in result.unit_masks.items()},
        "seconds": r.seconds["total"],
    }


CHOICES = {"scope": SCOPES, "reconstruct": RECONSTRUCT}
DEFAULTS = {
    "scope": lambda: api.DEFAULT_SCOPE["compress", "unit"],
    "reconstruct": lambda: reconstruct_units.DEFAULT,
}


def summarize(rows, archs, sparsities, dim: str = "scope") -> list[dict]:
    """Per architecture × sparsity × setting of ``dim``: mean, min and max over the seeds."""
    out = []
    for arch in archs:
        for sparsity in sparsities:
            for setting in CHOICES[dim]:
                key = {"arch": arch, "sparsity": sparsity, dim: setting}
                runs = [r for r in rows if all(r[k] == v for k, v in key.items())]
                sel = [r for r in runs if "error" not in r]
                cell = dict(key, n=len(sel), errors=len(runs) - len(sel))
                if sel:
                    for name in ("noft_val_acc", "ft_val_acc", "params", "dense_val_acc"):
                        cell[name] = spread([r[name] for r in sel])
                    cell["params_kept"] = spread([r["params"] / r["dense_params"] for r in sel])
                out.append(cell)
    return out


def recommend(summary, dim: str = "scope") -> dict:
    """The setting of ``dim`` with the higher mean FT accuracy, averaged over the
    (arch, sparsity) cells that every setting completed."""
    SCOPES = CHOICES[dim]  # noqa: N806
    cells = {(c["arch"], c["sparsity"], c[dim]): c for c in summary if c["n"]}
    pairs = sorted({(a, s) for a, s, _ in cells if all((a, s, k) in cells for k in SCOPES)})
    default = DEFAULTS[dim]()
    if not pairs:
        return {dim: None, "library_default": default, "cells": []}
    ft = {key: cell["ft_val_acc"]["mean"] for key, cell in cells.items()}
    mean_ft = {k: float(np.mean([ft[a, s, k] for a, s in pairs])) for k in SCOPES}
    mean_noft = {
        k: float(np.mean([cells[a, s, k]["noft_val_acc"]["mean"] for a, s in pairs]))
        for k in SCOPES
    }
    best = max(SCOPES, key=lambda k: (mean_ft[k], k == default))
    wins = {
        k: sum(ft[a, s, k] > ft[a, s, o] for a, s in pairs for o in SCOPES if o != k)
        for k in SCOPES
    }
    return {
        dim: best,
        "criterion": "higher mean FT validation accuracy, averaged over architectures "
        "and sparsities",
        "mean_ft_val_acc": {str(k): v for k, v in mean_ft.items()},
        "mean_noft_val_acc": {str(k): v for k, v in mean_noft.items()},
        "cells_won_ft": {str(k): v for k, v in wins.items()},
        "cells": [list(p) for p in pairs],
        "library_default": default,
        "agrees_with_library_default": best == default,
    }


def table(summary, dim: str = "scope") -> str:
    width = 7 if dim == "scope" else 12
    lines = [
        f"{'arch':<7}{'sparsity':>8}  {dim:<{width}}{'n':>2}  {'NoFT val acc':<22}"
        f"{'FT val acc':<22}{'params kept':<24}{'kept':>6}"
    ]
    for c in summary:
        kept = f"{c['params_kept']['mean']:>6.1%}" if c["n"] else f"{'—':>6}"
        errors = f"  ({c['errors']} failed)" if c["errors"] else ""
        lines.append(
            f"{c['arch']:<7}{c['sparsity']:>8.2f}  {c[dim]!s:<{width}}{c['n']:>2}  "
            f"{fmt(c.get('noft_val_acc')):<22}{fmt(c.get('ft_val_acc')):<22}"
            f"{fmt(c.get('params'), 0):<24}{kept}{errors}"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=25, help="training epochs of each model")
    parser.add_argument(
        "--archs", nargs="+", choices=list(ARCHITECTURES), default=list(ARCHITECTURES)
    )
    parser.add_argument("--sparsities", type=float, nargs="+", default=list(SPARSITIES))
    parser.add_argument("--quiet", action="store_true", help="print only the table")
    parser.add_argument(
        "--reconstruct",
        action="store_true",
        help="compare reconstruct=False/True at scope='layer' instead of the two scopes",
    )
    parser.add_argument("--out", default=None, help="JSON path")
    args = parser.parse_args(argv)
    dim = "reconstruct" if args.reconstruct else "scope"
    if args.out is None:
        args.out = OUT_RECONSTRUCT if args.reconstruct else OUT
    settings = (
        [("layer", r) for r in RECONSTRUCT] if args.reconstruct else [(k, None) for k in SCOPES]
    )
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    start = time.perf_counter()
    origin = provenance()  # before any work: the code this run imported
    rows, models = [], []
    for seed in args.seeds:
        fit, val = split(seed)
        for arch in args.archs:
            build, fit_model = ARCHITECTURES[arch]
            tick = time.perf_counter()
            model = fit_model(build(seed=seed), (fit, None), epochs=args.epochs, seed=seed)
            dense = {
                "seed": seed,
                "arch": arch,
                "dense_val_acc": kf.evaluate(model, val).accuracy,
                "dense_params": int(model.count_params()),
            }
            seconds = time.perf_counter() - tick
            models.append(dict(dense, n_fit=len(fit[1]), n_val=len(val[1]), seconds=seconds))
            say(
                f"[seed {seed}] {arch}: dense val acc {dense['dense_val_acc']:.4f}, "
                f"{dense['dense_params']} params ({seconds:.0f}s)"
            )
            for sparsity in args.sparsities:
                for scope, rec in settings:
                    used = reconstruct_units.DEFAULT if rec is None else rec
                    row = dict(dense, sparsity=sparsity, scope=scope, reconstruct=used)
                    try:
                        row.update(prune_row(model, fit, val, seed, sparsity, scope, rec))
                        say(
                            f"   sp={sparsity} {scope:6} reconstruct={used!s:5}: "
                            f"NoFT {row['noft_val_acc']:.4f} "
                            f"FT {row['ft_val_acc']:.4f} params {row['params']} "
                            f"units {row['units_removed']}/{row['units_total']}"
                        )
                    except Exception as e:  # recorded, reported and counted below
                        row["error"] = f"{type(e).__name__}: {e}"
                        row["traceback"] = traceback.format_exc()
                        print(f"   FAILED sp={sparsity} {scope} {used}: {row['error']}", flush=True)
                    rows.append(row)
            keras.backend.clear_session()
    summary = summarize(rows, args.archs, args.sparsities, dim)
    choice = recommend(summary, dim)
    seconds = time.perf_counter() - start
    failed = [r for r in rows if "error" in r]
    print(
        "\nDISCEDIT-SP, shrink=True"
        + (", scope='layer'" if args.reconstruct else f", reconstruct={reconstruct_units.DEFAULT}")
        + f", FT = {FINE_TUNE.epochs} epoch at lr "
        f"{FINE_TUNE.learning_rate}; validation accuracy (stratified {VAL_FRACTION:.0%} of "
        f"the digits training split), mean [min, max] over seeds {args.seeds}; "
        "test split never touched\n" + table(summary, dim)
    )
    if choice[dim] is None:
        print(f"\nrecommended {dim}: none (no architecture × sparsity completed with both)")
    else:
        means = ", ".join(f"{k} {v:.4f}" for k, v in choice["mean_ft_val_acc"].items())
        print(
            f"\nrecommended {dim}: {choice[dim]} (mean FT val acc over "
            f"{len(choice['cells'])} architecture × sparsity cells: {means}); library "
            f"default {choice['library_default']!r} "
            + ("agrees" if choice["agrees_with_library_default"] else "DISAGREES")
        )
    if len(args.seeds) < 3 or len(args.archs) < 3:
        print("note: fewer than the protocol's 3 seeds and 3 architectures")
    if failed:
        print(f"{len(failed)} of {len(rows)} runs FAILED (errors recorded in the JSON rows)")
    result = {
        "protocol": {
            "dataset": "digits (kf.datasets.load('digits', seed=seed))",
            "split": f"stratified {VAL_FRACTION:.0%} validation split of the training part, "
            "random_state=seed; models trained, scored and fine-tuned on the rest",
            "test_split": "never touched",
            "seeds": args.seeds,
            "architectures": args.archs,
            "sparsities": args.sparsities,
            "compared": dim,
            "settings": [{"scope": k, "reconstruct": r} for k, r in settings],
            "spread": "mean, min and max over the seeds",
        },
        "config": {
            "epochs": args.epochs,
            "method": "discedit",
            "granularity": "unit",
            "shrink": True,
            "reconstruct": "compared" if args.reconstruct else reconstruct_units.DEFAULT,
            "fine_tune": {"epochs": FINE_TUNE.epochs, "learning_rate": FINE_TUNE.learning_rate},
            "noft": "report.after of the fine-tuning call (the state before fine-tuning)",
        },
        "provenance": origin,
        "recommendation": choice,
        "summary": summary,
        "models": models,
        "rows": rows,
        "failed": len(failed),
        "seconds": seconds,
    }
    path = write_json(args.out, result)
    print(f"\n{seconds:.0f}s; wrote {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
