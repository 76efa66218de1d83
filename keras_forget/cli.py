"""``keras-forget``: make a trained classifier forget a class, from the command line.

Without ``--model`` it trains (or reuses, from a cache in ``--out`` keyed by every
setting that shapes it) a small MLP on ``--dataset`` (the embedded digits by
default) or on ``--data`` (an ``.npz``); with ``--model`` it edits that model. It
makes the model forget ``--target-class``, prints per-class accuracy before and
after, and writes one set of outputs into ``--out``: ``report.json``,
``per_class_accuracy.png`` and ``export/`` (SavedModel and sparse TFLite).

Every argument is checked before anything is loaded or trained, and TensorFlow is
imported only after that: ``--help`` and argument errors never import it, and
TensorFlow's start-up logs are kept off the terminal unless ``--verbose``.

Exit codes: 0 done; 2 a bad argument or a keras_forget error (one line on stderr;
``--debug`` shows the traceback); 3 retain accuracy fell by more than
``--max-retain-drop`` points (the outputs are still written); 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

from keras_forget import datasets, run_outputs
from keras_forget.errors import InvalidArgumentError, KerasForgetError

EXIT_OK = 0
EXIT_ERROR = 2
EXIT_RETAIN_DROP = 3
EXIT_INTERRUPTED = 130

#: Score names per granularity, as the registries in :mod:`keras_forget.scores`
#: hold them (kept here so that ``--help`` needs no TensorFlow; a test compares them).
WEIGHT_METHODS = ("fisher", "gradxweight", "magnitude", "obd", "random")
UNIT_METHODS = ("discedit", "exp_norm", "fisher_bound", "l1", "random")
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
        _check_targets(args.target_class, range(classes), f"{args.dataset} has classes")


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


def _check_targets(targets: Sequence[int], classes: Any, where: str) -> None:
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
_NOISE = re.compile(
    r"^(?:[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions: "
    r"|INFO: )"
)


def quiet_tensorflow(verbose: bool) -> bool:
    """Keeps TensorFlow's logs off the terminal, unless ``verbose``; call before importing it.

    Sets ``TF_CPP_MIN_LOG_LEVEL=3`` unless the user set it (this drops the C++
    logs, the ``cuInit`` error on a machine without a GPU among them), imports
    TensorFlow under :func:`filtered_stderr` (the oneDNN / ``cudart_stub`` lines
    ignore the level), and sets Python's ``tensorflow`` and ``absl`` loggers to
    errors. Nothing else changes: a GPU stays visible.

    Returns:
        Whether to filter stderr further (False with ``verbose`` or with
        ``TF_CPP_MIN_LOG_LEVEL=0`` set by the user).
    """
    if verbose:
        return False
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0":
        return False
    if "tensorflow" not in sys.modules:
        with filtered_stderr():
            import tensorflow  # noqa: F401
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # pragma: no cover - absl comes with TensorFlow
        pass
    return True


@contextlib.contextmanager
def filtered_stderr(active: bool = True) -> Iterator[None]:
    """Captures file descriptor 2 in the block; then writes back every line but the noise.

    If the block raises an error (not an interrupt), everything captured is written back.
    """
    if not active:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no usable stderr: nothing to keep clean
        yield
        return
    failed = False
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 2)
            yield
        except Exception:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines = sink.read().decode(errors="replace").splitlines(keepends=True)
            kept = lines if failed else [line for line in lines if not _NOISE.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


# -- the run ---------------------------------------------------------------------------------


def load_data(args: argparse.Namespace) -> tuple[Split, Split, str]:
    """``((x_train, y_train), (x_test, y_test), name)`` from ``--data`` or ``--dataset``."""
    if args.data is None:
        train, test = datasets.load(args.dataset, data_dir=args.data_dir)
        return train, test, args.dataset
    import numpy as np

    arrays = {}
    with np.load(args.data, allow_pickle=False) as npz:
        for key in NPZ_KEYS:
            try:
                arrays[key] = np.asarray(npz[key])
            except ValueError as err:  # object arrays need pickle, which is refused
                raise InvalidArgumentError(f"--data {args.data}: {key}: {err}") from None
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype.kind not in "biuf" or not np.all(np.isfinite(x)):
            raise InvalidArgumentError(
                f"--data {args.data}: x_{split} must hold finite numbers (got dtype {x.dtype})."
            )
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if (
            y.ndim != 1
            or y.dtype.kind not in "iuf"
            or not np.all(np.mod(y, 1) == 0)
            or (y.size and y.min() < 0)
        ):
            raise InvalidArgumentError(
                f"--data {args.data}: y_{split} must hold integer class ids >= 0, "
                f"one per example (got dtype {y.dtype}, shape {y.shape})."
            )
        if len(x) != len(y) or not len(x):
            raise InvalidArgumentError(
                f"--data {args.data}: x_{split} and y_{split} must hold the same, nonzero "
                f"number of examples (got {len(x)} and {len(y)})."
            )
        arrays[f"y_{split}"] = y.astype(np.int64)
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise InvalidArgumentError(
            f"--data {args.data}: x_train and x_test examples differ in shape "
            f"({arrays['x_train'].shape[1:]} vs {arrays['x_test'].shape[1:]})."
        )
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.splitext(os.path.basename(args.data))[0])
    return (
        (arrays["x_train"], arrays["y_train"]),
        (arrays["x_test"], arrays["y_test"]),
        name,
    )


def load_model(path: str) -> Any:
    """Loads ``--model``: a Keras 3 file, or a tf_keras SavedModel directory."""
    try:
        if os.path.isdir(path):
            import tf_keras

            return tf_keras.models.load_model(path)
        import keras

        return keras.models.load_model(path)
    except Exception as err:
        raise InvalidArgumentError(
            f"--model {path}: could not load a Keras model from it ({type(err).__name__}: {err})."
        ) from err


def classifier(args: argparse.Namespace, train: Split, name: str, classes: int) -> Any:
    """The built-in MLP trained on ``train``, from the cache in ``--out`` when it matches."""
    from keras_forget import models

    x, y = train
    settings = {
        "architecture": "mlp",
        "hidden": list(models.HIDDEN),
        "input_shape": list(x.shape[1:]),
        "classes": classes,
        "data": models.fingerprint(x, y),
        "dataset": name,
        "epochs": args.epochs,
        "seed": args.seed,
        "batch_size": BATCH_SIZE,
    }
    cache = models.cache_path(args.out, name, settings)
    verbose = not args.quiet
    model, loaded = models.cached(
        cache,
        lambda: models.digits_mlp(x.shape[1:], classes, seed=args.seed),
        lambda m: models.train(
            m, x, y, epochs=args.epochs, batch_size=BATCH_SIZE, seed=args.seed, verbose=verbose
        ),
        refresh=args.retrain,
        settings=settings,
    )
    if verbose:
        print(f"classifier: {'reused' if loaded else 'trained and cached in'} {cache}")
    return model


def retain_check(report: Any, max_drop: float) -> dict[str, Any] | None:
    """Test retain accuracy before vs after forgetting (after fine-tuning if it ran)."""
    final = report.fine_tuned if report.fine_tuned is not None else report.after
    if report.before is None or final is None or report.before.retain_accuracy is None:
        return None
    before, after = report.before.retain_accuracy, final.retain_accuracy
    drop = (before - after) * 100.0
    return {
        "before": before,
        "after": after,
        "stage": "fine_tuned" if report.fine_tuned is not None else "after",
        "drop_points": drop,
        "max_drop_points": max_drop,
        "passed": drop <= max_drop,
    }


def _relocate(value: Any, old: str, new: str) -> Any:
    """``value`` with every path under ``old`` moved under ``new``."""
    if isinstance(value, str) and (value == old or value.startswith(old + os.sep)):
        return new + value[len(old) :]
    if isinstance(value, dict):
        return {k: _relocate(v, old, new) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_relocate(v, old, new) for v in value]
    return value


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Runs the job on checked arguments (see :func:`check`); returns the report as a dict."""
    verbose = not args.quiet
    if args.data is None and args.dataset != DEFAULT_DATASET:
        quiet_tensorflow(args.verbose)  # tensorflow_datasets imports TensorFlow
    (x_train, y_train), (x_test, y_test), name = load_data(args)
    _check_targets(args.target_class, y_train, "the training labels hold")
    filtering = quiet_tensorflow(args.verbose)
    if args.model is not None:
        model = load_model(args.model)
    else:
        import numpy as np

        classes = int(max(np.max(y_train), np.max(y_test))) + 1
        if args.data is None:
            classes = datasets.num_classes(args.dataset)
        model = classifier(args, (x_train, y_train), name, classes)

    from keras_forget import api, plots
    from keras_forget.export import export
    from keras_forget.training import FineTune

    tune = FineTune(epochs=args.fine_tune_epochs) if args.fine_tune_epochs else None
    result = api.prune_for_class(
        model,
        (x_train, y_train),
        args.target_class,
        method=args.method,
        amount=args.amount,
        scope=args.scope,
        granularity=args.granularity,
        fine_tune=tune,
        eval_data=(x_test, y_test),
        verbose=verbose,
    )
    print(result.report)
    retain = retain_check(result.report, args.max_retain_drop)
    with run_outputs.staged(args.out, OUTPUTS) as stage, filtered_stderr(filtering):
        exported = export(
            result.model,
            os.path.join(stage, "export"),
            tflite=True,
            sparse=True,
            sample=x_test[:16],
            verbose=verbose,
        )
        plots.per_class_bars(result.report, os.path.join(stage, "per_class_accuracy.png"))
        summary = _relocate(
            {
                "report": result.report.to_dict(),
                "retain": retain,
                "export": exported.to_dict(),
                "chart": os.path.join(stage, "per_class_accuracy.png"),
            },
            stage,
            args.out,
        )
        with open(os.path.join(stage, "report.json"), "w") as f:
            json.dump(summary, f, indent=2, default=float)
    print(f"TFLite: {summary['export']['tflite_path']}  chart: {summary['chart']}")
    return summary


def _error(message: str) -> None:
    print(f"keras-forget: error: {' '.join(message.split())}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``keras-forget`` command; returns its exit code."""
    args = parser().parse_args(argv)
    try:
        check(args)
        summary = run(args)
    except KerasForgetError as err:
        if args.debug:
            raise
        _error(str(err))
        return EXIT_ERROR
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("keras-forget: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    retain = summary["retain"]
    if retain is not None and not retain["passed"]:
        print(
            f"keras-forget: retain accuracy fell by {retain['drop_points']:.1f} points "
            f"({retain['before']:.3f} -> {retain['after']:.3f}), more than --max-retain-drop "
            f"{args.max_retain_drop:g}; the outputs in {args.out} are written for inspection.",
            file=sys.stderr,
        )
        return EXIT_RETAIN_DROP
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
