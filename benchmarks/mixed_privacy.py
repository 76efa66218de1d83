"""Mixed-privacy forgetting (``kf.MixedLinear``) against retraining the user part from scratch.

Follows the protocol of benchmarks/README.md, in two halves. Core data: the training
digits of classes 0-4; user data: those of classes 5-9. A core network is trained on
the core data only; its last two weighted layers are linearized
(``kf.MixedLinear(core, "last:2")``) and Δ is solved exactly on all the training data
(core and user). Only user examples are forgotten.

- ``--split validation`` chooses: on a stratified 20 % validation part carved from the
  training part (``random_state=seed``; the test part is never read), the weight decay λ
  of the mixed-linear model among ``--weight-decays`` and the learning rate of the
  fine-tuning baseline among ``--learning-rates``, each by the highest mean validation
  accuracy over seeds × architectures (ties: the larger value).
- ``--split test`` reports once, with the chosen λ and learning rate, trained on the
  whole training part and measured on the untouched test part. Two forgetting requests
  in a row: (a) 10 % of the user examples at random, (b) every user example left of
  class ``--forget-class``; each is compared with retraining Δ from scratch on the
  remaining data (``solve`` by plain CG, ``recycle=False``: the exact minimiser, the gold
  standard): relative Δ difference, agreement of the predicted classes, test accuracy of
  both, CG iterations, and the time to forget as a ratio of the time to retrain (both
  ``SolveReport.seconds``, the same process, tf.functions already traced). Forgetting is
  preconditioned by the directions of the first solve (``recycle=True``, the default);
  what recording them and building the preconditioner costs is the solve's time over a
  plain solve's on the same data (``solve_recycle_over_plain``). Then ``forget_all()``
  against the core network.
  Also: the mixed-linear model against ordinary fine-tuning of the same two layers on the
  same data (cross-entropy, Adam, ``FT_EPOCHS`` epochs); accuracy and a membership-
  inference rate on the forgotten examples before and after; forgetting (a) with noise
  (``noise_scale=1``: at most 0.5 nats left); and, on the MLP, which LQF ingredients
  matter: leaky ReLU or ReLU, cross-entropy or MSE (on 5·one-hot) to train the core.

Membership inference: a logistic regression on the log of an example's loss (squared
error to 5·one-hot, the mixed-linear model's own loss) separates user examples the model
holds (members) from test examples of the user classes (non-members), class-balanced; the
rate is the fraction of the forgotten examples it calls members.

Architectures: an MLP (leaky ReLU, logits) and the VGG- and ResNet-style CNNs of
``examples/discedit_cnn.py`` at width 8. Summaries: mean [min, max] over the seeds.

    python benchmarks/mixed_privacy.py --split validation [--seeds 0 1 2] [--archs ...]
    python benchmarks/mixed_privacy.py --split test [--weight-decay 0.001] [--learning-rate 0.01]

Prints the tables and writes benchmarks/results/mixed_privacy_<split>.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from discedit_cnn import resnet, vgg  # noqa: E402
from protocol import VAL_FRACTION, fmt, splits, spread  # noqa: E402
from provenance import provenance  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import keras_forget as kf  # noqa: E402
from keras_forget.files import write_json  # noqa: E402

CORE_CLASSES = (0, 1, 2, 3, 4)
SCALE = 5.0  # MixedLinear's default target scale
WIDTH = 8  # of the CNNs
EPOCHS = {"mlp": 30, "vgg": 30, "resnet": 30}  # core training (BN statistics settle by 30)
FT_EPOCHS = 20
WEIGHT_DECAYS = (1e-3, 3e-3, 1e-2, 1e-1)
LEARNING_RATES = (1e-3, 3e-3, 1e-2)
# Chosen by `--split validation` (benchmarks/results/mixed_privacy_validation.json).
WEIGHT_DECAY, LEARNING_RATE = 1e-3, 1e-2
VARIANTS = (("leaky_relu", "ce"), ("relu", "ce"), ("leaky_relu", "mse"), ("relu", "mse"))


# ---- models -----------------------------------------------------------------------


def mlp(seed: int, activation: str = "leaky_relu") -> keras.Model:
    """Flatten → Dense 64 → Dense 64 → Dense 10 logits."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation=activation, name="fc1"),
            keras.layers.Dense(64, activation=activation, name="fc2"),
            keras.layers.Dense(10, name="logits"),
        ],
        name="mlp",
    )


