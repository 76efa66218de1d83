"""Component-level editing of small CNNs on the digits (DISCEDIT).

Trains a small VGG-style CNN and a small ResNet-style CNN (residual adds and
BatchNormalization) on the 8×8 digits, then

1. makes each forget one class by masking its most class-specific filters
   (``kf.prune_for_class(..., granularity="unit")``, DISCEDIT-U), and
2. prunes half of the filters of each layer that discriminate no class and
   returns a physically smaller model
   (``kf.prune(..., granularity="unit", scope="layer", shrink=True)``,
   DISCEDIT-SP), exported to TFLite with a parity check.

Run: ``python examples/discedit_cnn.py [--epochs 30] [--width 32] [--target 3]``
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

import keras_forget as kf
from keras_forget.surgery import structured

L = keras.layers


def vgg(classes: int = 10, width: int = 32, seed: int = 0) -> keras.Model:
    """conv-BN-ReLU ×2, pool, conv-BN-ReLU ×2, pool, Dense, Dense (8×8×1 inputs)."""
    keras.utils.set_random_seed(seed)
    x = inputs = keras.Input((8, 8, 1))
    for stage, filters in enumerate((width, 2 * width)):
        for i in range(2):
            x = L.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{stage}_{i}")(x)
            x = L.BatchNormalization(name=f"bn{stage}_{i}")(x)
            x = L.ReLU(name=f"relu{stage}_{i}")(x)
        x = L.MaxPooling2D(name=f"pool{stage}")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(4 * width, activation="relu", name="fc")(x)
    return keras.Model(inputs, L.Dense(classes, name="logits")(x), name="vgg")


def _block(x, filters: int, name: str, stride: int = 1):
    y = L.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_c1")(x)
    y = L.ReLU(name=f"{name}_r1")(L.BatchNormalization(name=f"{name}_bn1")(y))
    y = L.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_c2")(y)
    y = L.BatchNormalization(name=f"{name}_bn2")(y)
    if stride != 1 or x.shape[-1] != filters:
        x = L.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_sc")(x)
        x = L.BatchNormalization(name=f"{name}_scbn")(x)
    return L.ReLU(name=f"{name}_out")(L.Add(name=f"{name}_add")([x, y]))


def resnet(classes: int = 10, width: int = 32, seed: int = 0) -> keras.Model:
    """Stem, two residual blocks, a strided block with a 1×1 shortcut, GAP, Dense."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    x = L.Conv2D(width, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = L.ReLU(name="stem_relu")(L.BatchNormalization(name="stem_bn")(x))
    x = _block(x, width, "b1")
    x = _block(x, width, "b2")
    x = _block(x, 2 * width, "b3", stride=2)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, L.Dense(classes, name="logits")(x), name="resnet")


def train(model: keras.Model, data, epochs: int = 30, seed: int = 0) -> keras.Model:
    """Adam on sparse labels, logits outputs."""
    keras.utils.set_random_seed(seed)
    (x, y), _ = data
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    return model


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30, help="training epochs of each CNN")
    parser.add_argument("--width", type=int, default=32, help="filters of the first stage")
    parser.add_argument("--target", type=int, default=3, help="the class to forget")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse(argv)
    digits = kf.datasets.load("digits", seed=0)
    train_data, test_data = digits
    for build in (vgg, resnet):
        model = train(build(width=args.width), digits, epochs=args.epochs)
        print(f"\n== {model.name}: {structured.count_params(model):,} parameters")
        forget = kf.prune_for_class(
            model,
            train_data,
            target_class=args.target,
            granularity="unit",
            amount=0.1,
            eval_data=test_data,
            fine_tune=kf.FineTune(epochs=1, learning_rate=1e-4),
            verbose=False,
        )
        print(forget.report)
        pruned = kf.prune(
            model,
            train_data,
            sparsity=0.5,
            granularity="unit",
            scope="layer",
            shrink=True,
            eval_data=test_data,
            fine_tune=kf.FineTune(epochs=1),
            verbose=False,
        )
        small = pruned.model
        print(pruned.report)
        print(
            f"shrunk: {structured.count_params(model):,} -> {structured.count_params(small):,} "
            f"parameters, {structured.flops(model):,} -> {structured.flops(small):,} FLOPs"
        )
        with tempfile.TemporaryDirectory() as tmp:
            kf.export(small, tmp, sample=test_data[0][:16], verbose=True)


if __name__ == "__main__":
    main()
