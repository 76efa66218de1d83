"""DISCEDIT's table for keras_forget: unlearning a class with whole units, and structured pruning.

Follows the protocol of benchmarks/README.md as a report: it tunes nothing. Every setting is
a library default chosen elsewhere on validation splits: the scope of unit forgetting
(``unit_forget.py --split validation``, ``api.DEFAULT_SCOPE``), the fine-tuning rates
(``fine_tune.py --split validation``, ``kf.training.DEFAULT_LEARNING_RATE``: one epoch,
``kf.FineTune(epochs=1)``, at the rate for the job), the unit ranking scope and the refit of
shrunk layers (``unit_scope.py``). So it reports on the untouched test split by default
(``--split validation`` is accepted, for checking only).

(a) Unlearning with DISCEDIT-U: for every seed × architecture × class,
    ``kf.prune_for_class(model, fit, c, granularity="unit", method="discedit",
    fine_tune=kf.FineTune(epochs=1), eval_data=held)`` with ``amount="auto"``. Its report
    gives forget accuracy (on class c) and retain accuracy (on the rest) right after
    pruning (NoFT; measured before the fine-tuning starts) and after one fine-tuning epoch
    on the retained training data (FT), with the retain drop in points against the dense
    model, the unit amount chosen and the seconds.
(b) Structured pruning: DISCEDIT-SP (``method="discedit"``) against the L1 filter norm
    (``method="l1"``), ``kf.prune(model, fit, sparsity=s, granularity="unit", method=m,
    shrink=True, fine_tune=kf.FineTune(epochs=1), eval_data=held)`` for each sparsity:
    accuracy NoFT and FT, the fraction of parameters the shrunk model keeps and, for
    DISCEDIT-SP, the float TFLite file size and the measured interpreter latency of the
    original model against the shrunk one (medians of interleaved runs, one thread).

Architectures: an MLP (softmax output) and the VGG- and ResNet-style CNNs of
``examples/discedit_cnn.py`` (logits), trained on the training part of each seed's digits
split (``benchmarks/protocol.py``). Summaries are mean [min, max] over seeds (× classes). A
run that raises is counted and recorded with its error. The ``target`` lines check unit
unlearning that forgets with retain accuracy within 2 points, DISCEDIT-SP at 50 % within 1
point after fine-tuning, and its TFLite speed-up.

    python benchmarks/discedit.py [--split test] [--seeds 0 1 2] [--archs mlp vgg resnet]
        [--classes 0 ... 9] [--sparsities 0.25 0.5 0.75] [--runs 300] [--quiet] [--out DIR]

Prints the tables and writes benchmarks/results/discedit_<split>.json.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import protocol  # noqa: E402
import tensorflow as tf  # noqa: E402
from protocol import fmt, spread  # noqa: E402
from provenance import provenance  # noqa: E402

import keras_forget as kf  # noqa: E402
from keras_forget import api, training  # noqa: E402
from keras_forget.surgery import structured  # noqa: E402

FORGOTTEN = 0.05  # forget accuracy at or below this counts as forgotten
KEPT = 0.02  # retain accuracy within this of the dense model's counts as kept
#: One fine-tuning epoch at the library's rate for the job (``training.resolve``).
FINE_TUNE = kf.FineTune(epochs=1)
SP_METHODS = ("discedit", "l1")
SPARSITIES = (0.25, 0.5, 0.75)
BATCHES = (1, 64)  # interpreter batch sizes timed
#: Targets of the first version of this script, compared honestly (every run must meet them).
SP_TARGET_SPARSITY = 0.5
SP_FT_DROP_PTS = 1.0
LATENCY_RATIO = 1.8  # original / shrunk, batch 64, at SP_TARGET_SPARSITY and above
STAGES = {"NoFT": "noft", "FT": "ft"}
#: What the structured summary spreads over seeds (the latencies for DISCEDIT-SP only).
MEASURES = ("accuracy_before", "accuracy_noft", "accuracy_ft", "params_kept",
            "tflite_size_ratio", "latency_b1_ratio", "latency_b64_ratio", "seconds")  # fmt: skip


def attempt(base: dict, work: Callable[[], dict]) -> dict:
    """``base`` updated with what ``work`` returns, or with the error it raised.

    Args:
        base: the row's identifying fields.
        work: the run.

    Returns:
        The row; a failed run carries ``error`` and is counted, not dropped.
    """
    row = dict(base)
    try:
        row.update(work())
    except Exception as err:  # a failed run is counted, not dropped
        row["error"] = f"{type(err).__name__}: {err}"
        traceback.print_exc()
    return row


def unlearn_row(model: keras.Model, fit, held, target: int) -> dict:
    """DISCEDIT-U forgets ``target`` with the library's defaults, then fine-tunes one epoch.

    Args:
        model: the trained dense model (left unchanged).
        fit: the training data scored (and, without ``target``, fine-tuned on).
        held: the evaluation split.
        target: the class to forget.

    Returns:
        Forget / retain accuracy before, NoFT and FT, the amount chosen and the seconds.
    """
    start = time.perf_counter()
    r = kf.prune_for_class(
        model, fit, target, granularity="unit", method="discedit", fine_tune=FINE_TUNE,
        eval_data=held, verbose=False,
    ).report  # fmt: skip
    return {
        "score": r.method,
        "scope": r.scope,
        "amount": r.amount,
        "auto_reached": r.auto_reached,
        "units_pruned": r.pruned,
        "units_total": r.total,
        "forget_before": r.before.forget_accuracy,
        "retain_before": r.before.retain_accuracy,
        "forget_noft": r.after.forget_accuracy,
        "retain_noft": r.after.retain_accuracy,
        "forget_ft": r.fine_tuned.forget_accuracy,
        "retain_ft": r.fine_tuned.retain_accuracy,
        "seconds": time.perf_counter() - start,
        "stage_seconds": dict(r.seconds),
        "notes": list(r.notes),
    }


def interleaved_latency(paths: list[str], shape: tuple, batch: int, runs: int, seed: int = 0):
    """Median seconds per invoke of each TFLite file, runs interleaved, one thread.

    Args:
        paths: the TFLite files.
        shape: one input's shape (without the batch axis).
        batch: the batch size fed.
        runs: timed invokes of each file.
        seed: of the random input.

    Returns:
        The median seconds of each file, in the order of ``paths``.
    """
    x = np.random.default_rng(seed).random((batch, *shape), np.float32)
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
    times: list[list[float]] = [[] for _ in paths]
    for it in interpreters:  # warm up
        for _ in range(10):
            it.invoke()
    for _ in range(runs):
        for i, it in enumerate(interpreters):
            start = time.perf_counter()
            it.invoke()
            times[i].append(time.perf_counter() - start)
    return [float(np.median(t)) for t in times]


def export(model: keras.Model, directory: str, sample: np.ndarray):
    """``kf.export`` (float TFLite, parity checked on ``sample``); its report."""
    return kf.export(model, directory, sample=sample, verbose=False)


def tflite_fields(small: keras.Model, original, directory: str, sample, runs: int) -> dict:
    """TFLite size and latency of the shrunk model against the original's export.

    Args:
        small: the shrunk model.
        original: the original model's export report, or the exception its export raised.
        directory: where to export ``small``.
        sample: inputs for the export's parity check.
        runs: timed invokes per model and batch size.

    Returns:
        Bytes, the size ratio and, per batch size, the latencies and their ratio (original /
        shrunk: above 1 the shrunk model is smaller or faster).
    """
    if isinstance(original, Exception):
        raise RuntimeError(f"the original model's export failed: {original}")
    tick = time.perf_counter()
    shrunk = export(small, directory, sample)
    raw, raw_original = shrunk.sizes["model.tflite"]["raw"], original.sizes["model.tflite"]["raw"]
    out = {
        "tflite_bytes": raw,
        "tflite_bytes_original": raw_original,
        "tflite_size_ratio": raw_original / raw,
        "tflite_max_abs_diff": shrunk.max_abs_diff["model.tflite"],
    }
    paths = [original.tflite_path, shrunk.tflite_path]
    for batch in BATCHES:
        orig_s, small_s = interleaved_latency(paths, sample.shape[1:], batch, runs)
        out[f"latency_b{batch}_original_ms"] = 1e3 * orig_s
        out[f"latency_b{batch}_shrunk_ms"] = 1e3 * small_s
        out[f"latency_b{batch}_ratio"] = orig_s / small_s
    out["tflite_seconds"] = time.perf_counter() - tick
    return out


def prune_row(model: keras.Model, fit, held, sparsity: float, method: str):
    """One structured pruning run (shrunk, library defaults otherwise), fine-tuned one epoch.

    Args:
        model: the trained dense model (left unchanged).
        fit: the training data scored, refit on and fine-tuned on.
        held: the evaluation split.
        sparsity: the fraction of each layer's units removed.
        method: ``"discedit"`` (DISCEDIT-SP) or ``"l1"``.

    Returns:
        ``(row, shrunk model)``: accuracies before / NoFT / FT, parameters and FLOPs kept.
    """
    start = time.perf_counter()
    result = kf.prune(
        model, fit, sparsity=sparsity, granularity="unit", method=method, shrink=True,
        fine_tune=FINE_TUNE, eval_data=held, verbose=False,
    )  # fmt: skip
    r, small = result.report, result.model
    row = {
        "scope": r.scope,
        "reconstructed": r.reconstructed,
        "units_pruned": r.pruned,
        "units_total": r.total,
        "accuracy_before": r.before.accuracy,
        "accuracy_noft": r.after.accuracy,
        "accuracy_ft": r.fine_tuned.accuracy,
        "params_kept": structured.count_params(small) / structured.count_params(model),
        "flops_kept": structured.flops(small) / structured.flops(model),
        "seconds": time.perf_counter() - start,
        "stage_seconds": dict(r.seconds),
    }
    return row, small


def structured_run(model, fit, held, sparsity, method, original, tmp, runs) -> dict:
    """:func:`prune_row`, with :func:`tflite_fields` for DISCEDIT-SP."""
    row, small = prune_row(model, fit, held, sparsity, method)
    if method == "discedit":
        directory = os.path.join(tmp, f"{model.name}_{sparsity}")
        row.update(tflite_fields(small, original, directory, held[0][:16], runs))
    return row


def _say_unlearning(say, row: dict) -> None:
    say(
        f"  {row['arch']} forget class {row['class']}: "
        + (
            row.get("error")
            or f"amount {row['amount']:.4f}; forget NoFT {row['forget_noft']:.3f} FT "
            f"{row['forget_ft']:.3f}; retain {row['retain_before']:.3f} -> NoFT "
            f"{row['retain_noft']:.3f} FT {row['retain_ft']:.3f}; {row['seconds']:.1f}s"
        )
    )


def _say_structured(say, row: dict) -> None:
    latency = f"; latency b64 x{row['latency_b64_ratio']:.2f}" if "latency_b64_ratio" in row else ""
    say(
        f"  {row['arch']} {row['method']} {row['sparsity']}: "
        + (
            row.get("error")
            or f"accuracy {row['accuracy_before']:.3f} -> NoFT {row['accuracy_noft']:.3f} FT "
            f"{row['accuracy_ft']:.3f}; params kept {row['params_kept']:.1%}{latency}; "
            f"{row['seconds']:.1f}s"
        )
    )


def _original_export(model: keras.Model, tmp: str, sample):
    """The dense model's export report, or the exception it raised (recorded in the rows)."""
    try:
        return export(model, os.path.join(tmp, f"{model.name}_original"), sample)
    except Exception as err:
        traceback.print_exc()
        return err


