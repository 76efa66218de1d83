"""Ship a model: strip training-only parts, write a SavedModel and TFLite files."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
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
_LITERT_NOTE = "parity checked with LiteRT (ai_edge_litert.interpreter)"
_TF_LITE_NOTE = "parity checked with tf.lite (deprecated; install keras-forget[litert] for LiteRT)"
#: Converter errors of a loop (LSTM, GRU) that needs a static batch size.
_STATIC_SHAPE_ERRORS = ("requires element_shape to be static",)
_BATCH1_NOTE = (
    "converted with a fixed batch of 1: the model's recurrent loop needs a static shape; "
    "run it one example at a time"
)
_STATE_NOTE = (
    "the TFLite model keeps state between runs (a fused LSTM's variable tensors): "
    "call the interpreter's reset_all_variables() before each example"
)
#: Outputs this close to 0 or 1 count as saturated.
_SATURATION = 1e-6
_SATURATED_NOTE = (
    "parity check could not discriminate: outputs saturated on the sample; "
    "pass real examples as `sample`"
)
#: Why a directory cannot be written to, by errno.
_REASONS = {
    errno.EACCES: "is not writable",
    errno.EPERM: "is not writable",
    errno.EROFS: "is on a read-only filesystem",
}
#: Why a write failed for want of room, by errno.
_FULL = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}


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
        notes: remarks on how the artifacts were made or checked, among them
            which interpreter ran the parity check (LiteRT or tf.lite).
        parity_discriminates: False when the parity check could tell nothing
            apart because every Keras output on the sample is within 1e-6 of 0
            or 1 (a saturated softmax or sigmoid; pass real examples as
            ``sample``); None when no TFLite file was written, so nothing was
            checked.
    """

    saved_model_dir: str
    tflite_path: str | None
    int8_tflite_path: str | None
    sizes: dict[str, dict[str, int]]
    sparsity: float | None
    max_abs_diff: dict[str, float]
    notes: list[str]
    parity_discriminates: bool | None = None

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
        NotPrunableError: the model has no prunable weight (layers it cannot prune are
            left whole and not counted).
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
    rtol: float = 1e-3,
    overwrite: bool = False,
    verbose: bool = True,
) -> ExportReport:
    """Writes the stripped model (:func:`keras_forget.strip`) as a SavedModel and TFLite files.

    Writes into directory ``path``: ``saved_model/``, ``model.tflite`` and
    ``model_int8.tflite`` (dynamic-range quantized). The float TFLite model must
    match the Keras model on ``sample``: every output element must satisfy
    ``|tflite - keras| <= atol + rtol * |keras|``; the int8 model's difference
    is only reported. The parity check runs on LiteRT's interpreter when the
    ``ai-edge-litert`` package is installed (``pip install keras-forget[litert]``),
    else on ``tf.lite.Interpreter``; the report's notes say which.

    Artifacts are built in a hidden ``.kf-export-*`` directory inside ``path``
    (so on the same filesystem; ``path`` may be a mount point or sit under a
    read-only parent) and moved into place only once every check passed. A
    failed export leaves nothing behind: no staging directory, no partial
    artifact, no directory it created, and artifacts it was to overwrite are
    put back.

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
            default a seeded random batch of 8 (standard normal; integers in
            {0, 1} for integer inputs). Random inputs can saturate a softmax,
            which makes the check blind (see
            :attr:`ExportReport.parity_discriminates`): pass real examples.
        atol: absolute tolerance of the float TFLite parity check (> 0).
        rtol: relative tolerance of the float TFLite parity check (>= 0),
            relative to the Keras output.
        overwrite: replace artifacts of the same names already in ``path``.
        verbose: print one line per artifact.

    Returns:
        An :class:`ExportReport`.

    Raises:
        TypeError: ``model`` is not a Keras model.
        InvalidArgumentError: an argument is invalid (the message names it),
            among them a ``path`` that is, or lies under, an existing file.
        FileExistsError: ``path`` holds an artifact to write and not ``overwrite``.
        ExportError: ``path`` cannot be written (the message names it and says
            why: not writable, read-only filesystem, no space left), saving or
            conversion failed, or the float TFLite model is outside the tolerance.
    """
    _keras.flavor(model)
    path = _check_path(path)
    x = _check_samples(sample, _input_specs(model, sample))
    _check_options(tflite, sparse, int8, atol, rtol)
    names = [SAVED_MODEL] + [TFLITE] * tflite + [INT8_TFLITE] * int8
    taken = [n for n in names if os.path.lexists(os.path.join(path, n))]
    if taken and not overwrite:
        raise PathExistsError(f"{path} already holds {', '.join(taken)}; pass overwrite=True.")
    try:
        with _staging(path) as tmp:
            diffs, notes, exported, discriminates = _build(
                model, tmp, path, x, tflite, sparse, int8, atol, rtol
            )
            sizes = {n: _sizes(os.path.join(tmp, n)) for n in names}
            _commit(tmp, path, names)
    except OSError as error:
        raise _path_error(path, error) from error
    report = ExportReport(
        saved_model_dir=os.path.join(path, SAVED_MODEL),
        tflite_path=os.path.join(path, TFLITE) if tflite else None,
        int8_tflite_path=os.path.join(path, INT8_TFLITE) if int8 else None,
        sizes=sizes, sparsity=_sparsity_or_none(exported), max_abs_diff=diffs, notes=notes,
        parity_discriminates=discriminates,
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
    existing = path
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        where = "" if existing == path else f" cannot be created: {existing!r}"
        raise InvalidArgumentError(f"`path` {path!r}{where} exists and is not a directory.")
    return path


def _check_options(tflite: bool, sparse: bool, int8: bool, atol: float, rtol: float) -> None:
    """Validates the flags and the tolerances."""
    for name, value in (("atol", atol), ("rtol", rtol)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise InvalidArgumentError(f"`{name}` must be a number, got {value!r}.")
    if math.isnan(atol) or atol <= 0:
        raise InvalidArgumentError(f"`atol` must be > 0, got {atol!r}.")
    if math.isnan(rtol) or rtol < 0:
        raise InvalidArgumentError(f"`rtol` must be >= 0, got {rtol!r}.")
    if sparse and not tflite:
        raise InvalidArgumentError("`sparse=True` only affects TFLite files; it needs tflite=True.")
    if int8 and not tflite:
        raise InvalidArgumentError("`int8=True` writes a TFLite file; it needs tflite=True.")


Spec = tuple[tuple[int | None, ...], np.dtype]
#: A parity-check batch: an array, or ``{input name: array}`` for several inputs.
Batch = Any


def _input_specs(model: Any, sample: Any = None) -> dict[str, Spec]:
    """``{input name: (batch shape, dtype)}`` of a single-output model, in input order.

    A model without Input layers (subclassed) has the shape it was built with, or
    else the shape of ``sample``.
    """
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if len(outputs or [None]) != 1:
        raise InvalidArgumentError("`model` must have one output.")
    if not inputs:
        return {"input": _input_spec(model, sample)}
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


def _input_spec(model: Any, sample: Any = None) -> Spec:
    """The batch input shape and dtype of a model built without Input layers."""
    try:
        shape = _keras.input_shape(model)
    except Exception:  # noqa: BLE001  (no shape recorded: the sample decides)
        shape = None
    if shape is not None and not isinstance(shape, list):
        return tuple(shape), np.dtype("float32")
    batch = None if sample is None else np.asarray(sample)
    if batch is not None and batch.ndim >= 2 and batch.dtype != object:
        return (None, *batch.shape[1:]), np.dtype("float32")
    raise InvalidArgumentError(
        "`model` has no recorded input shape (a subclassed model): pass `sample`, a batch of "
        "its inputs, so the export knows what it takes."
    )


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
    model: Any,
    tmp: str,
    path: str,
    x: Batch,
    tflite: bool,
    sparse: bool,
    int8: bool,
    atol: float,
    rtol: float,
) -> tuple[dict[str, float], list[str], Any, bool | None]:
    """Writes and checks every artifact in ``tmp`` (inside ``path``).

    Returns the diffs, the notes, the exported model and whether the parity
    check could discriminate (None without TFLite).
    """
    exported = masking.strip(model)
    inputs = list(x.values()) if isinstance(x, dict) else x
    expected = np.asarray(exported(inputs, training=False))  # also traces subclassed models
    saved_model = os.path.join(tmp, SAVED_MODEL)
    _save(exported, saved_model, path)
    diffs: dict[str, float] = {}
    notes: list[str] = []
    if not tflite:
        return diffs, notes, exported, None
    runtime = _interpreter()
    notes.append(runtime.note)
    discriminates = not _saturated(expected)
    if not discriminates:
        notes.append(_SATURATED_NOTE)
    extra = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY] if sparse else []
    single = False
    try:
        content = _convert(saved_model, extra, os.path.join(tmp, TFLITE))
    except ExportError as error:
        if isinstance(x, dict) or not any(m in str(error) for m in _STATIC_SHAPE_ERRORS):
            raise
        # The SavedModel artifact keeps its free batch size; only TFLite gets batch 1.
        saved_model = os.path.join(tmp, ".batch1_saved_model")
        _save(exported, saved_model, path, batch1=(tuple(x.shape[1:]), x.dtype))
        content = _convert(saved_model, extra, os.path.join(tmp, TFLITE))
        notes.append(_BATCH1_NOTE)
        if _variable_tensor_count(content):
            notes.append(_STATE_NOTE)
        single = True
    actual = _run_tflite(content, x, runtime, single=single)
    diffs[TFLITE] = _max_abs_diff(actual, expected)
    _check_parity(actual, expected, atol, rtol)
    if sparse and _sparse_tensor_count(content) == 0:
        notes.append("sparse: the converter stored no tensor in sparse format")
    if int8:
        content = _convert(saved_model, [tf.lite.Optimize.DEFAULT, *extra],
                           os.path.join(tmp, INT8_TFLITE))  # fmt: skip
        if sparse:
            notes.append(_INT8_SPARSE_NOTE)
        diffs[INT8_TFLITE] = _max_abs_diff(
            _run_tflite(content, x, runtime, builtin=sparse, single=single), expected
        )
    return diffs, notes, exported, discriminates


