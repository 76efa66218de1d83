"""Ship a model: strip training-only parts, write a SavedModel and TFLite files."""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from keras_forget import _keras
from keras_forget.errors import ExportError, InvalidArgumentError, PathExistsError
from keras_forget.introspect.registry import prunable_weights
from keras_forget.surgery import masking

SAVED_MODEL = "saved_model"
TFLITE = "model.tflite"
INT8_TFLITE = "model_int8.tflite"

_INT8_SPARSE_NOTE = (
    "int8+sparse: parity checked with the builtin resolver (XNNPACK cannot run int8 sparse models)"
)


@dataclasses.dataclass(frozen=True)
class ExportReport:
    """What :func:`export` wrote and how faithful it is.

    Attributes:
        saved_model_dir: the SavedModel directory.
        tflite_path: the float TFLite file, or None when not written.
        int8_tflite_path: the dynamic-range int8 TFLite file, or None.
        sizes: artifact name -> ``{"raw": bytes, "gzip": bytes}``.
        sparsity: fraction of exact zeros in the exported model's prunable
            kernels; None when the model has no prunable weight.
        max_abs_diff: artifact name -> max ``|tflite - keras|`` on the sample.
        notes: remarks on how the artifacts were made or checked.
    """

    saved_model_dir: str
    tflite_path: str | None
    int8_tflite_path: str | None
    sizes: dict[str, dict[str, int]]
    sparsity: float | None
    max_abs_diff: dict[str, float]
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        """Returns the report as plain, JSON-serializable Python objects."""
        return dataclasses.asdict(self)


def sparsity(model: Any) -> float:
    """Fraction of exactly-zero entries over the prunable weights of a model.

    Args:
        model: a built Keras 3 or tf_keras model (not wrapped).

    Returns:
        A number in [0, 1].

    Raises:
        NotPrunableError: the model has no prunable weight.
        UnsupportedLayerError: a layer's weights are of a kind the library does not know.
    """
    weights = [np.asarray(w.variable.numpy()) for w in prunable_weights(model).values()]
    total = sum(w.size for w in weights)
    return sum(int(np.count_nonzero(w == 0)) for w in weights) / total if total else 0.0


def _sparsity_or_none(model: Any) -> float | None:
    """:func:`sparsity`, or None (said as such in the report) with nothing prunable."""
    return sparsity(model) if prunable_weights(model, required=False) else None


def export(
    model: Any,
    path: str | os.PathLike[str],
    *,
    tflite: bool = True,
    sparse: bool = False,
    int8: bool = False,
    sample: np.ndarray | Sequence[np.ndarray] | None = None,
    atol: float = 1e-4,
    overwrite: bool = False,
    verbose: bool = True,
) -> ExportReport:
    """Writes the stripped model (:func:`keras_forget.strip`) as a SavedModel and TFLite files.

    Writes into directory ``path``: ``saved_model/``, ``model.tflite`` and
    ``model_int8.tflite`` (dynamic-range quantized). The float TFLite model must
    match the Keras model on ``sample`` within ``atol``; the int8 model's
    difference is only reported. Artifacts are built next to ``path`` and moved
    in only once every check passed; a failed export leaves nothing behind.

    Args:
        model: a built Keras 3 or tf_keras model with one output, and one
            input or several (fed to the TFLite model by input name).
        path: destination directory, created if missing.
        tflite: write ``model.tflite``.
        sparse: let the TFLite converter store sparse weights in a sparse
            format (``Optimize.EXPERIMENTAL_SPARSITY``); needs ``tflite``.
        int8: also write ``model_int8.tflite``; needs ``tflite``.
        sample: a batch of inputs for the parity check (for several inputs,
            a tuple or list of batches in the order of ``model.inputs``); by
            default a seeded random batch of 8 (integers in {0, 1} for integer
            inputs).
        atol: largest allowed max absolute difference of the float TFLite model.
        overwrite: replace artifacts of the same names already in ``path``.
        verbose: print one line per artifact.

    Returns:
        An :class:`ExportReport`.

    Raises:
        TypeError: ``model`` is not a Keras model.
        InvalidArgumentError: an argument is invalid (the message names it).
        FileExistsError: ``path`` holds an artifact to write and not ``overwrite``.
        ExportError: saving or conversion failed, or the float TFLite model
            differs from the Keras model by more than ``atol``.
    """
    _keras.flavor(model)
    path = _check_path(path)
    x = _check_samples(sample, _input_specs(model))
    _check_options(tflite, sparse, int8, atol)
    names = [SAVED_MODEL] + [TFLITE] * tflite + [INT8_TFLITE] * int8
    taken = [n for n in names if os.path.lexists(os.path.join(path, n))]
    if taken and not overwrite:
        raise PathExistsError(f"{path} already holds {', '.join(taken)}; pass overwrite=True.")
    with _staging(path) as tmp:
        diffs, notes, exported = _build(model, tmp, x, tflite, sparse, int8, atol)
        sizes = {n: _sizes(os.path.join(tmp, n)) for n in names}
        _commit(tmp, path, names)
    report = ExportReport(
        saved_model_dir=os.path.join(path, SAVED_MODEL),
        tflite_path=os.path.join(path, TFLITE) if tflite else None,
        int8_tflite_path=os.path.join(path, INT8_TFLITE) if int8 else None,
        sizes=sizes, sparsity=_sparsity_or_none(exported), max_abs_diff=diffs, notes=notes,
    )  # fmt: skip
    if verbose:
        _print_summary(report)
    return report


