"""Structured surgery: shrunk models compute what masked models compute, with fewer weights."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

import keras_forget as kf
from keras_forget import checks, selection
from keras_forget.data import Data
from keras_forget.errors import InvalidArgumentError, NonFiniteError, UnsupportedLayerError
from keras_forget.introspect.graph import Graph
from keras_forget.surgery import reconstruct, structured

from .helpers import assert_pruned_zero, randomize_batchnorm

L = keras.layers


def _mlp() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((6,)),
            L.Dense(8, activation="relu", name="d1"),
            L.Dense(5, activation="tanh", name="d2"),
            L.Dropout(0.2),
            L.Dense(3, name="out"),
        ]
    )


def _conv_flatten_dense() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((4, 4, 1)),
            L.Conv2D(6, 3, padding="same", name="conv"),
            L.BatchNormalization(name="bn"),
            L.ReLU(),
            L.MaxPooling2D(2),
            L.Flatten(),
            L.Dense(5, activation="relu", name="fc"),
            L.Dense(3, name="out"),
        ]
    )
    return randomize_batchnorm(model)


def _residual() -> keras.Model:
    keras.utils.set_random_seed(0)
    x = keras.Input((6, 6, 2))
    h = L.ReLU()(L.BatchNormalization(name="bn0")(L.Conv2D(4, 3, padding="same", name="stem")(x)))
    y = L.ReLU()(L.BatchNormalization(name="bn1")(L.Conv2D(3, 3, padding="same", name="c1")(h)))
    y = L.BatchNormalization(name="bn2")(L.Conv2D(4, 3, padding="same", name="c2")(y))
    h = L.ReLU(name="out1")(L.Add(name="add")([h, y]))
    side = L.DepthwiseConv2D(3, padding="same", name="dw")(h)
    h = L.Concatenate(name="cat")([h, side, L.Conv2D(2, 1, name="extra")(h)])
    h = L.GlobalAveragePooling2D()(h)
    model = keras.Model(x, L.Dense(3, name="out")(h))
    return randomize_batchnorm(model)


def _sample(model: keras.Model, n: int = 8) -> np.ndarray:
    shape = (n, *model.input_shape[1:])
    return np.random.default_rng(1).standard_normal(shape).astype("float32")


def _drop(graph: Graph, key: str, removed: list[int]) -> dict[str, np.ndarray]:
    mask = np.ones(graph.groups[key].size, bool)
    mask[removed] = False
    return {key: mask}


def test_sequential_shrinks_and_counts_drop_exactly():
    model = _mlp()
    graph = Graph(model)
    assert set(graph.prunable()) == {"d1", "d2"}
    masks = {**_drop(graph, "d1", [0, 3, 7]), **_drop(graph, "d2", [1])}
    shrunk = structured.shrink(model, masks, sample=_sample(model), atol=1e-5)
    assert shrunk.get_layer("d1").units == 5 and shrunk.get_layer("d2").units == 4
    expected = (6 * 5 + 5) + (5 * 4 + 4) + (4 * 3 + 3)
    assert structured.count_params(shrunk) == expected
    assert structured.count_params(model) - expected == 3 * (6 + 1 + 5) + 1 * (5 + 1 + 3)


def test_conv_flatten_dense_drops_row_blocks_and_batchnorm_entries():
    model = _conv_flatten_dense()
    graph = Graph(model)
    masks = _drop(graph, "conv", [1, 4])
    x = _sample(model)
    shrunk = structured.shrink(model, masks, sample=x, atol=1e-5)
    kept = 4
    expected = (9 * kept + kept) + 4 * kept + (2 * 2 * kept * 5 + 5) + (5 * 3 + 3)
    assert structured.count_params(shrunk) == expected
    masked = structured.masked_copy(model, masks)
    np.testing.assert_allclose(shrunk(x), masked(x), atol=1e-5)
    assert not np.allclose(masked(x), model(x))  # the removed filters mattered


def test_residual_group_drops_the_same_channels_across_the_add():
    model = _residual()
    graph = Graph(model)
    group = graph.groups["stem"]
    assert group.producers == ["stem", "c2"] and group.prunable
    assert group.score_layer == "out1"  # post-add, post-activation output
    masks = {**_drop(graph, "stem", [2]), **_drop(graph, "c1", [0]), **_drop(graph, "extra", [1])}
    shrunk = structured.shrink(model, masks, sample=_sample(model), atol=1e-5)
    assert shrunk.get_layer("stem").filters == 3 and shrunk.get_layer("c2").filters == 3
    assert shrunk.get_layer("dw").kernel.shape[-2] == 3
    assert shrunk.get_layer("out").kernel.shape[0] == 3 + 3 + 1
    # stem 3x3 2->3, bn0, c1 3->2, bn1, c2 2->3, bn2, dw on 3, extra 3->1, out (3+3+1)->3
    layers = [
        9 * 2 * 3 + 3,
        4 * 3,
        9 * 3 * 2 + 2,
        4 * 2,
        9 * 2 * 3 + 3,
        4 * 3,
        9 * 3 + 3,
        3 + 1,
        7 * 3 + 3,
    ]
    assert structured.count_params(shrunk) == sum(layers)
    assert structured.count_params(model) == 426


def test_weight_masks_cover_bias_and_batchnorm():
    model = _conv_flatten_dense()
    masks = structured.weight_masks(Graph(model), _drop(Graph(model), "conv", [2]))
    assert not masks["conv/kernel"][..., 2].any() and masks["conv/kernel"][..., 1].all()
    for key in ("conv/bias", "bn/gamma", "bn/beta", "bn/moving_mean"):
        assert masks[key].tolist() == [True, True, False, True, True, True], key
    assert "bn/moving_variance" not in masks


def test_shrunk_model_exports_with_tflite_parity(tmp_path):
    model = _residual()
    graph = Graph(model)
    shrunk = structured.shrink(model, _drop(graph, "stem", [0, 1]), graph=graph)
    report = kf.export(shrunk, tmp_path / "small", sample=_sample(model), verbose=False)
    assert report.max_abs_diff["model.tflite"] <= 1e-4


def test_unfollowable_layer_is_left_whole_with_a_warning():
    x = keras.Input((6,))
    h = L.Dense(4, name="a")(x)
    h = L.Reshape((2, 2), name="reshape")(h)
    h = L.Flatten()(h)
    h = L.Dense(4, activation="sigmoid", name="s")(h)
    model = keras.Model(x, L.Dense(2, name="out")(L.Dense(3, name="b")(h)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        graph = Graph(model)
    assert len(caught) == 1  # one warning per graph, one line per group left whole
    messages = str(caught[0].message)
    assert "'reshape'" in messages and "'s'" in messages and "sigmoid" in messages
    assert graph.groups["s"].frozen.endswith("then layer 'b' (Dense) reads it")
    assert set(graph.prunable()) == {"b"}
    with pytest.raises(UnsupportedLayerError, match="cannot be removed"):
        structured.shrink(model, _drop(graph, "a", [0]), graph=graph)


def test_bad_unit_masks_are_rejected():
    model = _mlp()
    graph = Graph(model, warn=False)
    with pytest.raises(InvalidArgumentError, match="names no unit group"):
        structured.shrink(model, {"nope": np.ones(3, bool)}, graph=graph)
    with pytest.raises(InvalidArgumentError, match="shape"):
        structured.shrink(model, {"d1": np.ones(3, bool)}, graph=graph)
    with pytest.raises(InvalidArgumentError, match="removes all"):
        structured.shrink(model, {"d1": np.zeros(8, bool)}, graph=graph)
    with pytest.raises(UnsupportedLayerError, match="model output"):
        structured.shrink(model, _drop(graph, "out", [0]), graph=graph)
    with pytest.raises(InvalidArgumentError, match="granularity"):
        checks.granularity("neuron")


def test_select_units_by_fraction_count_and_scope():
    scores = {"a": np.array([0.1, 0.9, 0.5, 0.3]), "b": np.array([0.2, 0.05])}
    layer = selection.select_units(scores, 0.5, scope="layer")
    assert layer["a"].tolist() == [False, True, True, False] and layer["b"].tolist() == [1, 0]
    count = selection.select_units(scores, 1, highest=True)
    assert count["a"].tolist() == [True, False, True, True] and count["b"].sum() == 1
    glob = selection.select_units(scores, 0.5, scope="global")  # 3 lowest, b keeps one
    assert glob["a"].tolist() == [False, True, True, False] and glob["b"].tolist() == [1, 0]
    with pytest.raises(InvalidArgumentError):
        selection.select_units(scores, 1.5)
    with pytest.raises(NonFiniteError):  # like weight selection, NaN scores are refused
        selection.select_units({"a": np.array([0.1, np.nan])}, 1)


@pytest.fixture(scope="module")
def small_cnn(digits):
    keras.utils.set_random_seed(0)
    x = inputs = keras.Input((8, 8, 1))
    for i, filters in enumerate((12, 16)):
        x = L.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = L.ReLU()(L.BatchNormalization(name=f"bn{i}")(x))
    x = L.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, L.Dense(10, name="logits")(x))
    (xt, yt), _ = digits
    model.compile(
        keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    model.fit(xt, yt, epochs=12, batch_size=32, verbose=0)
    return model


def test_prune_units_returns_a_smaller_model(small_cnn, digits):
    train, test = digits
    result = kf.prune(
        small_cnn,
        train,
        sparsity=0.25,
        granularity="unit",
        shrink=True,
        scope="layer",
        eval_data=test,
        verbose=False,
    )
    assert result.model.get_layer("conv0").filters == 9
    assert result.model.get_layer("conv1").filters == 12
    assert structured.count_params(result.model) < structured.count_params(small_cnn)
    assert result.report.pruned == 7 and result.report.total == 28
    assert result.report.after.accuracy > 0.3


def test_forget_units_masks_hold_through_fine_tuning(small_cnn, digits):
    train, test = digits
    result = kf.prune_for_class(
        small_cnn,
        train,
        3,
        granularity="unit",
        amount=0.2,
        eval_data=test,
        fine_tune=kf.FineTune(epochs=1),
        verbose=False,
    )
    report = result.report
    assert report.after.forget_accuracy < report.before.forget_accuracy - 0.5
    assert_pruned_zero(result.model, result.masks)
    assert result.report.fine_tuned is not None


def _tf_keras_cnn():
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    layers = tf_keras.layers
    x = inputs = tf_keras.Input((8, 8, 1))
    for i, filters in enumerate((6, 8)):
        x = layers.Conv2D(filters, 3, padding="same", name=f"conv{i}")(x)
        x = layers.ReLU()(layers.BatchNormalization(name=f"bn{i}")(x))
    x = layers.Flatten()(layers.MaxPooling2D(4)(x))
    model = tf_keras.Model(inputs, layers.Dense(10, name="logits")(x))
    return randomize_batchnorm(model)


def test_tf_keras_model_shrinks_like_its_masked_copy():
    model = _tf_keras_cnn()
    graph = Graph(model)
    shrunk = structured.shrink(model, _drop(graph, "conv0", [0, 5]), sample=_sample(model))
    assert type(shrunk).__module__.startswith("tf_keras")
    assert shrunk.get_layer("conv0").filters == 4
    assert shrunk.get_layer("bn0").gamma.shape == (4,)


def test_tf_keras_unit_masks_live_in_tfmot_mask_variables(digits):
    model = _tf_keras_cnn()
    train, _ = digits
    result = kf.prune_for_class(
        model,
        train,
        3,
        granularity="unit",
        amount=2,
        scope="layer",
        fine_tune=kf.FineTune(epochs=1),
        verbose=False,
    )
    wrapper = result.model.get_layer("prune_low_magnitude_conv1")
    held = {w.name.split("/")[-1].split(":")[0] for w, _, _ in wrapper.pruning_vars}
    assert held == {"kernel", "bias"}
    assert_pruned_zero(result.model, result.masks)
    assert result.report.pruned == 4


# -- reconstruct: refit the consumers of removed units -----------------------------------------


def _calibration(model: keras.Model, n: int = 96) -> Data:
    x = np.random.default_rng(2).standard_normal((n, *model.input_shape[1:])).astype("float32")
    return Data.of((x, np.zeros(n, "int64")), batch_size=32)


def _mse(a, b) -> float:
    return float(np.mean(np.square(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def test_reconstruct_matches_brute_force_ridge_least_squares():
    model = _mlp()
    graph = Graph(model)
    masks = {**_drop(graph, "d1", [0, 3, 7]), **_drop(graph, "d2", [1])}
    shrunk = structured.shrink(model, masks, graph=graph)
    data = _calibration(model)
    done = reconstruct.reconstruct(model, shrunk, masks, data, graph=graph, damp=0.01)
    assert done == ["d2", "out"]
    x, _ = data.arrays()
    kept_in, kept_out = np.flatnonzero(masks["d1"]), np.flatnonzero(masks["d2"])
    w1, b1 = (np.asarray(v, np.float64) for v in model.get_layer("d1").get_weights())
    w2, b2 = (np.asarray(v, np.float64) for v in model.get_layer("d2").get_weights())
    hidden = np.maximum(x @ w1 + b1, 0)  # d1's outputs: not refit (its inputs are not cut)
    target = hidden @ w2[:, kept_out] + b2[kept_out]  # original pre-activation outputs of d2
    a = np.c_[hidden[:, kept_in], np.ones(len(x))]
    n, lam = len(x), 0.01 * np.mean(np.diag(a.T @ a / len(x)))
    stacked = np.r_[a / np.sqrt(n), np.sqrt(lam) * np.eye(a.shape[1])]
    rhs = np.r_[target / np.sqrt(n), np.zeros((a.shape[1], kept_out.size))]
    expected = np.linalg.lstsq(stacked, rhs, rcond=None)[0]
    kernel, bias = shrunk.get_layer("d2").get_weights()
    np.testing.assert_allclose(kernel, expected[:-1], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(bias, expected[-1], rtol=1e-3, atol=1e-4)
    plain = structured.shrink(model, masks, graph=graph)
    fitted, before = (a @ np.r_[w, b[None]] for w, b in (
        (kernel, bias), plain.get_layer("d2").get_weights()))  # fmt: skip
    assert _mse(fitted, target) < _mse(before, target)


def test_reconstruct_brings_a_cnn_closer_to_the_original_logits():
    model = _residual()
    graph = Graph(model)
    masks = {**_drop(graph, "stem", [2]), **_drop(graph, "c1", [0]), **_drop(graph, "extra", [1])}
    data = _calibration(model, 128)
    plain = structured.shrink(model, masks, graph=graph)
    fitted = structured.shrink(model, masks, graph=graph)
    done = reconstruct.reconstruct(model, fitted, masks, data, graph=graph)
    assert done == ["c1", "c2", "extra", "out"]  # the depthwise "dw" is left as it is
    x, _ = data.arrays()
    original = model(x, training=False)
    assert _mse(fitted(x, training=False), original) < 0.5 * _mse(
        plain(x, training=False), original
    )


def test_reconstruct_from_cached_activations_equals_passes_from_the_inputs(monkeypatch):
    from keras_forget.introspect import inputs

    model = _residual()
    graph = Graph(model)
    masks = {**_drop(graph, "stem", [2]), **_drop(graph, "c1", [0]), **_drop(graph, "extra", [1])}
    data = _calibration(model, 128)
    cached = structured.shrink(model, masks, graph=graph)
    reconstruct.reconstruct(model, cached, masks, data, graph=graph)
    monkeypatch.setattr(inputs, "MAX_CACHED_FLOATS", 0)  # every pass from the model's inputs
    uncached = structured.shrink(model, masks, graph=graph)
    reconstruct.reconstruct(model, uncached, masks, data, graph=graph)
    for ours, theirs in zip(cached.get_weights(), uncached.get_weights()):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_prune_reconstruct_leaves_the_callers_model_unchanged(small_cnn, digits):
    train, test = digits
    before = [w.copy() for w in small_cnn.get_weights()]
    run = dict(sparsity=0.5, granularity="unit", shrink=True, scope="layer", verbose=False)
    refit = kf.prune(small_cnn, train, reconstruct=True, eval_data=test, **run)
    plain = kf.prune(small_cnn, train, reconstruct=False, eval_data=test, **run)
    assert all(np.array_equal(a, b) for a, b in zip(before, small_cnn.get_weights()))
    kernels = [m.model.get_layer("logits").kernel.numpy() for m in (refit, plain)]
    assert kernels[0].shape == kernels[1].shape and not np.allclose(*kernels)
    assert refit.report.after.accuracy >= plain.report.after.accuracy - 0.02
    assert refit.report.reconstructed and not plain.report.reconstructed
    assert "refit" in str(refit.report) and "refit" not in str(plain.report)


def test_bad_reconstruct_values_are_rejected_before_any_work():
    model = _mlp()
    x = np.zeros((4, 6), "float32"), np.zeros(4, "int64")
    unit = dict(granularity="unit", verbose=False)
    with pytest.raises(InvalidArgumentError, match="`reconstruct`"):
        kf.prune(model, x, shrink=True, reconstruct="yes", **unit)
    with pytest.raises(InvalidArgumentError, match="`reconstruct=True`.*shrink=True"):
        kf.prune(model, x, shrink=False, reconstruct=True, **unit)
    with pytest.raises(InvalidArgumentError, match="`reconstruct=True` needs `data`"):
        kf.prune(model, None, method="l1", shrink=True, reconstruct=True, **unit)
    with pytest.raises(InvalidArgumentError, match="`examples`"):
        reconstruct.reconstruct(model, model, {}, Data.of(x), examples=0)
    with pytest.raises(InvalidArgumentError, match="`damp`"):
        reconstruct.reconstruct(model, model, {}, Data.of(x), damp=-1.0)


def test_reconstruct_refits_a_tf_keras_model():
    model = _tf_keras_cnn()
    graph = Graph(model)
    masks = _drop(graph, "conv0", [0, 5])
    data = _calibration(model, 64)
    weights = [w.copy() for w in model.get_weights()]
    plain = structured.shrink(model, masks, graph=graph)
    fitted = structured.shrink(model, masks, graph=graph)
    assert reconstruct.reconstruct(model, fitted, masks, data, graph=graph) == ["conv1"]
    assert type(fitted).__module__.startswith("tf_keras")
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))
    x, _ = data.arrays()
    original = model(x, training=False)
    assert _mse(fitted(x, training=False), original) < _mse(plain(x, training=False), original)
