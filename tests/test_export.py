"""Tests for keras_forget.export."""

from __future__ import annotations

import errno
import importlib
import json
import os
import sys
import types
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_forget import _keras
from keras_forget.errors import (
    ExportError,
    InvalidArgumentError,
    KerasForgetError,
    NotAModelError,
    NotPrunableError,
    PathExistsError,
)
from keras_forget.surgery import masking

# `keras_forget.export` the attribute is the function; the module is reached by name.
ex = importlib.import_module("keras_forget.export")


def _model(zero_half: bool = False, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    if zero_half:
        rng = np.random.default_rng(seed)
        for layer in model.layers[1:]:
            _assign_zero_half(layer.kernel, rng)
    return model


def _assign_zero_half(variable, rng: np.random.Generator) -> None:
    values = variable.numpy()
    flat = values.reshape(-1)
    flat[rng.permutation(flat.size)[: flat.size // 2]] = 0.0
    variable.assign(values)


MODEL = _model()


def _sample(n: int = 8) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((n, 8, 8, 1)).astype("float32")


def _run_tflite(path: str, x: np.ndarray, resolver=None) -> np.ndarray:
    kwargs = {} if resolver is None else {"experimental_op_resolver_type": resolver}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_path=path, **kwargs)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.resize_tensor_input(inp["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(out["index"])


def _leftovers(directory) -> list[str]:
    """Every ``.kf-export-*`` entry anywhere under ``directory``."""
    return [
        os.path.join(root, n)
        for root, dirs, files in os.walk(directory)
        for n in dirs + files
        if n.startswith(".kf-export-")
    ]


def test_keras3_sparse_export_files_parity_sparsity_and_size(tmp_path, capsys):
    model, x = _model(zero_half=True), _sample()
    report = ex.export(model, tmp_path / "sparse", sparse=True, sample=x)
    lines = capsys.readouterr().out.strip().splitlines()

    assert os.path.isfile(os.path.join(report.saved_model_dir, "saved_model.pb"))
    assert report.tflite_path == str(tmp_path / "sparse" / "model.tflite")
    assert report.int8_tflite_path is None
    assert not os.path.exists(tmp_path / "sparse" / "model_int8.tflite")
    tflite_out = _run_tflite(report.tflite_path, x)
    np.testing.assert_allclose(tflite_out, np.asarray(model(x, training=False)), atol=1e-4)
    assert report.max_abs_diff["model.tflite"] <= 1e-4
    assert report.sparsity == pytest.approx((512 + 80) / (1024 + 160))
    assert report.sizes["model.tflite"]["raw"] == os.path.getsize(report.tflite_path)
    assert set(report.sizes) == {"saved_model", "model.tflite"}
    assert lines[0].startswith("saved_model") and "model.tflite" in lines[1]
    assert lines[2:] and all(line.startswith("note: ") for line in lines[2:])
    assert any("parity checked with" in line for line in lines[2:])

    dense = ex.export(_model(seed=0), tmp_path / "dense", sample=x, verbose=False)
    assert capsys.readouterr().out == ""
    assert dense.sparsity == 0.0
    assert report.sizes["model.tflite"]["gzip"] < dense.sizes["model.tflite"]["gzip"]
    assert json.loads(json.dumps(report.to_dict()))["sparsity"] == report.sparsity
    assert _leftovers(tmp_path) == []


def test_int8_sparse_export_writes_quantized_file_and_reports_diff(tmp_path):
    x = _sample()
    report = ex.export(
        _model(zero_half=True), tmp_path / "out", sparse=True, int8=True, sample=x, verbose=False
    )
    assert os.path.isfile(report.int8_tflite_path)
    assert report.int8_tflite_path.endswith("model_int8.tflite")
    diff = report.max_abs_diff["model_int8.tflite"]
    assert np.isfinite(diff) and diff > 0  # int8 weights are not exact
    assert report.sizes["model_int8.tflite"]["raw"] < report.sizes["model.tflite"]["raw"]
    assert any("XNNPACK" in note for note in report.notes)
    builtin = tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    out = _run_tflite(report.int8_tflite_path, x, builtin)
    assert out.shape == (8, 10)


def test_tfmot_wrapped_tf_keras_model_is_stripped(tmp_path):
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    base = tf_keras.Sequential(
        [
            tf_keras.Input((8, 8, 1)),
            tf_keras.layers.Flatten(),
            tf_keras.layers.Dense(16, activation="relu"),
            tf_keras.layers.Dense(10),
        ]
    )
    tfmot = _keras.tfmot()
    wrapped = tfmot.sparsity.keras.prune_low_magnitude(base)
    rng = np.random.default_rng(0)
    for wrapper in wrapped.layers[1:]:
        _assign_zero_half(wrapper.pruning_vars[0][1], rng)  # mask, kernel left dense
    x = _sample()

    report = ex.export(wrapped, tmp_path / "out", sample=x, verbose=False)

    assert report.sparsity == pytest.approx(0.5, abs=0.01)
    variables = [
        n for n, _ in tf.train.list_variables(f"{report.saved_model_dir}/variables/variables")
    ]
    assert not [n for n in variables if "mask" in n or "threshold" in n or "pruning_step" in n]
    with open(os.path.join(report.saved_model_dir, "saved_model.pb"), "rb") as file:
        assert b"prune_low_magnitude" not in file.read()
    expected = wrapped(x, training=False).numpy()  # the wrapper applies its masks
    np.testing.assert_allclose(_run_tflite(report.tflite_path, x), expected, atol=1e-4)
    assert [type(layer).__name__ for layer in wrapped.layers[1:]] == ["PruneLowMagnitude"] * 2


def test_strip_drops_mask_constraints_without_touching_the_input():
    model = _model()
    dense = model.layers[1]
    mask = np.ones(dense.kernel.shape, bool)
    mask[0] = False
    masked = masking.mask_model(model, {f"{dense.name}/kernel": mask})

    stripped = masking.strip(masked)

    assert stripped is not masked
    assert stripped.layers[1].kernel.constraint is None
    assert isinstance(masked.layers[1].kernel.constraint, masking.MaskConstraint)
    for a, b in zip(masked.get_weights(), stripped.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.all(stripped.layers[1].kernel.numpy()[0] == 0)
    stripped.layers[1].kernel.assign(np.ones(dense.kernel.shape, "float32"))
    assert np.all(masked.layers[1].kernel.numpy()[0] == 0)


def test_existing_artifact_without_overwrite_is_refused_and_kept(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.tflite").write_bytes(b"old")
    with pytest.raises(PathExistsError, match="model.tflite") as info:
        ex.export(_model(), out, verbose=False)
    assert isinstance(info.value, FileExistsError)
    assert (out / "model.tflite").read_bytes() == b"old"
    assert sorted(os.listdir(out)) == ["model.tflite"]
    assert _leftovers(tmp_path) == []

    report = ex.export(_model(), out, overwrite=True, verbose=False)
    assert (out / "model.tflite").read_bytes() != b"old"
    assert report.sizes["model.tflite"]["raw"] == os.path.getsize(out / "model.tflite")
    assert _leftovers(tmp_path) == []


def test_failed_parity_check_leaves_nothing_behind(tmp_path, monkeypatch):
    real = ex._run_tflite
    monkeypatch.setattr(ex, "_run_tflite", lambda *args, **kwargs: real(*args, **kwargs) + 1.0)
    out = tmp_path / "a" / "b" / "out"
    with pytest.raises(ExportError, match="atol") as info:
        ex.export(_model(), out, verbose=False)
    assert isinstance(info.value, KerasForgetError)
    assert os.listdir(tmp_path) == []  # no temp dir, no created parent


def test_failed_conversion_leaves_existing_artifacts_untouched(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.tflite").write_bytes(b"old")

    def broken(*args, **kwargs):
        raise RuntimeError("converter exploded")

    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_saved_model", broken)
    with pytest.raises(ExportError, match="converter exploded"):
        ex.export(_model(), out, overwrite=True, verbose=False)
    assert sorted(os.listdir(out)) == ["model.tflite"]
    assert (out / "model.tflite").read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["out"]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"path": 123}, "path"),
        ({"path": ""}, "path"),
        ({"atol": 0.0}, "atol"),
        ({"atol": -1e-3}, "atol"),
        ({"atol": "big"}, "atol"),
        ({"rtol": -1e-3}, "rtol"),
        ({"rtol": float("nan")}, "rtol"),
        ({"rtol": True}, "rtol"),
        ({"sample": np.zeros((4, 8, 8), "float32")}, "sample"),
        ({"sample": np.zeros((4, 8, 7, 1), "float32")}, "sample"),
        ({"sample": np.zeros((0, 8, 8, 1), "float32")}, "sample"),
        ({"tflite": False, "int8": True}, "int8"),
        ({"tflite": False, "sparse": True}, "sparse"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(tmp_path, kwargs, name):
    kwargs = {"path": tmp_path / "out", **kwargs}
    with pytest.raises(InvalidArgumentError, match=name) as info:
        ex.export(MODEL, verbose=False, **kwargs)
    assert isinstance(info.value, ValueError)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["f", "f/out", "f/a/out", "dangling"])
def test_path_that_is_or_lies_under_a_file_is_rejected(tmp_path, name):
    (tmp_path / "f").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    path = tmp_path / name
    with pytest.raises(InvalidArgumentError, match="exists and is not a directory") as info:
        ex.export(MODEL, path, verbose=False)
    assert isinstance(info.value, ValueError)
    assert str(path) in str(info.value)
    assert sorted(os.listdir(tmp_path)) == ["dangling", "f"]


def test_non_model_is_rejected(tmp_path):
    with pytest.raises(NotAModelError, match="model") as info:
        ex.export(object(), tmp_path / "out", verbose=False)
    assert isinstance(info.value, TypeError)
    assert os.listdir(tmp_path) == []


def _unprunable() -> keras.Model:
    return keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Activation("softmax")]
    )


def test_sparsity_counts_exact_zeros_of_prunable_kernels_only():
    assert ex.sparsity(_model(zero_half=True)) == pytest.approx((512 + 80) / (1024 + 160))
    assert ex.sparsity(_model()) == 0.0


def test_sparsity_of_a_model_with_nothing_prunable_raises():
    with pytest.raises(NotPrunableError, match="no prunable weight") as info:
        ex.sparsity(_unprunable())
    assert isinstance(info.value, KerasForgetError)


def test_export_of_a_model_with_nothing_prunable_reports_no_sparsity(tmp_path, capsys):
    x = _sample()
    report = ex.export(_unprunable(), tmp_path / "out", sample=x)
    out = capsys.readouterr().out
    assert report.sparsity is None
    assert json.loads(json.dumps(report.to_dict()))["sparsity"] is None
    assert "sparsity" not in out and out.startswith("saved_model")
    np.testing.assert_allclose(
        _run_tflite(report.tflite_path, x), np.asarray(_unprunable()(x)), atol=1e-4
    )


def test_saved_model_only_export_serves_the_model(tmp_path):
    x = _sample(3)
    report = ex.export(MODEL, tmp_path / "out", tflite=False, sample=x, verbose=False)
    assert report.tflite_path is None and report.max_abs_diff == {}
    assert sorted(os.listdir(tmp_path / "out")) == ["saved_model"]
    serve = tf.saved_model.load(report.saved_model_dir).signatures["serving_default"]
    (out,) = serve(tf.constant(x)).values()
    np.testing.assert_allclose(out.numpy(), np.asarray(MODEL(x)), atol=1e-6)


def test_a_subclassed_tf_keras_model_exports_with_the_shape_of_its_sample(tmp_path):
    import tf_keras

    class Classifier(tf_keras.Model):
        def __init__(self):
            super().__init__()
            self.flat = tf_keras.layers.Flatten()
            self.hidden = tf_keras.layers.Dense(16, activation="relu")
            self.out = tf_keras.layers.Dense(10)

        def call(self, x):
            return self.out(self.hidden(self.flat(x)))

    tf_keras.utils.set_random_seed(0)
    model, x = Classifier(), _sample(6)
    model(x)  # built by a call: no recorded input shape
    report = ex.export(model, tmp_path / "out", tflite=True, sample=x, verbose=False)
    interpreter = tf.lite.Interpreter(model_path=report.tflite_path)
    assert interpreter.get_input_details()[0]["shape"].tolist()[1:] == [8, 8, 1]
    assert report.max_abs_diff["model.tflite"] <= 1e-5
    with pytest.raises(InvalidArgumentError, match="pass `sample`"):
        ex.export(Classifier(), tmp_path / "none", verbose=False)


# --- where an export writes: staging inside the destination, clear errors -------------------


def _tiny(seed: int = 0, bias=None) -> keras.Model:
    """Input(4) -> Dense(3); with ``bias``, a softmax layer with that bias."""
    keras.utils.set_random_seed(seed)
    activation = None if bias is None else "softmax"
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation=activation)])
    if bias is not None:
        model.layers[-1].bias.assign(np.asarray(bias, "float32"))
    return model