def build(arch: str, seed: int, activation: str = "leaky_relu") -> keras.Model:
    if arch == "mlp":
        return mlp(seed, activation)
    return {"vgg": vgg, "resnet": resnet}[arch](width=WIDTH, seed=seed)


def train_core(model, x, y, epochs: int, seed: int, loss: str = "ce") -> keras.Model:
    """Adam 3e-3, batch 32: cross-entropy on logits, or MSE on 5·one-hot."""
    keras.utils.set_random_seed(seed)
    if loss == "ce":
        model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(True))
        model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    else:
        model.compile(keras.optimizers.Adam(3e-3), "mse")
        model.fit(x, SCALE * np.eye(10)[y], epochs=epochs, batch_size=32, verbose=0)
    return model


def fine_tune(core, layers: list[str], x, y, learning_rate: float, seed: int) -> keras.Model:
    """A copy of ``core`` with only ``layers`` trained: cross-entropy, Adam, FT_EPOCHS epochs."""
    keras.utils.set_random_seed(seed)
    model = keras.models.clone_model(core)
    model.set_weights(core.get_weights())
    for layer in model.layers:
        layer.trainable = layer.name in layers
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.Adam(learning_rate), loss)
    model.fit(x, y, epochs=FT_EPOCHS, batch_size=32, verbose=0)
    return model


def accuracy(outputs: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(outputs.argmax(axis=1) == y))


def core_and_model(arch, seed, x, y, weight_decay, activation="leaky_relu", loss="ce"):
    """The core trained on the core classes of ``(x, y)``, and MixedLinear solved on all."""
    is_core = np.isin(y, CORE_CLASSES)
    core = train_core(
        build(arch, seed, activation), x[is_core], y[is_core], EPOCHS[arch], seed, loss
    )
    ml = kf.MixedLinear(core, "last:2", scale=SCALE, weight_decay=weight_decay)
    report = ml.solve((x, y))
    return core, ml, report


# ---- validation: choose λ and the fine-tuning learning rate -------------------------


def validation_run(arch: str, seed: int, args) -> dict:
    (x, y), (xv, yv) = splits("validation", seed)
    row = {"arch": arch, "seed": seed, "ml": {}, "ft": {}}
    is_core = np.isin(y, CORE_CLASSES)
    core = train_core(build(arch, seed), x[is_core], y[is_core], EPOCHS[arch], seed)
    for lam in args.weight_decays:
        ml = kf.MixedLinear(core, "last:2", scale=SCALE, weight_decay=lam)
        report = ml.solve((x, y))
        row["ml"][str(lam)] = {
            "val_acc": accuracy(ml.predict(xv), yv),
            "cg_iterations": report.iterations,
            "converged": report.converged,
            "seconds": report.seconds,
        }
    layers = ml.layer_names
    for lr in args.learning_rates:
        ft = fine_tune(core, layers, x, y, lr, seed)
        row["ft"][str(lr)] = {"val_acc": accuracy(ft.predict(xv, verbose=0), yv)}
    row["core_val_acc"] = accuracy(core.predict(xv, verbose=0), yv)
    return row


def choose(rows: list[dict], key: str, values) -> tuple[float, dict]:
    """The value with the highest mean validation accuracy (ties: the larger value)."""
    means = {v: float(np.mean([r[key][str(v)]["val_acc"] for r in rows])) for v in values}
    best = max(sorted(values, reverse=True), key=lambda v: means[v])
    return best, {str(v): m for v, m in means.items()}


# ---- test: forgetting against retraining -------------------------------------------


