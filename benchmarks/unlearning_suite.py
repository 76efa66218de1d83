"""Unlearning on the digits: our default against SSD, fine-tuning, gradient ascent, random labels
and retraining, on every metric of ``kf.evaluate_unlearning``.

Scenarios: forgetting each class (``--classes``, default 0-9) and forgetting a random 10 % of
the training examples, on an MLP (``keras_forget.models.digits_mlp``, softmax output) and a
residual CNN (``examples/discedit_cnn.resnet``, logits), for each seed (default 0, 1, 2).

Follows the protocol of benchmarks/README.md. For every seed, the training part of
``kf.datasets.load("digits", seed=seed)`` is split (stratified, 20 %, ``random_state=seed``)
into a fit part, on which every model is trained and every method forgets, and a validation
part. The baselines' hyper-parameters (learning rate and epochs of fine-tuning, gradient
ascent and random labels; SSD's α) are chosen on the validation part of the first seed, per
architecture and scenario, over the classes ``--tune-classes`` (and one random 10 % draw):
the setting whose forget accuracy, validation accuracy and MIA-efficacy (validation examples
as non-members) are closest to the retrained model's (sum of absolute differences). Our
default (``kf.prune_for_class`` with its defaults; ``eval_data`` = the validation part for
examples, which ``amount="auto"`` needs) and SSD with its published α = 10, λ = 1 are not
tuned. Everything is then reported once on the untouched test split: mean and [min, max]
over seeds (and classes). Time ratios divide each method's wall time by the retraining's, in
the same run.

    python benchmarks/unlearning_suite.py [--seeds 0 1 2] [--classes 0 1 ...] [--archs mlp resnet]
                                          [--quick] [--quiet] [--out PATH] [--report-dir DIR]

``--quick``: seed 0, class 3, tuning on class 3, smaller tuning grids. Prints two tables and the
targets, writes benchmarks/results/unlearning_suite.json and one HTML + Markdown report per
architecture and scenario (benchmarks/results/unlearning_suite_<arch>_<scenario>.html).
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import time
import traceback
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from discedit_cnn import resnet  # noqa: E402
from discedit_cnn import train as train_logits  # noqa: E402
from provenance import provenance  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import keras_forget as kf  # noqa: E402
from keras_forget import models  # noqa: E402
from keras_forget.files import write_json  # noqa: E402

RESULTS = os.path.join(HERE, "results")
VAL_FRACTION = 0.2
RANDOM_FRACTION = 0.1
RESNET_WIDTH = 16
ARCHS = {"mlp": 40, "resnet": 20}  # name: training epochs (original and retrained models)
#: Validation grids: (name, function, [settings]).
GRIDS = {
    "finetune": [dict(learning_rate=lr, epochs=e) for lr in (0.01, 0.03, 0.1) for e in (2, 5)],
    "gradient_ascent": [dict(learning_rate=lr, epochs=1) for lr in (0.003, 0.01, 0.03, 0.1)],
    "random_labels": [
        dict(learning_rate=lr, epochs=e) for lr in (0.003, 0.01, 0.03) for e in (1, 3)
    ],
    "ssd": [dict(alpha=a) for a in (1.0, 3.0, 10.0, 30.0)],
}
QUICK_GRIDS = {
    "finetune": [dict(learning_rate=lr, epochs=2) for lr in (0.01, 0.1)],
    "gradient_ascent": [dict(learning_rate=lr, epochs=1) for lr in (0.01, 0.03)],
    "random_labels": [dict(learning_rate=lr, epochs=1) for lr in (0.01, 0.03)],
    "ssd": [dict(alpha=a) for a in (3.0, 10.0)],
}
BASELINES = {
    "finetune": kf.finetune_baseline,
    "gradient_ascent": kf.gradient_ascent,
    "random_labels": kf.random_labels,
    "ssd": kf.ssd,
}
METHODS = ("ours", "ssd (α=10, λ=1)", "ssd (val α)", "finetune", "gradient_ascent",
           "random_labels", "retrain")  # fmt: skip
CURVE_AMOUNTS = (0.0003, 0.001, 0.003, 0.01, 0.03)


def build(arch: str, seed: int) -> keras.Model:
    if arch == "mlp":
        return models.digits_mlp(seed=seed)
    return resnet(width=RESNET_WIDTH, seed=seed)


def fit_model(arch: str, x, y, seed: int) -> keras.Model:
    """The original model: Adam 1e-3, batch 32, the architecture's epochs (as retraining)."""
    if arch == "mlp":
        return models.train(build(arch, seed), x, y, epochs=ARCHS[arch], seed=seed)
    return train_logits(build(arch, seed), ((x, y), None), epochs=ARCHS[arch], seed=seed)


