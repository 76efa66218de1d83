"""The command line's job: load or train the classifier, forget, export, write one set."""

from __future__ import annotations

import argparse
import json
import os
import re
from typing import Any

from keras_forget import datasets, run_outputs
from keras_forget.cli.arguments import (
    BATCH_SIZE,
    DEFAULT_DATASET,
    NPZ_KEYS,
    OUTPUTS,
    Split,
    check_targets,
)
from keras_forget.cli.quiet import filtered_stderr, quiet_tensorflow
from keras_forget.errors import InvalidArgumentError


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
    check_targets(args.target_class, y_train, "the training labels hold")
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
