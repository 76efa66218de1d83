"""`_keras.clone` copies the models users bring, without a config round-trip of the whole model.

Each case: the copy computes the same outputs, has the same layer names (so weight
keys match), owns its variables, and both verbs run on the model without touching it.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_forget as kf
from keras_forget import _keras
from keras_forget.introspect.registry import prunable_weights
from keras_forget.surgery import masking

from .helpers import assert_pruned_zero

FLAVORS = ["keras3", "tf_keras"]


def _km(flavor):
    if flavor == "keras3":
        return keras
    import tf_keras

    return tf_keras


def _data(n=40):
    rng = np.random.default_rng(0)
    return rng.random((n, 8, 8, 1)).astype("float32"), np.arange(n) % 10


def _lambda_model(km):
    inputs = km.Input((8, 8, 1))
    h = km.layers.Dense(16, activation="relu")(km.layers.Flatten()(inputs))
    h = km.layers.Lambda(lambda t: t * 0.5 + 0.1)(h)  # a Python lambda: no safe deserialization
    return km.Model(inputs, km.layers.Dense(10, activation="softmax")(h))


def _nested_model(km):
    inner = km.Sequential(
        [km.Input((8, 8, 1)), km.layers.Flatten(), km.layers.Dense(16, activation="relu")],
        name="inner",
    )
    inputs = km.Input((8, 8, 1))
    return km.Model(inputs, km.layers.Dense(10, activation="softmax")(inner(inputs)))


def _shared_model(km):
    inputs = km.Input((8, 8, 1))
    shared = km.layers.Dense(16, activation="relu", name="shared")
    h = shared(shared(km.layers.Dense(16)(km.layers.Flatten()(inputs))))  # called twice
    return km.Model(inputs, km.layers.Dense(10, activation="softmax")(h))


def _subclass(km, config: bool):
    """A subclassed model with auto-named Dense layers; ``config=False``: no get_config."""

    class Net(km.Model):
        def __init__(self, activation=None, **kwargs):
            super().__init__(**kwargs)
            self.activation = activation or km.activations.relu  # a function: no auto config
            self.flatten = km.layers.Flatten()
            self.hidden = km.layers.Dense(16)
            self.head = km.layers.Dense(10, activation="softmax")

        def call(self, x):
            return self.head(self.activation(self.hidden(self.flatten(x))))

        if config:

            def get_config(self):
                return {"name": self.name}

        else:

            def get_config(self):
                raise NotImplementedError

    return Net


def _subclassed_model(km, config=True, activation=None):
    for _ in range(3):  # other models took some auto names: a fresh Net gets new ones
        km.Sequential([km.Input((4,)), km.layers.Dense(2)])
    model = _subclass(km, config)(activation=activation)
    model(_data(2)[0])
    return model


CASES = {
    "lambda": _lambda_model,
    "nested": _nested_model,
    "shared": _shared_model,
    "subclassed": _subclassed_model,
    "no_config": lambda km: _subclassed_model(km, config=False),
}


def _names(model):
    return [layer.name for layer in _keras._layers(model)]


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("flavor", FLAVORS)
def test_clone_is_an_equal_independent_model_with_the_same_names(flavor, case):
    km = _km(flavor)
    km.utils.set_random_seed(0)
    model = CASES[case](km)
    before = [w.copy() for w in model.get_weights()]
    copy = _keras.clone(model)
    x, _ = _data(8)
    np.testing.assert_allclose(copy(x), model(x), rtol=1e-6, atol=1e-6)
    assert type(copy) is type(model) and copy.name == model.name
    assert _names(copy) == _names(model)
    assert list(prunable_weights(copy)) == list(prunable_weights(model))
    assert not {id(v) for v in copy.weights} & {id(v) for v in model.weights}
    for variable in copy.weights:
        variable.assign(variable.numpy() * 0)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(copy(x), model(x))


def test_subclassed_copy_takes_the_original_auto_names():
    model = _subclassed_model(keras)
    fresh = _subclass(keras, True)()
    assert fresh.hidden.name != model.hidden.name  # what from_config alone would give
    copy = _keras.clone(model)
    assert (copy.hidden.name, copy.head.name) == (model.hidden.name, model.head.name)
    assert copy.hidden.kernel.path.endswith(f"{model.hidden.name}/kernel")  # named, then built


def _verb_cases():
    for flavor in FLAVORS:
        for case in sorted(CASES):
            yield pytest.param(flavor, case, id=f"{flavor}-{case}")


@pytest.mark.parametrize(("flavor", "case"), _verb_cases())
def test_both_verbs_run_and_leave_the_caller_model_alone(flavor, case):
    km = _km(flavor)
    km.utils.set_random_seed(0)
    model = CASES[case](km)
    before = [w.copy() for w in model.get_weights()]
    keys = set(prunable_weights(model))
    data = _data()
    forgot = kf.prune_for_class(model, data, 3, amount=0.05, verbose=False)
    pruned = kf.prune(model, data, sparsity=0.5, fine_tune=kf.FineTune(epochs=1), verbose=False)
    for result in (forgot, pruned):
        assert result.model is not model
        assert set(result.masks) == keys
        assert_pruned_zero(result.model, result.masks)  # after fine-tuning, for `pruned`
        held = kf.masks_of(result.model)
        for key, mask in result.masks.items():
            np.testing.assert_array_equal(held[key], mask)
        stripped = kf.strip(result.model)
        assert_pruned_zero(stripped, result.masks)
    assert pruned.report.fine_tuned is not None
    assert pruned.report.sparsity == pytest.approx(0.5, abs=0.01)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_a_functional_subclass_copies_as_a_functional_model_with_the_same_names(flavor):
    km = _km(flavor)

    class Built(km.Model):  # functional, but its constructor takes no (inputs, outputs)
        def __init__(self, **kwargs):
            inputs = km.Input((8, 8, 1))
            h = km.layers.Dense(16, activation="relu")(km.layers.Flatten()(inputs))
            super().__init__(inputs, km.layers.Dense(10, activation="softmax")(h), **kwargs)

        def get_config(self):
            return {"name": self.name}

    model = Built()
    copy = _keras.clone(model)
    x, _ = _data(8)
    np.testing.assert_allclose(copy(x), model(x), rtol=1e-6, atol=1e-6)
    assert _names(copy) == _names(model)
    before = [w.copy() for w in model.get_weights()]
    result = kf.prune_for_class(model, _data(), 3, amount=0.05, verbose=False)
    assert set(result.masks) == set(prunable_weights(model))
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_clone_does_not_carry_mask_constraints():
    model = _lambda_model(keras)
    masks = {
        k: np.arange(w.variable.numpy().size).reshape(w.variable.shape) % 2 == 0
        for k, w in prunable_weights(model).items()
    }
    masked = masking.mask_model(model, masks)
    copy = _keras.clone(masked)
    for key, weight in prunable_weights(copy).items():
        assert weight.variable.constraint is None
        np.testing.assert_array_equal(
            weight.variable.numpy(), prunable_weights(masked)[key].variable.numpy()
        )


@pytest.mark.parametrize("flavor", FLAVORS)
def test_a_class_made_without_its_arguments_must_compute_the_same(flavor):
    km = _km(flavor)
    model = _subclassed_model(km, config=False, activation=km.activations.tanh)
    with pytest.raises(kf.NotAModelError, match=r"no arguments.*computes something else"):
        _keras.clone(model)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_an_uncopyable_model_says_what_was_tried(flavor):
    km = _km(flavor)

    class NeedsWidth(km.Model):
        def __init__(self, width):
            super().__init__()
            self.dense = km.layers.Dense(width)

        def call(self, x):
            return self.dense(x)

        def get_config(self):
            raise NotImplementedError("no config")

    model = NeedsWidth(3)
    model(np.zeros((1, 4), "float32"))
    with pytest.raises(kf.NotAModelError) as caught:
        _keras.clone(model)
    message = str(caught.value)
    assert model.name in message and "NeedsWidth" in message
    assert "from_config(get_config()) failed" in message and "NeedsWidth() failed" in message


def test_not_a_model_is_refused():
    with pytest.raises(kf.NotAModelError):
        _keras.clone(object())