def splits(seed: int):
    """(fit, validation, test) for one seed."""
    (x, y), test = kf.datasets.load("digits", seed=seed)
    xf, xv, yf, yv = train_test_split(x, y, test_size=VAL_FRACTION, stratify=y, random_state=seed)
    return (xf, yf), (xv, yv), test


def scenario_sets(fit, scenario, seed: int):
    """(forget arrays, retain arrays, keyword for the methods) of one scenario."""
    x, y = fit
    if scenario == "random":
        rng = np.random.default_rng(seed)
        chosen = np.zeros(len(y), bool)
        chosen[rng.permutation(len(y))[: int(round(RANDOM_FRACTION * len(y)))]] = True
    else:
        chosen = y == scenario
    forget, retain = (x[chosen], y[chosen]), (x[~chosen], y[~chosen])
    how = {"forget": forget} if scenario == "random" else {"target_class": int(scenario)}
    return forget, retain, how


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def ours(model, fit, how, val):
    """``kf.prune_for_class`` with its defaults; None if ``forget=`` does not exist yet."""
    if "forget" in how:
        if "forget" not in inspect.signature(kf.prune_for_class).parameters:
            return None
        return kf.prune_for_class(model, fit, forget=how["forget"], eval_data=val, verbose=False)
    return kf.prune_for_class(model, fit, target_class=how["target_class"], verbose=False)


def retrain(arch, fit, how, seed):
    return kf.retrain_baseline(
        lambda: build(arch, seed), fit, epochs=ARCHS[arch], seed=seed, verbose=False, **how
    )


def gap(e, gold) -> float:
    """Validation distance to the retrained model (the tuning criterion)."""
    return (
        abs(e.forget_accuracy - gold.forget_accuracy)
        + abs(e.test_accuracy - gold.test_accuracy)
        + abs(e.mia_efficacy - gold.mia_efficacy)
    )


def tune(arch, model, fit, val, scenarios, grids, seed, say) -> dict:
    """For each baseline, the setting closest to retraining on the validation part."""
    gaps = {name: np.zeros(len(grid)) for name, grid in grids.items()}
    for scenario in scenarios:
        forget, retain, how = scenario_sets(fit, scenario, seed)
        gold = retrain(arch, fit, how, seed).model
        judge = dict(forget=forget, retain=retain, test=val, seed=seed)
        reference = kf.evaluate_unlearning(gold, **judge)
        for name, grid in grids.items():
            for i, setting in enumerate(grid):
                kw = dict(setting, verbose=False) | ({} if name == "ssd" else {"seed": seed})
                result = BASELINES[name](model, fit, **how, **kw)
                gaps[name][i] += gap(kf.evaluate_unlearning(result.model, **judge), reference)
    chosen = {}
    for name, grid in grids.items():
        best = int(np.argmin(gaps[name]))
        chosen[name] = {"setting": grid[best], "val_gap": float(gaps[name][best] / len(scenarios)),
                        "grid": [dict(s, val_gap=float(g / len(scenarios)))
                                 for s, g in zip(grid, gaps[name])]}  # fmt: skip
        say(f"   tuned {name}: {grid[best]} (mean validation gap {chosen[name]['val_gap']:.3f})")
    return chosen


