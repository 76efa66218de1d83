"""Pruning for compression on digits, by the protocol: every row, mean [min, max] over seeds.

Defaults (OBD's rounds, OBS's dampening and allocation, the gradual ramp's end) were chosen
on validation splits (benchmarks/obd_diagnosis.py); here every number is measured once on
the held-out test split of ``kf.datasets.load("digits", seed=seed)``, seeds 0, 1, 2, with
the models trained on the training split.

1. ``grid``: two MLPs (64-256-128-64-10, 64-300-100-50-10) × magnitude, OBD, Fisher
   (``½·F·w²``), grad×weight and OBS × global / layer-wise × 50/75/90/95 %: test accuracy
   right after pruning (NoFT) and after ``--grid-ft-epochs`` of fine-tuning with masks held
   (FT), each through ``kf.prune`` with the library's defaults.
2. ``budget``: at 90 % on the first MLP, one fine-tuning budget (``--ft-epochs`` epochs,
   batch 32, Adam 1e-3) for tfmot's ``prune_low_magnitude`` + ``PolynomialDecay`` (tf_keras),
   our score-driven gradual pruning on the same ramp, our default (fitted) ramp, and
   one-shot pruning followed by the same fine-tuning.
3. ``structured``: the VGG- and ResNet-style CNNs of examples/discedit_cnn.py, 25/50/75 % of
   the units of every layer removed (``granularity="unit"``, ``scope="layer"``,
   ``shrink=True``) by DISCEDIT-SP and by L1, each without and with the least-squares refit
   of the layers that read removed units (``reconstruct=False|True``; rows ``/rec``):
   accuracy after shrinking (BatchNorm statistics re-estimated on the training split before
   measuring) and after one fine-tuning epoch at the library's rate for removing units
   (``keras_forget.training.DEFAULT_LEARNING_RATE``, chosen by benchmarks/fine_tune.py on
   validation splits; re-estimated again), and the parameters removed.
4. ``obs_cnn``: OBS at 50 % without retraining on the VGG-style CNN and on a MobileNetV2
   (``keras.applications``, alpha 0.35, 32×32 RGB upsampled digits, BatchNorm statistics
   re-estimated after training), against the dense model and magnitude.
5. ``tflite``: TFLite sizes of the OBD-global model at each sparsity (seed 0).

    python benchmarks/compression.py [--seeds 0 1 2] [--parts grid budget structured obs_cnn
        tflite] [--quick] [--quiet] [--out PATH]

Prints every table and the targets, and writes benchmarks/results/compression.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from discedit_cnn import resnet, vgg  # noqa: E402
from discedit_cnn import train as train_cnn  # noqa: E402
from provenance import provenance  # noqa: E402

import keras_forget as kf  # noqa: E402
from keras_forget import _keras  # noqa: E402
from keras_forget.data import Data  # noqa: E402
from keras_forget.export import sparsity as zero_fraction  # noqa: E402
from keras_forget.files import write_json  # noqa: E402
from keras_forget.surgery import structured  # noqa: E402
from keras_forget.surgery.obs import OBS  # noqa: E402
from keras_forget.training import fine_tune, resolve  # noqa: E402

OUT = os.path.join(HERE, "results", "compression.json")
MLPS = {"mlp": (256, 128, 64), "mlp2": (300, 100, 50)}
SPARSITIES = (0.5, 0.75, 0.9, 0.95)
METHODS = ("magnitude", "obd", "fisher", "gradxweight", "obs")
SCOPES = ("global", "layer")
UNIT_SPARSITIES = (0.25, 0.5, 0.75)
PARTS = ("grid", "budget", "structured", "obs_cnn", "tflite")


def mlp(km, hidden, seed: int):
    """An MLP in Keras 3 (``km = keras``) or tf_keras, logits output."""
    km.utils.set_random_seed(seed)
    layers = [km.Input((8, 8, 1)), km.layers.Flatten()]
    layers += [km.layers.Dense(units, activation="relu") for units in hidden]
    return km.Sequential([*layers, km.layers.Dense(10)])


def train_mlp(hidden, seed: int, train, epochs: int):
    model = mlp(keras, hidden, seed)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.Adam(1e-3), loss, metrics=["accuracy"])
    model.fit(*train, epochs=epochs, batch_size=32, verbose=0)
    return model


def spread(values) -> dict | None:
    v = np.asarray([x for x in values if x is not None], float)
    if not v.size:
        return None
    return {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}


def fmt(cell: dict | None, width: int = 22) -> str:
    text = "—" if cell is None else f"{cell['mean']:.3f} [{cell['min']:.3f}, {cell['max']:.3f}]"
    return f"{text:>{width}}"


def attempt(failures: list, where: str, run, *args, **kwargs):
    """``run(*args)``, or None with the error recorded: a failed run is counted, not hidden."""
    try:
        return run(*args, **kwargs)
    except Exception as error:  # recorded in the JSON and counted in the summary
        failures.append({"where": where, "error": f"{type(error).__name__}: {error}",
                         "traceback": traceback.format_exc()})  # fmt: skip
        print(f"   FAILED {where}: {type(error).__name__}: {error}", flush=True)
        return None


def grid_rows(arch, seed, model, train, test, args, failures) -> list[dict]:
    """Part 1 for one trained MLP."""
    score_data = (train[0][: args.score_examples], train[1][: args.score_examples])
    tune = kf.FineTune(epochs=args.grid_ft_epochs, data=train)
    rows = []
    for method in METHODS:
        for scope in SCOPES:
            for s in args.sparsities:
                tick = time.perf_counter()
                where = f"grid {arch} seed {seed} {method}/{scope} {s}"
                keras.utils.set_random_seed(seed)
                result = attempt(failures, where, kf.prune, model, score_data, sparsity=s,
                                 method=method, scope=scope, fine_tune=tune, eval_data=test,
                                 verbose=False)  # fmt: skip
                report = None if result is None else result.report
                rows.append({
                    "arch": arch, "seed": seed, "method": method, "scope": scope, "sparsity": s,
                    "reported_method": None if report is None else report.method,
                    "achieved": None if report is None else report.sparsity,
                    "noft": None if report is None else report.after.accuracy,
                    "ft": None if report is None else report.fine_tuned.accuracy,
                    "seconds": time.perf_counter() - tick,
                })  # fmt: skip
            if not args.quiet:
                done = [r for r in rows if (r["method"], r["scope"]) == (method, scope)]
                cells = " ".join(f"{r['noft'] or 0:.3f}/{r['ft'] or 0:.3f}" for r in done)
                print(f"  [{arch} seed {seed}] {method}/{scope}: {cells}", flush=True)
    return rows


def tfmot_baseline(tf_model, train, test, budget) -> dict:
    """tfmot's own tool: prune_low_magnitude + PolynomialDecay, the same budget."""
    import tf_keras

    sparsity_api = _keras.tfmot().sparsity.keras
    schedule = sparsity_api.PolynomialDecay(
        0.0, budget["sparsity"], budget["begin"], budget["end"], frequency=budget["frequency"]
    )
    model = sparsity_api.prune_low_magnitude(_keras.clone(tf_model), pruning_schedule=schedule)
    loss = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(tf_keras.optimizers.Adam(budget["learning_rate"]), loss, metrics=["accuracy"])
    tick = time.perf_counter()
    model.fit(*train, epochs=budget["epochs"], batch_size=budget["batch_size"], verbose=0,
              callbacks=[sparsity_api.UpdatePruningStep()])  # fmt: skip
    stripped = sparsity_api.strip_pruning(model)
    return {
        "accuracy": kf.evaluate(stripped, test).accuracy,
        "sparsity": zero_fraction(stripped),
        "seconds": time.perf_counter() - tick,
    }


