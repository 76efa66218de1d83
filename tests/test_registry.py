"""Which layers are prunable, on both flavours, including custom PrunableLayers."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

import keras_forget as kf
from keras_forget import _keras
from keras_forget.errors import NotPrunableError, UnsupportedLayerError
from keras_forget.integrations import tfmot
from keras_forget.introspect.registry import all_weights, left_whole, prunable_weights

from .helpers import assert_pruned_zero


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

    prunable_layer = _keras.tfmot().sparsity.keras.PrunableLayer

    class Scale(tf_keras.layers.Layer, prunable_layer):
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


# --- Every registered kind of weight: found, masked by kf.prune, held through fine_tune ---

#: case -> (input shape, the keys the registry must find)
CASES = {
    "einsum_dense": ((6,), ["einsum/kernel"]),
    "multi_head_attention": (
        (4, 6),
        [f"mha/{part}/kernel" for part in ("query", "key", "value", "attention_output")],
    ),
    "conv1d_transpose": ((6, 2), ["deconv/kernel"]),
    "conv2d_transpose": ((4, 4, 2), ["deconv/kernel"]),
    "conv3d_transpose": ((3, 3, 3, 2), ["deconv/kernel"]),
    "grouped_conv2d": ((6, 6, 4), ["grouped/kernel"]),
    "time_distributed_dense": ((4, 6), ["td/inner/kernel"]),
    "time_distributed_conv2d": ((3, 5, 5, 1), ["td/inner/kernel"]),
    "simple_rnn": ((5, 3), ["rnn/kernel", "rnn/recurrent_kernel"]),
    "lstm": ((5, 3), ["rnn/kernel", "rnn/recurrent_kernel"]),
    "gru": ((5, 3), ["rnn/kernel", "rnn/recurrent_kernel"]),
    "conv_lstm1d": ((4, 6, 2), ["rnn/kernel", "rnn/recurrent_kernel"]),
    "bidirectional_gru": (
        (5, 3),
        [
            f"bi/{s}_inner/{w}"
            for s in ("forward", "backward")
            for w in ("kernel", "recurrent_kernel")
        ],
    ),
}


def _case_model(km, case):
    L = km.layers
    shape, _ = CASES[case]
    x = km.Input(shape)
    if case == "einsum_dense":
        h = L.EinsumDense("ab,bc->ac", output_shape=8, bias_axes="c", name="einsum")(x)
    elif case == "multi_head_attention":
        h = L.MultiHeadAttention(2, 4, name="mha")(x, x)
    elif case.startswith("conv") and case.endswith("transpose"):
        layer = {"1": L.Conv1DTranspose, "2": L.Conv2DTranspose, "3": L.Conv3DTranspose}[case[4]]
        h = layer(4, 2, name="deconv")(x)
    elif case == "grouped_conv2d":
        h = L.Conv2D(6, 3, groups=2, name="grouped")(x)
    elif case == "time_distributed_dense":
        h = L.TimeDistributed(L.Dense(5, name="inner"), name="td")(x)
    elif case == "time_distributed_conv2d":
        h = L.TimeDistributed(L.Conv2D(3, 3, name="inner"), name="td")(x)
    elif case == "bidirectional_gru":
        h = L.Bidirectional(L.GRU(4, name="inner"), name="bi")(x)
    elif case == "conv_lstm1d":
        h = L.ConvLSTM1D(3, 3, name="rnn")(x)
    else:
        layer = {"simple_rnn": L.SimpleRNN, "lstm": L.LSTM, "gru": L.GRU}[case]
        h = layer(4, name="rnn")(x)
    return km.Model(x, L.Dense(3, name="out")(L.Flatten()(h)))


@pytest.mark.parametrize("flavor", ["keras3", "tf_keras"])
@pytest.mark.parametrize("case", list(CASES))
def test_every_registered_weight_is_pruned_and_stays_zero_through_fine_tune(case, flavor):
    import tf_keras

    km = keras if flavor == "keras3" else tf_keras
    km.utils.set_random_seed(0)
    shape, keys = CASES[case]
    model = _case_model(km, case)
    found = prunable_weights(model)
    assert set(keys) <= set(found), sorted(found)
    assert set(found) == set(prunable_weights(_keras.clone(model))), "keys must survive a copy"
    data = _data(shape, n=24, classes=3)
    result = kf.prune(
        model,
        data,
        sparsity=0.5,
        method="magnitude",
        fine_tune=kf.FineTune(epochs=1, batch_size=8),
        verbose=False,
    )
    for key in keys:
        mask = result.masks[key]
        assert mask.shape == tuple(found[key].variable.shape)
        assert 0 < (~mask).sum() < mask.size, key
    assert_pruned_zero(result.model, result.masks)
    held = kf.masks_of(result.model)
    for key in keys:
        np.testing.assert_array_equal(held[key], result.masks[key])
    if flavor == "tf_keras":  # every mask in a tfmot wrapper's mask variables
        assert not getattr(result.model, tfmot.UNHELD, {})


# --- Layers keras_forget cannot prune are left whole, named once ---


class Scale(keras.layers.Layer):
    """Trainable weights and no get_prunable_weights(): not prunable."""

    def build(self, shape):
        self.gamma = self.add_weight(shape=(shape[-1],), name="gamma", initializer="ones")

    def call(self, x):
        return x * self.gamma


class Block(keras.layers.Layer):
    """A custom layer holding a Dense and a weight of its own."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = keras.layers.Dense(6, name="inner")

    def build(self, shape):
        self.inner.build(shape)
        self.offset = self.add_weight(shape=(6,), name="offset", initializer="zeros")

    def call(self, x):
        return self.inner(x) + self.offset


