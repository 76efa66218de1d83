"""Component-level editing (DISCEDIT) of two small CNNs on the digits.

(a) Unlearning every class 0-9 on a VGG-style and a ResNet-style CNN:
    forget / retain accuracy on the test split right after masking (NoFT) and
    after one fine-tuning epoch on the retained training data (FT), for
    DISCEDIT-U (``kf.prune_for_class(..., granularity="unit")``) beside
    weight-level grad×weight (``kf.prune_for_class``'s default). Both methods
    score the same stratified subset of the training split and fine-tune with
    the same settings.
(b) Structured pruning of 25/50/75% of the units of every prunable layer:
    parameters and FLOPs removed, accuracy drop NoFT / FT for DISCEDIT-SP
    (``kf.prune(..., granularity="unit", scope="layer", shrink=True)``) and the
    L1 filter norm; for DISCEDIT-SP, the float TFLite file size and the
    measured interpreter latency of the shrunk model against the original
    (medians of interleaved runs, single thread).

    python benchmarks/discedit.py [--classes 0 1 ...] [--sparsities 0.25 0.5 0.75]

Prints tables and writes benchmarks/results/discedit.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from discedit_cnn import resnet, train, vgg  # noqa: E402

import keras_forget as kf  # noqa: E402
from keras_forget import api  # noqa: E402
from keras_forget.surgery import structured  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "discedit.json")
FORGET_FT = kf.FineTune(epochs=1, learning_rate=1e-4)
PRUNE_FT = kf.FineTune(epochs=1, learning_rate=1e-3)
#: Units unlearned by default: 10 % of all units, ranked globally (the recorded results).
UNIT_AMOUNT = 0.1
TARGETS = {
    "unlearn_noft_forget_fall_pts": 80.0,
    "unlearn_noft_retain_drop_pts": 2.0,
    "unlearn_ft_retain_drop_pts": 0.5,
    "unlearn_ft_forget_acc": 0.05,
    "structured_components_removed": 0.5,
    "structured_ft_drop_pts": 1.0,
    "tflite_latency_ratio": 1.8,
}


def stratified(data, per_class: int, seed: int = 0):
    """At most ``per_class`` examples of each class."""
    x, y = data
    rng = np.random.default_rng(seed)
    keep = np.concatenate(
        [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)]
    )
    keep.sort()
    return x[keep], y[keep]


def without_class(data, target):
    """``(x, y)`` without the examples of ``target``."""
    x, y = data
    keep = y != target
    return x[keep], y[keep]


def unlearn(model, name, score_data, train_data, test, target, unit_amount):
    """One class forgotten by both methods: a row per method."""
    tune = kf.FineTune(
        epochs=FORGET_FT.epochs,
        learning_rate=FORGET_FT.learning_rate,
        data=without_class(train_data, target),
    )
    rows = []
    for method in ("discedit", "gradxweight"):
        start = time.perf_counter()
        if method == "discedit":
            result = kf.prune_for_class(
                model,
                score_data,
                target,
                granularity="unit",
                amount=unit_amount,
                fine_tune=tune,
                eval_data=test,
                verbose=False,
            )
        else:
            result = kf.prune_for_class(
                model, score_data, target, fine_tune=tune, eval_data=test, verbose=False
            )
        r = result.report
        rows.append(
            {
                "model": name,
                "class": target,
                "method": method,
                "amount": r.amount,
                "forget_before": r.before.forget_accuracy,
                "retain_before": r.before.retain_accuracy,
                "forget_noft": r.after.forget_accuracy,
                "retain_noft": r.after.retain_accuracy,
                "forget_ft": r.fine_tuned.forget_accuracy,
                "retain_ft": r.fine_tuned.retain_accuracy,
                "seconds": time.perf_counter() - start,
            }
        )
    return rows


def export_tflite(model, directory, sample):
    """Exports with kf.export (TFLite parity checked); returns the report."""
    return kf.export(model, directory, sample=sample, verbose=False)


def interleaved_latency(paths, batch, runs, seed=0):
    """Median seconds per invoke of each TFLite file, runs interleaved, one thread."""
    x = np.random.default_rng(seed).random((batch, 8, 8, 1), np.float32)
    interpreters = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in paths:
            it = tf.lite.Interpreter(model_path=path, num_threads=1)
            inp = it.get_input_details()[0]["index"]
            it.resize_tensor_input(inp, x.shape)
            it.allocate_tensors()
            it.set_tensor(inp, x)
            interpreters.append(it)
    times = [[] for _ in paths]
    for it in interpreters:  # warm up
        for _ in range(10):
            it.invoke()
    for _ in range(runs):
        for i, it in enumerate(interpreters):
            start = time.perf_counter()
            it.invoke()
            times[i].append(time.perf_counter() - start)
    return [float(np.median(t)) for t in times]


def prune_rows(model, name, train_data, test, sparsities, tmp, runs):
    """Structured pruning rows for both scores at each sparsity."""
    base = kf.evaluate(model, test).accuracy
    params, flops = structured.count_params(model), structured.flops(model)
    sample = test[0][:16]
    original = export_tflite(model, os.path.join(tmp, f"{name}_original"), sample)
    rows = []
    for sparsity in sparsities:
        for method in ("discedit", "l1"):
            start = time.perf_counter()
            result = kf.prune(
                model,
                train_data,
                sparsity=sparsity,
                method=method,
                granularity="unit",
                scope="layer",
                shrink=True,
                fine_tune=PRUNE_FT,
                eval_data=test,
                verbose=False,
            )
            r, small = result.report, result.model
            row = {
                "model": name,
                "sparsity": sparsity,
                "method": method,
                "components_removed": r.pruned / r.total,
                "units_removed": r.pruned,
                "units_total": r.total,
                "params_removed": 1 - structured.count_params(small) / params,
                "flops_removed": 1 - structured.flops(small) / flops,
                "accuracy_before": base,
                "accuracy_noft": r.after.accuracy,
                "accuracy_ft": r.fine_tuned.accuracy,
                "drop_noft_pts": 100 * (base - r.after.accuracy),
                "drop_ft_pts": 100 * (base - r.fine_tuned.accuracy),
                "seconds": time.perf_counter() - start,
            }
            if method == "discedit":
                shrunk = export_tflite(small, os.path.join(tmp, f"{name}_{sparsity}"), sample)
                row["tflite_bytes"] = shrunk.sizes["model.tflite"]["raw"]
                row["tflite_bytes_original"] = original.sizes["model.tflite"]["raw"]
                row["tflite_size_ratio"] = row["tflite_bytes_original"] / row["tflite_bytes"]
                row["tflite_max_abs_diff"] = shrunk.max_abs_diff["model.tflite"]
                for batch in (1, 64):
                    orig_s, small_s = interleaved_latency(
                        [original.tflite_path, shrunk.tflite_path], batch, runs
                    )
                    row[f"latency_b{batch}_original_ms"] = 1e3 * orig_s
                    row[f"latency_b{batch}_shrunk_ms"] = 1e3 * small_s
                    row[f"latency_b{batch}_ratio"] = orig_s / small_s
            rows.append(row)
    return rows


def summarize_unlearning(rows):
    lines = [
        f"{'model':8}{'method':13}{'forget NoFT':>12}{'retain drop':>12}{'worst':>7}"
        f"{'forget FT':>11}{'retain drop':>12}{'worst':>7}"
    ]
    summary = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        for method in dict.fromkeys(r["method"] for r in rows):
            sel = [r for r in rows if r["model"] == model and r["method"] == method]
            noft = [100 * (r["retain_before"] - r["retain_noft"]) for r in sel]
            ft = [100 * (r["retain_before"] - r["retain_ft"]) for r in sel]
            fall = [100 * (r["forget_before"] - r["forget_noft"]) for r in sel]
            s = {
                "forget_noft_mean": float(np.mean([r["forget_noft"] for r in sel])),
                "forget_fall_noft_min_pts": float(np.min(fall)),
                "retain_drop_noft_mean_pts": float(np.mean(noft)),
                "retain_drop_noft_max_pts": float(np.max(noft)),
                "forget_ft_mean": float(np.mean([r["forget_ft"] for r in sel])),
                "forget_ft_max": float(np.max([r["forget_ft"] for r in sel])),
                "retain_drop_ft_mean_pts": float(np.mean(ft)),
                "retain_drop_ft_max_pts": float(np.max(ft)),
            }
            summary[f"{model}/{method}"] = s
            lines.append(
                f"{model:8}{method:13}{s['forget_noft_mean']:>12.3f}"
                f"{s['retain_drop_noft_mean_pts']:>12.2f}{s['retain_drop_noft_max_pts']:>7.2f}"
                f"{s['forget_ft_mean']:>11.3f}{s['retain_drop_ft_mean_pts']:>12.2f}"
                f"{s['retain_drop_ft_max_pts']:>7.2f}"
            )
    return "\n".join(lines), summary


def summarize_pruning(rows):
    lines = [
        f"{'model':8}{'sparsity':>9} {'method':9}{'params-':>8}{'FLOPs-':>8}"
        f"{'drop NoFT':>10}{'drop FT':>9}{'TFLite x':>9}{'lat b1 x':>9}{'lat b64 x':>10}"
    ]
    for r in rows:
        extra = (
            ""
            if "tflite_size_ratio" not in r
            else (
                f"{r['tflite_size_ratio']:>9.2f}{r['latency_b1_ratio']:>9.2f}{r['latency_b64_ratio']:>10.2f}"
            )
        )
        lines.append(
            f"{r['model']:8}{r['sparsity']:>9.2f} {r['method']:9}{r['params_removed']:>8.1%}"
            f"{r['flops_removed']:>8.1%}{r['drop_noft_pts']:>10.2f}{r['drop_ft_pts']:>9.2f}{extra}"
        )
    return "\n".join(lines)


def check_targets(summary, prune):
    """Each target with the measured value and whether it is met."""
    t, out = TARGETS, {}
    for key, s in summary.items():
        if not key.endswith("/discedit"):
            continue
        model = key.split("/")[0]
        out[
            f"{model}: NoFT forget falls >= {t['unlearn_noft_forget_fall_pts']} pts (worst class)"
        ] = (
            s["forget_fall_noft_min_pts"],
            s["forget_fall_noft_min_pts"] >= t["unlearn_noft_forget_fall_pts"],
        )
        out[
            f"{model}: NoFT retain drop <= {t['unlearn_noft_retain_drop_pts']} pts (worst class)"
        ] = (
            s["retain_drop_noft_max_pts"],
            s["retain_drop_noft_max_pts"] <= t["unlearn_noft_retain_drop_pts"],
        )
        out[f"{model}: FT retain drop <= {t['unlearn_ft_retain_drop_pts']} pts (worst class)"] = (
            s["retain_drop_ft_max_pts"],
            s["retain_drop_ft_max_pts"] <= t["unlearn_ft_retain_drop_pts"],
        )
        out[f"{model}: FT forget acc <= {t['unlearn_ft_forget_acc']} (worst class)"] = (
            s["forget_ft_max"],
            s["forget_ft_max"] <= t["unlearn_ft_forget_acc"],
        )
    for r in prune:
        if (
            r["method"] != "discedit"
            or r["components_removed"] < t["structured_components_removed"]
        ):
            continue
        tag = f"{r['model']} {r['components_removed']:.0%} units"
        out[f"{tag}: FT drop <= {t['structured_ft_drop_pts']} pt"] = (
            r["drop_ft_pts"],
            r["drop_ft_pts"] <= t["structured_ft_drop_pts"],
        )
        out[f"{tag}: TFLite latency ratio (batch 64) >= {t['tflite_latency_ratio']}"] = (
            r["latency_b64_ratio"],
            r["latency_b64_ratio"] >= t["tflite_latency_ratio"],
        )
    return {k: {"value": float(v), "met": bool(m)} for k, (v, m) in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    parser.add_argument("--epochs", type=int, default=25, help="training epochs of each CNN")
    parser.add_argument(
        "--score-per-class",
        type=int,
        default=60,
        help="training examples per class scored when unlearning",
    )
    parser.add_argument("--runs", type=int, default=300, help="timed TFLite invokes per model")
    parser.add_argument(
        "--unit-amount",
        type=lambda t: t if t == "auto" else (int(t) if t.isdigit() else float(t)),
        default=UNIT_AMOUNT,
        help="units unlearned: a fraction, a count per layer, or 'auto'",
    )
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args()
    start = time.perf_counter()
    digits = kf.datasets.load("digits", seed=0)
    train_data, test = digits
    score_data = stratified(train_data, args.score_per_class)
    models, unlearning, pruning = {}, [], []
    with tempfile.TemporaryDirectory() as tmp:
        for build in (vgg, resnet):
            model = train(build(), digits, epochs=args.epochs)
            name = model.name
            models[name] = {
                "params": structured.count_params(model),
                "flops": structured.flops(model),
                "test_accuracy": kf.evaluate(model, test).accuracy,
            }
            print(f"{name}: {models[name]}", flush=True)
            for target in args.classes:
                unlearning += unlearn(
                    model, name, score_data, train_data, test, target, args.unit_amount
                )
            pruning += prune_rows(model, name, train_data, test, args.sparsities, tmp, args.runs)
    table_u, summary = summarize_unlearning(unlearning)
    table_p = summarize_pruning(pruning)
    targets = check_targets(summary, pruning)
    seconds = time.perf_counter() - start
    print("\n(a) unlearning, mean over classes (retain drops in points)\n" + table_u)
    print(
        "\n(b) structured pruning (removed fractions; drops in points; ratios original/shrunk)\n"
        + table_p
    )
    print("\ntargets:")
    for key, value in targets.items():
        print(f"  [{'met' if value['met'] else 'MISSED'}] {key}: {value['value']:.3f}")
    print(f"\ntotal {seconds:.0f}s")
    config = {
        "epochs": args.epochs,
        "classes": args.classes,
        "sparsities": args.sparsities,
        "score_per_class": args.score_per_class,
        "runs": args.runs,
        "forget_fine_tune": {"epochs": FORGET_FT.epochs, "learning_rate": FORGET_FT.learning_rate},
        "prune_fine_tune": {"epochs": PRUNE_FT.epochs, "learning_rate": PRUNE_FT.learning_rate},
        "forget_defaults": {
            "amount": args.unit_amount,
            "scope": api.DEFAULT_SCOPE["forget", "unit"],
        },
        "threads": os.cpu_count(),
        "seconds": seconds,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(
            {
                "config": config,
                "models": models,
                "unlearning_summary": summary,
                "targets": targets,
                "unlearning": unlearning,
                "structured": pruning,
            },
            f,
            indent=1,
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
