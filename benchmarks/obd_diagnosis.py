"""Why one-shot OBD ranked over all layers collapses, and the compression defaults that fix it.

Part 1, diagnosis (two MLPs, 64-256-128-64-10 and 64-300-100-50-10). Each model is scored
on the first ``--score-examples`` examples of its fit split and measured on its
validation split:

* per-layer sparsity of magnitude-global, one-shot OBD-global and OBD-global pruned in
  rounds (``DEFAULT_ROUNDS``), at 50/75/90/95 %;
* layer conservation (the SynFlow paper, Tanaka et al. 2020): each layer's share of the
  weights against its share of the total score, and the global sparsity at which a layer
  is first 99 % pruned;
* the saturated softmax: ``tr(diag p − p pᵀ) = 1 − Σ p²`` per example, the factor the
  Gauss-Newton diagonal carries, on the scoring (training) examples and on held-out ones;
* OBD's additivity: the loss increase one-shot OBD predicts (the sum of the saliencies
  removed) against the one measured.

Part 2, defaults (the protocol of benchmarks/README.md): OBD-global and Fisher-OBD-global
in 1/4/8/16 rounds (1/8 for Fisher-OBD), with LAMP (1 and 8 rounds) or a 5 % minimum
density (one-shot), and OBS's dampening
and allocation, on the two MLPs and the VGG-style CNN of examples/discedit_cnn.py, over
seeds 0/1/2, validation accuracy without retraining. The test split is never touched.

    python benchmarks/obd_diagnosis.py [--seeds 0 1 2] [--quick] [--quiet] [--out PATH]

Prints the tables and writes benchmarks/results/obd_diagnosis.json.
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
from discedit_cnn import train as train_cnn  # noqa: E402
from discedit_cnn import vgg  # noqa: E402
from provenance import provenance  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import keras_forget as kf  # noqa: E402
from keras_forget import api, selection  # noqa: E402
from keras_forget.data import Data  # noqa: E402
from keras_forget.files import write_json  # noqa: E402
from keras_forget.introspect.registry import prunable_weights  # noqa: E402
from keras_forget.scores import Objective, get  # noqa: E402
from keras_forget.scores.accumulate import rescorer, score  # noqa: E402
from keras_forget.surgery.obs import OBS  # noqa: E402

OUT = os.path.join(HERE, "results", "obd_diagnosis.json")
MLPS = {"mlp": (256, 128, 64), "mlp2": (300, 100, 50)}
SPARSITIES = (0.5, 0.75, 0.9, 0.95)
VAL_FRACTION = 0.2
MIN_DENSITY = 0.05
#: The score configurations also run on the CNN (OBD's per-example Jacobians of a CNN cost
#: about 30 s per round over 512 examples on 2 cores).
CNN_CONFIGS = ("obd r=1", "obd r=8", "magnitude")
#: name: kf.prune keyword arguments, for the weight scores.
SCORE_CONFIGS = {
    **{f"obd r={r}": {"method": "obd", "rounds": r} for r in (1, 4, 8, 16)},
    **{f"obd r={r} lamp": {"method": "obd", "rounds": r, "normalize": "lamp"} for r in (1, 8)},
    "obd r=1 md": {"method": "obd", "rounds": 1, "min_density": MIN_DENSITY},
    **{f"fisher r={r}": {"method": "fisher", "rounds": r} for r in (1, 8)},
    "magnitude": {"method": "magnitude"},
}
OBS_CONFIGS = {
    f"obs damp={d} {a}": {"method": OBS(damp=d), "scope": "layer"}
    if a == "layer"
    else {"method": OBS(damp=d, allocation=a), "scope": "global"}
    for d, a in [
        (0.01, "layer"),
        (0.01, "lamp"),
        (0.01, "magnitude"),
        (0.1, "layer"),
        (0.1, "lamp"),
    ]
}


def split(seed: int):
    """(fit, validation) carved from the digits training part; the test part is dropped."""
    (x, y), _test_never_used = kf.datasets.load("digits", seed=seed)
    x_fit, x_val, y_fit, y_val = train_test_split(
        x, y, test_size=VAL_FRACTION, stratify=y, random_state=seed
    )
    return (x_fit, y_fit), (x_val, y_val)


def mlp(hidden, seed: int, fit, epochs: int) -> keras.Model:
    """Flatten, ReLU Dense layers of ``hidden`` units, logits; trained with Adam."""
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((8, 8, 1)), keras.layers.Flatten()]
    layers += [keras.layers.Dense(u, activation="relu") for u in hidden]
    model = keras.Sequential([*layers, keras.layers.Dense(10)])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.Adam(1e-3), loss, metrics=["accuracy"])
    model.fit(*fit, epochs=epochs, batch_size=32, verbose=0)
    return model


class Masked:
    """Validation accuracy and loss of ``weight · mask`` in one working copy."""

    def __init__(self, model, data) -> None:
        self.model = keras.models.clone_model(model)
        self.model.set_weights(model.get_weights())
        self.weights = prunable_weights(self.model)
        self.original = {k: w.variable.numpy() for k, w in self.weights.items()}
        self.x, self.y = data

    def measure(self, masks=None) -> tuple[float, float]:
        """(accuracy, mean cross-entropy) with ``masks`` applied."""
        for key, value in self.original.items():
            self.weights[key].variable.assign(value if masks is None else value * masks[key])
        logits = np.asarray(self.model(self.x, training=False), np.float64)
        logits -= logits.max(1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        return float(np.mean(log_p.argmax(1) == self.y)), float(
            -log_p[np.arange(len(self.y)), self.y].mean()
        )


def saturation(model, x) -> dict:
    """How saturated the softmax is, and how few examples carry the Gauss-Newton diagonal."""
    p = keras.ops.convert_to_numpy(keras.ops.softmax(model(x, training=False))).astype(np.float64)
    trace = 1.0 - np.square(p).sum(1)  # tr(diag p − p pᵀ): the GGN's factor per example
    ordered = np.sort(trace)[::-1]
    return {
        "median_1_minus_pmax": float(np.median(1 - p.max(1))),
        "frac_pmax_above_0.999": float(np.mean(p.max(1) > 0.999)),
        "mean_trace": float(trace.mean()),
        "top10_share": float(ordered[: max(1, len(ordered) // 10)].sum() / ordered.sum()),
        "effective_fraction": float(trace.sum() ** 2 / (len(trace) * np.square(trace).sum())),
    }


def conservation(scores: dict) -> dict:
    """Per layer: share of the weights, share of the score, and its 99 %-collapse sparsity."""
    keys = list(scores)
    sizes = np.array([scores[k].size for k in keys], float)
    mass = np.array([float(np.sum(scores[k], dtype=np.float64)) for k in keys])
    flat = np.concatenate([scores[k].ravel() for k in keys])
    order = np.sort(flat)
    out = {}
    for key, n, m in zip(keys, sizes, mass):
        values = np.sort(scores[key].ravel())
        kth = values[min(len(values) - 1, int(np.ceil(0.99 * len(values))) - 1)]
        collapse = np.searchsorted(order, kth, side="right") / flat.size  # global sparsity
        out[key] = {
            "weight_share": float(n / sizes.sum()),
            "score_share": float(m / mass.sum()) if mass.sum() > 0 else 0.0,
            "collapse_99": float(collapse),
        }
    return out


def diagnose(name: str, seed: int, model, fit, val, args) -> dict:
    """Part 1 for one trained MLP."""
    data = Data.of((fit[0][: args.score_examples], fit[1][: args.score_examples]), model)
    objective = Objective(from_logits=True, target="log_likelihood")
    maps = {
        m: score(model, data, get(m), objective, verbose=False)
        for m in ("magnitude", "obd", "fisher_obd", "gradxweight")
    }
    maps["magnitude"] = {k: np.square(v) for k, v in maps["magnitude"].items()}  # w², as OBD
    on_val, on_fit = Masked(model, val), Masked(model, data.arrays())
    rounds = api.DEFAULT_ROUNDS["obd"]
    rescore = rescorer(model, data, get("obd"), objective, verbose=False)
    layers, accuracy, additivity = {}, {}, {}
    dense_loss = on_fit.measure()[1]
    for s in args.sparsities:
        chosen = {
            "magnitude-global": selection.select(maps["magnitude"], s),
            "obd-global one-shot": selection.select(maps["obd"], s),
            f"obd-global {rounds} rounds": selection.prune_in_rounds(rescore, s, rounds=rounds),
        }
        for label, masks in chosen.items():
            layers.setdefault(label, {})[f"{s:.2f}"] = {
                k: float(1 - m.mean()) for k, m in masks.items()
            }
            accuracy.setdefault(label, {})[f"{s:.2f}"] = on_val.measure(masks)[0]
        one_shot = chosen["obd-global one-shot"]
        predicted = sum(float(maps["obd"][k][~m].sum()) for k, m in one_shot.items())
        additivity[f"{s:.2f}"] = {
            "predicted": predicted,
            "measured": on_fit.measure(one_shot)[1] - dense_loss,
        }
    return {
        "arch": name,
        "seed": seed,
        "dense_val_acc": on_val.measure()[0],
        "layers": layers,
        "val_acc": accuracy,
        "conservation": {m: conservation(v) for m, v in maps.items()},
        "saturation": {
            "scoring": saturation(model, data.arrays()[0]),
            "validation": saturation(model, val[0]),
        },
        "additivity": additivity,
    }


def default_rows(name: str, seed: int, model, fit, val, args) -> list[dict]:
    """Part 2 for one trained model: validation accuracy of every configuration."""
    if name == "vgg":
        examples, score_sparsities = args.cnn_score_examples, args.cnn_score_sparsities
        configs = {k: v for k, v in SCORE_CONFIGS.items() if k in CNN_CONFIGS}
    else:
        examples, score_sparsities, configs = args.score_examples, args.sparsities, SCORE_CONFIGS
    data = (fit[0][:examples], fit[1][:examples])
    dense = kf.evaluate(model, val).accuracy
    rows = []
    for label, kwargs in {**configs, **OBS_CONFIGS}.items():
        sparsities = args.sparsities if label.startswith(("obs", "magnitude")) else score_sparsities
        for s in sparsities:
            tick = time.perf_counter()
            result = kf.prune(model, data, sparsity=s, eval_data=val, verbose=False, **kwargs)
            rows.append(
                {
                    "arch": name,
                    "seed": seed,
                    "config": label,
                    "sparsity": s,
                    "dense_val_acc": dense,
                    "val_acc": result.report.after.accuracy,
                    "seconds": time.perf_counter() - tick,
                }
            )
        if not args.quiet:
            last = [r for r in rows if r["config"] == label]
            print(
                f"  [{name} seed {seed}] {label:<24}"
                + " ".join(f"{r['val_acc']:.3f}" for r in last),
                flush=True,
            )
    return rows


def spread(values) -> dict:
    v = np.asarray(values, float)
    return {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}


def summarize(rows: list[dict]) -> dict:
    """``{arch: {config: {sparsity: spread}}}`` and each config's mean over every cell."""
    cells: dict = {}
    for r in rows:
        cells.setdefault(r["arch"], {}).setdefault(r["config"], {}).setdefault(
            f"{r['sparsity']:.2f}", []
        ).append(r["val_acc"])
    table = {
        a: {c: {s: spread(v) for s, v in cs.items()} for c, cs in by.items()}
        for a, by in cells.items()
    }
    return table