def _saturated(expected: np.ndarray) -> bool:
    """Whether every output is within 1e-6 of 0 or 1 (a check on it would tell nothing)."""
    y = np.asarray(expected, np.float64)
    return bool(np.all((np.abs(y) <= _SATURATION) | (np.abs(y - 1.0) <= _SATURATION)))


def _check_parity(actual: np.ndarray, expected: np.ndarray, atol: float, rtol: float) -> None:
    """Raises ExportError unless ``|actual - expected| <= atol + rtol * |expected|`` everywhere."""
    expected = expected.astype(np.float64)
    diff = np.abs(actual.astype(np.float64) - expected)
    bound = atol + rtol * np.abs(expected)
    bad = ~(diff <= bound)  # NaN is out of tolerance
    if not bad.any():
        return
    excess = np.where(bad, np.nan_to_num(diff - bound, nan=np.inf), -np.inf)
    worst = np.unravel_index(np.argmax(excess), diff.shape)
    raise ExportError(
        f"{TFLITE} differs from the Keras model: {int(bad.sum())} of {bad.size} outputs on a "
        f"batch of {len(expected)} break |tflite - keras| <= atol + rtol * |keras| "
        f"(atol = {atol:.3g}, rtol = {rtol:.3g}); worst |diff| = {diff[worst]:.3g} where "
        f"keras = {expected[worst]:.3g}; max |diff| = {np.max(diff):.3g}."
    )