def _check_path(path: Any) -> str:
    """Validates ``path`` and returns it absolute."""
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidArgumentError(
            f"`path` must be a str or os.PathLike, got {type(path).__name__}."
        )
    path = os.fspath(path)
    if not isinstance(path, str) or not path.strip():
        raise InvalidArgumentError(f"`path` must be a non-empty text path, got {path!r}.")
    path = os.path.abspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise InvalidArgumentError(f"`path` {path!r} exists and is not a directory.")
    return path


def _check_options(tflite: bool, sparse: bool, int8: bool, atol: float) -> None:
    """Validates the flags and ``atol``."""
    if isinstance(atol, bool) or not isinstance(atol, (int, float, np.floating, np.integer)):
        raise InvalidArgumentError(f"`atol` must be a number, got {atol!r}.")
    if math.isnan(atol) or atol <= 0:
        raise InvalidArgumentError(f"`atol` must be > 0, got {atol!r}.")
    if sparse and not tflite:
        raise InvalidArgumentError("`sparse=True` only affects TFLite files; it needs tflite=True.")
    if int8 and not tflite:
        raise InvalidArgumentError("`int8=True` writes a TFLite file; it needs tflite=True.")


Spec = tuple[tuple[int | None, ...], np.dtype]
#: A parity-check batch: an array, or ``{input name: array}`` for several inputs.
Batch = Any


def _input_specs(model: Any) -> dict[str, Spec]:
    """``{input name: (batch shape, dtype)}`` of a single-output model, in input order."""
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if len(outputs or [None]) != 1:
        raise InvalidArgumentError("`model` must have one output.")
    if not inputs:
        return {"input": _input_spec(model)}
    specs = {
        _tensor_name(t): (tuple(t.shape), np.dtype(tf.as_dtype(t.dtype).as_numpy_dtype))
        for t in inputs
    }
    if len(specs) != len(inputs):
        raise InvalidArgumentError("`model` inputs must have distinct names.")
    return specs


def _tensor_name(tensor: Any) -> str:
    """A Keras input's name without a ``:0`` suffix."""
    return str(tensor.name).split(":")[0]


def _input_spec(model: Any) -> Spec:
    """The batch input shape and dtype of a model built without Input layers."""
    try:
        return tuple(_keras._input_shape(model)), np.dtype("float32")
    except Exception as error:
        raise InvalidArgumentError(
            f"`model` must be built with a known input shape ({error})."
        ) from error


def _check_samples(sample: Any, specs: dict[str, Spec]) -> Batch:
    """The parity-check batch: an array for one input, ``{name: array}`` for several."""
    if len(specs) == 1:
        return _check_sample(sample, *next(iter(specs.values())))
    if sample is not None and (not isinstance(sample, (tuple, list)) or len(sample) != len(specs)):
        raise InvalidArgumentError(
            f"`sample` must be a tuple or list of {len(specs)} batches, one per model input "
            f"({', '.join(specs)})."
        )
    parts = [None] * len(specs) if sample is None else list(sample)
    x = {name: _check_sample(part, *spec) for (name, spec), part in zip(specs.items(), parts)}
    if len({len(a) for a in x.values()}) != 1:
        raise InvalidArgumentError("`sample` batches must all have the same number of examples.")
    return x