def recommend(table: dict) -> dict:
    """The defaults the validation numbers pick, by the rules in the module docstring."""

    def mean_of(config: str, archs=None) -> float | None:
        found = [
            cell["mean"]
            for arch, by in table.items()
            if archs is None or arch in archs
            for s, cell in by.get(config, {}).items()
        ]
        return float(np.mean(found)) if found else None

    def fewest_rounds(prefix: str, options) -> dict:
        means = {r: mean_of(f"{prefix} r={r}") for r in options}
        means = {r: m for r, m in means.items() if m is not None}
        best = max(means.values())
        chosen = min(r for r, m in means.items() if m >= best - 0.005)
        return {"means": means, "rounds": chosen}

    obd = fewest_rounds("obd", (1, 4, 8, 16))
    fisher = fewest_rounds("fisher", (1, 8))
    guards = {
        "none r=1": mean_of("obd r=1"),
        "lamp r=1": mean_of("obd r=1 lamp"),
        "md r=1": mean_of("obd r=1 md"),
        "none r=8": mean_of("obd r=8"),
        "lamp r=8": mean_of("obd r=8 lamp"),
    }
    obs = {c: mean_of(c) for c in OBS_CONFIGS}
    obs_best = max((c for c in obs if obs[c] is not None), key=lambda c: obs[c])
    return {
        "obd": obd,
        "fisher": fisher,
        "guards": guards,
        "obs": {"means": obs, "best": obs_best},
        "library": {
            "DEFAULT_ROUNDS": dict(api.DEFAULT_ROUNDS),
            "OBS": OBS().get_config(),
        },
    }


