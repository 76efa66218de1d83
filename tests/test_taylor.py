"""Taylor unit scores: unit sums of grad×weight, forgetting and pruning with them."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_forget as kf
from keras_forget.data import Data
from keras_forget.introspect.graph import Graph
from keras_forget.scores import GradXWeight, Objective, Taylor, units
from keras_forget.scores.accumulate import score_split, score_units
from keras_forget.scores.taylor import scaling_weights, unit_sums
from keras_forget.surgery import structured

from .conftest import keras3_mlp, train


def _linear(seed: int = 0, norm: bool = False) -> keras.Model:
    """Input 5 -> Dense 4 (-> BatchNorm) -> Dense 3 logits, no activation: first order is exact."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((5,))
    hidden = keras.layers.Dense(4, name="h")(inputs)
    if norm:
        hidden = keras.layers.BatchNormalization(name="bn")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(3, use_bias=False, name="out")(hidden))
    rng = np.random.default_rng(seed)
    for weight in model.weights:  # nonzero biases and normalization statistics
        value = rng.normal(size=tuple(weight.shape)).astype("float32")
        weight.assign(np.abs(value) + 0.5 if "variance" in weight.path else value)
    return model


def test_the_registry_resolves_taylor():
    assert isinstance(units.get("taylor"), Taylor)
    assert units.get({"class_name": "taylor", "config": {"floor": 0.5}}).floor == 0.5


def test_a_unit_is_scaled_by_the_last_affine_layer_on_its_channel():
    graph = Graph(_linear(norm=True))
    assert sorted(k for k, _, _ in scaling_weights(graph, graph.prunable()["h"])) == [
        "bn/beta",
        "bn/gamma",
    ]
    graph = Graph(_linear())
    assert sorted(k for k, _, _ in scaling_weights(graph, graph.prunable()["h"])) == [
        "h/bias",
        "h/kernel",
    ]


@pytest.mark.parametrize("norm", [False, True])
def test_a_units_forget_sum_is_the_objectives_fall_when_it_is_removed(rng, norm):
    model = _linear(norm=norm)
    x = rng.normal(size=(40, 5)).astype("float32")
    y = rng.integers(0, 3, size=40)
    graph = Graph(model)
    weights = Taylor().weights(graph)
    data = Data.of((x, y), model)
    forget, _ = score_split(model, data, GradXWeight(), Objective(), [0], weights=weights)
    sums = unit_sums(graph, graph.prunable()["h"], forget)
    objective = Objective()
    base = float(np.sum(objective(model, x[y == 0], y[y == 0])))
    for unit in range(4):
        cut = keras.models.clone_model(model)
        cut.set_weights(model.get_weights())
        structured.apply_masks(cut, structured.weight_masks(graph, {"h": np.arange(4) != unit}))
        fall = base - float(np.sum(objective(cut, x[y == 0], y[y == 0])))
        # scores are means over the examples
        assert sums[unit] == pytest.approx(fall / np.sum(y == 0), rel=1e-4, abs=1e-6)


def test_a_heads_sum_covers_its_slices_of_every_attention_weight():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 16))
    attention = keras.layers.MultiHeadAttention(num_heads=4, key_dim=4, name="mha")
    out = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling1D()(attention(inputs, inputs)))
    graph = Graph(keras.Model(inputs, out))
    group = graph.prunable()["mha/heads"]
    ones = {f"mha/{s}/kernel": np.ones((16, 4, 4)) for s in ("query", "key", "value")}
    ones |= {f"mha/{s}/bias": np.ones((4, 4)) for s in ("query", "key", "value")}
    ones["mha/attention_output/kernel"] = np.ones((4, 4, 16))
    # per head: three 16x4 kernels, three 4-wide biases and a 4x16 output slice
    np.testing.assert_array_equal(unit_sums(graph, group, ones), [3 * 64 + 3 * 4 + 64] * 4)


@pytest.fixture(scope="module")
def mlp(digits):
    return train(keras3_mlp(hidden=64), digits, epochs=25)


def test_taylor_unit_forgetting_forgets_the_class_and_zeroes_whole_units(mlp, digits):
    train_split, test_split = digits
    result = kf.prune_for_class(
        mlp, train_split, 3, granularity="unit", method="taylor", eval_data=test_split,
        verbose=False,
    )  # fmt: skip
    before, after = result.report.before, result.report.after
    assert before.forget_accuracy > 0.8 and after.forget_accuracy <= 0.05
    assert after.retain_accuracy > before.retain_accuracy - 0.1
    kernel = result.model.layers[1].kernel.numpy()
    removed = np.all(kernel == 0.0, axis=0)
    assert removed.any() and not removed.all()
    assert np.all(mlp.layers[1].kernel.numpy()[:, removed] != 0.0)  # the caller's model is whole


def test_a_unit_that_serves_nothing_has_no_pruning_saliency(mlp, digits):
    (x, y), _ = digits
    objective = Objective(from_logits=False)

    def saliency(model):
        data = Data.of((x[:200], y[:200]), model)
        scores = score_units(Graph(model), data, Taylor(), num_classes=10, objective=objective)
        (only,) = scores.values()
        return only

    busiest = int(np.argmax(saliency(mlp)))
    model = keras.models.clone_model(mlp)
    model.set_weights(mlp.get_weights())
    for weight in model.layers[1].weights:  # kernel column and bias: the unit outputs 0
        value = weight.numpy()
        value[..., busiest] = 0.0
        weight.assign(value)
    assert saliency(mlp)[busiest] > 0.0 and saliency(model)[busiest] == 0.0