def _save(model: Any, directory: str, path: str, batch1: Spec | None = None) -> None:
    """Writes a SavedModel with a ``serving_default`` signature.

    ``batch1``: ``(shape without the batch axis, dtype)`` of the single input,
    to give the signature a fixed batch of 1 instead of a free one.
    """
    try:
        if batch1 is None:
            if _keras.flavor(model) == "keras3":
                model.export(directory, format="tf_saved_model", verbose=False)
            else:
                tf.saved_model.save(model, directory)
        elif _keras.flavor(model) == "keras3":
            import keras

            spec = keras.InputSpec(shape=(1, *batch1[0]), dtype=str(batch1[1]))
            model.export(directory, format="tf_saved_model", input_signature=[spec], verbose=False)
        else:
            spec = tf.TensorSpec((1, *batch1[0]), tf.as_dtype(batch1[1]))
            serve = tf.function(lambda t: model(t, training=False), input_signature=[spec])
            tf.saved_model.save(model, directory, signatures=serve)
    except OSError:
        raise  # the caller words it, naming ``path``
    except Exception as error:  # TensorFlow's file errors carry the OS reason as text
        for code in (*_FULL, *_REASONS):
            if os.strerror(code) in str(error):
                raise _path_error(path, OSError(code, os.strerror(code))) from error
        raise ExportError(f"Saving the SavedModel into {path} failed: {error}") from error


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


@dataclasses.dataclass(frozen=True)
class _Runtime:
    """A TFLite interpreter class, its op resolver enum and the note naming it."""

    interpreter: Any
    resolvers: Any
    note: str