def fmt(cell: dict | None) -> str:
    return "—" if cell is None else f"{cell['mean']:.3f} [{cell['min']:.3f}, {cell['max']:.3f}]"


def _layer_names(keys) -> dict:
    return {k: f"fc{i + 1}" for i, k in enumerate(keys)}


def _mean(values) -> float:
    return float(np.mean(values))


def diagnosis_tables(diagnoses: list[dict], sparsities) -> str:
    lines = []
    for arch in MLPS:
        runs = [d for d in diagnoses if d["arch"] == arch]
        if not runs:
            continue
        shape = "-".join(map(str, (64, *MLPS[arch], 10)))
        lines.append(
            f"\n{arch} ({shape}), {len(runs)} seed(s), means; validation accuracy without "
            f"retraining (dense {_mean([d['dense_val_acc'] for d in runs]):.3f})"
        )
        names = [_layer_names(d["layers"]["magnitude-global"]["0.50"]) for d in runs]
        labels = list(names[0].values())
        lines.append(
            f"{'ranking':<26}{'sparsity':>9}{'val acc':>9}" + "".join(f"{n:>8}" for n in labels)
        )
        for method in runs[0]["layers"]:
            for s in sparsities:
                key = f"{s:.2f}"
                per = [
                    {names[i][k]: v for k, v in d["layers"][method][key].items()}
                    for i, d in enumerate(runs)
                ]
                acc = _mean([d["val_acc"][method][key] for d in runs])
                cells = "".join(f"{_mean([p[n] for p in per]):>8.3f}" for n in labels)
                lines.append(f"{method:<26}{s:>9.0%}{acc:>9.3f}{cells}")
        lines.append(
            "layer conservation: share of weights / share of score @ the global sparsity at "
            "which the layer is 99 % pruned"
        )
        lines.append(f"{'score':<14}" + "".join(f"{n:>22}" for n in labels))
        for method in runs[0]["conservation"]:
            cells = ""
            for n in labels:
                rows = [
                    next(v for k, v in d["conservation"][method].items() if names[j][k] == n)
                    for j, d in enumerate(runs)
                ]
                w, sc, c = (
                    _mean([r[f] for r in rows])
                    for f in ("weight_share", "score_share", "collapse_99")
                )
                cells += f"{w:>7.3f}/{sc:.3f} @{c:>5.1%}"
            lines.append(f"{method:<14}{cells}")
        for where in ("scoring", "validation"):
            sat = {
                f: _mean([d["saturation"][where][f] for d in runs])
                for f in runs[0]["saturation"][where]
            }
            lines.append(
                f"softmax on {where} examples: median 1-p_max {sat['median_1_minus_pmax']:.2e}, "
                f"p_max>0.999 {sat['frac_pmax_above_0.999']:.1%}, mean tr(diag p - pp^T) "
                f"{sat['mean_trace']:.2e}, top 10% of examples carry "
                f"{sat['top10_share']:.1%} of it, effective examples "
                f"{sat['effective_fraction']:.1%}"
            )
        cells = ", ".join(
            f"{float(s):.0%}: {_mean([d['additivity'][s]['predicted'] for d in runs]):.3g} vs "
            f"{_mean([d['additivity'][s]['measured'] for d in runs]):.3g}"
            for s in runs[0]["additivity"]
        )
        lines.append(
            f"one-shot OBD-global loss increase, predicted (sum of saliencies) vs measured: {cells}"
        )
    return "\n".join(lines)


