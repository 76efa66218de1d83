"""Which layers are prunable, on both flavours, including custom PrunableLayers."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_forget as kf
from keras_forget.introspect.registry import prunable_weights


def _data(shape, n=30, classes=4):
    rng = np.random.default_rng(0)
    return rng.random((n, *shape)).astype("float32"), np.arange(n) % classes


def _conv_model(km):
    L = km.layers
    return km.Sequential(
        [
            km.Input((8, 8, 1)),
            L.Conv2D(4, 3, name="conv"),
            L.BatchNormalization(name="bn"),
            L.DepthwiseConv2D(3, name="dw"),
            L.Flatten(),
            L.Dense(4, name="out"),
        ]
    )


@pytest.mark.parametrize("flavor", ["keras3", "tf_keras"])
def test_conv_bn_depthwise_dense_model_is_pruned_and_bn_left_whole(flavor):
    import tf_keras

    km = keras if flavor == "keras3" else tf_keras
    model = _conv_model(km)
    keys = set(prunable_weights(model))
    assert {"conv/kernel", "out/kernel"} <= keys
    assert any(k.startswith("dw/") for k in keys)
    assert not any(k.startswith("bn/") for k in keys)
    result = kf.prune_for_class(model, _data((8, 8, 1)), 1, amount=0.1, verbose=False)
    stripped = kf.strip(result.model)
    for key, mask in result.masks.items():
        assert np.all(prunable_weights(stripped)[key].variable.numpy()[~mask] == 0)


def test_embedding_model():
    model = keras.Sequential(
        [
            keras.Input((5,), dtype="int32"),
            keras.layers.Embedding(20, 4, name="emb"),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(3, name="out"),
        ]
    )
    x = np.random.default_rng(0).integers(0, 20, (30, 5))
    result = kf.prune_for_class(model, (x, np.arange(30) % 3), 0, amount=0.1, verbose=False)
    assert "emb/embeddings" in result.masks


class PrunableScale(keras.layers.Layer):
    """A custom layer that says which of its weights may be pruned."""

    def build(self, shape):
        self.kernel = self.add_weight(shape=(shape[-1], 4), name="kernel")

    def call(self, x):
        return x @ self.kernel

    def get_prunable_weights(self):
        return [self.kernel]


def test_custom_prunable_layer_joins():
    model = keras.Sequential([keras.Input((6,)), PrunableScale(name="custom")])
    result = kf.prune_for_class(model, _data((6,)), 2, amount=0.25, verbose=False)
    assert result.masks["custom/kernel"].shape == (6, 4)
    assert (~result.masks["custom/kernel"]).sum() == 6


class Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(8, activation="relu", name="hidden")
        self.out = keras.layers.Dense(4, name="logits")

    def call(self, x):
        return self.out(self.hidden(x))


def test_subclassed_keras3_model_is_copied_and_masks_hold_in_training():
    model = Subclassed()
    x, y = _data((6,))
    model(x[:1])
    original = [w.copy() for w in model.get_weights()]
    result = kf.prune_for_class(
        model, (x, y), 1, amount=0.2, fine_tune=kf.FineTune(epochs=2), verbose=False
    )
    assert set(result.masks) == {"hidden/kernel", "logits/kernel"}
    for key, mask in result.masks.items():
        layer = result.model.hidden if key.startswith("hidden") else result.model.out
        assert np.all(layer.kernel.numpy()[~mask] == 0)
    for a, b in zip(original, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_tf_keras_layer_implementing_tfmot_prunable_layer():
    import tf_keras

    from keras_forget import _keras

    tfmot = _keras.tfmot()

    class Scale(tf_keras.layers.Layer, tfmot.sparsity.keras.PrunableLayer):
        def build(self, shape):
            self.kernel = self.add_weight(name="kernel", shape=(shape[-1], 4))

        def call(self, x):
            return tf_keras.backend.dot(x, self.kernel)

        def get_prunable_weights(self):
            return [self.kernel]

    model = tf_keras.Sequential([tf_keras.Input((6,)), Scale(name="custom")])
    x, y = _data((6,))
    result = kf.prune_for_class(
        model, (x, y), 2, amount=0.25, fine_tune=kf.FineTune(epochs=1), verbose=False
    )
    assert type(result.model.layers[0]).__name__ == "PruneLowMagnitude"
    held = kf.masks_of(result.model)["custom/kernel"]
    np.testing.assert_array_equal(held, result.masks["custom/kernel"])
    stripped = kf.strip(result.model)
    assert np.all(stripped.layers[0].kernel.numpy()[~held] == 0)