def run_model(args, say, base: dict, model, fit, held, tmp: str) -> list[dict]:
    """Every unlearning and structured pruning run on one trained model."""
    rows = []
    for target in args.classes:
        row = attempt(
            dict(base, part="unlearning", method="discedit", **{"class": target}),
            lambda target=target: unlearn_row(model, fit, held, target),
        )
        _say_unlearning(say, row)
        rows.append(row)
    original = _original_export(model, tmp, held[0][:16])
    for sparsity in args.sparsities:
        for method in SP_METHODS:
            row = attempt(
                dict(base, part="structured", method=method, sparsity=sparsity),
                lambda s=sparsity, m=method: structured_run(
                    model, fit, held, s, m, original, tmp, args.runs
                ),
            )
            _say_structured(say, row)
            rows.append(row)
    return rows


def run(args, say) -> tuple[list[dict], list[dict]]:
    """``(rows, models)``: every run, and each dense model's size and accuracy."""
    rows, models = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed, arch, fit, held, model, epochs in protocol.trained(args, say):
            accuracy = kf.evaluate(model, held).accuracy
            models.append(
                {"seed": seed, "arch": arch, "epochs": epochs, "accuracy": accuracy,
                 "params": structured.count_params(model), "flops": structured.flops(model)}
            )  # fmt: skip
            say(f"[seed {seed}] {arch}: dense accuracy {accuracy:.3f}")
            sub = os.path.join(tmp, f"{seed}_{arch}")
            rows += run_model(args, say, {"seed": seed, "arch": arch}, model, fit, held, sub)
    return rows, models