def _interpreter() -> _Runtime:
    """LiteRT's interpreter when ``ai-edge-litert`` is installed, else ``tf.lite``'s."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        return _Runtime(tf.lite.Interpreter, tf.lite.experimental.OpResolverType, _TF_LITE_NOTE)
    return _Runtime(Interpreter, OpResolverType, _LITERT_NOTE)


def _run_tflite(
    content: bytes, x: Batch, runtime: _Runtime, builtin: bool = False, single: bool = False
) -> np.ndarray:
    """Runs a batch through a TFLite model; one example at a time if it cannot resize.

    ``builtin`` runs on the builtin kernels without the default delegates
    (XNNPACK); ``single`` runs one example at a time without trying the batch.
    """
    kwargs = {}
    if builtin:
        resolver = runtime.resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        kwargs["experimental_op_resolver_type"] = resolver
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*Interpreter is deprecated", UserWarning)
        interpreter = runtime.interpreter(model_content=content, **kwargs)
    if isinstance(x, dict):
        return _run_signature(interpreter, x)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()

    def run(batch: np.ndarray) -> np.ndarray:
        interpreter.resize_tensor_input(inp["index"], batch.shape)
        interpreter.allocate_tensors()
        interpreter.reset_all_variables()  # a fused LSTM's state would carry over
        interpreter.set_tensor(inp["index"], batch.astype(inp["dtype"]))
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])

    if not single:
        try:
            return run(x)
        except (RuntimeError, ValueError):
            pass
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


def _variable_tensor_count(content: bytes) -> int | None:
    """How many variable (state) tensors a TFLite file holds (None if unknown)."""
    try:
        from tensorflow.lite.python import schema_py_generated as schema
    except ImportError:
        return None
    model = schema.Model.GetRootAsModel(content, 0)
    return sum(
        bool(model.Subgraphs(s).Tensors(t).IsVariable())
        for s in range(model.SubgraphsLength())
        for t in range(model.Subgraphs(s).TensorsLength())
    )


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
    """A temporary directory inside ``path``, always removed on exit.

    ``path`` and its missing parents are created, and removed again on failure.
    Staging inside ``path`` keeps the artifacts on the filesystem they end up
    on (the final moves are plain renames, also when ``path`` is a mount
    point) and needs nothing of ``path``'s parent when ``path`` exists.
    """
    created = []
    for directory in _missing(path):
        try:
            os.mkdir(directory)
        except OSError as error:
            _remove_dirs(created)
            if error.errno in (errno.EEXIST, errno.ENOTDIR):  # appeared since _check_path
                raise ExportError(
                    f"Cannot export to {path!r}: {directory!r} exists and is not a directory."
                ) from error
            raise _path_error(path, error, os.path.dirname(directory)) from error
        created.insert(0, directory)
    try:
        tmp = tempfile.mkdtemp(dir=path, prefix=".kf-export-")
    except OSError as error:
        _remove_dirs(created)
        raise _path_error(path, error) from error
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_dirs(created)
        raise
    shutil.rmtree(tmp, ignore_errors=True)


def _missing(path: str) -> list[str]:
    """``path`` and its ancestors that do not exist yet, outermost first."""
    missing = []
    while not os.path.isdir(path):
        missing.insert(0, path)
        path = os.path.dirname(path)
    return missing


def _remove_dirs(directories: list[str]) -> None:
    """Removes directories, innermost first, when empty; ignores failures."""
    for directory in directories:
        with contextlib.suppress(OSError):
            os.rmdir(directory)


def _commit(tmp: str, path: str, names: list[str]) -> None:
    """Moves checked artifacts from ``tmp`` into ``path``, replacing old ones.

    Old artifacts are first moved aside into ``tmp``; if a move fails, the new
    artifacts already moved in are removed and the old ones put back.
    """
    aside: list[tuple[str, str]] = []
    placed: list[str] = []
    try:
        for name in names:
            target = os.path.join(path, name)
            if os.path.lexists(target):
                old = os.path.join(tmp, f".old-{name}")
                os.replace(target, old)
                aside.append((old, target))
            os.replace(os.path.join(tmp, name), target)
            placed.append(target)
    except BaseException:
        for target in placed:
            with contextlib.suppress(OSError):
                if os.path.isdir(target) and not os.path.islink(target):
                    shutil.rmtree(target)
                else:
                    os.remove(target)
        for old, target in reversed(aside):
            with contextlib.suppress(OSError):
                os.replace(old, target)
        raise


def _path_error(path: str, error: OSError, where: str | None = None) -> ExportError:
    """An ExportError naming ``path`` and saying in words why it cannot be written.

    ``where`` is the directory the failed operation wrote into (``path`` or,
    while creating it, an ancestor); never the hidden staging directory.
    """
    where = path if where is None else where
    if error.errno in _FULL:
        detail = _FULL[error.errno]
    elif error.errno in _REASONS:
        subject = "the directory" if where == path else repr(where)
        detail = f"{subject} {_REASONS[error.errno]}"
        if where != path:
            detail += f", so {path!r} cannot be created"
    else:
        detail = error.strerror or str(error)
    return ExportError(f"Cannot export to {path!r}: {detail}.")


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
