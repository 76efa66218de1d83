"""Layer-wise Optimal Brain Surgeon: against brute-force least squares, on both Keras flavours."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_forget as kf
from keras_forget.data import Data
from keras_forget.introspect.registry import prunable_weights
from keras_forget.scores import obs as math
from keras_forget.surgery.obs import OBS, _Layer

from .helpers import assert_pruned_zero


def _inputs(n: int = 300, d: int = 7, seed: int = 0) -> np.ndarray:
    """Correlated inputs, so the update of the kept weights matters."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d)


def _least_squares(x: np.ndarray, target: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Brute force: the kept weights that best fit ``target`` on ``x``, by lstsq."""
    out = np.zeros(keep.shape)
    for row in range(keep.shape[0]):
        kept = np.flatnonzero(keep[row])
        out[row, kept] = np.linalg.lstsq(x[:, kept], target[:, row], rcond=None)[0]
    return out


def test_kept_weights_are_the_least_squares_fit_for_the_mask():
    x = _inputs()
    w0 = np.random.default_rng(1).normal(size=(4, x.shape[1]))
    keep = np.random.default_rng(2).random(w0.shape) > 0.5
    solved = math.solve_kept(w0[None], (x.T @ x / len(x))[None], keep[None])[0]
    np.testing.assert_allclose(solved, _least_squares(x, x @ w0.T, keep), atol=1e-8)
    assert np.all(solved[~keep] == 0)


@pytest.mark.parametrize("count", [1, 9, 20])
def test_prune_layer_removes_count_and_compensates_optimally(count):
    x = _inputs()
    ones = np.c_[x, np.ones(len(x))]  # the bias column: never removed, always updated
    rows = np.random.default_rng(3).normal(size=(1, 4, ones.shape[1]))
    hessian = (ones.T @ ones / len(ones))[None]
    new, keep = math.prune_layer(rows, hessian, count, prunable=x.shape[1], damp=0.0)
    assert int((~keep).sum()) == count and keep[..., -1].all()
    assert np.all(new[~keep] == 0)
    expected = _least_squares(ones, ones @ rows[0].T, keep[0])
    np.testing.assert_allclose(new[0], expected, atol=1e-8)
    error = np.sum((ones @ (new[0] - rows[0]).T) ** 2)
    masked = np.sum((ones @ (rows[0] * keep[0] - rows[0]).T) ** 2)
    assert error < masked  # the update beats leaving the kept weights as they were


def test_removing_one_weight_is_the_obs_step():
    """One removal: OBS's saliency picks the weight, OBS's update moves the rest."""
    x = _inputs(d=5)
    w = np.random.default_rng(4).normal(size=(1, 1, 5))
    hessian = (x.T @ x / len(x))[None]
    new, keep = math.prune_layer(w, hessian, 1, damp=0.0)
    inverse = np.linalg.inv(hessian[0])
    q = int(np.argmin(w[0, 0] ** 2 / np.diag(inverse)))
    assert np.flatnonzero(~keep[0, 0]).tolist() == [q]
    expected = w[0, 0] - w[0, 0, q] / inverse[q, q] * inverse[:, q]
    np.testing.assert_allclose(new[0, 0], expected, atol=1e-8)


def test_cross_term_matches_the_original_outputs():
    """Inputs that changed (X̃ ≠ X): the kept weights fit ``X w₀`` from ``X̃``."""
    x = _inputs()
    changed = x + np.random.default_rng(5).normal(scale=0.3, size=x.shape)
    w0 = np.random.default_rng(6).normal(size=(1, 3, x.shape[1]))
    h = (changed.T @ changed / len(x))[None]
    cross = (changed.T @ x / len(x))[None]
    new, keep = math.prune_layer(w0, h, 6, cross=cross, damp=0.0)
    np.testing.assert_allclose(new[0], _least_squares(changed, x @ w0[0].T, keep[0]), atol=1e-7)


def test_dead_inputs_go_first_and_singular_hessians_are_named():
    x = _inputs(d=4)
    x[:, 2] = 0.0  # an input that is always zero
    w = np.ones((1, 3, 4))
    h = (x.T @ x / len(x))[None]
    _, keep = math.prune_layer(w, h, 3, damp=0.01)
    assert not keep[0, :, 2].any() and keep[0, :, [0, 1, 3]].all()
    with pytest.raises(kf.NonFiniteError, match="damp"):
        math.prune_layer(w, h, 3, damp=0.0)


def _conv_layers():
    keras.utils.set_random_seed(0)
    return [
        keras.layers.Conv2D(6, (3, 2), strides=(2, 1), padding="same", groups=2),
        keras.layers.Conv2D(4, 3, padding="valid", dilation_rate=2),
        keras.layers.DepthwiseConv2D(3, depth_multiplier=2, strides=2, padding="same"),
        keras.layers.Conv1D(5, 3, padding="causal", dilation_rate=2),
        keras.layers.Dense(3),
    ]


@pytest.mark.parametrize("index", range(5))
def test_patches_times_rows_is_the_layer_output(index):
    layer = _conv_layers()[index]
    shape = (6, 4) if index == 3 else (9, 8, 4)
    x = np.random.default_rng(0).normal(size=(3, *shape)).astype("float32")
    out = np.asarray(layer(x)) - np.asarray(layer.bias)
    view = _Layer(layer, prunable_weights(layer)[f"{layer.name}/{_kernel(layer)}"].variable)
    assert _Layer.supported(layer, view.kernel)
    rows = view.to_rows(view.kernel.numpy())
    patches = view.patches(x)
    got = np.einsum("gnd,grd->ngr", patches, rows).reshape(-1, view.groups * view.rows)
    np.testing.assert_allclose(got, out.reshape(-1, out.shape[-1]), atol=1e-5)
    np.testing.assert_array_equal(view.from_rows(rows), view.kernel.numpy())


def _kernel(layer) -> str:
    return "depthwise_kernel" if hasattr(layer, "depthwise_kernel") else "kernel"


def _mlp(flavor: str, seed: int = 0):
    km = keras
    if flavor == "tf_keras":
        import tf_keras as km
    km.utils.set_random_seed(seed)
    return km.Sequential(
        [
            km.Input((6,)),
            km.layers.Dense(8, activation="relu", name="hidden"),
            km.layers.Dense(3, name="out"),
        ]
    )


def _labelled(n: int = 200):
    x = _inputs(n, 6).astype("float32")
    return x, (x[:, 0] + x[:, 1] > 0).astype("int64") + (x[:, 2] > 1)


@pytest.mark.parametrize("flavor", ["keras3", "tf_keras"])
def test_first_layer_of_a_model_gets_the_least_squares_update(flavor):
    model = _mlp(flavor)
    x, y = _labelled()
    before = [w.copy() for w in model.get_weights()]
    work, masks = OBS(damp=0.0).prune(
        model, Data.of((x, y), model), 0.5, scope="layer", verbose=False
    )
    kernel, bias = before[0], before[1]
    ones = np.c_[x, np.ones(len(x))].astype(np.float64)
    target = ones @ np.r_[kernel, bias[None]]
    keep = np.c_[masks["hidden/kernel"].T, np.ones(8, bool)]
    expected = _least_squares(ones, target, keep)
    got = work.get_layer("hidden")
    np.testing.assert_allclose(got.kernel.numpy(), expected[:, :-1].T, atol=1e-4)
    np.testing.assert_allclose(got.bias.numpy(), expected[:, -1], atol=1e-4)
    for mask in masks.values():
        assert (~mask).sum() == round(0.5 * mask.size)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # the caller's model is untouched


@pytest.mark.parametrize("flavor", ["keras3", "tf_keras"])
def test_prune_with_obs_beats_magnitude_and_holds_its_masks(flavor, digits, request):
    model = request.getfixturevalue(f"trained_{flavor}")
    (x, y), test = digits
    data = (x[:512], y[:512])
    by_obs = kf.prune(model, data, sparsity=0.8, method="obs", eval_data=test, verbose=False)
    by_size = kf.prune(model, data, sparsity=0.8, method="magnitude", eval_data=test, verbose=False)
    report = by_obs.report
    assert kf.OBS is OBS and "OBS" in kf.__all__  # method=kf.OBS(damp=...) configures it
    assert report.method == "obs" and report.sparsity == pytest.approx(0.8, abs=1e-3)
    assert report.after.accuracy > by_size.report.after.accuracy + 0.05
    assert_pruned_zero(by_obs.model, by_obs.masks)
    held = kf.masks_of(by_obs.model)
    for key, mask in by_obs.masks.items():
        np.testing.assert_array_equal(held[key], mask)
    original = {k: w.variable.numpy() for k, w in prunable_weights(model).items()}
    updated = {k: w.variable.numpy() for k, w in prunable_weights(by_obs.model).items()}
    key = next(iter(original))
    kept = by_obs.masks[key]
    assert not np.allclose(updated[key][kept], original[key][kept])  # compensated


def test_layers_obs_cannot_read_are_pruned_by_magnitude_with_a_warning():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5,), dtype="int32")
    h = keras.layers.Embedding(20, 4, name="embed")(inputs)
    h = keras.layers.Flatten()(h)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(h))
    x = np.random.default_rng(0).integers(0, 20, (64, 5))
    y = np.random.default_rng(1).integers(0, 3, 64)
    with pytest.warns(UserWarning, match=r"embed/embeddings.*magnitude"):
        work, masks = OBS().prune(model, Data.of((x, y), model), 0.5, verbose=False)
    table = model.get_layer("embed").embeddings.numpy()
    order = np.argsort(np.abs(table).ravel(), kind="stable")
    assert not masks["embed/embeddings"].ravel()[order[:40]].any()
    assert (~masks["out/kernel"]).sum() == 30  # 20 x 3, half


def test_a_layer_inside_a_nested_model_falls_back_to_magnitude():
    keras.utils.set_random_seed(0)
    inner = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, name="inner_dense")])
    inputs = keras.Input((6,))
    outputs = keras.layers.Dense(3, name="head")(keras.layers.ReLU()(inner(inputs)))
    model = keras.Model(inputs, outputs)
    x, y = _labelled()
    with pytest.warns(UserWarning, match="inner_dense/kernel"):
        work, masks = OBS().prune(model, Data.of((x, y), model), 0.4, verbose=False)
    assert (~masks["inner_dense/kernel"]).sum() == 12 and (~masks["head/kernel"]).sum() == 6
    head = model.get_layer("head").kernel.numpy()
    assert not np.allclose(work.get_layer("head").kernel.numpy()[masks["head/kernel"]],
                           head[masks["head/kernel"]])  # fmt: skip


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"rounds": 4}, "OBS prunes each layer once"),
        ({"normalize": "lamp"}, "allocation"),
        ({"granularity": "unit"}, "Unknown unit score"),
        ({"method": {"class_name": "obs", "config": {"damp": -1}}}, "damp"),
        ({"method": {"class_name": "obs", "config": {"allocation": "x"}}}, "allocation"),
    ],
)
def test_bad_obs_arguments_fail_before_work(kwargs, message, trained_keras3, digits):
    (x, y), _ = digits
    kwargs = {"method": "obs", **kwargs}
    with pytest.raises(kf.InvalidArgumentError, match=message):
        kf.prune(trained_keras3, (x, y), sparsity=0.5, verbose=False, **kwargs)


def test_obs_without_data_or_with_a_schedule_is_refused(trained_keras3, digits):
    (x, y), _ = digits
    with pytest.raises(kf.InvalidArgumentError, match="`data` is required"):
        kf.prune(trained_keras3, sparsity=0.5, method="obs", verbose=False)
    with pytest.raises(kf.InvalidArgumentError, match="no `schedule`"):
        kf.prune(
            trained_keras3,
            (x, y),
            method="obs",
            schedule=kf.GradualSchedule(),
            fine_tune=kf.FineTune(),
            verbose=False,
        )


@pytest.mark.parametrize("correct", [True, False])
def test_sequential_obs_from_cached_activations_equals_passes_from_the_inputs(
    digits, monkeypatch, correct
):
    from keras_forget.introspect import inputs

    keras.utils.set_random_seed(0)
    x_in = keras.Input((8, 8, 1))
    stem = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="stem")(x_in)
    h = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c1")(stem)
    h = keras.layers.Add(name="res")([stem, keras.layers.Conv2D(6, 1, name="c2")(h)])
    h = keras.layers.Dense(16, activation="relu", name="hidden")(keras.layers.Flatten()(h))
    model = keras.Model(x_in, keras.layers.Dense(10, name="out")(h))
    (x, y), _ = digits
    data = Data.of((x[:200], y[:200]), model)
    cached, masks = OBS(correct=correct).prune(model, data, 0.5, scope="layer", verbose=False)
    monkeypatch.setattr(inputs, "MAX_CACHED_FLOATS", 0)  # every pass from the model's inputs
    plain, plain_masks = OBS(correct=correct).prune(model, data, 0.5, scope="layer", verbose=False)
    for key, mask in masks.items():
        np.testing.assert_array_equal(mask, plain_masks[key], key)
    for ours, theirs in zip(cached.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