TINY = _tiny()


def _inside(path, directory) -> bool:
    path, directory = os.path.abspath(os.fspath(path)), os.path.abspath(os.fspath(directory))
    return path == directory or path.startswith(directory + os.sep)


def _fail_writes(monkeypatch, code: int, denied) -> None:
    """``os.mkdir`` (so also ``tempfile.mkdtemp``) and ``os.replace`` raise ``OSError(code)``
    for a path that ``denied(path)`` says cannot be written."""
    real_mkdir, real_replace = os.mkdir, os.replace

    def mkdir(path, *args, **kwargs):
        if denied(path):
            raise OSError(code, os.strerror(code), os.fspath(path))
        return real_mkdir(path, *args, **kwargs)

    def replace(src, dst, *args, **kwargs):
        if denied(src) or denied(dst):
            raise OSError(code, os.strerror(code), os.fspath(src), None, os.fspath(dst))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "replace", replace)


def _snapshot(directory) -> dict[str, bytes]:
    return {
        os.path.relpath(os.path.join(root, name), directory): open(
            os.path.join(root, name), "rb"
        ).read()
        for root, _, files in os.walk(directory)
        for name in files
    }


@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM, errno.EROFS], ids=errno.errorcode.get)
def test_existing_destination_under_an_unwritable_parent_exports(tmp_path, monkeypatch, code):
    parent, dest = tmp_path / "parent", tmp_path / "parent" / "out"
    dest.mkdir(parents=True)
    _fail_writes(monkeypatch, code, lambda p: _inside(p, parent) and not _inside(p, dest))

    report = ex.export(TINY, dest, tflite=False, verbose=False)

    assert report.saved_model_dir == str(dest / "saved_model")
    assert os.listdir(dest) == ["saved_model"]
    assert os.listdir(parent) == ["out"]
    assert _leftovers(tmp_path) == []