def _kept(row: dict, stage: str) -> bool:
    """Whether the run forgot its class and kept retain accuracy at ``stage``."""
    return row[f"forget_{stage}"] <= FORGOTTEN and (
        row["retain_before"] - row[f"retain_{stage}"] <= KEPT
    )


def summarize_unlearning(rows: list[dict]) -> list[dict]:
    """Per architecture × stage (NoFT, FT): mean [min, max] and counts."""
    out = []
    for arch in dict.fromkeys(r["arch"] for r in rows):
        group = [r for r in rows if r["arch"] == arch]
        done = [g for g in group if "error" not in g]
        for stage, key in STAGES.items():
            out.append({
                "arch": arch, "stage": stage, "n": len(group), "failed": len(group) - len(done),
                "forget": spread([g[f"forget_{key}"] for g in done]),
                "retain": spread([g[f"retain_{key}"] for g in done]),
                "retain_drop_pts": spread(
                    [100 * (g["retain_before"] - g[f"retain_{key}"]) for g in done]
                ),
                "forgot": sum(g[f"forget_{key}"] <= FORGOTTEN for g in done),
                "forgot_and_kept": sum(_kept(g, key) for g in done),
                "amount": spread([g["amount"] for g in done]),
                "seconds": spread([g["seconds"] for g in done]),
            })  # fmt: skip
    return out