def ours(model, score_data, train, test, budget, method, scope, schedule) -> dict:
    tune = kf.FineTune(epochs=budget["epochs"], data=train, batch_size=budget["batch_size"],
                       learning_rate=budget["learning_rate"])  # fmt: skip
    result = kf.prune(model, score_data, sparsity=budget["sparsity"], method=method, scope=scope,
                      schedule=schedule, fine_tune=tune, eval_data=test, verbose=False)  # fmt: skip
    report = result.report
    return {
        "accuracy": report.fine_tuned.accuracy,
        "noft": None if report.after is None else report.after.accuracy,
        "sparsity": report.sparsity,
        "seconds": report.seconds["total"],
    }


def budget_rows(seed, model, train, test, args, failures) -> list[dict]:
    """Part 2 for one trained benchmark MLP."""
    import tf_keras

    _keras.tfmot()
    tf_model = mlp(tf_keras, MLPS["mlp"], seed)
    tf_model.set_weights(model.get_weights())
    steps = args.ft_epochs * -(-len(train[1]) // 32)
    end = min(200, steps - 1)
    budget = {"sparsity": 0.9, "epochs": args.ft_epochs, "batch_size": 32, "learning_rate": 1e-3,
              "begin": 0, "end": end, "frequency": max(1, min(20, end // 10))}  # fmt: skip
    same = kf.GradualSchedule(budget["begin"], budget["end"], budget["frequency"])
    score_data = (train[0][: args.score_examples], train[1][: args.score_examples])
    runs = {
        "tfmot prune_low_magnitude + PolynomialDecay (tf_keras)": None,
        "gradual obd/global": (model, "obd", "global", same),
        "gradual obd/layer": (model, "obd", "layer", same),
        "gradual fisher/global": (model, "fisher", "global", same),
        "gradual magnitude/global": (model, "magnitude", "global", same),
        "gradual obd/global (tf_keras+tfmot)": (tf_model, "obd", "global", same),
        "gradual obd/global, default ramp": (model, "obd", "global", kf.GradualSchedule()),
        "one-shot magnitude/global + FT": (model, "magnitude", "global", None),
        "one-shot obd/global + FT": (model, "obd", "global", None),
        "one-shot obs/global + FT": (model, "obs", "global", None),
    }
    rows = []
    for name, spec in runs.items():
        _keras.keras_module(model).utils.set_random_seed(seed)
        tf_keras.utils.set_random_seed(seed)
        if spec is None:
            row = attempt(failures, name, tfmot_baseline, tf_model, train, test, budget)
        else:
            row = attempt(failures, name, ours, spec[0], score_data, train, test, budget, *spec[1:])
        rows.append({"run": name, "seed": seed, **(row or {"accuracy": None}), "budget": budget})
        if not args.quiet and row:
            print(f"  [budget seed {seed}] {name}: {row['accuracy']:.3f}", flush=True)
    return rows


def structured_rows(seed, train, test, args, failures) -> list[dict]:
    """Part 3: DISCEDIT-SP and L1 unit pruning of both CNNs, shrunk, BN re-estimated."""
    rows = []
    data = Data.of(train)
    for name, build in (("vgg", vgg), ("resnet", resnet)):
        model = train_cnn(build(seed=seed), (train, None), epochs=args.cnn_epochs, seed=seed)
        dense, params = kf.evaluate(model, test).accuracy, structured.count_params(model)
        for s in args.unit_sparsities:
            for method, rec in [(m, r) for m in ("discedit", "l1") for r in (False, True)]:
                keras.utils.set_random_seed(seed)
                result = attempt(failures, f"structured {name} {method} rec={rec} {s}", kf.prune,
                                 model, train, sparsity=s, method=method, granularity="unit",
                                 scope="layer", shrink=True, reconstruct=rec,
                                 verbose=False)  # fmt: skip
                row = {"arch": name, "seed": seed, "method": method, "reconstruct": rec,
                       "sparsity": s, "dense": dense, "noft": None, "ft": None}  # fmt: skip
                if result is not None:
                    small = result.model
                    structured.recalibrate_batchnorm(small, data)
                    row["noft"] = kf.evaluate(small, test).accuracy
                    tune = resolve(kf.FineTune(epochs=1), "compress", "unit")
                    fine_tune(small, tune, data, from_logits=True, verbose=False)
                    structured.recalibrate_batchnorm(small, data)
                    row["ft"] = kf.evaluate(small, test).accuracy
                    row["params_removed"] = 1 - structured.count_params(small) / params
                rows.append(row)
        if not args.quiet:
            done = [r for r in rows if r["arch"] == name]
            print(f"  [structured {name} seed {seed}] dense {dense:.3f}: " + " ".join(
                f"{_variant(r)}@{r['sparsity']} {r['noft'] or 0:.3f}/{r['ft'] or 0:.3f}"
                for r in done), flush=True)  # fmt: skip
        keras.backend.clear_session()
    return rows


def _variant(row: dict) -> str:
    """A structured row's method, ``/rec`` when the consumers were refit."""
    return row["method"] + ("/rec" if row.get("reconstruct") else "")


def mobilenet(seed: int, train, epochs: int):
    """MobileNetV2 (alpha 0.35) on 32×32 RGB digits; BatchNorm statistics re-estimated."""
    keras.utils.set_random_seed(seed)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=10,
                                           alpha=0.35, classifier_activation=None)  # fmt: skip
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.Adam(1e-3), loss, metrics=["accuracy"])
    model.fit(*train, epochs=epochs, batch_size=32, verbose=0)
    structured.recalibrate_batchnorm(model, Data.of(train))  # momentum 0.999 lags behind
    return model


def rgb32(data):
    x, y = data
    return np.repeat(tf.image.resize(x, (32, 32)).numpy(), 3, axis=-1), y


def obs_cnn_rows(seed, train, test, args, failures) -> list[dict]:
    """Part 4: OBS at 50 % without retraining on VGG and MobileNetV2, beside magnitude."""
    rows = []
    nets = {}
    if "vgg" not in args.skip:
        nets["vgg"] = lambda: (train_cnn(vgg(seed=seed), (train, None), epochs=args.cnn_epochs,
                                         seed=seed), train, test)  # fmt: skip
    if "mobilenet" not in args.skip:
        nets["mobilenetv2"] = lambda: (mobilenet(seed, rgb32(train), args.mobilenet_epochs),
                                       rgb32(train), rgb32(test))  # fmt: skip
    for name, make in nets.items():
        model, fit, held = make()
        dense = kf.evaluate(model, held).accuracy
        score_data = (fit[0][: args.cnn_calibration], fit[1][: args.cnn_calibration])
        for method, scope in (("obs", "global"), ("obs", "layer"), ("magnitude", "global"),
                              ("magnitude", "layer")):  # fmt: skip
            if method == "obs":
                method = OBS(examples=args.cnn_calibration)
            tick = time.perf_counter()
            result = attempt(failures, f"obs_cnn {name} {method} {scope}", kf.prune, model,
                             score_data, sparsity=0.5, method=method, scope=scope,
                             eval_data=held, verbose=False)  # fmt: skip
            rows.append({"arch": name, "seed": seed, "method": getattr(method, "name", method),
                         "scope": scope, "dense": dense,
                         "noft": None if result is None else result.report.after.accuracy,
                         "seconds": time.perf_counter() - tick})  # fmt: skip
        if not args.quiet:
            done = [r for r in rows if r["arch"] == name]
            print(
                f"  [obs_cnn {name} seed {seed}] dense {dense:.3f}: "
                + " ".join(f"{r['method']}/{r['scope']} {r['noft'] or 0:.3f}" for r in done),
                flush=True,
            )
        keras.backend.clear_session()
    return rows


def sizes(model, train, args) -> dict:
    """TFLite bytes of the OBD-global model at each sparsity (0 = dense)."""
    score_data = (train[0][: args.score_examples], train[1][: args.score_examples])
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for s in (0.0, *args.sparsities):
            pruned = model if s == 0 else kf.prune(model, score_data, sparsity=s, method="obd",
                                                   verbose=False).model  # fmt: skip
            row = {}
            for sparse in (False, True):
                report = kf.export(pruned, os.path.join(tmp, f"{s}-{sparse}"), tflite=True,
                                   sparse=sparse, int8=True, verbose=False)  # fmt: skip
                kind = "sparse" if sparse else "float"
                row[kind] = report.sizes["model.tflite"]
                row[f"{kind}_int8"] = report.sizes["model_int8.tflite"]
            out[f"{s:.2f}"] = row
    return out


def summarize(result: dict) -> dict:
    """Mean [min, max] over seeds of every cell of every part that ran."""
    out: dict = {}
    cells: dict = {}
    for r in result.get("grid", []):
        key = (r["arch"], f"{r['method']}/{r['scope']}", f"{r['sparsity']:.2f}")
        for what in ("noft", "ft"):
            cells.setdefault((*key, what), []).append(r[what])
    for (arch, line, s, what), values in cells.items():
        out.setdefault("grid", {}).setdefault(arch, {}).setdefault(line, {}).setdefault(s, {})[
            what
        ] = spread(values)
    for r in result.get("budget", []):
        out.setdefault("budget", {}).setdefault(r["run"], []).append(r["accuracy"])
    out["budget"] = {k: spread(v) for k, v in out.get("budget", {}).items()}
    for r in result.get("structured", []):
        cell = out.setdefault("structured", {}).setdefault(
            f"{r['arch']} {_variant(r)} {r['sparsity']:.2f}", {"dense": [], "noft": [], "ft": []}
        )
        for what in cell:
            cell[what].append(r[what])
    out["structured"] = {
        k: {w: spread(v) for w, v in c.items()} for k, c in out.get("structured", {}).items()
    }
    for r in result.get("obs_cnn", []):
        cell = out.setdefault("obs_cnn", {}).setdefault(
            f"{r['arch']} {r['method']}/{r['scope']}", {"dense": [], "noft": []}
        )
        cell["dense"].append(r["dense"])
        cell["noft"].append(r["noft"])
    out["obs_cnn"] = {
        k: {w: spread(v) for w, v in c.items()} for k, c in out.get("obs_cnn", {}).items()
    }
    dense: dict = {}
    for m in result.get("models", []):
        dense.setdefault(m["arch"], []).append(m["dense_test_acc"])
    out["dense"] = {k: spread(v) for k, v in dense.items()}
    return out


def _mean(cell: dict | None) -> float:
    return float("nan") if cell is None else cell["mean"]


def targets(summary: dict) -> list[str]:
    """Each target, met or missed, from the means (spread rule where the target says so)."""
    lines = []
    grid = summary.get("grid", {})
    for arch, by in grid.items():
        obd, mag, layer = (
            by.get("obd/global", {}),
            by.get("magnitude/global", {}),
            by.get("obd/layer", {}),
        )
        behind = [s for s in obd if _mean(obd[s]["noft"]) < _mean(mag[s]["noft"]) - 0.01]
        under = [s for s in obd if _mean(obd[s]["noft"]) < _mean(layer.get(s, {}).get("noft"))]
        lines.append(f"{arch}: OBD-global >= magnitude-global - 1 pt NoFT at every sparsity: "
                     + ("met" if not behind else f"MISSED at {behind}"))  # fmt: skip
        lines.append(f"{arch}: OBD-global >= OBD-layer NoFT: "
                     + ("met" if not under else f"MISSED at {under}"))  # fmt: skip
        obs = by.get("obs/global", {}).get("0.90", {}).get("noft")
        if obs is not None:
            dense, mag90 = _mean(summary["dense"][arch]), _mean(mag["0.90"]["noft"])
            lines.append(
                f"{arch}: OBS-global at 90 % NoFT within 3 pt of dense ({obs['mean']:.3f} vs "
                f"{dense:.3f}): {'met' if obs['mean'] >= dense - 0.03 else 'MISSED'}; >= 10 pt "
                f"above magnitude-global ({mag90:.3f}): "
                + ("met" if obs["mean"] >= mag90 + 0.10 else "MISSED")
            )
    budget = summary.get("budget", {})
    tfmot = budget.get("tfmot prune_low_magnitude + PolynomialDecay (tf_keras)")
    candidates = {k: v for k, v in budget.items() if v and not k.startswith("tfmot")}
    if tfmot and candidates:
        best = max(candidates, key=lambda k: candidates[k]["mean"])
        cell = candidates[best]
        lines.append(
            f"best of ours at 90 % with the same budget ({best}: {fmt(cell, 0)}) above tfmot "
            f"({fmt(tfmot, 0)}) by more than the seed spread (our min > its max): "
            + ("met" if cell["min"] > tfmot["max"] else "MISSED")
        )
    for key, cell in summary.get("obs_cnn", {}).items():
        if key.endswith("obs/global") or key.endswith("obs/layer"):
            drop = 100 * (_mean(cell["dense"]) - _mean(cell["noft"]))
            lines.append(f"OBS at 50 % NoFT within 1 pt of dense, {key}: {drop:.2f} pt "
                         + ("met" if drop <= 1.0 else "MISSED"))  # fmt: skip
    for key, cell in summary.get("structured", {}).items():
        if key.split()[1].startswith("discedit") and key.endswith(" 0.50"):
            drop = 100 * (_mean(cell["dense"]) - _mean(cell["ft"]))
            lines.append(f"structured 50 % within 1 pt after one FT epoch, {key}: {drop:.2f} pt "
                         + ("met" if drop <= 1.0 else "MISSED"))  # fmt: skip
    return lines


def tables(result: dict, summary: dict, args) -> str:
    dense = ", ".join(f"{k} {fmt(v, 0)}" for k, v in summary["dense"].items())
    lines = [f"Test accuracy, mean [min, max] over seeds {args.seeds}"
             + (f"; dense: {dense}" if dense else "")]  # fmt: skip
    for arch, by in summary.get("grid", {}).items():
        shape = "-".join(map(str, (64, *MLPS[arch], 10)))
        for what, label in (("noft", "NoFT"), ("ft", f"FT {args.grid_ft_epochs} epoch(s)")):
            lines.append(f"\n{arch} ({shape}), {label}")
            lines.append(f"{'method/scope':<18}" + "".join(f"{s:>22.0%}" for s in args.sparsities))
            for line, cells in by.items():
                lines.append(f"{line:<18}" + "".join(
                    fmt(cells.get(f"{s:.2f}", {}).get(what)) for s in args.sparsities))  # fmt: skip
    if summary.get("budget"):
        b = result["budget"][0]["budget"]
        lines.append(f"\nAt 90 % on mlp, one budget: {b['epochs']} epochs x batch "
                     f"{b['batch_size']}, Adam {b['learning_rate']}; ramp {b['begin']}->"
                     f"{b['end']} every {b['frequency']} (the default ramp is fitted)")  # fmt: skip
        for name, cell in summary["budget"].items():
            lines.append(f"{name:<56}{fmt(cell)}")
    if summary.get("structured"):
        rate = resolve(kf.FineTune(), "compress", "unit").learning_rate
        lines.append("\nStructured: units removed per layer (scope='layer', shrink=True); "
                     "BatchNorm re-estimated after shrinking and after fine-tuning (Adam "
                     f"{rate:g}); /rec: consumers of removed units refit "
                     "(reconstruct=True)")  # fmt: skip
        lines.append(f"{'cnn method sparsity':<34}{'dense':>22}{'NoFT':>22}{'FT 1 epoch':>22}")
        for key, cell in summary["structured"].items():
            lines.append(f"{key:<34}" + "".join(fmt(cell[w]) for w in ("dense", "noft", "ft")))
    if summary.get("obs_cnn"):
        lines.append(f"\nCNNs at 50 %, no retraining{'':<10}{'dense':>22}{'NoFT':>22}")
        for key, cell in summary["obs_cnn"].items():
            lines.append(f"{key:<37}" + fmt(cell["dense"]) + fmt(cell["noft"]))
    if result.get("tflite"):
        lines.append("\nTFLite bytes, raw / gzip (OBD-global, seed 0)")
        kinds = list(result["tflite"]["0.00"])
        lines.append(f"{'sparsity':<10}" + "".join(f"{k:>22}" for k in kinds))
        for s, row in result["tflite"].items():
            cells = "".join(f"{row[k]['raw']:>11,}/{row[k]['gzip']:>10,}" for k in kinds)
            lines.append(f"{float(s):<10.0%}{cells}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--skip", nargs="*", default=[], choices=["mobilenet", "mlp2", "vgg"])
    parser.add_argument("--epochs", type=int, default=30, help="MLP training epochs")
    parser.add_argument("--cnn-epochs", type=int, default=25, help="CNN training epochs")
    parser.add_argument("--mobilenet-epochs", type=int, default=30)
    parser.add_argument("--ft-epochs", type=int, default=8, help="the budget of part 2")
    parser.add_argument("--grid-ft-epochs", type=int, default=1, help="FT of part 1")
    parser.add_argument("--score-examples", type=int, default=512)
    parser.add_argument("--cnn-calibration", type=int, default=256)
    parser.add_argument("--sparsities", type=float, nargs="+", default=list(SPARSITIES))
    parser.add_argument("--unit-sparsities", type=float, nargs="+", default=list(UNIT_SPARSITIES))
    parser.add_argument("--quick", action="store_true", help="1 seed, few epochs, small grids")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.cnn_epochs, args.mobilenet_epochs = args.seeds[:1], 3, 1, 1
        args.ft_epochs, args.unit_sparsities = 1, [0.5]
        if args.sparsities == list(SPARSITIES):  # unless given
            args.sparsities = [0.5, 0.9]
        args.score_examples = args.cnn_calibration = 64
        args.skip = sorted({*args.skip, "mobilenet", "mlp2"})
    start = time.perf_counter()
    result: dict = {"provenance": provenance(), "config": {
        k: v for k, v in vars(args).items() if k not in ("out", "quiet")}}  # fmt: skip
    result["protocol"] = {
        "dataset": "digits: kf.datasets.load('digits', seed=seed); trained on its training "
        "split, measured once on its test split",
        "defaults": "chosen on validation splits by benchmarks/obd_diagnosis.py",
        "spread": "mean, min and max over the seeds",
    }
    failures: list = []
    for part in ("models", "grid", "budget", "structured", "obs_cnn"):
        result[part] = []
    archs = [a for a in MLPS if a not in args.skip]
    for seed in args.seeds:
        train, test = kf.datasets.load("digits", seed=seed)
        for arch in archs if {"grid", "budget", "tflite"} & set(args.parts) else []:
            if arch != "mlp" and "grid" not in args.parts:
                continue
            tick = time.perf_counter()
            model = train_mlp(MLPS[arch], seed, train, args.epochs)
            result["models"].append({"arch": arch, "seed": seed,
                                     "dense_test_acc": kf.evaluate(model, test).accuracy,
                                     "train_seconds": time.perf_counter() - tick})  # fmt: skip
            if "grid" in args.parts:
                result["grid"] += grid_rows(arch, seed, model, train, test, args, failures)
            if arch == "mlp" and "budget" in args.parts:
                result["budget"] += budget_rows(seed, model, train, test, args, failures)
            if arch == "mlp" and "tflite" in args.parts and seed == args.seeds[0]:
                result["tflite"] = attempt(failures, "tflite", sizes, model, train, args)
            keras.backend.clear_session()
        if "structured" in args.parts:
            result["structured"] += structured_rows(seed, train, test, args, failures)
        if "obs_cnn" in args.parts:
            result["obs_cnn"] += obs_cnn_rows(seed, train, test, args, failures)
    summary = summarize(result)
    result["summary"], result["targets"] = summary, targets(summary)
    result["failed"], result["failures"] = len(failures), failures
    result["seconds"] = time.perf_counter() - start
    path = write_json(args.out, result)
    print(tables(result, summary, args) + "\n\n" + "\n".join(result["targets"]))
    if failures:
        print(f"\n{len(failures)} run(s) FAILED (errors in the JSON)")
    print(f"\n{result['seconds']:.0f}s; wrote {path}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