def losses(outputs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-example squared error to 5·one-hot (the mixed-linear model's loss)."""
    return ((outputs - SCALE * np.eye(10)[y]) ** 2).sum(axis=1)


def membership_rate(model, members, non_members, targets) -> float:
    """Fraction of ``targets`` a loss-based logistic-regression attack calls members."""

    def feature(data):
        return np.log(losses(model.predict(data[0]), data[1]) + 1e-12)[:, None]

    features = np.concatenate([feature(members), feature(non_members)])
    labels = np.r_[np.ones(len(members[1])), np.zeros(len(non_members[1]))]
    attack = LogisticRegression(class_weight="balanced").fit(features, labels)
    return float(attack.predict(feature(targets)).mean())


def forget_request(ml, core, x, y, held, gone, test, non_members, name, lam) -> dict:
    """Forgets ``gone`` (indices into ``x``) from ``ml``; compares with retraining."""
    xt, yt = test
    targets = (x[gone], y[gone])
    stay = held & ~np.isin(np.arange(len(y)), gone) & ~np.isin(y, CORE_CLASSES)
    members = (x[stay], y[stay])  # user examples held before and after the request
    before = {
        "forgotten_acc": accuracy(ml.predict(targets[0]), targets[1]),
        "mia": membership_rate(ml, members, non_members, targets),
    }
    held[gone] = False
    report = ml.forget(targets, remaining=(x[held], y[held]))
    # The gold standard: an exact solve from scratch by plain CG, keeping no directions.
    retrained = kf.MixedLinear(core, "last:2", scale=SCALE, weight_decay=lam, recycle=False)
    retrained.solve((x[:64], y[:64]), max_iter=1)  # traces its tf.functions before timing
    gold = retrained.solve((x[held], y[held]))
    out, gold_out = ml.predict(xt), retrained.predict(xt)
    return {
        "request": name,
        "forgotten": int(len(gone)),
        "remaining": int(held.sum()),
        "rel_delta_diff": float(
            np.linalg.norm(ml.delta - retrained.delta) / np.linalg.norm(retrained.delta)
        ),
        "max_abs_output_diff": float(np.abs(out - gold_out).max()),
        "agreement": float(np.mean(out.argmax(1) == gold_out.argmax(1))),
        "test_acc_forget": accuracy(out, yt),
        "test_acc_retrain": accuracy(gold_out, yt),
        "forget_seconds": report.seconds,
        "retrain_seconds": gold.seconds,
        "time_ratio": report.seconds / gold.seconds,
        "forget_iterations": report.iterations,
        "forget_preconditioned": report.preconditioned,
        "retrain_iterations": gold.iterations,
        "converged": bool(report.converged and gold.converged),
        "forgotten_acc_before": before["forgotten_acc"],
        "forgotten_acc_after": accuracy(ml.predict(targets[0]), targets[1]),
        "forgotten_acc_retrain": accuracy(retrained.predict(targets[0]), targets[1]),
        "mia_before": before["mia"],
        "mia_after": membership_rate(ml, members, non_members, targets),
        "mia_retrain": membership_rate(retrained, members, non_members, targets),
    }


def plain_solve_seconds(core, x, y, lam) -> float:
    """Seconds of a plain solve (no directions kept) on ``(x, y)``, traced beforehand."""
    plain = kf.MixedLinear(core, "last:2", scale=SCALE, weight_decay=lam, recycle=False)
    plain.solve((x[:64], y[:64]), max_iter=1)
    return plain.solve((x, y)).seconds


def test_run(arch: str, seed: int, args) -> dict:
    (x, y), (xt, yt) = splits("test", seed)
    lam = args.weight_decay
    core, ml, fitted = core_and_model(arch, seed, x, y, lam)
    ft = fine_tune(core, ml.layer_names, x, y, args.learning_rate, seed)
    row = {
        "arch": arch,
        "seed": seed,
        "linearized": ml.layer_names,
        "parameters": ml.num_parameters,
        "core_test_acc": accuracy(core.predict(xt, verbose=0), yt),
        "core_test_acc_core_classes": accuracy(
            core.predict(xt[np.isin(yt, CORE_CLASSES)], verbose=0), yt[np.isin(yt, CORE_CLASSES)]
        ),
        "ml_test_acc": accuracy(ml.predict(xt), yt),
        "ft_test_acc": accuracy(ft.predict(xt, verbose=0), yt),
        "solve_iterations": fitted.iterations,
        # Recording the directions and building the preconditioner, against a plain solve.
        "solve_recycle_over_plain": fitted.seconds / plain_solve_seconds(core, x, y, lam),
        "solve_converged": fitted.converged,
    }
    row["ml_minus_ft"] = row["ml_test_acc"] - row["ft_test_acc"]
    user_test = ~np.isin(yt, CORE_CLASSES)
    non_members = (xt[user_test], yt[user_test])
    user = np.flatnonzero(~np.isin(y, CORE_CLASSES))
    rng = np.random.default_rng(seed)
    random_users = rng.choice(user, size=len(user) // 10, replace=False)
    held = np.ones(len(y), bool)
    row["requests"] = [
        forget_request(ml, core, x, y, held, random_users, (xt, yt), non_members, "a", lam)
    ]
    of_class = user[(y[user] == args.forget_class) & held[user]]
    row["requests"].append(
        forget_request(ml, core, x, y, held, of_class, (xt, yt), non_members, "b", lam)
    )
    of_class = (xt[yt == args.forget_class], yt[yt == args.forget_class])
    row["forget_class_test_acc"] = {
        "core": accuracy(core.predict(of_class[0], verbose=0), of_class[1]),
        "after_b": accuracy(ml.predict(of_class[0]), of_class[1]),
    }
    ml.forget_all()
    row["forget_all_max_abs_diff"] = float(
        np.abs(ml.predict(xt) - core.predict(xt, verbose=0)).max()
    )
    if arch == "mlp":
        row["noise"] = noisy_request(core, x, y, random_users, (xt, yt), lam)
    return row


def noisy_request(core, x, y, gone, test, lam) -> dict:
    """Request (a) again with ``noise_scale=1``: σ, the bound, and the cost in accuracy."""
    ml = kf.MixedLinear(core, "last:2", scale=SCALE, weight_decay=lam)
    ml.solve((x, y))
    keep = np.ones(len(y), bool)
    keep[gone] = False
    report = ml.forget((x[gone], y[gone]), remaining=(x[keep], y[keep]), noise_scale=1.0, seed=0)
    exact = kf.MixedLinear(core, "last:2", scale=SCALE, weight_decay=lam)
    exact.solve((x[keep], y[keep]))
    out, gold = ml.predict(test[0]), exact.predict(test[0])
    return {
        "noise_scale": 1.0,
        "sigma": report.noise,
        "information_bound_nats": report.information_bound,
        "gradient_norm": report.gradient_norm,
        "rel_delta_diff": float(
            np.linalg.norm(ml.delta - exact.delta) / np.linalg.norm(exact.delta)
        ),
        "agreement": float(np.mean(out.argmax(1) == gold.argmax(1))),
        "test_acc": accuracy(out, test[1]),
        "test_acc_retrain": accuracy(gold, test[1]),
    }


def ablation_run(seed: int, activation: str, loss: str, args) -> dict:
    """One LQF ingredient setting on the MLP: core, mixed-linear and fine-tuned test accuracy."""
    (x, y), (xt, yt) = splits("test", seed)
    core, ml, report = core_and_model("mlp", seed, x, y, args.weight_decay, activation, loss)
    ft = fine_tune(core, ml.layer_names, x, y, args.learning_rate, seed)
    is_core = np.isin(yt, CORE_CLASSES)
    row = {
        "seed": seed,
        "activation": activation,
        "core_loss": loss,
        "core_test_acc_core_classes": accuracy(core.predict(xt[is_core], verbose=0), yt[is_core]),
        "ml_test_acc": accuracy(ml.predict(xt), yt),
        "ft_test_acc": accuracy(ft.predict(xt, verbose=0), yt),
        "solve_iterations": report.iterations,
    }
    row["ml_minus_ft"] = row["ml_test_acc"] - row["ft_test_acc"]
    return row


# ---- summaries and tables ----------------------------------------------------------

TARGETS = {
    "rel_delta_diff <= 1e-3": ("rel_delta_diff", max, lambda v: v <= 1e-3),
    "agreement >= 99.9 %": ("agreement", min, lambda v: v >= 0.999),
    "forget time <= 10 % of retrain time": ("time_ratio", max, lambda v: v <= 0.1),
}


def targets(rows: list[dict]) -> dict:
    """Each target of the method, checked on every row (the worst row decides)."""
    requests = [q for r in rows for q in r["requests"]]
    found = {
        name: {"worst": worst(q[key] for q in requests), "met": None}
        for name, (key, worst, _) in TARGETS.items()
    }
    for name, (_, _, ok) in TARGETS.items():
        found[name]["met"] = bool(ok(found[name]["worst"]))
    exact = max(r["forget_all_max_abs_diff"] for r in rows)
    found["forget_all max |diff| <= 1e-6"] = {"worst": exact, "met": exact <= 1e-6}
    gaps = {
        arch: float(np.mean([r["ml_minus_ft"] for r in rows if r["arch"] == arch]))
        for arch in dict.fromkeys(r["arch"] for r in rows)
    }
    gap = min(gaps.values())
    found["mixed-linear within 2 pt of fine-tuning (mean per arch)"] = {
        "worst": gap,
        "per_arch": gaps,
        "met": gap >= -0.02,
    }
    return found


def request_table(rows: list[dict]) -> str:
    keys = (
        ("rel Δ diff", "rel_delta_diff", "sci"),
        ("agree", "agreement", 4),
        ("acc forget", "test_acc_forget", 3),
        ("acc retrain", "test_acc_retrain", 3),
        ("t/retrain", "time_ratio", 2),
        ("CG iters forget", "forget_iterations", 0),
        ("CG iters retrain", "retrain_iterations", 0),
        ("MIA before", "mia_before", 2),
        ("MIA after", "mia_after", 2),
        ("MIA retrain", "mia_retrain", 2),
        ("f-acc before", "forgotten_acc_before", 2),
        ("f-acc after", "forgotten_acc_after", 2),
    )
    lines = [f"{'arch':<7}{'req':<4}{'n':>3}  " + "  ".join(f"{k[0]:<22}" for k in keys)]
    for arch in dict.fromkeys(r["arch"] for r in rows):
        for request in ("a", "b"):
            qs = [
                q
                for r in rows
                if r["arch"] == arch
                for q in r["requests"]
                if q["request"] == request
            ]
            cells = []
            for _, key, digits in keys:
                s = spread(q[key] for q in qs)
                cells.append(
                    f"{s['mean']:.1e} [{s['min']:.0e}, {s['max']:.0e}]"
                    if digits == "sci"
                    else fmt(s, digits)
                )
            lines.append(
                f"{arch:<7}{request:<4}{len(qs):>3}  " + "  ".join(f"{c:<22}" for c in cells)
            )
    return "\n".join(lines)


def model_table(rows: list[dict]) -> str:
    keys = (
        "core_test_acc",
        "ml_test_acc",
        "ft_test_acc",
        "ml_minus_ft",
        "forget_all_max_abs_diff",
        "solve_recycle_over_plain",
    )
    lines = [f"{'arch':<7}{'n':>3}  " + "  ".join(f"{k:<24}" for k in keys)]
    for arch in dict.fromkeys(r["arch"] for r in rows):
        rs = [r for r in rows if r["arch"] == arch]
        lines.append(
            f"{arch:<7}{len(rs):>3}  "
            + "  ".join(f"{fmt(spread(r[k] for r in rs)):<24}" for k in keys)
        )
    return "\n".join(lines)


def ablation_table(rows: list[dict]) -> str:
    keys = ("core_test_acc_core_classes", "ml_test_acc", "ft_test_acc", "ml_minus_ft")
    lines = [f"{'activation':<12}{'core loss':<10}{'n':>3}  " + "  ".join(f"{k:<26}" for k in keys)]
    for activation, loss in VARIANTS:
        rs = [r for r in rows if (r["activation"], r["core_loss"]) == (activation, loss)]
        if rs:
            lines.append(
                f"{activation:<12}{loss:<10}{len(rs):>3}  "
                + "  ".join(f"{fmt(spread(r[k] for r in rs)):<26}" for k in keys)
            )
    return "\n".join(lines)


# ---- main --------------------------------------------------------------------------


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--split", choices=("validation", "test"), default="test")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--archs", nargs="+", choices=tuple(EPOCHS), default=list(EPOCHS))
    p.add_argument("--weight-decays", type=float, nargs="+", default=list(WEIGHT_DECAYS))
    p.add_argument("--learning-rates", type=float, nargs="+", default=list(LEARNING_RATES))
    p.add_argument("--weight-decay", type=float, default=WEIGHT_DECAY)
    p.add_argument("--learning-rate", type=float, default=LEARNING_RATE)
    p.add_argument("--forget-class", type=int, default=7, help="a user class (5-9)")
    p.add_argument("--no-ablation", action="store_true", help="skip the LQF ingredients")
    p.add_argument("--quiet", action="store_true")
    p.add_argument(
        "--out", help="JSON path (default benchmarks/results/mixed_privacy_<split>.json)"
    )
    return p.parse_args(argv)


def run_validation(args, bar) -> dict:
    rows = []
    for arch in args.archs:
        for seed in args.seeds:
            rows.append(validation_run(arch, seed, args))
            bar.update()
    lam, lam_means = choose(rows, "ml", args.weight_decays)
    lr, lr_means = choose(rows, "ft", args.learning_rates)
    print(
        f"validation accuracy, mean over {len(rows)} seed × architecture runs "
        f"(stratified {VAL_FRACTION:.0%} of the training part; test split never touched)"
    )
    for value, mean in lam_means.items():
        its = [r["ml"][value]["cg_iterations"] for r in rows]
        done = sum(r["ml"][value]["converged"] for r in rows)
        print(
            f"  mixed-linear λ = {value:<8} {mean:.4f}   CG iterations {fmt(spread(its), 0)}, "
            f"converged {done}/{len(rows)}"
        )
    for value, mean in lr_means.items():
        print(f"  fine-tuning lr = {value:<7} {mean:.4f}")
    print(f"chosen: weight_decay = {lam}, fine-tuning learning_rate = {lr}")
    return {"rows": rows, "chosen": {"weight_decay": lam, "learning_rate": lr},
            "means": {"weight_decay": lam_means, "learning_rate": lr_means}}  # fmt: skip


def run_test(args, bar) -> dict:
    rows = []
    for arch in args.archs:
        for seed in args.seeds:
            rows.append(test_run(arch, seed, args))
            bar.update()
    shared = ("seed", "core_test_acc_core_classes", "ml_test_acc", "ft_test_acc", "ml_minus_ft")
    ablation = [
        {k: r[k] for k in shared} | {"activation": "leaky_relu", "core_loss": "ce"}
        for r in rows
        if r["arch"] == "mlp"
    ]  # the main runs are the first setting
    if not args.no_ablation:
        for seed in args.seeds:
            for activation, loss in VARIANTS[1:]:
                ablation.append(ablation_run(seed, activation, loss, args))
                bar.update()
    found = targets(rows)
    print(
        f"test split (untouched until now), λ = {args.weight_decay}, fine-tuning lr = "
        f"{args.learning_rate}; mean [min, max] over seeds {args.seeds}"
    )
    print(
        "\nforgetting (a) 10 % of the user examples, then (b) the user examples of class "
        f"{args.forget_class}, each against retraining Δ from scratch (exact solve):"
    )
    print(request_table(rows))
    print("\ntest accuracy: core network, mixed-linear, fine-tuning the same layers; forget_all:")
    print(model_table(rows))
    noisy = [r["noise"] for r in rows if "noise" in r]
    if noisy:
        print(
            "\nrequest (a) with noise_scale = 1 (mlp): σ "
            f"{fmt(spread(n['sigma'] for n in noisy), 4)}, bound "
            f"{fmt(spread(n['information_bound_nats'] for n in noisy), 2)} nats, agreement "
            f"{fmt(spread(n['agreement'] for n in noisy), 4)}, test acc "
            f"{fmt(spread(n['test_acc'] for n in noisy))} (exact "
            f"{fmt(spread(n['test_acc_retrain'] for n in noisy))})"
        )
    print("\nLQF ingredients (mlp): core activation and core training loss")
    print(ablation_table(ablation))
    print("\ntargets:")
    for name, t in found.items():
        print(f"  {'met    ' if t['met'] else 'NOT met'}  {name}: worst {t['worst']:.3g}")
    return {"rows": rows, "ablation": ablation, "targets": found}


def main(argv=None) -> int:
    args = parse(argv)
    tf.get_logger().setLevel("ERROR")
    origin = provenance()
    started = time.perf_counter()
    runs = len(args.archs) * len(args.seeds)
    if args.split == "test" and not args.no_ablation and "mlp" in args.archs:
        runs += len(args.seeds) * (len(VARIANTS) - 1)
    with tqdm(total=runs, disable=args.quiet, desc=args.split) as bar:
        body = run_validation(args, bar) if args.split == "validation" else run_test(args, bar)
    out = args.out or os.path.join(HERE, "results", f"mixed_privacy_{args.split}.json")
    result = {
        "split": args.split,
        "protocol": {
            "core": f"training digits of classes {list(CORE_CLASSES)}",
            "user": "the other training digits",
            "linearize": "last:2",
            "scale": SCALE,
            "validation": f"stratified {VAL_FRACTION:.0%} of the training part, random_state=seed",
            "test_split": "never touched" if args.split == "validation" else "reported once",
            "membership_inference": "logistic regression on log(loss), members = user examples "
            "held, non-members = test examples of the user classes, class-balanced",
        },
        "settings": vars(args),
        "seconds": time.perf_counter() - started,
        "provenance": origin,
        **body,
    }
    write_json(out, result)
    print(f"\nwrote {out} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
