"""Masks hold through training on both backends; tfmot's own schedules would not keep them."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_forget as kf
from keras_forget import _keras
from keras_forget.integrations import tfmot
from keras_forget.introspect.registry import all_weights, prunable_weights
from keras_forget.surgery import masking

from .conftest import keras3_mlp, tf_keras_mlp
from .helpers import assert_pruned_zero


def _data(n=64):
    rng = np.random.default_rng(0)
    return rng.random((n, 8, 8, 1)).astype("float32"), np.arange(n) % 10


def _random_masks(model, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.random(w.variable.shape) > 0.4 for k, w in prunable_weights(model).items()}


def _fit(model, km, **compile_kwargs):
    model.compile(km.optimizers.Adam(0.01), "sparse_categorical_crossentropy", **compile_kwargs)
    callbacks = tfmot.callbacks(model) if _keras.flavor(model) == "tf_keras" else []
    model.fit(*_data(), epochs=2, batch_size=8, verbose=0, callbacks=callbacks)


@pytest.mark.parametrize("compile_kwargs", [{}, {"jit_compile": True}, {"steps_per_execution": 4}])
def test_keras3_mask_constraints_hold_under_any_compile_mode(compile_kwargs):
    model = keras3_mlp()
    masks = _random_masks(model)
    masked = masking.mask_model(model, masks)
    _fit(masked, keras, **compile_kwargs)
    for key, weight in prunable_weights(masked).items():
        value = weight.variable.numpy()
        assert np.all(value[~masks[key]] == 0.0)
        assert np.count_nonzero(value[masks[key]]) == masks[key].sum()


def test_tf_keras_masks_in_tfmot_wrappers_hold_and_read_back():
    import tf_keras

    model = tf_keras_mlp()
    masks = _random_masks(model)
    masked = masking.mask_model(model, masks)
    _fit(masked, tf_keras)
    held = masking.masks_of(masked)
    assert set(held) == set(masks)
    for key, mask in held.items():
        np.testing.assert_array_equal(mask, masks[key])
    # The raw variables inside the wrappers: strip() multiplies by the masks, so
    # checking a stripped copy could not tell a held mask from a leaking one.
    assert_pruned_zero(masked, masks)
    stripped = masking.strip(masked)
    assert not tfmot.is_wrapped(stripped)


def test_tfmot_builtin_schedule_overwrites_our_masks_but_ours_does_not():
    import tf_keras

    sparsity = _keras.tfmot().sparsity.keras
    model = tf_keras_mlp()
    masks = _random_masks(model)
    builtin = tfmot.wrap_with_masks(
        _keras.clone(model), masks, schedule=sparsity.ConstantSparsity(0.5, 0, frequency=1)
    )
    ours = tfmot.wrap_with_masks(_keras.clone(model), masks)
    for model in (builtin, ours):
        _fit(model, tf_keras)
    changed = [k for k, m in tfmot.read_masks(builtin).items() if not np.array_equal(m, masks[k])]
    assert changed, "tfmot's ConstantSparsity was expected to recompute the masks"
    for key, mask in tfmot.read_masks(ours).items():
        np.testing.assert_array_equal(mask, masks[key])


def test_mask_model_copies_and_strip_removes_constraints():
    model = keras3_mlp()
    before = [w.copy() for w in model.get_weights()]
    masks = _random_masks(model)
    masked = masking.mask_model(model, masks)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert all(
        isinstance(w.variable.constraint, masking.MaskConstraint)
        for w in prunable_weights(masked).values()
    )
    stripped = masking.strip(masked)
    assert all(w.variable.constraint is None for w in prunable_weights(stripped).values())
    held = masking.masks_of(masked)
    assert set(held) == set(masks)
    for key, mask in held.items():
        np.testing.assert_array_equal(mask, masks[key])


def test_bad_masks_are_refused():
    model = keras3_mlp()
    with pytest.raises(ValueError, match="not a prunable weight"):
        masking.mask_model(model, {"nope/kernel": np.ones(3, bool)})
    key = next(iter(prunable_weights(model)))
    with pytest.raises(ValueError, match="shape"):
        masking.mask_model(model, {key: np.ones(3, bool)})


@pytest.mark.parametrize("flavor", ["keras3", "tf_keras"])
def test_assert_pruned_zero_goes_red_when_a_pruned_weight_moves(flavor):
    model = keras3_mlp() if flavor == "keras3" else tf_keras_mlp()
    masks = _random_masks(model)
    masked = kf.mask_model(model, masks)
    assert_pruned_zero(masked, masks)  # green while the masks hold
    key = next(iter(masks))
    position = tuple(np.argwhere(~masks[key])[0])
    variable = all_weights(masked)[key]  # tf_keras: the raw variable inside the wrapper
    value = variable.numpy()
    value[position] = 0.5
    variable.assign(value)
    with pytest.raises(AssertionError, match=f"{key}: 1 pruned entries are nonzero"):
        assert_pruned_zero(masked, masks)
    stripped = prunable_weights(kf.strip(masked))[key].variable.numpy()
    if flavor == "tf_keras":
        # tfmot's strip multiplies the weight by its mask, so the old check on a
        # stripped model read 0 at the leaked position and could never fail.
        assert stripped[position] == 0.0
        assert np.all(stripped[~masks[key]] == 0.0)
    else:
        # Keras 3's strip only drops the constraints: the leak survives it.
        assert stripped[position] == 0.5


def _recurrent_model(km):
    """Bidirectional(LSTM) -> TimeDistributed(Dense) -> GRU -> Dense, on (5, 3) sequences."""
    km.utils.set_random_seed(0)
    L = km.layers
    return km.Sequential(
        [
            km.Input((5, 3)),
            L.Bidirectional(L.LSTM(4, return_sequences=True, name="lstm"), name="bi"),
            L.TimeDistributed(L.Dense(3, name="inner"), name="td"),
            L.GRU(4, name="gru"),
            L.Dense(10, name="out", activation="softmax"),
        ]
    )


RECURRENT_KEYS = {
    "bi/forward_lstm/kernel",
    "bi/forward_lstm/recurrent_kernel",
    "bi/backward_lstm/kernel",
    "bi/backward_lstm/recurrent_kernel",
    "td/inner/kernel",
    "gru/kernel",
    "gru/recurrent_kernel",
    "out/kernel",
}


def _fit_sequences(model, km, **compile_kwargs):
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 5, 3)).astype("float32"), np.arange(32) % 10
    model.compile(km.optimizers.Adam(0.05), "sparse_categorical_crossentropy", **compile_kwargs)
    callbacks = tfmot.callbacks(model) if _keras.flavor(model) == "tf_keras" else []
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=callbacks)


@pytest.mark.parametrize("compile_kwargs", [{}, {"steps_per_execution": 2}])
def test_keras3_recurrent_cells_hold_masks_as_constraints_through_fit(compile_kwargs):
    model = _recurrent_model(keras)
    masks = _random_masks(model)
    assert set(masks) == RECURRENT_KEYS
    masked = masking.mask_model(model, masks)
    cell = masked.get_layer("bi").backward_layer.cell
    assert isinstance(cell.recurrent_kernel.constraint, masking.MaskConstraint)
    before = {k: v.numpy().copy() for k, v in all_weights(masked).items()}
    _fit_sequences(masked, keras, **compile_kwargs)
    assert_pruned_zero(masked, masks)
    for key, mask in masks.items():  # the kept weights did train
        assert not np.allclose(all_weights(masked)[key].numpy()[mask], before[key][mask]), key
    stripped = masking.strip(masked)
    assert stripped.get_layer("gru").cell.kernel.constraint is None
    assert set(masking.masks_of(stripped)) == RECURRENT_KEYS


def test_tf_keras_recurrent_wrappers_read_assign_and_remask():
    import tf_keras

    model = _recurrent_model(tf_keras)
    masks = _random_masks(model)
    assert set(masks) == RECURRENT_KEYS
    masked = masking.mask_model(model, masks)
    assert [type(layer).__name__ for layer in masked.layers] == ["PruneLowMagnitude"] * 4
    assert not getattr(masked, tfmot.UNHELD, {})  # every mask in a wrapper's mask variables
    for key, mask in tfmot.read_masks(masked).items():
        np.testing.assert_array_equal(mask, masks[key])
    # remask puts pruned weights back to zero after something moved them
    variables = all_weights(masked)
    for key in masks:
        variables[key].assign(np.ones(variables[key].shape, np.float32))
    tfmot.remask(masked)
    assert_pruned_zero(masked, masks)
    # new masks go into the same mask variables
    new = _random_masks(model, seed=1)
    tfmot.assign_masks(masked, new)
    for key, mask in tfmot.read_masks(masked).items():
        np.testing.assert_array_equal(mask, new[key])
    _fit_sequences(masked, tf_keras)
    assert_pruned_zero(masked, new)
    stripped = masking.strip(masked)
    assert not tfmot.is_wrapped(stripped)
    for key, weight in prunable_weights(stripped).items():
        assert np.all(weight.variable.numpy()[~new[key]] == 0), key
