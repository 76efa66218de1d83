"""Pruning for compression on digits: scores × scopes, gradual vs tfmot, TFLite sizes.

On one trained 4-layer MLP (64→256→128→64→10, about 58K kernel weights):

1. NoFT: test accuracy at 50/75/90/95% sparsity for magnitude, OBD, Fisher and
   grad×weight, each ranked globally and per layer, one-shot without retraining
   (:func:`keras_forget.sweep.sweep`), and each score's time as a ratio of one
   training epoch.
2. FT, same fine-tune budget (epochs, batch size, optimizer) at 90%: our
   score-driven gradual pruning (Keras 3, and the tf_keras copy through tfmot's
   wrappers) against tfmot's ``prune_low_magnitude`` with ``PolynomialDecay``
   on a tf_keras copy of the same model, and one-shot pruning + fine-tuning.
3. TFLite sizes (float, sparse, int8; raw and gzip) of the OBD-global model at
   each sparsity, through :func:`keras_forget.export`.

    python benchmarks/compression.py [--epochs 30] [--ft-epochs 8] [--quiet]

Prints tables and writes benchmarks/results/compression.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import keras
import numpy as np

import keras_forget as kf
from keras_forget import _keras, selection
from keras_forget.data import Data
from keras_forget.export import sparsity as zero_fraction
from keras_forget.files import write_json
from keras_forget.scores import OBD, Objective
from keras_forget.scores.accumulate import score
from keras_forget.sweep import sweep

HIDDEN = (256, 128, 64)
SPARSITIES = (0.5, 0.75, 0.9, 0.95)
METHODS = ("magnitude", "obd", "fisher", "gradxweight")
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "compression.json")


def build(km, seed: int = 0):
    """The MLP in Keras 3 (``km = keras``) or tf_keras, logits output."""
    km.utils.set_random_seed(seed)
    layers = [km.Input((8, 8, 1)), km.layers.Flatten()]
    layers += [km.layers.Dense(units, activation="relu") for units in HIDDEN]
    return km.Sequential([*layers, km.layers.Dense(10)])


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def train(train_data, epochs: int):
    """Trains the Keras 3 model; returns it, its tf_keras copy and the median epoch time."""
    model = build(keras)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.Adam(1e-3), loss, metrics=["accuracy"])
    timer = EpochTimer()
    model.fit(*train_data, epochs=epochs, batch_size=32, verbose=0, callbacks=[timer])
    _keras.tfmot()  # imports tf_keras and tfmot
    import tf_keras

    copy = build(tf_keras)
    copy.set_weights(model.get_weights())
    return model, copy, float(np.median(timer.seconds[1:]))


def noft(model, train_data, test, epoch: float, quiet: bool) -> dict:
    curve = sweep(
        model, train_data, test, methods=METHODS, sparsities=(0.0, *SPARSITIES), verbose=not quiet
    )
    rows = {
        k: {f"{s:.2f}": line.accuracy_at(s) for s in SPARSITIES} for k, line in curve.lines.items()
    }
    timing = {m: curve.seconds[f"scoring/{m}"] / epoch for m in METHODS}
    return {
        "dense_accuracy": curve.dense_accuracy,
        "accuracy": rows,
        "scoring_vs_epoch": timing,
        "curve": curve.to_dict(),
    }


def tfmot_baseline(tf_model, train_data, test, sparsity, budget) -> dict:
    """tfmot's own tool: prune_low_magnitude + PolynomialDecay, same budget."""
    import tf_keras

    sparsity_api = _keras.tfmot().sparsity.keras
    tf_keras.utils.set_random_seed(0)
    schedule = sparsity_api.PolynomialDecay(
        0.0, sparsity, budget["begin"], budget["end"], frequency=budget["frequency"]
    )
    model = sparsity_api.prune_low_magnitude(_keras.clone(tf_model), pruning_schedule=schedule)
    loss = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(tf_keras.optimizers.Adam(budget["learning_rate"]), loss, metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(
        *train_data,
        epochs=budget["epochs"],
        batch_size=budget["batch_size"],
        verbose=0,
        callbacks=[sparsity_api.UpdatePruningStep()],
    )
    seconds = time.perf_counter() - start
    stripped = sparsity_api.strip_pruning(model)
    return {
        "accuracy": kf.evaluate(stripped, test).accuracy,
        "sparsity": zero_fraction(stripped),
        "seconds": seconds,
    }


def ours(model, train_data, score_data, test, sparsity, budget, method, scope, gradual=True):
    tune = kf.FineTune(
        epochs=budget["epochs"],
        data=train_data,
        batch_size=budget["batch_size"],
        learning_rate=budget["learning_rate"],
    )
    schedule = kf.GradualSchedule(budget["begin"], budget["end"], budget["frequency"])
    _keras.keras_module(model).utils.set_random_seed(0)
    result = kf.prune(
        model,
        score_data,
        sparsity=sparsity,
        method=method,
        scope=scope,
        schedule=schedule if gradual else None,
        fine_tune=tune,
        eval_data=test,
        verbose=False,
    )
    report = result.report
    return {
        "accuracy": report.fine_tuned.accuracy,
        "sparsity": report.sparsity,
        "seconds": report.seconds["total"],
        "scoring_seconds": report.seconds["scoring"],
    }


def fine_tuned(model, tf_model, train_data, test, sparsity, budget, quiet) -> dict:
    score_data = (
        train_data[0][: budget["score_examples"]],
        train_data[1][: budget["score_examples"]],
    )
    runs = {
        "ours gradual obd/global (keras3)": (model, "obd", "global", True),
        "ours gradual obd/layer (keras3)": (model, "obd", "layer", True),
        "ours gradual fisher/global (keras3)": (model, "fisher", "global", True),
        "ours gradual magnitude/global (keras3)": (model, "magnitude", "global", True),
        "ours gradual obd/global (tf_keras+tfmot)": (tf_model, "obd", "global", True),
        "ours gradual obd/layer (tf_keras+tfmot)": (tf_model, "obd", "layer", True),
        "one-shot obd/global + FT (keras3)": (model, "obd", "global", False),
        "one-shot magnitude/global + FT (keras3)": (model, "magnitude", "global", False),
    }
    rows = {
        "tfmot prune_low_magnitude + PolynomialDecay (tf_keras)": tfmot_baseline(
            tf_model, train_data, test, sparsity, budget
        )
    }
    for name, (m, method, scope, gradual) in runs.items():
        rows[name] = ours(m, train_data, score_data, test, sparsity, budget, method, scope, gradual)
        if not quiet:
            print(f"  {name}: {rows[name]['accuracy']:.3f}")
    return rows


def sizes(model, train_data, from_logits=True) -> dict:
    """TFLite sizes of the OBD-global pruned model at each sparsity (0 = dense)."""
    objective = Objective(from_logits=from_logits, target="log_likelihood")
    scores = score(model, Data.of(train_data, model), OBD(), objective, verbose=False)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for sparsity in (0.0, *SPARSITIES):
            pruned = kf.mask_model(model, selection.select(scores, sparsity))
            row = {}
            for sparse in (False, True):
                path = os.path.join(tmp, f"{sparsity}-{sparse}")
                report = kf.export(
                    pruned, path, tflite=True, sparse=sparse, int8=True, verbose=False
                )
                kind = "sparse" if sparse else "float"
                row[kind] = report.sizes["model.tflite"]
                row[f"{kind}_int8"] = report.sizes["model_int8.tflite"]
            out[f"{sparsity:.2f}"] = row
    return out


def targets(result: dict) -> list[str]:
    """The targets the results are read against, each marked met or missed."""
    acc = result["noft"]["accuracy"]
    behind = [s for s in acc["obd/global"] if acc["obd/global"][s] < acc["magnitude/global"][s]]
    ft = result["fine_tuned"]
    ours_acc = ft["ours gradual obd/global (keras3)"]["accuracy"]
    tfmot_acc = ft["tfmot prune_low_magnitude + PolynomialDecay (tf_keras)"]["accuracy"]
    dense = result["tflite"]["0.00"]["float"]["gzip"]
    small = {k: v["gzip"] / dense for k, v in result["tflite"]["0.90"].items()}
    return [
        "OBD-global >= magnitude-global NoFT at every sparsity <= 95%: "
        + ("met" if not behind else f"MISSED at {behind}"),
        "gradual OBD-global >= tfmot magnitude at 90% with the same budget: "
        + ("met" if ours_acc >= tfmot_acc else "MISSED")
        + f" ({ours_acc:.3f} vs {tfmot_acc:.3f})",
        "TFLite at 90% <= 1/4 of dense float gzip: "
        + ", ".join(f"{k} {v:.3f} ({'met' if v <= 0.25 else 'missed'})" for k, v in small.items()),
    ]


def tables(result: dict) -> str:
    noft, lines = result["noft"], []
    lines.append(f"NoFT test accuracy (dense {noft['dense_accuracy']:.3f})")
    lines.append(f"{'method/scope':<24}" + "".join(f"{s:>8.0%}" for s in SPARSITIES))
    for name, row in noft["accuracy"].items():
        lines.append(f"{name:<24}" + "".join(f"{v:>8.3f}" for v in row.values()))
    lines.append(
        "\nscoring time / one training epoch: "
        + ", ".join(f"{k} {v:.2f}" for k, v in noft["scoring_vs_epoch"].items())
    )
    budget = result["budget"]
    lines.append(
        f"\nFT at {result['ft_sparsity']:.0%}, same budget ({budget['epochs']} epochs × "
        f"batch {budget['batch_size']}, Adam {budget['learning_rate']}; ramp steps "
        f"{budget['begin']}→{budget['end']} every {budget['frequency']})"
    )
    lines.append(f"{'run':<58}{'accuracy':>9}{'sparsity':>9}{'seconds':>9}")
    for name, row in result["fine_tuned"].items():
        lines.append(
            f"{name:<58}{row['accuracy']:>9.3f}{row['sparsity']:>9.3f}{row['seconds']:>9.1f}"
        )
    lines.append("\nTFLite bytes, raw / gzip (OBD-global masks)")
    kinds = list(result["tflite"]["0.00"])
    lines.append(f"{'sparsity':<10}" + "".join(f"{k:>22}" for k in kinds))
    for sparsity, row in result["tflite"].items():
        cells = "".join(f"{row[k]['raw']:>11,}/{row[k]['gzip']:>10,}" for k in kinds)
        lines.append(f"{float(sparsity):<10.0%}{cells}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30, help="training epochs")
    parser.add_argument("--ft-epochs", type=int, default=8, help="fine-tune budget, epochs")
    parser.add_argument("--ft-sparsity", type=float, default=0.9)
    parser.add_argument("--out", default=RESULTS)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    train_data, test = kf.datasets.load("digits", seed=0)
    model, tf_model, epoch = train(train_data, args.epochs)
    # The ramp ends at step 200 of the 8-epoch budget (344 steps); a shorter budget ends it at
    # its last step, since a schedule the fine-tuning never finishes is refused.
    last_step = args.ft_epochs * -(-len(train_data[1]) // 32) - 1
    end = min(200, last_step)
    budget = {
        "epochs": args.ft_epochs,
        "batch_size": 32,
        "learning_rate": 1e-3,
        "begin": 0,
        "end": end,
        "frequency": max(1, min(20, end // 10)),
        "score_examples": 512,
    }
    result = {
        "model": f"MLP 64-{'-'.join(map(str, HIDDEN))}-10 on digits",
        "epoch_seconds": epoch,
        "budget": budget,
        "ft_sparsity": args.ft_sparsity,
    }
    result["noft"] = noft(model, train_data, test, epoch, args.quiet)
    result["fine_tuned"] = fine_tuned(
        model, tf_model, train_data, test, args.ft_sparsity, budget, args.quiet
    )
    result["tflite"] = sizes(model, train_data)
    result["targets"] = targets(result)
    result["seconds"] = time.perf_counter() - start
    write_json(args.out, result)
    print(tables(result) + "\n\n" + "\n".join(result["targets"]))
    print(f"\n{result['seconds']:.0f}s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