def _check_sample(sample: Any, shape: tuple[int | None, ...], dtype: np.dtype) -> np.ndarray:
    """Validates ``sample`` against the input shape or makes a seeded random one."""
    if sample is None:
        if any(d is None for d in shape[1:]):
            raise InvalidArgumentError(
                f"`sample` is needed: the model input {shape} is not fully known."
            )
        rng = np.random.default_rng(0)
        batch = (shape[0] or 8, *shape[1:])
        if np.issubdtype(dtype, np.integer):
            return rng.integers(0, 2, size=batch).astype(dtype)
        return rng.standard_normal(batch).astype(dtype)
    try:
        x = np.asarray(sample).astype(dtype)
    except (TypeError, ValueError) as error:
        raise InvalidArgumentError(
            f"`sample` must be a numeric batch of inputs ({error})."
        ) from error
    known = zip(shape[1:], x.shape[1:], strict=True)
    if x.ndim != len(shape) or not all(d in (None, n) for d, n in known) or not len(x):
        raise InvalidArgumentError(
            f"`sample` of shape {x.shape} does not fit the model input {shape}."
        )
    return x


def _build(
    model: Any, tmp: str, x: Batch, tflite: bool, sparse: bool, int8: bool, atol: float
) -> tuple[dict[str, float], list[str], Any]:
    """Writes and checks every artifact in ``tmp``; returns diffs, notes, exported model."""
    exported = masking.strip(model)
    inputs = list(x.values()) if isinstance(x, dict) else x
    expected = np.asarray(exported(inputs, training=False))  # also traces subclassed models
    saved_model = os.path.join(tmp, SAVED_MODEL)
    _save(exported, saved_model)
    diffs: dict[str, float] = {}
    notes: list[str] = []
    if not tflite:
        return diffs, notes, exported
    extra = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY] if sparse else []
    content = _convert(saved_model, extra, os.path.join(tmp, TFLITE))
    diffs[TFLITE] = _max_abs_diff(_run_tflite(content, x), expected)
    if not diffs[TFLITE] <= atol:
        raise ExportError(
            f"{TFLITE} differs from the Keras model by max |diff| = {diffs[TFLITE]:.3g} > "
            f"atol = {atol:.3g} on a batch of {len(expected)}."
        )
    if sparse and _sparse_tensor_count(content) == 0:
        notes.append("sparse: the converter stored no tensor in sparse format")
    if int8:
        content = _convert(saved_model, [tf.lite.Optimize.DEFAULT, *extra],
                           os.path.join(tmp, INT8_TFLITE))  # fmt: skip
        resolver = None
        if sparse:
            resolver = tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            notes.append(_INT8_SPARSE_NOTE)
        diffs[INT8_TFLITE] = _max_abs_diff(_run_tflite(content, x, resolver), expected)
    return diffs, notes, exported


def _save(model: Any, directory: str) -> None:
    """Writes a SavedModel with a ``serving_default`` signature."""
    try:
        if _keras.flavor(model) == "keras3":
            model.export(directory, format="tf_saved_model", verbose=False)
        else:
            tf.saved_model.save(model, directory)
    except Exception as error:
        raise ExportError(f"Saving the SavedModel failed: {error}") from error


def _convert(saved_model: str, optimizations: list[Any], target: str) -> bytes:
    """Converts a SavedModel to a TFLite file at ``target``; returns its bytes."""
    try:
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        converter.optimizations = optimizations
        content = converter.convert()
    except Exception as error:
        name = os.path.basename(target)
        raise ExportError(f"Converting to {name} failed: {error}") from error
    with open(target, "wb") as file:
        file.write(content)
    return content