def defaults_table(table: dict, sparsities) -> str:
    lines = [f"{'arch':<6}{'configuration':<26}" + "".join(f"{s:>22.0%}" for s in sparsities)]
    for arch, by in table.items():
        for config, cells in by.items():
            lines.append(
                f"{arch:<6}{config:<26}"
                + "".join(f"{fmt(cells.get(f'{s:.2f}')):>22}" for s in sparsities)
            )
    return "\n".join(lines)


def recommendation_lines(choice: dict) -> list[str]:
    lib = choice["library"]
    obd, fisher = choice["obd"], choice["fisher"]
    means = lambda d: ", ".join(f"{k}: {v:.4f}" for k, v in d.items() if v is not None)  # noqa: E731
    agree = lambda ok: "agrees" if ok else "DISAGREES"  # noqa: E731
    best = choice["obs"]["best"]
    lib_obd = lib["DEFAULT_ROUNDS"].get("obd", 1)
    return [
        f"OBD rounds (mean val acc over every arch x sparsity x seed: {means(obd['means'])}): "
        f"fewest within 0.5 pt of the best = {obd['rounds']}; library DEFAULT_ROUNDS['obd'] "
        f"{lib_obd} {agree(lib_obd == obd['rounds'])}",
        f"Fisher-OBD rounds ({means(fisher['means'])}): {fisher['rounds']}; library "
        f"{lib['DEFAULT_ROUNDS'].get('fisher_obd', 1)} "
        f"{agree(lib['DEFAULT_ROUNDS'].get('fisher_obd', 1) == fisher['rounds'])}",
        f"guards ({means(choice['guards'])}); the library default is no guard",
        f"OBS ({means(choice['obs']['means'])}): best {best}; library default "
        f"damp={lib['OBS']['damp']} allocation={lib['OBS']['allocation']} with scope='global'",
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30, help="MLP training epochs")
    parser.add_argument("--cnn-epochs", type=int, default=15, help="CNN training epochs")
    parser.add_argument("--score-examples", type=int, default=512)
    parser.add_argument("--cnn-score-examples", type=int, default=128)
    parser.add_argument("--sparsities", type=float, nargs="+", default=list(SPARSITIES))
    parser.add_argument("--cnn-score-sparsities", type=float, nargs="+", default=[0.5, 0.75])
    parser.add_argument("--no-cnn", action="store_true", help="skip the CNN")
    parser.add_argument("--quick", action="store_true", help="1 seed, 3 epochs, 2 sparsities")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.cnn_epochs = args.seeds[:1], 3, 1
        args.sparsities, args.cnn_score_sparsities = [0.5, 0.9], [0.5]
        args.score_examples = args.cnn_score_examples = 64
    start = time.perf_counter()
    origin = provenance()
    diagnoses, rows, models = [], [], []
    for seed in args.seeds:
        fit, val = split(seed)
        archs = [*MLPS, *([] if args.no_cnn else ["vgg"])]
        for arch in archs:
            tick = time.perf_counter()
            if arch == "vgg":
                model = train_cnn(vgg(seed=seed), (fit, None), epochs=args.cnn_epochs, seed=seed)
            else:
                model = mlp(MLPS[arch], seed, fit, args.epochs)
                diagnoses.append(diagnose(arch, seed, model, fit, val, args))
            models.append({"arch": arch, "seed": seed, "params": int(model.count_params())})
            rows += default_rows(arch, seed, model, fit, val, args)
            models[-1]["seconds"] = time.perf_counter() - tick
            keras.backend.clear_session()
    table = summarize(rows)
    choice = recommend(table)
    seconds = time.perf_counter() - start
    print(
        "Part 1: why one-shot OBD-global collapses" + diagnosis_tables(diagnoses, args.sparsities)
    )
    print(
        f"\nPart 2: validation accuracy without retraining, mean [min, max] over seeds "
        f"{args.seeds} (stratified {VAL_FRACTION:.0%} of the digits training split; test "
        f"split never touched); scores on {args.score_examples} fit examples "
        f"({args.cnn_score_examples} for the CNN, at {args.cnn_score_sparsities})\n"
        + defaults_table(table, args.sparsities)
    )
    print("\n" + "\n".join(recommendation_lines(choice)))
    result = {
        "protocol": {
            "dataset": "digits (kf.datasets.load('digits', seed=seed))",
            "split": f"stratified {VAL_FRACTION:.0%} validation split of the training part, "
            "random_state=seed; models trained and scored on the rest",
            "test_split": "never touched",
            "seeds": args.seeds,
            "architectures": [*MLPS, *([] if args.no_cnn else ["vgg"])],
            "spread": "mean, min and max over the seeds",
            "rules": "rounds: the fewest within 0.5 pt of the best mean; guards and OBS "
            "settings: the best mean",
        },
        "config": {k: v for k, v in vars(args).items() if k not in ("out", "quiet")},
        "provenance": origin,
        "diagnosis": diagnoses,
        "summary": table,
        "recommendation": choice,
        "models": models,
        "rows": rows,
        "seconds": seconds,
    }
    path = write_json(args.out, result)
    print(f"\n{seconds:.0f}s; wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
