"""Factored per-example sums equal per-example gradients, and cover the layers they claim."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import keras_forget as kf
from keras_forget import _keras
from keras_forget.introspect.registry import prunable_weights
from keras_forget.scores import factored, per_example
from keras_forget.scores.gradient import Fisher, GradXWeight
from keras_forget.scores.obd import OBD
from keras_forget.scores.objective import Objective

FLAVORS = {"keras3": keras, "tf_keras": tf_keras}


def _zoo(km):
    """Every layer kind the factored path handles, one it does not, a softmax output."""
    layers = km.layers
    inp = km.Input((8, 8, 1))
    h = layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    h = layers.Conv2D(4, 3, strides=2, dilation_rate=1, activation="tanh")(h)
    h = layers.DepthwiseConv2D(3, padding="same", activation="relu")(h)
    h = layers.SeparableConv2D(4, 2, padding="same", activation="relu")(h)
    h = layers.SeparableConv2D(4, 3, padding="same", use_bias=False)(h)
    h = layers.DepthwiseConv2D(2, padding="valid", depth_multiplier=2)(h)  # per-example path
    h = layers.Reshape((-1, 8))(h)
    h = layers.Conv1D(5, 2, dilation_rate=2, activation="elu")(h)
    h = layers.Dense(6, activation="gelu")(h)  # a Dense layer on a sequence
    h = layers.Flatten()(h)
    h = layers.Dense(7, activation="sigmoid")(h)
    out = layers.Dense(3, activation="softmax")(h)
    return km.Model(inp, out)


def _scores(model, score, x, y):
    score.reset(model, prunable_weights(model), Objective(from_logits=False))
    score.update(x[:13], y[:13])
    score.update(x[13:], y[13:])
    return score.result()


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    return rng.normal(size=(30, 8, 8, 1)).astype("float32"), rng.integers(0, 3, 30)


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize(
    "make",
    [
        lambda f: GradXWeight(factored=f),
        lambda f: Fisher(factored=f),
        lambda f: OBD(factored=f),
    ],
    ids=["gradxweight", "fisher", "obd"],
)
def test_factored_scores_equal_per_example_gradients(flavor, make, batch):
    km = FLAVORS[flavor]
    km.utils.set_random_seed(0)
    model = _zoo(km)
    x, y = batch
    fast, slow = _scores(model, make(True), x, y), _scores(model, make(False), x, y)
    assert set(fast) == set(slow)
    for key in slow:
        scale = np.abs(slow[key]).max()
        assert scale > 0, key
        np.testing.assert_allclose(fast[key], slow[key], rtol=0, atol=1e-5 * scale, err_msg=key)


def _embedded(km):
    """Tokens through an Embedding (its gradient is IndexedSlices) to a softmax."""
    inp = km.Input((6,), dtype="int32")
    h = km.layers.Flatten()(km.layers.Embedding(20, 4)(inp))
    return km.Model(inp, km.layers.Dense(3, activation="softmax")(h))


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("kind", ["layers", "embedding"])
def test_a_signed_sum_is_the_sum_of_per_example_gradients_eager_then_traced(
    flavor, kind, batch, monkeypatch
):
    km = FLAVORS[flavor]
    km.utils.set_random_seed(0)
    model = _zoo(km) if kind == "layers" else _embedded(km)
    x, y = batch
    if kind == "embedding":
        x = np.random.default_rng(1).integers(0, 20, (len(y), 6)).astype("int32")
    weights = prunable_weights(model)
    objective = Objective(from_logits=False)
    variables = {k: w.variable for k, w in weights.items()}
    reference = per_example.reduce_per_example(
        lambda a, b: objective(model, a, b), variables, lambda _, g: tf.reduce_sum(g, axis=0)
    )
    traced, function = [], tf.function

    def spy(f=None, **kw):
        traced.append(getattr(f, "__name__", None))
        return function(**kw) if f is None else function(f, **kw)

    monkeypatch.setattr(per_example.tf, "function", spy)
    run = factored.gradient_sums(
        model, weights, "sum", objective.of_outputs, lambda a, b: objective(model, a, b)
    )
    size = 5
    assert len(y) // size > per_example.EAGER_CALLS  # some batches run traced
    for start in range(0, len(y), size):
        part = slice(start, start + size)
        got, want = run(x[part], y[part]), reference(x[part], y[part])
        assert set(got) == set(weights)
        for key in want:
            scale = np.abs(want[key]).max()
            assert scale > 0, key
            np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-5 * scale)
        assert ("total" in traced) == (start // size >= per_example.EAGER_CALLS)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_factored_path_takes_dense_and_ungrouped_convolutions_only(flavor):
    km = FLAVORS[flavor]
    model = _zoo(km)
    weights = prunable_weights(model)
    taken = {key for lin in factored._factorable(model, weights) for key in lin.keys}
    by_layer = {k: type(w.layer).__name__ for k, w in weights.items()}
    assert {by_layer[k] for k in taken} == {
        "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv1D", "Dense"}  # fmt: skip
    left = set(weights) - taken
    assert len(left) == 1 and by_layer[left.pop()] == "DepthwiseConv2D"  # depth_multiplier 2


def test_shared_layers_keep_the_per_example_path_and_nested_ones_are_reached(batch):
    keras.utils.set_random_seed(0)
    inner = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(3, 3)], name="inner")
    shared = keras.layers.Dense(4, activation="relu")
    inp = keras.Input((8, 8, 1))
    h = keras.layers.Flatten()(inner(inp))
    h = keras.layers.Dense(4)(h)
    h = shared(shared(h))  # called twice: no single input
    model = keras.Model(inp, keras.layers.Dense(3)(h))
    weights = prunable_weights(model)
    taken = {key for lin in factored._factorable(model, weights) for key in lin.keys}
    assert all("inner" not in k for k in taken)  # inside a nested model: reached apart
    (nested,) = factored._nested(model, weights)
    assert nested.model is inner and len(nested.linears) == 1
    assert not any(shared.name in k for k in taken)
    x, y = batch
    score = Fisher(factored=True)
    score.reset(model, weights, Objective(from_logits=True))
    score.update(x, y)
    fast = score.result()
    slow = _scores_logits(model, Fisher(factored=False), x, y)
    for key in slow:
        np.testing.assert_allclose(fast[key], slow[key], rtol=1e-4, atol=1e-7, err_msg=key)


def _with_a_nested_base(km, sequential: bool):
    """A small "application" base (convolutions, a Dense) nested in the scored model."""
    layers = km.layers
    base = km.Sequential(
        [km.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu"),
         layers.DepthwiseConv2D(3, padding="same", activation="relu"),
         layers.Flatten(), layers.Dense(6, activation="tanh")],
        name="base",
    )  # fmt: skip
    if sequential:
        return km.Sequential([km.Input((8, 8, 1)), base, layers.Dense(3, activation="softmax")])
    inp = km.Input((8, 8, 1))
    h = layers.Dense(5, activation="relu")(base(inp))
    return km.Model(inp, layers.Dense(3, activation="softmax")(h))


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("sequential", [True, False], ids=["sequential", "functional"])
def test_kernels_inside_a_nested_model_are_factored_and_equal(flavor, sequential, batch):
    km = FLAVORS[flavor]
    km.utils.set_random_seed(0)
    model = _with_a_nested_base(km, sequential)
    weights = prunable_weights(model)
    (nested,) = factored._nested(model, weights)
    assert {type(lin.layer).__name__ for lin in nested.linears} == {
        "Conv2D", "DepthwiseConv2D", "Dense"}  # fmt: skip
    x, y = batch
    for make in (lambda f: GradXWeight(factored=f), lambda f: OBD(factored=f)):  # k = 1, k = 3
        fast, slow = _scores(model, make(True), x, y), _scores(model, make(False), x, y)
        assert set(fast) == set(slow) == set(weights)
        for key in slow:
            scale = np.abs(slow[key]).max()
            assert scale > 0, key
            np.testing.assert_allclose(fast[key], slow[key], rtol=0, atol=1e-5 * scale, err_msg=key)


def test_a_nested_model_called_twice_keeps_the_per_example_path():
    keras.utils.set_random_seed(0)
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4)], name="inner")
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(2)(inner(inner(inp))))
    assert factored._nested(model, prunable_weights(model)) == []


def _scores_logits(model, score, x, y):
    score.reset(model, prunable_weights(model), Objective(from_logits=True))
    score.update(x, y)
    return score.result()


def test_an_output_fn_objective_keeps_the_per_example_path(batch, monkeypatch):
    keras.utils.set_random_seed(0)
    layers = [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3)]
    model = keras.Sequential(layers)
    objective = Objective(output_fn=lambda m, x, y: keras.ops.sum(m(x), axis=-1))

    def refuse(*args):
        raise AssertionError("the factored path needs the model's outputs")

    monkeypatch.setattr(factored, "_factored", refuse)
    x, y = batch
    score = GradXWeight()
    score.reset(model, prunable_weights(model), objective)
    score.update(x, y)
    (kernel,) = score.result().values()
    assert np.abs(kernel).max() > 0


def test_factored_is_part_of_the_config():
    assert GradXWeight(factored=False).get_config() == {"signed": False, "factored": False}
    assert Fisher().get_config() == {"factored": True}
    assert OBD(factored=False).get_config()["factored"] is False


def test_a_batch_too_large_for_one_pass_is_scored_in_exact_slices(batch, monkeypatch):
    keras.utils.set_random_seed(0)
    model = _zoo(keras)
    x, y = batch
    whole = _scores(model, OBD(estimator="ggn"), x, y)
    monkeypatch.setattr(factored, "MAX_ACTIVATIONS", 1)  # one example per pass
    calls = []
    original = factored._factored

    def counting(*args, **kwargs):
        fast, floats = original(*args, **kwargs)
        return (lambda xb, yb: calls.append(int(yb.shape[0])) or fast(xb, yb)), floats

    monkeypatch.setattr(factored, "_factored", counting)
    sliced = _scores(model, OBD(estimator="ggn"), x, y)
    assert set(calls) == {1}  # traced on single examples
    for key in whole:
        np.testing.assert_allclose(sliced[key], whole[key], rtol=1e-5, atol=1e-7, err_msg=key)


@pytest.mark.parametrize("make, outputs", [(OBD, 3), (GradXWeight, 1)], ids=["obd", "gradxweight"])
def test_a_short_last_slice_is_padded_to_one_traced_shape_and_adds_nothing(
    batch, monkeypatch, make, outputs
):
    keras.utils.set_random_seed(0)
    model = _zoo(keras)
    x, y = batch
    whole = _scores(model, make(factored=False), x, y)
    monkeypatch.setattr(factored, "MAX_ACTIVATIONS", 4 * (outputs + 1))  # 4 examples a pass
    traces = []
    original = factored._factored

    def counting(*args, **kwargs):
        fast, _ = original(*args, **kwargs)
        return (lambda xb, yb: traces.append(yb.shape[0]) or fast(xb, yb)), 1

    monkeypatch.setattr(factored, "_factored", counting)
    sliced = _scores(model, make(), x, y)  # batches of 13 and 17: 4 + 4 + 4 + 1, 4 × 4 + 1
    assert traces == [4]  # traced once: the slices of 1 were padded to 4
    for key in whole:
        np.testing.assert_allclose(sliced[key], whole[key], rtol=1e-5, atol=1e-7, err_msg=key)


@pytest.mark.parametrize("pairs", [True, False], ids=["position_pairs", "explicit"])
@pytest.mark.parametrize("make", [OBD, Fisher], ids=["obd", "fisher"])
def test_both_ways_of_summing_squares_equal_per_example_gradients(batch, monkeypatch, pairs, make):
    keras.utils.set_random_seed(0)
    model = _zoo(keras)
    x, y = batch
    slow = _scores(model, make(factored=False), x, y)
    chosen = []

    def choose(positions, outputs):
        chosen.append(positions)
        return pairs

    monkeypatch.setattr(factored, "_pairs_cheaper", choose)
    fast = _scores(model, make(), x, y)
    assert len(chosen) >= 4  # the convolutions and the Dense layer on a sequence
    for key in slow:
        scale = np.abs(slow[key]).max()
        np.testing.assert_allclose(fast[key], slow[key], rtol=0, atol=1e-5 * scale, err_msg=key)


def test_position_pairs_are_chosen_where_they_cost_less():
    assert factored._pairs_cheaper(4, 10)  # OBD, 10 classes, a 2×2 map: 16 vs 80
    assert not factored._pairs_cheaper(16, 10)  # a 4×4 map: 256 vs 200
    assert not factored._pairs_cheaper(4, 1)  # one pseudo-output: 16 vs 8
    assert not factored._pairs_cheaper(None, 10)  # positions unknown when traced


class _Doubles(tf_keras.layers.Layer):
    """Doubles its input when the mean is positive: a Python ``if`` on a tensor."""

    def call(self, inputs):
        if tf.reduce_mean(inputs) > 0:
            return inputs * 2.0
        return inputs


def _branching(width: int):
    """A tf_keras classifier with a :class:`_Doubles` layer between its two Dense layers."""
    tf_keras.utils.set_random_seed(0)
    inp = tf_keras.Input((8, 8, 1))
    h = tf_keras.layers.Dense(width, activation="relu")(tf_keras.layers.Flatten()(inp))
    out = tf_keras.layers.Dense(3, activation="softmax")(_Doubles()(h))
    return tf_keras.Model(inp, out)


@pytest.mark.parametrize("factored_path", [True, False], ids=["factored", "per_example"])
def test_a_tf_keras_layer_branching_on_a_tensor_is_traced_with_autograph(batch, factored_path):
    """tf_keras layers may rely on AutoGraph; Keras 3 models are traced without it."""
    model = _branching(width=4)
    x, y = batch
    scores = _scores(model, GradXWeight(factored=factored_path), x, y)
    assert {k: v.shape for k, v in scores.items()} == {
        k: tuple(w.variable.shape) for k, w in prunable_weights(model).items()
    }
    assert all(np.abs(v).sum() > 0 for v in scores.values())
    assert _keras.autograph(model)
    assert not _keras.autograph(_zoo(keras)) and not _keras.autograph(_zoo(tf_keras))


def test_a_tf_keras_layer_branching_on_a_tensor_is_masked_and_pruned(batch):
    """Wrapping with tfmot rebuilds the graph: the user's layer needs AutoGraph there too."""
    model = _branching(width=8)
    x, y = batch
    result = kf.prune(model, (x, y), sparsity=0.5, verbose=False)
    kernel = result.model.layers[2].get_weights()[0]
    assert np.mean(kernel == 0) >= 0.4
    np.testing.assert_allclose(result.model(x[:4]).numpy().sum(axis=1), 1.0, rtol=1e-5)


def test_an_output_fn_branching_on_a_tensor_is_traced_with_autograph(batch):
    keras.utils.set_random_seed(0)
    layers = [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3)]
    model = keras.Sequential(layers)

    def output_fn(m, x, y):
        out = m(x)
        if tf.reduce_mean(out) > 0:
            return tf.reduce_sum(out, axis=-1)
        return -tf.reduce_sum(out, axis=-1)

    objective = Objective(output_fn=output_fn)
    assert objective.autograph(model) and not Objective().autograph(model)
    x, y = batch
    score = GradXWeight()
    score.reset(model, prunable_weights(model), objective)
    score.update(x, y)
    assert all(np.abs(v).max() > 0 for v in score.result().values())