def run_scenario(arch, model, fit, val, test, scenario, seed, tuned, evaluations) -> list[dict]:
    """Every method on one scenario, and the original model: one row each, errors recorded.

    Adds each :class:`kf.UnlearningEvaluation` to ``evaluations``.
    """
    forget, retain, how = scenario_sets(fit, scenario, seed)
    gold, retrain_s = timed(retrain, arch, fit, how, seed)
    judge = dict(forget=forget, retain=retain, test=test, retrained=gold.model, seed=seed,
                 retrain_seconds=retrain_s)  # fmt: skip
    calls = {
        "ours": lambda: ours(model, fit, how, val),
        "ssd (α=10, λ=1)": lambda: kf.ssd(model, fit, verbose=False, **how),
        "ssd (val α)": lambda: kf.ssd(model, fit, verbose=False, **how, **tuned["ssd"]["setting"]),
        **{
            name: (lambda n=name: BASELINES[n](model, fit, verbose=False, seed=seed, **how,
                                               **tuned[n]["setting"]))
            for name in ("finetune", "gradient_ascent", "random_labels")
        },
    }  # fmt: skip
    rows = []
    for method in (*calls, "retrain", "original"):
        row = {"arch": arch, "scenario": str(scenario), "seed": seed, "method": method}
        try:
            if method == "retrain":
                unlearned, seconds = gold.model, retrain_s
            elif method == "original":
                unlearned, seconds = model, None
            else:
                result, seconds = timed(calls[method])
                unlearned = None if result is None else result.model
                row["amount"] = None if result is None else float(result.report.amount)
            if unlearned is None:
                row["not_available"] = "kf.prune_for_class has no `forget=` argument"
            else:
                evaluation = kf.evaluate_unlearning(unlearned, seconds=seconds, **judge)
                evaluations[arch, str(scenario), seed, method] = evaluation
                row.update(evaluation.to_dict())
                retained = [a for c, a in evaluation.per_class.items()
                            if c not in evaluation.forgotten_classes]  # fmt: skip
                row["worst_class_retain"] = float(min(retained))
        except Exception as e:  # recorded, reported and counted
            row["error"] = f"{type(e).__name__}: {e}"
            row["traceback"] = traceback.format_exc()
        rows.append(row)
    return rows


def curve(model, fit, test, target: int) -> dict:
    """Our method at fixed amounts: forget and retain test accuracy (the report's curve)."""
    fa, ra = [], []
    for amount in CURVE_AMOUNTS:
        result = kf.prune_for_class(
            model, fit, target, amount=amount, eval_data=test, verbose=False
        )
        fa.append(result.report.after.forget_accuracy)
        ra.append(result.report.after.retain_accuracy)
    return {f"forget acc (class {target})": (list(CURVE_AMOUNTS), fa),
            "retain acc": (list(CURVE_AMOUNTS), ra)}  # fmt: skip


COLUMNS_A = (("forget_accuracy", "forget acc"), ("retain_accuracy", "retain acc"),
             ("test_accuracy", "test acc"), ("worst_class_retain", "worst-class retain"),
             ("time_ratio", "time/retrain"))  # fmt: skip
COLUMNS_B = (("mia_efficacy", "MIA-eff (SalUn)"), ("mia_entropy", "MIA-ent (SSD)"),
             ("mia_loss", "MIA-loss (SCRUB)"), ("retrain_agreement", "agree (test)"),
             ("retrain_kl", "KL to retrain"))  # fmt: skip


def kind(scenario: str) -> str:
    return "random" if scenario == "random" else "class"


def spread(values) -> dict | None:
    v = np.asarray([x for x in values if x is not None], float)
    if not v.size:
        return None
    return {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max())}


