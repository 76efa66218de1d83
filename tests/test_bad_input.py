"""Bad input gets a clear error naming the argument, before any work, and nothing changes."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_forget as kf
from keras_forget.errors import (
    InvalidArgumentError,
    NonFiniteError,
    NotPrunableError,
    UnsupportedLayerError,
)

from .conftest import keras3_mlp


@pytest.fixture
def model():
    return keras3_mlp()


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.random((40, 8, 8, 1)).astype("float32"), np.arange(40) % 10


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"target_class": 10}, "target_class"),
        ({"target_class": -1}, "target_class"),
        ({"target_class": []}, "target_class"),
        ({"target_class": list(range(10))}, "target_class"),
        ({"amount": 0.0}, "amount"),
        ({"amount": 1.0}, "amount"),
        ({"amount": "most"}, "amount"),
        ({"scope": "row"}, "scope"),
        ({"method": "obd2"}, "obd"),
        ({"forget_accuracy": 1.5}, "forget_accuracy"),
    ],
)
def test_bad_arguments(model, data, kwargs, match):
    before = [w.copy() for w in model.get_weights()]
    args = {"target_class": 3, **kwargs}
    with pytest.raises(InvalidArgumentError, match=match):
        kf.prune_for_class(model, data, verbose=False, **args)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_empty_data(model):
    empty = (np.zeros((0, 8, 8, 1), "float32"), np.zeros((0,), int))
    with pytest.raises(InvalidArgumentError, match="empty"):
        kf.prune_for_class(model, empty, 3, verbose=False)
    ds = tf.data.Dataset.from_tensor_slices(empty).batch(4)
    with pytest.raises(InvalidArgumentError, match="empty"):
        kf.prune_for_class(model, ds, 3, verbose=False)


def test_inputs_that_do_not_match_the_model(model):
    x = np.zeros((10, 28, 28, 1), "float32")
    with pytest.raises(InvalidArgumentError, match="input"):
        kf.prune_for_class(model, (x, np.arange(10)), 3, verbose=False)


def test_labels_outside_the_outputs(model, data):
    with pytest.raises(InvalidArgumentError, match="labels"):
        kf.prune_for_class(model, (data[0], data[1] + 5), 3, verbose=False)


def test_x_and_y_of_different_lengths(model, data):
    with pytest.raises(InvalidArgumentError, match="labels"):
        kf.prune_for_class(model, (data[0], data[1][:-1]), 3, verbose=False)


def test_target_class_missing_from_the_data(model, data):
    x, y = data
    keep = y != 3
    with pytest.raises(InvalidArgumentError, match="no example"):
        kf.prune_for_class(model, (x[keep], y[keep]), 3, verbose=False)


def test_not_a_model(data):
    with pytest.raises(TypeError, match="model"):
        kf.prune_for_class("model.keras", data, 3, verbose=False)


def test_model_with_nothing_to_prune(data):
    m = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Lambda(lambda t: t[:, :10])]
    )
    with pytest.raises(NotPrunableError, match="no prunable weight"):
        kf.prune_for_class(m, data, 3, verbose=False)


class Scale(keras.layers.Layer):
    def build(self, shape):
        self.scale = self.add_weight(shape=(shape[-1],), initializer="ones", name="scale")

    def call(self, x):
        return x * self.scale


def test_unsupported_layer_is_named_with_the_fix(data):
    m = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            Scale(name="my_scale"),
            keras.layers.Dense(10),
        ]
    )
    with pytest.raises(UnsupportedLayerError, match="my_scale.*get_prunable_weights"):
        kf.prune_for_class(m, data, 3, verbose=False)


def test_non_finite_weights(model, data):
    weights = model.get_weights()
    weights[0][0, 0] = np.nan
    model.set_weights(weights)
    with pytest.raises(NonFiniteError, match="NaN"):
        kf.prune_for_class(model, data, 3, verbose=False)


def test_prune_rejects_bad_sparsity_and_missing_data(model, data):
    with pytest.raises(InvalidArgumentError, match="sparsity"):
        kf.prune(model, data, sparsity=1.2, verbose=False)
    with pytest.raises(InvalidArgumentError, match="data"):
        kf.prune(model, None, sparsity=0.5, method="obd", verbose=False)
