"""Forgetting in a conditional GAN: the generator can no longer draw the target digit.

After Singh & Roy, "Forgetibility through pruning in deep learning".

Trains a small conditional GAN (generator: noise + label -> image; discriminator told
the label) and, separately, a *judge* classifier on real digits; both are checkpointed
in ``--out`` so a second run reuses them. Then prunes the generator's weights most
specific to the target label with :func:`keras_forget.prune_for_class` (through
:class:`keras_forget.ConditionalGenerator`), has the judge rate what the original and
the pruned generator draw for every label, writes the before/after grid and exports
the pruned generator to a stripped, sparse TFLite file checked against Keras.

    python examples/cgan_digits.py                       # embedded digits, forget 3
    python examples/cgan_digits.py --target 7 --quiet
    python examples/cgan_digits.py --dataset mnist       # tfds mnist, prepared offline

Writes to ``--out``: ``<dataset>_generator.keras``, ``<dataset>_judge.keras``,
``<dataset>_gan.json`` (the checkpoint), ``grid_<target>.png``, ``summary_<target>.json``
and ``export_<target>/`` (``saved_model/``, ``model.tflite``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

import keras_forget as kf
from keras_forget import models
from keras_forget.files import write_json
from keras_forget.generative import ConditionalGenerator, GenerationRates, rate_generator
from keras_forget.generative_plots import plot_generations

#: How much of the generator to prune: ``"auto"`` stops once fresh draws of the target
#: no longer look like it (see ``ConditionalGenerator.forgotten`` and
#: benchmarks/cgan_forget.py), or a fraction of its prunable weights.
AMOUNT = "auto"
EPOCHS = {"digits": 300, "mnist": 30}
OUT = os.path.join("keras_forget_out", "cgan_digits")


@dataclasses.dataclass(frozen=True)
class GanConfig:
    """How the GAN is built and trained; a checkpoint is reused only if it matches.

    Attributes:
        dataset: ``"digits"`` or ``"mnist"``.
        epochs: passes over the training images.
        noise_dim: size of the noise vector.
        batch_size: images per step.
        seed: seed of weights, noise and shuffling.
    """

    dataset: str = "digits"
    epochs: int = EPOCHS["digits"]
    noise_dim: int = 32
    batch_size: int = 64
    seed: int = 0


def _widths(image_shape: tuple[int, ...]) -> tuple[int, int]:
    first = 128 if int(np.prod(image_shape)) <= 64 else 256
    return first, 2 * first


def build_generator(noise_dim: int, classes: int, image_shape: tuple[int, ...]) -> keras.Model:
    """(noise, label) -> image in [0, 1]: label embedding concatenated to the noise, then an MLP."""
    noise = keras.Input((noise_dim,), name="noise")
    label = keras.Input((1,), dtype="int32", name="label")
    embedded = keras.layers.Flatten()(keras.layers.Embedding(classes, 16, name="g_embed")(label))
    h = keras.layers.Concatenate()([noise, embedded])
    for i, units in enumerate(_widths(image_shape)):
        h = keras.layers.Dense(units, activation="leaky_relu", name=f"g_dense{i}")(h)
    pixels = keras.layers.Dense(int(np.prod(image_shape)), activation="sigmoid", name="g_out")(h)
    return keras.Model([noise, label], keras.layers.Reshape(image_shape)(pixels), name="generator")


def build_discriminator(classes: int, image_shape: tuple[int, ...]) -> keras.Model:
    """(image, label) -> logit of "real"."""
    image = keras.Input(image_shape, name="image")
    label = keras.Input((1,), dtype="int32", name="label")
    embedded = keras.layers.Flatten()(keras.layers.Embedding(classes, 16)(label))
    h = keras.layers.Concatenate()([keras.layers.Flatten()(image), embedded])
    h = keras.layers.Dense(_widths(image_shape)[1], activation="leaky_relu")(h)
    h = keras.layers.Dropout(0.3)(h)
    h = keras.layers.Dense(_widths(image_shape)[0], activation="leaky_relu")(h)
    return keras.Model([image, label], keras.layers.Dense(1)(h), name="discriminator")


def _train_step(generator: keras.Model, discriminator: keras.Model) -> Any:
    """One tf.function step of the non-saturating GAN losses (real labels smoothed to 0.9)."""
    g_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
    d_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
    bce = keras.losses.BinaryCrossentropy(from_logits=True)

    @tf.function
    def step(x: tf.Tensor, y: tf.Tensor, z: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = generator([z, y], training=True)
            real_logit = discriminator([x, y], training=True)
            fake_logit = discriminator([fake, y], training=True)
            d_loss = bce(tf.fill(tf.shape(real_logit), 0.9), real_logit)
            d_loss += bce(tf.zeros_like(fake_logit), fake_logit)
            g_loss = bce(tf.ones_like(fake_logit), fake_logit)
        d_vars, g_vars = discriminator.trainable_variables, generator.trainable_variables
        d_opt.apply_gradients(zip(d_tape.gradient(d_loss, d_vars), d_vars))
        g_opt.apply_gradients(zip(g_tape.gradient(g_loss, g_vars), g_vars))
        return d_loss, g_loss

    return step


def train_gan(
    x: np.ndarray, y: np.ndarray, config: GanConfig, *, verbose: bool = True
) -> tuple[keras.Model, float]:
    """Trains the conditional GAN; returns the generator and seconds per epoch (after the first)."""
    keras.utils.set_random_seed(config.seed)
    classes, shape = int(y.max()) + 1, tuple(x.shape[1:])
    generator = build_generator(config.noise_dim, classes, shape)
    step = _train_step(generator, build_discriminator(classes, shape))
    rng = np.random.default_rng(config.seed)
    labels = y.astype("int32")[:, None]
    times = []
    with tqdm(range(config.epochs), desc="training the GAN", disable=not verbose) as bar:
        for _ in bar:
            start = time.perf_counter()
            order = rng.permutation(len(x))
            for i in range(0, len(x) - config.batch_size + 1, config.batch_size):
                batch = order[i : i + config.batch_size]
                z = rng.standard_normal((len(batch), config.noise_dim)).astype("float32")
                d_loss, g_loss = step(x[batch], labels[batch], z)
            times.append(time.perf_counter() - start)
            bar.set_postfix(d=f"{float(d_loss):.3f}", g=f"{float(g_loss):.3f}")
    return generator, float(np.median(times[1:] or times))


def _paths(out: str, dataset: str) -> dict[str, str]:
    names = {"generator": "generator.keras", "judge": "judge.keras", "meta": "gan.json"}
    return {k: os.path.join(out, f"{dataset}_{v}") for k, v in names.items()}


def load_or_train(
    out: str, config: GanConfig, data: Any, *, verbose: bool = True
) -> tuple[keras.Model, keras.Model, dict[str, Any]]:
    """The checkpointed generator and judge if they match ``config``, else trains and saves them.

    The metadata file is written last, so an interrupted run trains again.

    Returns:
        ``(generator, judge, meta)``; ``meta`` holds the config, the GAN's seconds per
        epoch and the judge's test accuracy.
    """
    paths = _paths(out, config.dataset)
    checkpoint = _checkpoint(paths, config)
    if checkpoint is not None:
        if verbose:
            print(f"reusing the GAN and the judge checkpointed in {out}")
        return checkpoint
    (x, y), (x_test, y_test) = data
    generator, epoch_seconds = train_gan(x, y, config, verbose=verbose)
    judge = models.digits_mlp(input_shape=tuple(x.shape[1:]), seed=config.seed + 1)
    judge = models.train(judge, x, y, epochs=40, seed=config.seed + 1)
    accuracy = float(np.mean(np.asarray(judge(x_test)).argmax(-1) == y_test))
    meta = {
        "config": dataclasses.asdict(config),
        "epoch_seconds": epoch_seconds,
        "judge_test_accuracy": accuracy,
    }
    models.save_atomic(generator, paths["generator"])
    models.save_atomic(judge, paths["judge"])
    write_json(paths["meta"], meta)
    return generator, judge, meta


def _checkpoint(paths: dict[str, str], config: GanConfig) -> Any:
    """``(generator, judge, meta)`` from disk, or None if missing or made with another config."""
    meta = _read_meta(paths["meta"])
    if meta.get("config") != dataclasses.asdict(config):
        return None
    if not all(os.path.exists(p) for p in paths.values()):
        return None
    load = keras.models.load_model
    return load(paths["generator"]), load(paths["judge"]), meta


def _read_meta(path: str) -> dict[str, Any]:
    try:
        with open(path) as file:
            return json.load(file)
    except (OSError, ValueError):
        return {}


def rates_table(before: GenerationRates, after: GenerationRates, target: int) -> str:
    """Per-label generation accuracy and judge confidence, before and after."""
    lines = [
        f"{'label':>6} {'acc before':>11} {'acc after':>10} {'conf before':>12} {'conf after':>11}"
    ]
    for c in before.accuracy:
        mark = "*" if c == target else " "
        lines.append(
            f"{c:>5}{mark} {before.accuracy[c]:>11.3f} {after.accuracy[c]:>10.3f} "
            f"{before.confidence[c]:>12.3f} {after.confidence[c]:>11.3f}"
        )
    return "\n".join(lines)


def forget(
    generator: keras.Model, target: int, amount: float | str, *, verbose: bool = True
) -> tuple[ConditionalGenerator, kf.Result]:
    """Prunes the generator's weights most specific to ``target`` (conditioning seed 0)."""
    gen = ConditionalGenerator(generator)
    data = gen.conditioning_data(per_class=100, seed=0)
    result = kf.prune_for_class(
        generator, data, target, amount=amount, verbose=verbose, **gen.prune_kwargs()
    )
    return gen, result