def test_export_into_a_mount_point_only_renames_within_it(tmp_path, monkeypatch):
    dest = tmp_path / "mnt"
    ex.export(TINY, dest, tflite=False, verbose=False)
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):  # dest is another filesystem than tmp_path
        if _inside(src, dest) != _inside(dst, dest):
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), os.fspath(src))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    new, x = _tiny(seed=1), np.ones((2, 4), "float32")
    report = ex.export(new, dest, tflite=False, overwrite=True, sample=x, verbose=False)

    serve = tf.saved_model.load(report.saved_model_dir).signatures["serving_default"]
    (out,) = serve(tf.constant(x)).values()
    np.testing.assert_allclose(out.numpy(), np.asarray(new(x)), atol=1e-6)
    assert os.listdir(dest) == ["saved_model"]
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.EROFS, "the directory is on a read-only filesystem"),
        (errno.EACCES, "the directory is not writable"),
        (errno.EPERM, "the directory is not writable"),
    ],
)
def test_unwritable_destination_fails_naming_it_and_why(tmp_path, monkeypatch, code, words):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    _fail_writes(monkeypatch, code, lambda p: _inside(p, dest))

    with pytest.raises(ExportError, match=words) as info:
        ex.export(TINY, dest, tflite=False, verbose=False)

    message = str(info.value)
    assert message.startswith(f"Cannot export to {str(dest)!r}:")
    assert ".kf-export" not in message
    assert isinstance(info.value.__cause__, OSError)
    assert os.listdir(dest) == ["keep.txt"]
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("code", "words"), [(errno.EROFS, "read-only filesystem"), (errno.EACCES, "not writable")]
)
def test_destination_that_cannot_be_created_fails_and_removes_what_it_made(
    tmp_path, monkeypatch, code, words
):
    locked = tmp_path / "a" / "b"  # "a" is made, then making "b" in it fails
    dest = locked / "out"
    _fail_writes(monkeypatch, code, lambda p: _inside(p, locked))

    with pytest.raises(ExportError, match=words) as info:
        ex.export(TINY, dest, tflite=False, verbose=False)

    message = str(info.value)
    assert repr(str(dest)) in message and repr(str(tmp_path / "a")) in message
    assert "cannot be created" in message
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("error", [OSError, tf.errors.ResourceExhaustedError])
def test_no_space_left_fails_naming_the_destination_and_leaves_nothing(
    tmp_path, monkeypatch, error
):
    def full(self, directory, *args, **kwargs):
        os.makedirs(directory)
        with open(os.path.join(directory, "saved_model.pb"), "wb") as file:
            file.write(b"half")
        if error is OSError:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), directory)
        raise error(None, None, f"{directory}/saved_model.pb.tmp; No space left on device")

    monkeypatch.setattr(keras.Model, "export", full)
    dest = tmp_path / "new" / "out"
    with pytest.raises(ExportError, match="no space left") as info:
        ex.export(TINY, dest, tflite=False, verbose=False)
    assert repr(str(dest)) in str(info.value) and ".kf-export" not in str(info.value)
    assert os.listdir(tmp_path) == []


