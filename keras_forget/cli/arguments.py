"""The command line's arguments: the parser, and every check that runs before any work."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from typing import Any

from keras_forget import datasets
from keras_forget.errors import InvalidArgumentError

EXIT_OK = 0
EXIT_ERROR = 2
EXIT_RETAIN_DROP = 3
EXIT_INTERRUPTED = 130

#: Score names per granularity, as the registries in :mod:`keras_forget.scores`
#: hold them (kept here so that ``--help`` needs no TensorFlow; a test compares them).
WEIGHT_METHODS = ("fisher", "fisher_obd", "gradxweight", "magnitude", "obd", "random")
UNIT_METHODS = ("discedit", "exp_norm", "fisher_bound", "l1", "random", "taylor")
#: ``--method`` when not given, as :data:`keras_forget.api.DEFAULT_METHOD` for forgetting.
DEFAULT_METHOD = {"weight": "gradxweight", "unit": "discedit"}

DEFAULT_DATASET = "digits"
DEFAULT_EPOCHS = 40
DEFAULT_SEED = 0
BATCH_SIZE = 32
#: The entries of ``--out`` one run writes, replaced together.
OUTPUTS = ("report.json", "per_class_accuracy.png", "export")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")

Split = tuple[Any, Any]


class _Parser(argparse.ArgumentParser):
    """Reports a bad argument in one line (``keras-forget: error: ...``), exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def _amount(text: str) -> float | int | str:
    if text == "auto":
        return text
    if text.isdigit():
        return int(text)
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'auto', a fraction in (0, 1) or (units) a count, got {text!r}"
        ) from None


def parser() -> argparse.ArgumentParser:
    """The command line's parser (building it imports no TensorFlow)."""
    p = _Parser(
        prog="keras-forget",
        description="Make a trained Keras classifier forget a class by pruning, then export it.",
        epilog="exit codes: 0 done; 2 bad argument or keras_forget error; 3 retain accuracy "
        "fell by more than --max-retain-drop (outputs still written); 130 interrupted",
    )
    source = p.add_argument_group("model and data")
    source.add_argument(
        "--model",
        metavar="PATH",
        help="the classifier to edit: a .keras/.h5 file (Keras 3) or a SavedModel directory "
        "(tf_keras); default: train, or reuse from --out, a small MLP",
    )
    which = source.add_mutually_exclusive_group()
    which.add_argument(
        "--dataset",
        choices=datasets.NAMES,
        default=None,
        help=f"a named dataset (default: {DEFAULT_DATASET}, embedded); the others load "
        "through tensorflow_datasets",
    )
    which.add_argument(
        "--data",
        metavar="PATH.npz",
        help=f"your data instead: an .npz with arrays {', '.join(NPZ_KEYS)} (integer class labels)",
    )
    source.add_argument(
        "--data-dir",
        metavar="DIR",
        help="where tensorflow_datasets finds prepared data (for --dataset other than digits)",
    )
    forget = p.add_argument_group("forgetting")
    forget.add_argument(
        "--target-class",
        type=int,
        nargs="+",
        default=[3],
        metavar="N",
        help="class(es) to forget (default 3)",
    )
    forget.add_argument(
        "--granularity",
        default="weight",
        choices=("weight", "unit"),
        help="prune single weights (default) or whole units / filters",
    )
    forget.add_argument(
        "--method",
        default=None,
        choices=sorted({*WEIGHT_METHODS, *UNIT_METHODS}),
        help=f"score (default: {DEFAULT_METHOD['weight']} for weights, "
        f"{DEFAULT_METHOD['unit']} for units)",
    )
    forget.add_argument(
        "--amount",
        type=_amount,
        metavar="AMOUNT",
        default="auto",
        help="fraction to prune, or 'auto' (default: the smallest that forgets); "
        "for units also a count per layer",
    )
    forget.add_argument(
        "--scope", default=None, choices=("global", "layer"), help="ranking (default: global)"
    )
    forget.add_argument(
        "--fine-tune-epochs",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="epochs of fine-tuning on the retained classes after pruning (default 0)",
    )
    forget.add_argument(
        "--max-retain-drop",
        type=_non_negative_float,
        default=5.0,
        metavar="POINTS",
        help="fail (exit code 3) if test accuracy on the other classes falls by more than "
        "this many points (default 5)",
    )
    classifier = p.add_argument_group("built-in classifier (without --model)")
    classifier.add_argument(
        "--epochs",
        type=_positive_int,
        default=None,
        metavar="N",
        help=f"training epochs (default {DEFAULT_EPOCHS})",
    )
    classifier.add_argument(
        "--seed",
        type=_non_negative_int,
        default=None,
        metavar="N",
        help=f"seed of its initialisation and training (default {DEFAULT_SEED})",
    )
    classifier.add_argument(
        "--retrain", action="store_true", help="train again even if a cached one matches"
    )
    output = p.add_argument_group("output")
    output.add_argument(
        "--out",
        default="keras_forget_out",
        metavar="DIR",
        help="output directory (default keras_forget_out)",
    )
    output.add_argument("--quiet", action="store_true", help="no progress output")
    output.add_argument(
        "--verbose", action="store_true", help="show TensorFlow's own logs (hidden by default)"
    )
    output.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    return p


