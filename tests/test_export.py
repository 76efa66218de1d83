"""Tests for keras_forget.export."""

from __future__ import annotations

import importlib
import json
import os
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
    return [n for n in os.listdir(directory) if n.startswith(".kf-export-")]


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
    assert len(lines) == 2 and lines[0].startswith("saved_model") and "model.tflite" in lines[1]

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
    monkeypatch.setattr(ex, "_run_tflite", lambda content, x, r=None: real(content, x, r) + 1.0)
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


def test_path_that_is_a_file_is_rejected(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(InvalidArgumentError, match="path") as info:
        ex.export(MODEL, tmp_path / "f", verbose=False)
    assert isinstance(info.value, ValueError)


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