def _amount(text: str) -> float | str:
    """``"auto"`` or a float, for ``--amount``."""
    return text if text == "auto" else float(text)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="digits", choices=("digits", "mnist"))
    p.add_argument("--target", type=int, default=3, help="the label to forget")
    p.add_argument(
        "--amount", type=_amount, default=AMOUNT, help="'auto' or a fraction of weights to prune"
    )
    p.add_argument("--epochs", type=int, default=None, help="GAN epochs (default per dataset)")
    p.add_argument("--per-class", type=int, default=500, help="draws per label the judge rates")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=OUT, help="checkpoints and results")
    p.add_argument("--quiet", action="store_true")
    return p


def draw_grid(gen: ConditionalGenerator, result: kf.Result, target: int, out: str) -> str:
    """The before/after grid: 8 draws per label, the same noise on both sides."""
    panels = {
        "before": gen.samples(8, seed=2),
        f"after forgetting {target}": gen.samples(8, seed=2, model=result.model),
    }
    title = f"{result.report.pruned} of {result.report.total} generator weights pruned"
    path = os.path.join(out, f"grid_{target}.png")
    return plot_generations(panels, path, marked=[target], title=title)


def export(gen: ConditionalGenerator, result: kf.Result, path: str, verbose: bool) -> Any:
    """Stripped, sparse TFLite export, checked against Keras on 4 draws of every label."""
    sample = gen.inputs(np.repeat(np.arange(gen.num_classes), 4), seed=3)
    return kf.export(
        result.model, path, tflite=True, sparse=True, sample=sample, overwrite=True, verbose=verbose
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser().parse_args(argv)
    verbose = not args.quiet
    tf.get_logger().setLevel("ERROR")  # tf's note on dense Embedding gradients
    data = kf.datasets.load(args.dataset, seed=args.seed)
    config = GanConfig(args.dataset, args.epochs or EPOCHS[args.dataset], seed=args.seed)
    generator, judge, meta = load_or_train(args.out, config, data, verbose=verbose)
    gen, result = forget(generator, args.target, args.amount, verbose=verbose)
    before = rate_generator(gen, judge, per_class=args.per_class, seed=1)
    after = rate_generator(gen, judge, per_class=args.per_class, seed=1, model=result.model)
    grid = draw_grid(gen, result, args.target, args.out)
    exported = export(gen, result, os.path.join(args.out, f"export_{args.target}"), verbose)
    summary = {
        "target": args.target,
        "amount": result.report.amount,
        "judge_test_accuracy": meta["judge_test_accuracy"],
        "before": before.to_dict(),
        "after": after.to_dict(),
        "report": result.report.to_dict(),
        "grid": grid,
        "export": exported.to_dict(),
    }
    write_json(os.path.join(args.out, f"summary_{args.target}.json"), summary)
    print(f"judge accuracy on real test images: {meta['judge_test_accuracy']:.3f}")
    print(f"{result.report}\n{rates_table(before, after, args.target)}")
    print(f"wrote {grid} and {exported.tflite_path}")
    return summary


if __name__ == "__main__":
    main()