def summarize(rows) -> list[dict]:
    """Per architecture × scenario kind × method: mean, min and max over the runs."""
    out = []
    keys = dict.fromkeys((r["arch"], kind(r["scenario"]), r["method"]) for r in rows)
    for arch, k, method in keys:
        runs = [
            r for r in rows if (r["arch"], kind(r["scenario"]), r["method"]) == (arch, k, method)
        ]
        ok = [r for r in runs if "error" not in r and "not_available" not in r]
        cell_ = {"arch": arch, "scenario": k, "method": method, "n": len(ok),
                 "errors": sum("error" in r for r in runs),
                 "not_available": sum("not_available" in r for r in runs)}  # fmt: skip
        for attr, _ in COLUMNS_A + COLUMNS_B:
            cell_[attr] = spread(r.get(attr) for r in ok)
        out.append(cell_)
    return out


def fmt(s: dict | None) -> str:
    return "—" if s is None else f"{s['mean']:.3f} [{s['min']:.2f}, {s['max']:.2f}]"


def table(summary, columns) -> str:
    head = f"{'arch':<7}{'scenario':<9}{'method':<17}{'n':>3}  " + "".join(
        f"{title:<20}" for _, title in columns
    )
    lines = [head]
    for c in summary:
        if c["n"]:
            cells = "".join(f"{fmt(c[attr]):<20}" for attr, _ in columns)
        else:
            cells = "not available" if c["not_available"] else "FAILED"
        note = f"  ({c['errors']} failed)" if c["errors"] else ""
        lines.append(f"{c['arch']:<7}{c['scenario']:<9}{c['method']:<17}{c['n']:>3}  {cells}{note}")
    return "\n".join(lines)


def paired(rows, method, attr, reference="retrain", absolute=True):
    """Mean over runs of (method − reference) for ``attr``, runs paired by arch/scenario/seed."""
    index = {(r["arch"], r["scenario"], r["seed"], r["method"]): r for r in rows}
    diffs = []
    for (arch, scenario, seed, m), r in index.items():
        other = index.get((arch, scenario, seed, reference))
        if m == method and other and r.get(attr) is not None and other.get(attr) is not None:
            d = r[attr] - other[attr]
            diffs.append(abs(d) if absolute else d)
    return float(np.mean(diffs)) if diffs else None


EXPECTED = {  # the retrained model's value in each attack's convention
    "class": {"mia_efficacy": 1.0, "mia_entropy": 0.0, "mia_loss": 0.5},
    "random": {"mia_loss": 0.5},
}


def targets(rows, summary) -> list[dict]:
    """The comparisons the suite was built for, each with its numbers and PASS / MISS."""
    out = []
    cells = {(c["arch"], c["scenario"], c["method"]): c for c in summary}
    for arch in dict.fromkeys(r["arch"] for r in rows):
        sub = [r for r in rows if r["arch"] == arch and kind(r["scenario"]) == "class"]
        mine = cells.get((arch, "class", "ours"))
        for rival in ("ssd (α=10, λ=1)", "ssd (val α)"):
            theirs = cells.get((arch, "class", rival))
            if not sub or not mine or not theirs or not mine["n"] or not theirs["n"]:
                continue
            checks = {
                "worst-class retain acc higher": (
                    mine["worst_class_retain"]["mean"],
                    theirs["worst_class_retain"]["mean"],
                    "gt",
                )
            }
            for attr in ("mia_efficacy", "mia_entropy", "mia_loss"):
                checks[f"|{attr} − retrain| lower"] = (
                    paired(sub, "ours", attr),
                    paired(sub, rival, attr),
                    "lt",
                )
            checks["time ratio lower"] = (
                mine["time_ratio"]["mean"], theirs["time_ratio"]["mean"], "lt")  # fmt: skip
            for what, (a, b, how) in checks.items():
                ok = a is not None and b is not None and (a > b if how == "gt" else a < b)
                out.append({"arch": arch, "target": f"class: ours vs {rival}: {what}",
                            "ours": a, "other": b, "pass": bool(ok),
                            "tie": a is not None and a == b})  # fmt: skip
        rand = [r for r in rows if r["arch"] == arch and r["scenario"] == "random"]
        mine = cells.get((arch, "random", "ours"))
        gold = cells.get((arch, "random", "retrain"))
        if rand and mine and gold and mine["n"] and gold["n"]:
            for attr, limit in (("mia_efficacy", 0.05), ("test_accuracy", 0.01)):
                d = abs(mine[attr]["mean"] - gold[attr]["mean"])
                out.append({"arch": arch, "target": f"random 10%: |{attr} − retrain| <= {limit}",
                            "ours": d, "other": limit, "pass": d <= limit})  # fmt: skip
        for k, expected in EXPECTED.items():
            gold = cells.get((arch, k, "retrain"))
            if not gold or not gold["n"]:
                continue
            for attr, value in expected.items():
                s = gold[attr]
                ok = s["min"] - 1e-9 <= value <= s["max"] + 1e-9 or abs(s["mean"] - value) <= 0.05
                out.append({"arch": arch, "target": f"{k}: retrain {attr} ≈ {value} (convention)",
                            "ours": s["mean"], "other": value, "pass": bool(ok),
                            "spread": [s["min"], s["max"]]})  # fmt: skip
    return out


