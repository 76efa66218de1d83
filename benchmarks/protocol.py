"""What every benchmark that follows the protocol of benchmarks/README.md shares.

The digits splits (a validation part carved from the training part, or the
untouched test part), the three architectures defaults are chosen over (an MLP
with a softmax output and the VGG- and ResNet-style CNNs of
``examples/discedit_cnn.py``, which output logits), and the mean [min, max]
summaries the tables print.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from discedit_cnn import resnet, train, vgg  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import keras_forget as kf  # noqa: E402
from keras_forget.files import write_json  # noqa: E402

VAL_FRACTION = 0.2
#: Training epochs of each architecture (the digits reach their plateau by then).
EPOCHS = {"mlp": 40, "vgg": 15, "resnet": 15}
L = keras.layers


def mlp(classes: int = 10, seed: int = 0) -> keras.Model:
    """Flatten, Dense 128, Dense 64, softmax (8×8×1 inputs)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    x = L.Flatten(name="flatten")(inputs)
    x = L.Dense(128, activation="relu", name="fc1")(x)
    x = L.Dense(64, activation="relu", name="fc2")(x)
    return keras.Model(inputs, L.Dense(classes, activation="softmax", name="out")(x), name="mlp")


def train_softmax(model: keras.Model, data, epochs: int, seed: int) -> keras.Model:
    """``discedit_cnn.train`` for a softmax output (it expects logits)."""
    keras.utils.set_random_seed(seed)
    (x, y), _ = data
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    return model


#: name: (builder, trainer)
ARCHITECTURES = {
    "mlp": (mlp, train_softmax),
    "vgg": (vgg, train),
    "resnet": (resnet, train),
}


def validation_split(seed: int):
    """(fit, validation) carved from the training part of the digits; the test part is dropped."""
    (x, y), _test_never_used = kf.datasets.load("digits", seed=seed)
    x_fit, x_val, y_fit, y_val = train_test_split(
        x, y, test_size=VAL_FRACTION, stratify=y, random_state=seed
    )
    return (x_fit, y_fit), (x_val, y_val)


def test_split(seed: int):
    """(training part, untouched test part) of the digits."""
    return kf.datasets.load("digits", seed=seed)


def splits(kind: str, seed: int):
    """``(fit, evaluation)``: ``kind`` is ``"validation"`` (choose) or ``"test"`` (report once)."""
    return validation_split(seed) if kind == "validation" else test_split(seed)


def spread(values) -> dict | None:
    """``{"mean", "min", "max", "n"}`` of the finite values; None if there is none."""
    v = np.asarray([x for x in values if x is not None], float)
    v = v[np.isfinite(v)]
    if not v.size:
        return None
    return {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}


def fmt(s: dict | None, digits: int = 3) -> str:
    """``mean [min, max]``, or ``—``."""
    if s is None:
        return "—"
    if digits == 0:
        return f"{s['mean']:.0f} [{s['min']:.0f}, {s['max']:.0f}]"
    return f"{s['mean']:.{digits}f} [{s['min']:.{digits}f}, {s['max']:.{digits}f}]"


def trained(args: argparse.Namespace, say: Callable[..., None]):
    """Yields ``(seed, arch, fit, held, model, epochs)``: each of ``args.archs`` trained on
    the fit part of each seed's ``args.split``."""
    for seed in args.seeds:
        fit, held = splits(args.split, seed)
        for arch in args.archs:
            build, train = ARCHITECTURES[arch]
            epochs = args.epochs or EPOCHS[arch]
            tick = time.perf_counter()
            model = train(build(seed=seed), (fit, None), epochs=epochs, seed=seed)
            say(f"[seed {seed}] {arch}: trained in {time.perf_counter() - tick:.0f}s")
            yield seed, arch, fit, held, model, epochs


def parser(doc: str) -> argparse.ArgumentParser:
    """The arguments every protocol benchmark takes: split, seeds, architectures, epochs, output."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--split", choices=("validation", "test"), default="test")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--archs", nargs="*", choices=list(ARCHITECTURES), default=list(ARCHITECTURES))
    p.add_argument("--epochs", type=int, default=None, help="override every architecture's")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    return p


def speaker(quiet: bool) -> Callable[..., None]:
    """``print`` with flushing, or nothing with ``--quiet``."""
    return (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))


def where(split: str) -> str:
    """What the evaluation split is, for a table's title."""
    if split == "test":
        return "untouched test split"
    return f"validation split (stratified {VAL_FRACTION:.0%} of the training part)"


def finish(name: str, args: argparse.Namespace, out: dict, failed: int, start: float) -> int:
    """Writes ``<name>_<split>.json`` and says how it went; the exit status (1 if a run failed)."""
    print(f"{len(out['rows'])} runs, {failed} failed, {time.perf_counter() - start:.0f}s")
    path = write_json(os.path.join(args.out, f"{name}_{args.split}.json"), out)
    print(f"wrote {path}")
    return 1 if failed else 0
