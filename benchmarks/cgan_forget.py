"""Forgetting each digit in a conditional GAN, rated by a judge classifier.

Reuses (or trains) the GAN and judge of ``examples/cgan_digits.py``. For every
target digit, prunes the generator with ``kf.prune_for_class`` and has the judge
rate ``--per-class`` fresh draws of every label, before and after:

* ``centered`` (the default output of ``kf.ConditionalGenerator``) at ``--amount``,
  and the seed's literal scalar (the image ``sum``) at the same amount;
* the *prior*: what the judge calls label ``t`` once the generator's embedding row
  of ``t`` is zeroed, i.e. what the generator draws when told nothing. A target
  whose prior the judge still reads as itself cannot be forgotten by removing
  what is specific to it;
* a sweep of ``centered`` over ``--sweep`` amounts (``needs``: the smallest amount
  tried at which the digit meets the target, as rated by the judge).

Target: the forgotten digit's generation accuracy <= 5 % and every other digit
within 3 points of before. Scoring time is given as a ratio of one GAN training
epoch measured in the same run.

    python benchmarks/cgan_forget.py [--amount 0.002] [--targets 0 1 ...] [--sweep 0.001 0.005]
                                     [--epochs 300] [--checkpoints DIR]

Prints tables and writes benchmarks/results/cgan_forget.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any

import keras
import numpy as np
import tensorflow as tf

import keras_forget as kf
from keras_forget.files import write_json
from keras_forget.generative import ConditionalGenerator, GenerationRates, rate_generator

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))
import cgan_digits as example  # noqa: E402

RESULTS = os.path.join(HERE, "results", "cgan_forget.json")
FORGET_MAX, RETAIN_DROP = 0.05, 0.03
EVAL_SEED = 1  # noise of the judged draws; the conditioning data uses seed 0


def epoch_seconds(data: Any, config: example.GanConfig) -> float:
    """Seconds of one GAN training epoch on this machine (median of 2, after a traced one)."""
    (x, y), _ = data
    _, seconds = example.train_gan(x, y, dataclasses.replace(config, epochs=3), verbose=False)
    return seconds


def forget(gen: ConditionalGenerator, target: int, amount: float) -> kf.Result:
    """``kf.prune_for_class`` on the generator, conditioning data with noise seed 0."""
    data = gen.conditioning_data(per_class=100, seed=0)
    return kf.prune_for_class(
        gen.model, data, target, amount=amount, verbose=False, **gen.prune_kwargs()
    )


def judged(
    gen: ConditionalGenerator,
    judge: Any,
    target: int,
    model: Any,
    before: GenerationRates,
    per_class: int,
) -> dict[str, Any]:
    """Target accuracy, worst drop of the others, and whether both meet the target."""
    after = rate_generator(gen, judge, per_class=per_class, seed=EVAL_SEED, model=model)
    others = [c for c in before.accuracy if c != target]
    drop = max(before.accuracy[c] - after.accuracy[c] for c in others)
    return {
        "target_after": after.accuracy[target],
        "target_confidence_after": after.confidence[target],
        "others_after": float(np.mean([after.accuracy[c] for c in others])),
        "worst_other_drop": float(drop),
        "passed": bool(after.accuracy[target] <= FORGET_MAX and drop <= RETAIN_DROP),
        "after": after.to_dict(),
    }


def prior(gen: ConditionalGenerator, judge: Any, target: int, per_class: int) -> float:
    """Judge accuracy of label ``target`` drawn with its embedding row zeroed."""
    model = keras.models.clone_model(gen.model)
    model.set_weights(gen.model.get_weights())
    embedding = model.get_layer("g_embed").embeddings
    rows = embedding.numpy()
    rows[target] = 0.0
    embedding.assign(rows)
    rates = rate_generator(gen, judge, per_class=per_class, seed=EVAL_SEED, model=model)
    return rates.accuracy[target]


def run_target(
    gens: dict[str, ConditionalGenerator],
    judge: Any,
    target: int,
    before: GenerationRates,
    args: argparse.Namespace,
    epoch: float,
) -> dict[str, Any]:
    """One row: both outputs at ``args.amount``, the prior, and the sweep."""
    row: dict[str, Any] = {
        "target": target,
        "amount": args.amount,
        "target_before": before.accuracy[target],
    }
    for name, gen in gens.items():
        result = forget(gen, target, args.amount)
        row[name] = judged(gen, judge, target, result.model, before, args.per_class)
        row[name]["scoring_seconds"] = result.report.seconds["scoring"]
        row[name]["scoring_vs_epoch"] = result.report.seconds["scoring"] / epoch
    row["prior"] = prior(gens["centered"], judge, target, args.per_class)
    row["sweep"] = {}
    for amount in args.sweep:
        result = forget(gens["centered"], target, amount)
        row["sweep"][str(amount)] = judged(
            gens["centered"], judge, target, result.model, before, args.per_class
        )
    return row


def main_table(rows: list[dict], before: GenerationRates) -> str:
    """Per digit: ``centered`` at the main amount, ``sum`` at the same amount, the prior."""
    head = (
        f"{'digit':>5} {'t before':>9} {'t after':>8} {'others':>14} {'worst Δ':>8} {'ok':>3}"
        f" │ {'sum: t':>7} {'worst Δ':>8} │ {'prior':>6} {'needs':>7}"
        f" │ {'scoring':>8} {'/epoch':>7}"
    )
    lines = [head]
    for r in rows:
        c, s, t = r["centered"], r["sum"], r["target"]
        others_before = np.mean([v for k, v in before.accuracy.items() if k != t])
        lines.append(
            f"{t:>5} {r['target_before']:>9.3f} {c['target_after']:>8.3f} "
            f"{others_before:>6.3f}→{c['others_after']:<7.3f} {-c['worst_other_drop']:>+8.3f} "
            f"{'yes' if c['passed'] else 'NO':>3} │ {s['target_after']:>7.3f} "
            f"{-s['worst_other_drop']:>+8.3f} │ {r['prior']:>6.3f} {_needs(r):>7} │ "
            f"{c['scoring_seconds']:>7.2f}s {c['scoring_vs_epoch']:>7.1f}"
        )
    return "\n".join(lines)


def _needs(row: dict) -> str:
    """The smallest amount tried at which the digit met the target, or "—"."""
    tried = {float(a): c["passed"] for a, c in row["sweep"].items()}
    tried[row["amount"]] = row["centered"]["passed"]
    passing = [a for a, ok in sorted(tried.items()) if ok]
    return f"{passing[0]:g}" if passing else "—"


def sweep_table(rows: list[dict], amounts: list[float], main: float) -> str:
    """Per amount of ``centered``: digits meeting the target, worst cases."""
    lines = [f"{'amount':>8} {'passed':>7} {'max t after':>12} {'worst Δ other':>14}"]
    for amount in sorted({*amounts, main}):
        cells = [r["centered"] if amount == main else r["sweep"][str(amount)] for r in rows]
        lines.append(
            f"{amount:>8.4f} {sum(c['passed'] for c in cells):>4}/{len(cells):<2} "
            f"{max(c['target_after'] for c in cells):>12.3f} "
            f"{-max(c['worst_other_drop'] for c in cells):>+14.3f}"
        )
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--amount", type=float, default=example.AMOUNT)
    p.add_argument("--targets", nargs="+", type=int, default=list(range(10)))
    p.add_argument("--sweep", nargs="*", type=float, default=[0.001, 0.003, 0.005, 0.01])
    p.add_argument("--per-class", type=int, default=500, help="judged draws per label")
    p.add_argument("--checkpoints", default=example.OUT, help="the example's --out")
    p.add_argument(
        "--epochs", type=int, default=example.EPOCHS["digits"], help="GAN epochs (the example's)"
    )
    p.add_argument("--out", default=RESULTS)
    return p


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    tf.get_logger().setLevel("ERROR")
    data = kf.datasets.load("digits", seed=0)
    config = example.GanConfig(epochs=args.epochs)
    generator, judge, meta = example.load_or_train(args.checkpoints, config, data)
    epoch = epoch_seconds(data, config)
    gens = {name: ConditionalGenerator(generator, output=name) for name in ("centered", "sum")}
    before = rate_generator(gens["centered"], judge, per_class=args.per_class, seed=EVAL_SEED)
    rows = []
    for target in args.targets:
        rows.append(run_target(gens, judge, target, before, args, epoch))
        print(main_table(rows[-1:], before).splitlines()[-1], flush=True)
    accuracy = meta["judge_test_accuracy"]
    print(f"\namount {args.amount}; judge accuracy on real test digits {accuracy:.3f}; ", end="")
    print(f"one GAN training epoch {epoch:.3f}s\n")
    print(main_table(rows, before), "\n")
    print(sweep_table(rows, args.sweep, args.amount))
    result = {
        "amount": args.amount,
        "per_class": args.per_class,
        "gan": meta["config"],
        "judge_test_accuracy": meta["judge_test_accuracy"],
        "epoch_seconds": epoch,
        "criteria": {"forget_max": FORGET_MAX, "retain_drop_max": RETAIN_DROP},
        "before": before.to_dict(),
        "rows": rows,
    }
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