# -- checks: every argument, before TensorFlow is imported ---------------------------------


def check(args: argparse.Namespace) -> None:
    """Checks every argument without loading anything big; fills in defaults.

    Raises:
        InvalidArgumentError: naming the flag (and path) at fault.
    """
    from keras_forget.selection import amount as amount_search

    if args.data is None and args.dataset is None:
        args.dataset = DEFAULT_DATASET
    if args.model is not None:
        given = [
            flag
            for flag, value in (("--epochs", args.epochs), ("--seed", args.seed))
            if value is not None
        ]
        given += ["--retrain"] if args.retrain else []
        if given:
            raise InvalidArgumentError(
                f"{', '.join(given)} shape(s) the built-in classifier; they do not apply "
                "with --model."
            )
        _check_model_path(args.model)
    args.epochs = DEFAULT_EPOCHS if args.epochs is None else args.epochs
    args.seed = DEFAULT_SEED if args.seed is None else args.seed
    if args.data is not None:
        _check_npz(args.data)
    if args.data_dir is not None:
        if args.data is not None or args.dataset == "digits":
            raise InvalidArgumentError(
                "--data-dir is where tensorflow_datasets finds prepared data; it applies to "
                f"--dataset {', '.join(n for n in datasets.NAMES if n != 'digits')}."
            )
        if os.path.exists(args.data_dir) and not os.path.isdir(args.data_dir):
            raise InvalidArgumentError(f"--data-dir {args.data_dir}: not a directory.")
    _check_out(args.out)
    methods = WEIGHT_METHODS if args.granularity == "weight" else UNIT_METHODS
    if args.method is not None and args.method not in methods:
        raise InvalidArgumentError(
            f"--method {args.method} does not score {args.granularity}s; with --granularity "
            f"{args.granularity} use one of {', '.join(methods)}."
        )
    try:
        amount_search.check(args.amount, args.granularity)
    except InvalidArgumentError as err:
        raise InvalidArgumentError(f"--amount {args.amount}: {err}") from None
    if args.data is None and args.model is None:
        classes = datasets.num_classes(args.dataset)
        check_targets(args.target_class, range(classes), f"{args.dataset} has classes")


def _check_model_path(path: str) -> None:
    if not os.path.exists(path):
        raise InvalidArgumentError(f"--model {path}: no such file or directory.")
    if os.path.isdir(path):
        if not os.path.exists(os.path.join(path, "saved_model.pb")):
            raise InvalidArgumentError(
                f"--model {path}: a directory, but not a SavedModel (no saved_model.pb in it)."
            )
    elif not path.lower().endswith(MODEL_SUFFIXES):
        raise InvalidArgumentError(
            f"--model {path}: expected a {'/'.join(MODEL_SUFFIXES)} file or a SavedModel directory."
        )


def _check_npz(path: str) -> None:
    import zipfile

    import numpy as np

    if not os.path.isfile(path):
        what = "a directory, not a file" if os.path.isdir(path) else "no such file"
        raise InvalidArgumentError(f"--data {path}: {what}.")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise InvalidArgumentError(
            f"--data {path}: not an .npz archive of plain arrays (numpy: {err})"
        ) from None
    if not hasattr(npz, "files"):  # a single .npy array
        raise InvalidArgumentError(f"--data {path}: one array, not an .npz archive of arrays.")
    with npz:
        names = set(npz.files)
    missing = [key for key in NPZ_KEYS if key not in names]
    if missing:
        raise InvalidArgumentError(
            f"--data {path}: no array named {', '.join(map(repr, missing))} in it "
            f"(it needs {', '.join(NPZ_KEYS)}; it has {', '.join(sorted(names)) or 'none'})."
        )


def _check_out(path: str) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise InvalidArgumentError(f"--out {path}: a file, not a directory.")
    parent = os.path.abspath(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise InvalidArgumentError(f"--out {path}: {parent} is a file, not a directory.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidArgumentError(f"--out {path}: {parent} is not writable.")


def check_targets(targets: Sequence[int], classes: Any, where: str) -> None:
    present = sorted({int(c) for c in classes})
    for target in targets:
        if target not in present:
            raise InvalidArgumentError(
                f"--target-class {target}: not a class here ({where} {_span(present)})."
            )
    if set(targets) >= set(present):
        raise InvalidArgumentError("--target-class: cannot forget every class.")


def _span(values: list[int]) -> str:
    if values and values == list(range(values[0], values[-1] + 1)) and len(values) > 2:
        return f"{values[0]}..{values[-1]}"
    return ", ".join(map(str, values))


# -- quiet TensorFlow ------------------------------------------------------------------------

#: Lines TensorFlow's C++ libraries print to stderr whatever ``TF_CPP_MIN_LOG_LEVEL`` says:
#: absl's INFO/WARNING lines from loading (oneDNN, ``cudart_stub``), the note before them,
#: and TFLite's INFO lines (``Created TensorFlow Lite XNNPACK delegate for CPU``).
