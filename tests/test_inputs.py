"""What layers see, and how much a forward pass holds: batches shrink for large models,
never the results."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_forget as kf
from keras_forget.introspect import inputs
from keras_forget.introspect.inputs import forward_batch, forward_floats, input_model
from keras_forget.metrics import predict_labels
from keras_forget.surgery import obs, structured


def _cnn(seed: int = 0):
    keras.utils.set_random_seed(seed)
    x = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.Flatten(name="flat")(h)
    h = keras.layers.Dense(16, activation="relu", name="hidden")(h)
    return keras.Model(x, keras.layers.Dense(10, name="out")(h))


@pytest.fixture(scope="module")
def trained(digits):
    (x, y), (x_test, y_test) = digits
    model = _cnn()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:512], y[:512], epochs=3, batch_size=32, verbose=0)
    return model, (x[:512], y[:512]), (x_test[:200], y_test[:200])


def _obs_layers(model):
    """OBS's view of the model's Dense and Conv layers, and the model feeding their inputs."""
    names = ("conv", "hidden", "out")
    layers = [obs._Layer(model.get_layer(n), model.get_layer(n).kernel) for n in names]
    return layers, input_model(model, [model.get_layer(n) for n in names])


def test_forward_floats_counts_every_layer_output_of_one_example():
    model = _cnn()
    # input 64, conv 6*6*4, bn 144, flatten 144, hidden 16, out 10
    assert forward_floats(model) == 64 + 144 + 144 + 144 + 16 + 10


def test_the_batch_shrinks_to_the_budget_and_never_below_one(monkeypatch):
    model = _cnn()
    assert forward_batch(model, 256) == 256
    monkeypatch.setattr(inputs, "MAX_FORWARD_FLOATS", 10 * forward_floats(model))
    assert forward_batch(model, 256) == 10
    assert forward_batch(model, 4) == 4
    monkeypatch.setattr(inputs, "MAX_FORWARD_FLOATS", 1)
    assert forward_batch(model, 256) == 1
    sub = input_model(model, [model.get_layer("hidden")])
    assert forward_floats(sub) < forward_floats(model)


def test_a_subclassed_model_keeps_its_batch():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3)

        def call(self, x):
            return self.dense(x)

    net = Net()
    net(np.zeros((1, 4), "float32"))
    assert forward_batch(net, 64) == 64


def test_labels_and_statistics_do_not_depend_on_the_budget(trained, monkeypatch):
    model, train, test = trained
    data = kf.data.Data.of(test, model)
    labels = predict_labels(model, data)
    small = kf.prune(model, train, sparsity=0.25, granularity="unit", shrink=True, verbose=False)
    refit = small.model.get_layer("out").get_weights()[0]
    layers, feed = _obs_layers(model)
    statistics = obs._statistics(layers, feed, feed, train[0])
    monkeypatch.setattr(inputs, "MAX_FORWARD_FLOATS", 1)  # one example per pass
    again = predict_labels(model, data)
    np.testing.assert_array_equal(again[1], labels[1])
    np.testing.assert_array_equal(again[0], labels[0])
    small_again = kf.prune(
        model, train, sparsity=0.25, granularity="unit", shrink=True, verbose=False
    )
    np.testing.assert_allclose(
        small_again.model.get_layer("out").get_weights()[0], refit, rtol=1e-4, atol=1e-6
    )
    for (h, c), (h1, c1) in zip(obs._statistics(layers, feed, feed, train[0]), statistics):
        np.testing.assert_allclose(h, h1, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(c, c1, rtol=1e-5, atol=1e-7)
    moving = structured.recalibrate_batchnorm(small_again.model, kf.data.Data.of(train, model))
    assert moving == 1


def _branchy(flavor: str = "keras3"):
    """Residual and concatenating blocks, an op node and a parallel branch: every kind of cut."""
    import tf_keras

    km = keras if flavor == "keras3" else tf_keras
    km.utils.set_random_seed(0)
    L = km.layers
    x = km.Input((8, 8, 1), name="image")
    stem = L.Conv2D(6, 3, padding="same", activation="relu", name="stem")(x)
    a = L.Conv2D(6, 3, padding="same", activation="relu", name="a")(stem)
    b = L.Conv2D(6, 1, name="b")(a)
    res = L.Add(name="res")([stem, b])
    left = L.Conv2D(4, 1, name="left")(res)
    right = L.Conv2D(4, 3, padding="same", name="right")(res)
    cat = L.Concatenate(name="cat")([res, left, right])
    scaled = L.Activation("relu", name="act")(cat * 2.0)
    flat = L.Flatten(name="flat")(scaled)
    hidden = L.Dense(12, activation="relu", name="hidden")(flat)
    return km.Model(x, L.Dense(10, name="out")(hidden))


def _one(outputs) -> np.ndarray:
    return np.asarray(outputs[0] if isinstance(outputs, (list, tuple)) else outputs)


def test_dominators_are_the_nodes_every_path_passes_through():
    from keras_forget.introspect.topology import dominators

    order = ["in", "stem", "a", "b", "res", "left", "right", "cat", "out"]
    parents = {"stem": ["in"], "a": ["stem"], "b": ["a"], "res": ["stem", "b"],
               "left": ["res"], "right": ["res"], "cat": ["res", "left", "right"],
               "out": ["cat"]}  # fmt: skip
    idom = dominators(order, parents)
    assert idom == {"in": None, "stem": "in", "a": "stem", "b": "a", "res": "stem",
                    "left": "res", "right": "res", "cat": "res", "out": "cat"}  # fmt: skip
    two = dominators(["x1", "x2", "sum", "out"], {"sum": ["x1", "x2"], "out": ["sum"]})
    assert two == {"x1": None, "x2": None, "sum": None, "out": "sum"}


IN_ORDER = ("a", "b", "left", "right", "hidden", "out")


@pytest.mark.parametrize(
    ("flavor", "budget", "visits"),
    [("keras3", None, IN_ORDER), ("tf_keras", None, IN_ORDER), ("keras3", 0, IN_ORDER),
     ("keras3", None, ("right", "hidden", "left", "out", "a", "b"))],
)  # fmt: skip
def test_layer_inputs_equal_a_pass_from_the_model_inputs_as_weights_change(
    digits, flavor, budget, visits
):
    """Visiting layers and changing each, every layer's inputs equal a fresh pass from the
    model's inputs (budget 0: nothing cached; out of graph order: stale activations dropped)."""
    from keras_forget.introspect.graph import Graph
    from keras_forget.introspect.inputs import LayerInputs

    (x, _), _ = digits
    model = _branchy(flavor)
    graph = Graph(model, warn=False)
    seen = LayerInputs(model, x[:100], graph.order, graph.parents, budget=budget)
    resumed = []
    for name in visits:
        layer = model.get_layer(name)
        runner, start = seen.inputs_to(layer)
        resumed.append(start.shape != x[:100].shape)  # from an activation, not the inputs
        got = np.concatenate([_one(runner(start[i : i + 32])) for i in range(0, 100, 32)])
        want = _one(input_model(model, [layer])(x[:100]))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=name)
        kernel = layer.kernel.numpy()
        layer.kernel.assign(kernel * 0.5 + 0.1)  # what a refit does before the next layer
    assert all(resumed) if budget is None else not any(resumed)