def write_reports(rows, evaluations, curves, report_dir, origin, say) -> list[str]:
    """One HTML + Markdown report per architecture × scenario kind."""
    paths = []
    for arch, k in dict.fromkeys((r["arch"], kind(r["scenario"])) for r in rows):
        runs = {}
        for (a, scenario, _seed, method), e in evaluations.items():
            if a == arch and kind(scenario) == k:
                runs.setdefault(method, []).append(e)
        if not runs:
            continue
        per_class = None
        if k == "class":  # runs forget different classes: show the first run of each method
            first = next(s for a, s, _, _ in evaluations if a == arch and kind(s) == k)
            seed = min(sd for a, s, sd, _ in evaluations if a == arch and s == first)
            per_class = {m: e.per_class for (a, s, sd, m), e in evaluations.items()
                         if (a, s, sd) == (arch, first, seed)}  # fmt: skip
        note = (
            f"{arch} on the digits, {'each class' if k == 'class' else 'a random 10 %'} "
            "forgotten; test split; mean [min, max] over seeds"
            + (" and classes" if k == "class" else "")
            + ". Baselines' settings chosen on a validation split of the training part."
        )
        if per_class:
            note += f" Per-class chart: class {first}, seed {seed}."
        html_path, md_path = kf.report(
            runs,
            os.path.join(report_dir, f"unlearning_suite_{arch}_{k}.html"),
            per_class=per_class,
            curves=curves.get((arch, k)),
            title=f"Unlearning suite: {arch}, {k} forgetting",
            notes=[note],
            meta={"commit": origin["commit"], "dirty": origin["dirty"], **origin["versions"]},
        )
        paths += [html_path, md_path]
        say(f"wrote {html_path}")
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--classes", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--tune-classes", type=int, nargs="+", default=[0, 5])
    parser.add_argument("--archs", nargs="+", choices=list(ARCHS), default=list(ARCHS))
    parser.add_argument("--no-random", action="store_true", help="skip random 10 % forgetting")
    parser.add_argument("--quick", action="store_true",
                        help="seed 0, class 3 (tuned on class 3), small grids")  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="print only the tables")
    parser.add_argument("--out", default=os.path.join(RESULTS, "unlearning_suite.json"))
    parser.add_argument("--report-dir", default=RESULTS)
    args = parser.parse_args(argv)
    grids = GRIDS
    if args.quick:
        args.seeds, args.classes, args.tune_classes, grids = [0], [3], [3], QUICK_GRIDS
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    warnings.filterwarnings("ignore", category=UserWarning, module="keras_forget")
    start = time.perf_counter()
    origin = provenance()  # before any work: the code this run imported
    scenarios = [*args.classes] + ([] if args.no_random else ["random"])
    tune_scenarios = [*args.tune_classes] + ([] if args.no_random else ["random"])
    rows, evaluations, curves, tuned, trained = [], {}, {}, {}, []
    for seed in args.seeds:
        fit, val, test = splits(seed)
        for arch in args.archs:
            model, seconds = timed(fit_model, arch, *fit, seed)
            trained.append({"seed": seed, "arch": arch, "seconds": seconds,
                            "test_acc": kf.evaluate(model, test).accuracy})  # fmt: skip
            say(f"[seed {seed}] {arch}: trained in {seconds:.0f}s, test acc "
                f"{trained[-1]['test_acc']:.3f}")  # fmt: skip
            for k in ("class", "random"):
                todo = [s for s in tune_scenarios if kind(s) == k]
                if todo and (arch, k) not in tuned:
                    say(f"  tuning on the validation split ({arch}, {k}: {todo})")
                    tuned[arch, k] = tune(arch, model, fit, val, todo, grids, seed, say)
            if args.classes and (arch, "class") not in curves:
                curves[arch, "class"] = curve(model, fit, test, args.classes[0])
            for scenario in scenarios:
                tick = time.perf_counter()
                new = run_scenario(arch, model, fit, val, test, scenario, seed,
                                   tuned[arch, kind(scenario)], evaluations)  # fmt: skip
                rows += new
                failed = [r["method"] for r in new if "error" in r]
                say(f"  {arch} {scenario}: {len(new)} rows in {time.perf_counter() - tick:.0f}s"
                    + (f", FAILED: {failed}" if failed else ""))  # fmt: skip
            keras.backend.clear_session()
    summary = summarize(rows)
    goals = targets(rows, summary)
    seconds = time.perf_counter() - start
    print("\nTest split; mean [min, max] over seeds " + str(args.seeds)
          + " (and classes); baselines tuned on the validation split\n" + table(summary, COLUMNS_A)
          + "\n\n" + table(summary, COLUMNS_B))  # fmt: skip
    print("\ntargets:")
    for g in goals:
        verdict = "PASS" if g["pass"] else "TIE " if g.get("tie") else "MISS"
        print(f"  {verdict}  {g['arch']:<7}{g['target']}: "
              f"{g['ours']:.4f} vs {g['other']:.4f}" if g["ours"] is not None
              else f"  MISS  {g['arch']:<7}{g['target']}: not measured")  # fmt: skip
    if len(args.seeds) < 3:
        print("note: fewer than the protocol's 3 seeds")
    failed = [r for r in rows if "error" in r]
    if failed:
        print(f"{len(failed)} of {len(rows)} runs FAILED (errors recorded in the JSON rows)")
    reports = write_reports(rows, evaluations, curves, args.report_dir, origin, say)
    result = {
        "protocol": {
            "dataset": "digits (kf.datasets.load('digits', seed=seed))",
            "split": f"stratified {VAL_FRACTION:.0%} validation split of the training part "
            "(random_state=seed); models trained and methods run on the rest",
            "tuning": "baselines' settings chosen on the validation split of the first seed, "
            f"classes {args.tune_classes} (+ one random draw): least |forget acc| + |val acc| "
            "+ |MIA-efficacy| distance to the retrained model",
            "test_split": "reported once, never used for a choice",
            "seeds": args.seeds,
            "spread": "mean, min and max over seeds (and classes)",
        },
        "config": {
            "archs": {a: {"epochs": ARCHS[a]} for a in args.archs},
            "resnet_width": RESNET_WIDTH,
            "classes": args.classes,
            "random_fraction": RANDOM_FRACTION,
            "quick": args.quick,
            "curve_amounts": CURVE_AMOUNTS,
        },  # fmt: skip
        "provenance": origin,
        "tuned": {f"{a}/{k}": v for (a, k), v in tuned.items()},
        "models": trained,
        "summary": summary,
        "targets": goals,
        "curves": {f"{a}/{k}": v for (a, k), v in curves.items()},
        "rows": rows,
        "failed": len(failed),
        "reports": reports,
        "seconds": seconds,
    }
    path = write_json(args.out, result)
    print(f"\n{seconds:.0f}s; wrote {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