def _run_tflite(content: bytes, x: Batch, resolver: Any = None) -> np.ndarray:
    """Runs a batch through a TFLite model; one example at a time if it cannot resize."""
    kwargs = {} if resolver is None else {"experimental_op_resolver_type": resolver}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*Interpreter is deprecated", UserWarning)
        interpreter = tf.lite.Interpreter(model_content=content, **kwargs)
    if isinstance(x, dict):
        return _run_signature(interpreter, x)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()

    def run(batch: np.ndarray) -> np.ndarray:
        interpreter.resize_tensor_input(inp["index"], batch.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp["index"], batch.astype(inp["dtype"]))
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])

    try:
        return run(x)
    except (RuntimeError, ValueError):
        return np.concatenate([run(x[i : i + 1]) for i in range(len(x))])


def _run_signature(interpreter: Any, x: dict[str, np.ndarray]) -> np.ndarray:
    """Runs a batch of several named inputs through the ``serving_default`` signature."""
    runner = interpreter.get_signature_runner()
    expected = set(runner.get_input_details())
    if expected != set(x):
        raise ExportError(
            f"The TFLite signature's inputs {sorted(expected)} do not match the model's "
            f"input names {sorted(x)}."
        )

    def run(index: slice) -> np.ndarray:
        (out,) = runner(**{name: a[index] for name, a in x.items()}).values()
        return out

    size = len(next(iter(x.values())))
    try:
        return run(slice(None))
    except (RuntimeError, ValueError):
        return np.concatenate([run(slice(i, i + 1)) for i in range(size)])


def _max_abs_diff(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |actual - expected|, or an ExportError when the shapes differ."""
    if actual.shape != expected.shape:
        raise ExportError(f"TFLite output shape {actual.shape} != Keras {expected.shape}.")
    diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    return float(np.max(diff, initial=0.0))


def _sparse_tensor_count(content: bytes) -> int | None:
    """How many tensors a TFLite file stores in sparse format (None if unknown)."""
    try:
        from tensorflow.lite.python import schema_py_generated as schema
    except ImportError:
        return None
    model = schema.Model.GetRootAsModel(content, 0)
    return sum(
        model.Subgraphs(s).Tensors(t).Sparsity() is not None
        for s in range(model.SubgraphsLength())
        for t in range(model.Subgraphs(s).TensorsLength())
    )


def _sizes(artifact: str) -> dict[str, int]:
    """Raw and gzip sizes of a file, or of a SavedModel's graph plus variables."""
    if os.path.isfile(artifact):
        files = [artifact]
    else:
        variables = os.path.join(artifact, "variables")
        files = [os.path.join(artifact, "saved_model.pb")] + sorted(
            os.path.join(root, f) for root, _, fs in os.walk(variables) for f in fs
        )
    raw = packed = 0
    for name in files:
        with open(name, "rb") as file:
            data = file.read()
        raw += len(data)
        packed += len(gzip.compress(data, 9))
    return {"raw": raw, "gzip": packed}


@contextlib.contextmanager
def _staging(path: str) -> Iterator[str]:
    """A temporary directory next to ``path``, always removed on exit.

    Missing parents of ``path`` are created, and removed again on failure.
    """
    created, parent = [], os.path.dirname(path)
    while not os.path.isdir(parent):
        created.append(parent)
        parent = os.path.dirname(parent)
    for directory in reversed(created):
        os.mkdir(directory)
    tmp = tempfile.mkdtemp(dir=os.path.dirname(path), prefix=".kf-export-")
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for directory in created:
            with contextlib.suppress(OSError):
                os.rmdir(directory)
        raise
    shutil.rmtree(tmp, ignore_errors=True)


def _commit(tmp: str, path: str, names: list[str]) -> None:
    """Moves checked artifacts from ``tmp`` into ``path``, replacing old ones."""
    os.makedirs(path, exist_ok=True)
    for name in names:
        target = os.path.join(path, name)
        if os.path.lexists(target):
            os.replace(target, os.path.join(tmp, f".old-{name}"))
        os.replace(os.path.join(tmp, name), target)


def _print_summary(report: ExportReport) -> None:
    """Prints one line per artifact, then the notes."""
    for name, size in report.sizes.items():
        diff = report.max_abs_diff.get(name)
        extra = ""
        if name == SAVED_MODEL and report.sparsity is not None:
            extra = f", sparsity {report.sparsity:.1%}"
        extra += "" if diff is None else f", max |tflite - keras| = {diff:.3g}"
        print(f"{name}: {size['raw']:,} B raw, {size['gzip']:,} B gzip{extra}")
    for note in report.notes:
        print(f"note: {note}")
