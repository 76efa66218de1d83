"""Bad input gets a clear error naming the argument, before any work, and nothing changes."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_forget as kf
from keras_forget.errors import (
    InvalidArgumentError,
    KerasForgetError,
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
        ({"method": "taylor"}, "granularity='unit'"),
        ({"method": "l1"}, "granularity='unit'"),
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


def test_an_unprunable_layer_is_left_whole_or_refused_with_strict(data):
    m = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            Scale(name="my_scale"),
            keras.layers.Dense(10),
        ]
    )
    with pytest.raises(UnsupportedLayerError, match="my_scale.*get_prunable_weights"):
        kf.prune_for_class(m, data, 3, strict=True, verbose=False)
    with pytest.warns(UserWarning, match=r"1 layer left whole: my_scale \(Scale\)"):
        result = kf.prune_for_class(m, data, 3, verbose=False)
    assert result.report.left_whole == ("my_scale",)


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


def _x(n=40):
    return np.random.default_rng(0).random((n, 8, 8, 1)).astype("float32")


def _nan_inputs():
    x = _x()
    x[3, 2, 2, 0] = np.nan
    return x, np.arange(40) % 10


def _call(verb, data, **kwargs):
    def run(model):
        if verb == "forget":
            return kf.prune_for_class(model, data, 3, verbose=False, **kwargs)
        return kf.prune(model, data, verbose=False, **kwargs)

    return run


# Each case: (id, call, error type, what the message must say).
BAD_INPUT = [
    (
        "labels (N, 2)",
        _call("forget", (_x(), np.eye(2)[np.arange(40) % 2])),
        InvalidArgumentError,
        r"one-hot rows of 2 classes.*10 outputs",
    ),
    (
        "float labels",
        _call("forget", (_x(), (np.arange(40) % 10) + 0.5)),
        InvalidArgumentError,
        "whole class numbers",
    ),
    (
        "string labels",
        _call("forget", (_x(), np.array([str(i % 10) for i in range(40)]))),
        InvalidArgumentError,
        "labels must be integers",
    ),
    ("NaN inputs", _call("forget", _nan_inputs()), InvalidArgumentError, "inputs contain NaN"),
    ("([], [])", _call("forget", ([], [])), InvalidArgumentError, "empty"),
    (
        "one-hot wider than the outputs",
        _call("forget", (_x(), np.eye(12)[np.arange(40) % 10])),
        InvalidArgumentError,
        r"12 classes.*10 outputs",
    ),
    (
        "one-hot (N, 2) dataset",
        _call("forget", tf.data.Dataset.from_tensor_slices((_x(), np.eye(2)[np.arange(40) % 2]))),
        InvalidArgumentError,
        "one-hot rows of 2 classes",
    ),
    (
        "repeating dataset",
        _call("forget", tf.data.Dataset.from_tensor_slices((_x(), np.arange(40) % 10)).repeat()),
        InvalidArgumentError,
        "infinite.*steps",
    ),
    (
        "sparsity=0",
        _call("prune", (_x(), np.arange(40) % 10), sparsity=0.0),
        InvalidArgumentError,
        "sparsity",
    ),
    (
        "unit granularity with a schedule",
        _call(
            "prune",
            (_x(), np.arange(40) % 10),
            granularity="unit",
            schedule=kf.GradualSchedule(0, 10, 5),
            fine_tune=kf.FineTune(),
        ),
        InvalidArgumentError,
        "schedule",
    ),
    (
        "unit granularity with a floor",
        _call("forget", (_x(), np.arange(40) % 10), granularity="unit", floor=0.5),
        InvalidArgumentError,
        "floor",
    ),
    (
        "shrink on weights",
        _call("prune", (_x(), np.arange(40) % 10), shrink=True),
        InvalidArgumentError,
        "shrink",
    ),
    (
        "fine_tune not a FineTune",
        _call("forget", (_x(), np.arange(40) % 10), fine_tune=1),
        InvalidArgumentError,
        "fine_tune",
    ),
    (
        "steps=0",
        _call("forget", (_x(), np.arange(40) % 10), steps=0),
        InvalidArgumentError,
        "steps",
    ),
    (
        "only target examples",
        _call("forget", (_x(), np.full(40, 3))),
        InvalidArgumentError,
        "nothing to retain",
    ),
    (
        "not a model",
        lambda model: kf.prune_for_class("model.keras", (_x(), np.arange(40) % 10), 3),
        TypeError,
        "model",
    ),
]


@pytest.mark.parametrize(
    "call, error, match", [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT]
)
def test_bad_input_is_named_before_any_work(model, call, error, match):
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(error, match=match) as raised:
        call(model)
    assert isinstance(raised.value, KerasForgetError)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_repeating_dataset_runs_with_steps(model):
    ds = tf.data.Dataset.from_tensor_slices((_x(), np.arange(40) % 10)).batch(8).repeat()
    result = kf.prune_for_class(model, ds, 3, amount=0.01, steps=5, verbose=False)
    assert result.report.pruned > 0


def test_nan_unit_scores_are_a_non_finite_error():
    from keras_forget import selection

    with pytest.raises(NonFiniteError, match="unit scores"):
        selection.select_units({"d": np.array([1.0, np.nan, 2.0])}, 0.5)


@pytest.mark.parametrize(
    "call",
    [
        lambda: kf.datasets.load("nope"),
        lambda: kf.datasets.load("digits", test_fraction=2.0),
        lambda: kf.scores.Objective(target="nope"),
        lambda: kf.export(keras3_mlp(), 123),
        lambda: kf.FineTune(epochs=0),
        lambda: kf.GradualSchedule(begin_step=10, end_step=5),
        lambda: kf.scores.get(3.5),
        lambda: kf.evaluate(keras3_mlp(), "data.npz"),
    ],
    ids=[
        "dataset name",
        "test_fraction",
        "objective",
        "export path",
        "FineTune",
        "schedule",
        "score",
        "evaluate data",
    ],
)
def test_every_error_is_a_keras_forget_error(call):
    with pytest.raises(KerasForgetError):
        call()


def test_a_schedule_that_cannot_finish_is_refused_before_training(model):
    data = (_x(64), np.arange(64) % 10)  # 2 batches of 32 per epoch
    with pytest.raises(InvalidArgumentError, match=r"end_step.*\(3: 2 epoch\(s\) x 2 batches"):
        kf.prune(
            model,
            data,
            sparsity=0.5,
            schedule=kf.GradualSchedule(0, 2000, 100),
            fine_tune=kf.FineTune(epochs=2),
            verbose=False,
        )
    result = kf.prune(
        model,
        data,
        sparsity=0.5,
        schedule=kf.GradualSchedule(0, 3, 1),
        fine_tune=kf.FineTune(epochs=2),
        verbose=False,
    )
    assert result.history[-1].step == 3