def table_unlearning(summary: list[dict]) -> str:
    """The unlearning summary, one line per architecture × stage."""
    lines = [
        f"{'arch':<7} {'stage':<5} {'n':>3} {'forgot':>6} {'& kept':>6}  {'forget acc':<21} "
        f"{'retain acc':<21} {'retain drop (pt)':<24} {'unit amount':<24} {'seconds':<18}"
    ]
    for c in summary:
        lines.append(
            f"{c['arch']:<7} {c['stage']:<5} {c['n']:>3} {c['forgot']:>6} "
            f"{c['forgot_and_kept']:>6}  {fmt(c['forget']):<21} {fmt(c['retain']):<21} "
            f"{fmt(c['retain_drop_pts'], 2):<24} {fmt(c['amount'], 4):<24} "
            f"{fmt(c['seconds'], 1):<18}" + (f"  {c['failed']} FAILED" if c["failed"] else "")
        )
    return "\n".join(lines)


def summarize_structured(rows: list[dict]) -> list[dict]:
    """Per architecture × sparsity × method: mean [min, max] over seeds."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["arch"], r["sparsity"], r["method"]), []).append(r)
    out = []
    for (arch, sparsity, method), group in groups.items():
        done = [g for g in group if "error" not in g]
        cell = {"arch": arch, "sparsity": sparsity, "method": method, "n": len(group),
                "failed": len(group) - len(done)}  # fmt: skip
        for m in MEASURES:
            cell[m] = spread([g.get(m) for g in done])
        drops = [100 * (g["accuracy_before"] - g["accuracy_ft"]) for g in done]
        cell["drop_ft_pts"] = spread(drops)
        out.append(cell)
    return out


def table_structured(summary: list[dict]) -> str:
    """The structured pruning summary, one line per architecture × sparsity × method."""
    lines = [
        f"{'arch':<7} {'sparsity':>8} {'method':<9} {'n':>2}  {'dense acc':<21} "
        f"{'NoFT acc':<21} {'FT acc':<21} {'FT drop (pt)':<24} {'params kept':<21} "
        f"{'TFLite size x':<18} {'latency b1 x':<18} {'latency b64 x':<18} {'seconds':<18}"
    ]
    for c in summary:
        lines.append(
            f"{c['arch']:<7} {c['sparsity']:>8.2f} {c['method']:<9} {c['n']:>2}  "
            f"{fmt(c['accuracy_before']):<21} {fmt(c['accuracy_noft']):<21} "
            f"{fmt(c['accuracy_ft']):<21} {fmt(c['drop_ft_pts'], 2):<24} "
            f"{fmt(c['params_kept']):<21} {fmt(c['tflite_size_ratio'], 2):<18} "
            f"{fmt(c['latency_b1_ratio'], 2):<18} {fmt(c['latency_b64_ratio'], 2):<18} "
            f"{fmt(c['seconds'], 1):<18}" + (f"  {c['failed']} FAILED" if c["failed"] else "")
        )
    return "\n".join(lines)


def _target(arch: str, text: str, value: str, met: bool) -> dict:
    return {"arch": arch, "target": text, "value": value, "met": met}


def check_targets(unlearning: list[dict], pruning: list[dict]) -> list[dict]:
    """Each target per architecture: met only if every run (failed ones included) meets it."""
    out = []
    for arch in dict.fromkeys(r["arch"] for r in unlearning + pruning):
        runs = [r for r in unlearning if r["arch"] == arch]
        ok = sum("error" not in r and _kept(r, "noft") for r in runs)
        out.append(_target(
            arch, f"DISCEDIT-U NoFT forget <= {FORGOTTEN:.0%} with retain within "
            f"{100 * KEPT:.0f} pt", f"{ok} of {len(runs)} runs", bool(runs) and ok == len(runs),
        ))  # fmt: skip
        sp = [r for r in pruning if r["arch"] == arch and r["method"] == "discedit"]
        half = [r for r in sp if r["sparsity"] == SP_TARGET_SPARSITY]
        drops = [100 * (r["accuracy_before"] - r["accuracy_ft"]) for r in half if "error" not in r]
        if half:
            out.append(_target(
                arch, f"DISCEDIT-SP {SP_TARGET_SPARSITY:.0%} FT drop <= {SP_FT_DROP_PTS} pt",
                f"worst {max(drops):.2f} pt" if drops else "all failed",
                len(drops) == len(half) and max(drops) <= SP_FT_DROP_PTS,
            ))  # fmt: skip
        fast = [r for r in sp if r["sparsity"] >= SP_TARGET_SPARSITY]
        ratios = [r["latency_b64_ratio"] for r in fast if "latency_b64_ratio" in r]
        if fast:
            out.append(_target(
                arch, f"DISCEDIT-SP >= {SP_TARGET_SPARSITY:.0%} TFLite latency ratio (batch 64) "
                f">= {LATENCY_RATIO}", f"worst {min(ratios):.2f}" if ratios else "all failed",
                len(ratios) == len(fast) and min(ratios) >= LATENCY_RATIO,
            ))  # fmt: skip
    return out


def defaults() -> dict:
    """The library defaults this benchmark runs with (chosen elsewhere, on validation splits)."""
    return {
        "fine_tune_epochs": FINE_TUNE.epochs,
        "forget_unit_learning_rate": training.resolve(FINE_TUNE, "forget", "unit").learning_rate,
        "compress_unit_learning_rate": training.resolve(
            FINE_TUNE, "compress", "unit"
        ).learning_rate,
        "forget_unit_scope": api.DEFAULT_SCOPE["forget", "unit"],
        "compress_unit_scope": api.DEFAULT_SCOPE["compress", "unit"],
        "amount": "auto",
    }


def report(args, rows: list[dict]) -> dict:
    """Prints the tables and the targets; the summaries and targets for the JSON."""
    unlearning = [r for r in rows if r["part"] == "unlearning"]
    pruning = [r for r in rows if r["part"] == "structured"]
    summary = {
        "unlearning": summarize_unlearning(unlearning),
        "structured": summarize_structured(pruning),
    }
    d, where = defaults(), protocol.where(args.split)
    print(
        f"\n(a) DISCEDIT-U unlearning, amount='auto', FT = {d['fine_tune_epochs']} epoch at lr "
        f"{d['forget_unit_learning_rate']:g}, on the {where}; mean [min, max] over seeds "
        f"{args.seeds} × classes {args.classes}; forgot: forget accuracy <= {FORGOTTEN}; "
        f"& kept: and retain within {100 * KEPT:.0f} pt of the dense model\n"
        + table_unlearning(summary["unlearning"])
    )
    print(
        f"\n(b) structured pruning, shrink=True, FT = {d['fine_tune_epochs']} epoch at lr "
        f"{d['compress_unit_learning_rate']:g}, on the {where}; mean [min, max] over seeds "
        f"{args.seeds}; TFLite size and latency ratios are original / shrunk (one thread)\n"
        + table_structured(summary["structured"])
    )
    targets = check_targets(unlearning, pruning)
    print()
    for t in targets:
        verdict = "met" if t["met"] else "MISSED"
        print(f"target [{verdict}] {t['arch']}: {t['target']}: {t['value']}")
    return {"summary": summary, "targets": targets, "defaults": d}


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark; the exit status (1 if a run failed)."""
    p = protocol.parser(__doc__)
    p.add_argument("--classes", type=int, nargs="+", default=list(range(10)))
    p.add_argument("--sparsities", type=float, nargs="+", default=list(SPARSITIES))
    p.add_argument("--runs", type=int, default=300, help="timed TFLite invokes per model")
    args = p.parse_args(argv)
    say = protocol.speaker(args.quiet)
    origin = provenance()
    start = time.perf_counter()
    rows, models = run(args, say)
    out = {"split": args.split, "settings": vars(args), **report(args, rows),
           "models": models, "rows": rows, "provenance": origin}  # fmt: skip
    errors = sum("error" in r for r in rows)
    return protocol.finish("discedit", args, out, errors, start)


if __name__ == "__main__":
    sys.exit(main())