def test_overwrite_failing_midway_puts_the_old_artifacts_back(tmp_path, monkeypatch):
    dest = tmp_path / "out"
    ex.export(TINY, dest, verbose=False)
    (dest / "mine.txt").write_text("kept")
    before = _snapshot(dest)
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):  # moving the new .tflite in fails
        if os.fspath(dst) == str(dest / "model.tflite") and os.path.basename(src) == "model.tflite":
            raise OSError(errno.EIO, os.strerror(errno.EIO), os.fspath(src))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(ExportError, match="Input/output error") as info:
        ex.export(_tiny(seed=1), dest, overwrite=True, verbose=False)

    assert repr(str(dest)) in str(info.value)
    assert _snapshot(dest) == before  # the old SavedModel (already replaced) is back too
    assert sorted(os.listdir(dest)) == ["mine.txt", "model.tflite", "saved_model"]
    assert _leftovers(tmp_path) == []


# --- the interpreter that runs the parity check -----------------------------------------------


def test_parity_check_falls_back_to_tf_lite_without_litert(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # makes the import fail
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = ex.export(TINY, tmp_path / "out", verbose=False)

    assert [n for n in report.notes if n.startswith("parity checked with tf.lite")]
    assert not [n for n in report.notes if "with LiteRT" in n]
    assert report.max_abs_diff["model.tflite"] <= 1e-4
    assert not [w for w in caught if "Interpreter is deprecated" in str(w.message)]


def test_parity_check_uses_litert_when_installed(tmp_path, monkeypatch):
    resolvers = []

    class Interpreter(tf.lite.Interpreter):  # stands in for ai_edge_litert's
        def __init__(self, *args, **kwargs):
            resolvers.append(kwargs.get("experimental_op_resolver_type"))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                super().__init__(*args, **kwargs)

    module = types.ModuleType("ai_edge_litert.interpreter")
    module.Interpreter, module.OpResolverType = Interpreter, tf.lite.experimental.OpResolverType
    package = types.ModuleType("ai_edge_litert")
    package.interpreter = module
    monkeypatch.setitem(sys.modules, "ai_edge_litert", package)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", module)

    report = ex.export(TINY, tmp_path / "out", sparse=True, int8=True, verbose=False)

    assert "parity checked with LiteRT (ai_edge_litert.interpreter)" in report.notes
    builtin = tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    assert resolvers == [None, builtin]  # float model, then int8+sparse without XNNPACK


def test_real_litert_runs_the_int8_sparse_parity_check(tmp_path):
    pytest.importorskip("ai_edge_litert.interpreter")
    x = _sample()
    report = ex.export(
        _model(zero_half=True), tmp_path / "out", sparse=True, int8=True, sample=x, verbose=False
    )
    assert "parity checked with LiteRT (ai_edge_litert.interpreter)" in report.notes
    assert report.max_abs_diff["model.tflite"] <= 1e-4
    assert 0 < report.max_abs_diff["model_int8.tflite"] < 0.5


# --- what the parity check can tell -----------------------------------------------------------


def test_saturated_outputs_are_reported_as_not_discriminating(tmp_path, capsys):
    report = ex.export(_tiny(bias=[50.0, 0.0, -50.0]), tmp_path / "out")

    assert report.parity_discriminates is False
    note = (
        "parity check could not discriminate: outputs saturated on the sample; "
        "pass real examples as `sample`"
    )
    assert note in report.notes
    assert f"note: {note}" in capsys.readouterr().out
    assert json.loads(json.dumps(report.to_dict()))["parity_discriminates"] is False


def test_unsaturated_outputs_discriminate(tmp_path):
    softmax = ex.export(_tiny(bias=[0.0, 0.0, 0.0]), tmp_path / "softmax", verbose=False)
    linear = ex.export(TINY, tmp_path / "linear", verbose=False)
    for report in (softmax, linear):
        assert report.parity_discriminates is True
        assert not [n for n in report.notes if "saturated" in n]
    unchecked = ex.export(TINY, tmp_path / "none", tflite=False, verbose=False)
    assert unchecked.parity_discriminates is None and unchecked.notes == []


def test_parity_tolerance_is_atol_plus_rtol_times_keras_output():
    keras_out = np.array([[1000.0, 1e-3, -2.0]], "float32")
    close = keras_out + np.float32([[0.9, 5e-5, -1e-3]])  # each within 1e-4 + 1e-3 * |keras|
    ex._check_parity(close, keras_out, atol=1e-4, rtol=1e-3)

    with pytest.raises(ExportError, match=r"atol = 0.0001, rtol = 0\)") as info:
        ex._check_parity(close, keras_out, atol=1e-4, rtol=0.0)
    assert "2 of 3 outputs" in str(info.value) and "worst |diff| = 0.9" in str(info.value)
    with pytest.raises(ExportError, match="1 of 3 outputs"):
        ex._check_parity(keras_out + np.float32([[0, 2e-4, 0]]), keras_out, atol=1e-4, rtol=1e-3)
    with pytest.raises(ExportError, match="1 of 3 outputs"):
        ex._check_parity(keras_out * np.float32([[1, np.nan, 1]]), keras_out, 1e-4, 1e-3)