def _left_whole_model():
    from keras.src.applications.convnext import LayerScale  # ConvNeXt's own layer

    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, name="conv"),
            LayerScale(1e-1, 4, name="layer_scale"),
            keras.layers.Flatten(),
            Scale(name="my_scale"),
            Block(name="block"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Dense(4, name="out"),
        ]
    )


def _left_whole_warnings(record):
    return [str(w.message) for w in record if "left whole" in str(w.message)]


def test_left_whole_lists_layers_it_cannot_prune_and_prunes_the_rest():
    model = _left_whole_model()
    assert left_whole(model) == [
        ("layer_scale", "LayerScale", 4),
        ("my_scale", "Scale", 144),
        ("block", "Block", 6),
    ]
    assert list(prunable_weights(model)) == ["conv/kernel", "block/inner/kernel", "out/kernel"]
    assert {"block/inner/kernel", "block/offset", "my_scale/gamma"} <= set(all_weights(model))
    with pytest.raises(UnsupportedLayerError, match="'layer_scale' \\(LayerScale\\).*'block'"):
        prunable_weights(model, strict=True)


@pytest.mark.parametrize("verb", ["prune_for_class", "prune"])
def test_verbs_leave_unprunable_layers_whole_with_one_warning_and_report_them(verb):
    model = _left_whole_model()
    x, y = _data((8, 8, 1), n=40)
    kept = {k: v.numpy().copy() for k, v in all_weights(model).items()}
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        if verb == "prune":
            result = kf.prune(
                model, (x, y), sparsity=0.5, fine_tune=kf.FineTune(epochs=1), verbose=False
            )
        else:
            result = kf.prune_for_class(model, (x, y), 1, amount=0.1, verbose=False)
    assert _left_whole_warnings(record) == [
        "3 layers left whole: layer_scale (LayerScale), my_scale (Scale), block (Block). "
        "keras_forget cannot prune their weights (154 parameters), which are kept as they "
        "are; implement `get_prunable_weights()` to prune them, or pass strict=True to "
        "refuse such layers."
    ]
    assert result.report.left_whole == ("layer_scale", "my_scale", "block")
    assert "left whole (not prunable): layer_scale, my_scale, block" in str(result.report)
    assert result.report.to_dict()["left_whole"] == ("layer_scale", "my_scale", "block")
    assert set(result.masks) == {"conv/kernel", "block/inner/kernel", "out/kernel"}
    assert result.report.total == sum(m.size for m in result.masks.values())
    if verb == "prune_for_class":  # not fine-tuned: the left-whole weights did not move
        stripped = kf.strip(result.model)
        for name in ("layer_scale", "my_scale"):
            np.testing.assert_array_equal(
                stripped.get_layer(name).get_weights()[0], model.get_layer(name).get_weights()[0]
            )
        np.testing.assert_array_equal(
            stripped.get_layer("block").offset.numpy(), kept["block/offset"]
        )
    assert_pruned_zero(result.model, result.masks)


def test_strict_refuses_an_unprunable_layer_before_any_work():
    model = _left_whole_model()
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(UnsupportedLayerError, match="'layer_scale'.*get_prunable_weights"):
        kf.prune_for_class(model, _data((8, 8, 1)), 1, strict=True, verbose=False)
    with pytest.raises(UnsupportedLayerError, match="strict=False"):
        kf.prune(model, sparsity=0.5, strict=True, verbose=False)
    with pytest.raises(kf.InvalidArgumentError, match="strict"):
        kf.prune(model, sparsity=0.5, strict="yes", verbose=False)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_nothing_prunable_at_all_is_still_an_error():
    model = keras.Sequential([keras.Input((4,)), Scale(name="only")])
    assert left_whole(model) == [("only", "Scale", 4)]
    with pytest.raises(NotPrunableError, match="no prunable weight"):
        kf.prune(model, sparsity=0.5, verbose=False)


def test_model_with_unprunable_layers_strips_and_exports(tmp_path):
    model = _left_whole_model()
    with pytest.warns(UserWarning, match="3 layers left whole"):
        result = kf.prune(model, sparsity=0.5, verbose=False)
    stripped = kf.strip(result.model)
    assert left_whole(stripped) == left_whole(model)
    x = _data((8, 8, 1), n=8)[0]
    report = kf.export(result.model, tmp_path / "out", tflite=True, sample=x)
    assert (tmp_path / "out" / "model.tflite").exists()
    assert report.sparsity is not None


def test_tf_keras_model_with_unprunable_layer_is_wrapped_around_it():
    import tf_keras

    class TfScale(tf_keras.layers.Layer):
        def build(self, shape):
            self.gamma = self.add_weight(name="gamma", shape=(shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.gamma

    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential(
        [tf_keras.Input((6,)), TfScale(name="tf_scale"), tf_keras.layers.Dense(4, name="out")]
    )
    with pytest.warns(UserWarning, match="1 layer left whole: tf_scale \\(TfScale\\)"):
        result = kf.prune(
            model, _data((6,)), sparsity=0.5, fine_tune=kf.FineTune(epochs=1), verbose=False
        )
    assert [type(layer).__name__ for layer in result.model.layers] == [
        "TfScale",
        "PruneLowMagnitude",
    ]
    assert result.report.left_whole == ("tf_scale",)
    assert_pruned_zero(result.model, result.masks)
    assert [type(layer).__name__ for layer in kf.strip(result.model).layers] == ["TfScale", "Dense"]
