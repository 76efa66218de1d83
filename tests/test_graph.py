"""The channel graph on models nobody here wrote: op nodes, grouped convs, blockers, activations."""

from __future__ import annotations

import re
import time
import warnings

import keras
import numpy as np
import pytest

from keras_forget.errors import KerasForgetError, UnsupportedLayerError
from keras_forget.introspect import ops
from keras_forget.introspect.graph import Graph
from keras_forget.surgery import structured

from .helpers import randomize_batchnorm

L = keras.layers


def _graph(model) -> tuple[Graph, list[str]]:
    """The graph and the messages of the warnings its construction emitted."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        graph = Graph(model)
    return graph, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def _cut(graph: Graph, fraction: float = 0.3, seed: int = 0) -> dict[str, np.ndarray]:
    """Removes ``fraction`` of the units of every prunable group, at random."""
    rng = np.random.default_rng(seed)
    masks = {}
    for key, group in graph.prunable().items():
        mask = np.ones(group.size, bool)
        mask[rng.choice(group.size, max(1, int(fraction * group.size)), replace=False)] = False
        if mask.any():
            masks[key] = mask
    return masks


def _conv_op_model(op) -> keras.Model:
    """conv -> op -> pooling -> dense; a second, plain conv beside it."""
    keras.utils.set_random_seed(0)
    x = keras.Input((6, 6, 2))
    h = op(L.Conv2D(4, 3, padding="same", name="conv")(x))
    side = L.Conv2D(3, 3, padding="same", activation="relu", name="side")(x)
    h = L.Concatenate(name="cat")([L.GlobalAveragePooling2D()(h), L.GlobalAveragePooling2D()(side)])
    return keras.Model(x, L.Dense(2, name="out")(L.Dense(5, name="fc")(h)))


def test_ops_node_that_moves_zero_leaves_its_group_whole_naming_the_op():
    model = _conv_op_model(lambda h: h + 3.0)
    assert "Add" in {type(op).__name__ for op in model.operations}  # keras.src.ops.numpy.Add
    graph, messages = _graph(model)
    assert len(messages) == 1
    (line,) = [n for n in graph.notes if n.startswith("conv:")]
    assert re.search(r"op 'add(_\d+)?' \(keras\.ops\.add with 3\)", line)  # auto-named
    assert "maps 0 to 3" in line
    assert "'fc' (Dense)" in line  # what reads the non-zero channel
    assert set(graph.prunable()) == {"side", "fc"}
    with pytest.raises(UnsupportedLayerError, match=r"op 'add(_\d+)?'"):
        structured.shrink(model, {"conv": np.array([1, 0, 1, 1], bool)}, graph=graph)
    shrunk = structured.shrink(model, _cut(graph), graph=graph)
    assert shrunk.get_layer("side").filters == 2 and shrunk.get_layer("fc").units == 4


@pytest.mark.parametrize("flavor", ["keras3", "tf_keras"])
def test_ops_that_keep_zero_are_followed(flavor):
    if flavor == "keras3":
        model = _conv_op_model(lambda h: keras.ops.relu(h * 2.0))
    else:
        import tensorflow as tf
        import tf_keras

        tf_keras.utils.set_random_seed(0)
        x = tf_keras.Input((6, 6, 2))
        h = tf_keras.layers.Conv2D(4, 3, padding="same", name="conv")(x)
        h2 = tf_keras.layers.Conv2D(4, 3, padding="same", name="conv2")(x)
        h = tf.nn.relu(tf.math.add(2.0 * h, y=h2))  # the second tensor is a keyword argument
        h = h * tf.nn.relu6(h + 3.0) / 6.0  # hard_swish as TFOpLambda layers
        h = tf_keras.layers.GlobalAveragePooling2D()(h)
        model = tf_keras.Model(x, tf_keras.layers.Dense(2, name="out")(h))
    graph, messages = _graph(model)
    assert not messages, messages
    assert "conv" in graph.prunable()
    if flavor == "tf_keras":
        assert graph.groups["conv"].producers == ["conv", "conv2"]  # joined by tf.math.add
    masks = {"conv": np.array([1, 0, 1, 0], bool)}
    shrunk = structured.shrink(model, masks, graph=graph)  # checked on a random batch
    assert shrunk.get_layer("conv").filters == 2


@pytest.mark.parametrize("scale", [lambda s: s * (1.0 / 6.0), lambda s: s / 6.0])
def test_squeeze_excite_hard_sigmoid_is_followed_through_the_product(scale):
    """MobileNetV3's block: x * hard_sigmoid(se(x)), hard_sigmoid as ``relu6(x + 3) / 6`` ops."""
    keras.utils.set_random_seed(0)
    x = keras.Input((6, 6, 3))
    h = L.ReLU()(L.BatchNormalization(name="bn")(L.Conv2D(8, 1, name="expand")(x)))
    s = L.GlobalAveragePooling2D(keepdims=True)(h)
    s = L.Conv2D(4, 1, activation="relu", name="squeeze")(s)
    s = L.Conv2D(8, 1, name="excite")(s)
    s = scale(L.ReLU(6.0)(s + 3.0))  # not zero where removed, until multiplied by h
    h = L.Multiply(name="se")([h, s])
    model = keras.Model(x, L.Dense(2, name="out")(L.GlobalAveragePooling2D()(h)))
    randomize_batchnorm(model)
    graph, messages = _graph(model)
    assert not messages, messages
    assert graph.groups["expand"].producers == ["expand", "excite"]
    assert set(graph.prunable()) == {"expand", "squeeze"}
    masks = {"expand": np.array([1, 0, 1, 1, 0, 1, 1, 1], bool)}
    x = np.random.default_rng(1).standard_normal((4, 6, 6, 3)).astype("float32")
    shrunk = structured.shrink(model, masks, sample=x, graph=graph)
    assert shrunk.get_layer("excite").filters == 6
    masked = structured.masked_copy(model, masks, graph)
    np.testing.assert_allclose(shrunk(x), masked(x), atol=1e-5)
    assert not np.allclose(masked(x), model(x), atol=1e-4)  # the removed channels mattered


def test_batchnorm_zeroes_what_a_sigmoid_made_non_zero():
    keras.utils.set_random_seed(0)
    x = keras.Input((6, 6, 2))
    h = L.Conv2D(5, 3, activation="sigmoid", name="conv")(x)  # removed channels give 0.5 ...
    h = L.BatchNormalization(name="bn")(h)  # ... which the zeroed gamma and beta cancel
    model = keras.Model(x, L.Dense(2, name="out")(L.GlobalAveragePooling2D()(h)))
    graph, messages = _graph(randomize_batchnorm(model))
    assert not messages and set(graph.prunable()) == {"conv"}
    shrunk = structured.shrink(model, {"conv": np.array([1, 0, 1, 1, 0], bool)}, graph=graph)
    assert shrunk.get_layer("bn").gamma.shape == (3,)


def test_depthwise_grouped_conv_shrinks_channelwise_and_other_groups_stay_whole():
    keras.utils.set_random_seed(0)
    x = keras.Input((8, 8, 3))
    h = L.Conv2D(6, 1, name="pw")(x)
    h = L.Conv2D(6, 3, padding="same", groups=6, activation="relu", name="dw")(h)  # ConvNeXt's
    h = L.BatchNormalization(name="bn")(h)
    g = L.Conv2D(4, 3, padding="same", groups=2, name="grouped")(h)
    h = L.Concatenate()([L.GlobalAveragePooling2D()(h), L.GlobalAveragePooling2D()(g)])
    model = randomize_batchnorm(keras.Model(x, L.Dense(2, name="out")(h)))
    graph, messages = _graph(model)
    assert graph.roles["dw"] == "grouped" and "dw" not in graph.groups
    assert len(messages) == 1 and len(graph.notes) == 2  # pw's group, and the conv's own
    assert "'grouped' (Conv2D): grouped convolution (groups=2)" in messages[0]
    assert "pw" not in graph.prunable()  # it feeds the groups=2 conv, kept whole
    assert "groups == input channels == filters" in graph.groups["pw"].frozen
    # The depthwise-like conv alone: its channels follow the pointwise conv's.
    model2 = keras.Model(model.input, model.get_layer("bn").output)
    head = L.Dense(2, name="out")(L.GlobalAveragePooling2D()(model2.output))
    model2 = keras.Model(model2.input, head)
    graph2, messages2 = _graph(model2)
    assert not messages2 and set(graph2.prunable()) == {"pw"}
    masks = {"pw": np.array([1, 1, 0, 1, 0, 1], bool)}
    shrunk = structured.shrink(model2, masks, graph=graph2)
    dw = shrunk.get_layer("dw")
    assert dw.filters == dw.groups == 4 and dw.kernel.shape == (3, 3, 1, 4)
    assert shrunk.get_layer("bn").gamma.shape == (4,)
    weights = structured.weight_masks(graph2, masks)
    assert weights["dw/kernel"].shape == (3, 3, 1, 6) and not weights["dw/kernel"][..., 2].any()


def test_separable_conv_is_a_producer_cut_on_both_sides():
    keras.utils.set_random_seed(0)
    x = keras.Input((8, 8, 3))
    h = L.Conv2D(6, 3, activation="relu", name="c")(x)
    h = L.SeparableConv2D(5, 3, activation="relu", name="sep")(h)
    model = keras.Model(x, L.Dense(2, name="out")(L.GlobalAveragePooling2D()(h)))
    graph, messages = _graph(model)
    assert not messages and set(graph.prunable()) == {"c", "sep"}
    masks = {"c": np.array([1, 0, 1, 1, 0, 1], bool), "sep": np.array([0, 1, 1, 1, 1], bool)}
    shrunk = structured.shrink(model, masks, graph=graph)
    sep = shrunk.get_layer("sep")
    assert sep.depthwise_kernel.shape == (3, 3, 4, 1) and sep.pointwise_kernel.shape == (1, 1, 4, 4)


def test_activation_table_matches_keras_numerically():
    import tf_keras

    public = {n for n in dir(keras.activations) if not n.startswith("_")}
    public -= {"get", "serialize", "deserialize"}
    assert public <= set(ops.ACTIVATIONS), public - set(ops.ACTIVATIONS)
    tf_public = {n for n in dir(tf_keras.activations) if not n.startswith("_")}
    assert tf_public - {"get", "serialize", "deserialize"} <= set(ops.ACTIVATIONS)
    x = np.array([[0.0, 0.0, 0.0, 0.0]], "float32")
    moved = np.array([[0.0, 1.5, 0.0, 0.0]], "float32")
    for name, effect in ops.ACTIVATIONS.items():
        if name == "threshold":  # needs arguments: not usable by name; 0 -> default_value
            f = lambda v: keras.activations.threshold(v, 0.5, 1.0)  # noqa: E731
        else:
            f = keras.activations.get(name)
        at_zero, other = np.asarray(f(x)), np.asarray(f(moved))
        if effect == ops.HALVES:
            assert at_zero.shape == (1, 2), name
            continue
        assert at_zero.shape == (1, 4), name
        reads_all = not np.allclose(at_zero[0, 0], other[0, 0])  # channel 1 moved channel 0
        assert reads_all == (effect == ops.ALL_CHANNELS), name
        if effect == ops.ZERO:
            assert np.all(at_zero == 0), name
        elif effect == ops.NONZERO:
            assert np.all(at_zero != 0), name
    assert ops.activation_effect(None) == ops.ZERO and ops.activation_effect("nope") is None


def _transformer_block() -> keras.Model:
    keras.utils.set_random_seed(0)
    x = keras.Input((8, 16))
    a = L.MultiHeadAttention(2, 8, name="mha")(x, x)
    h = L.LayerNormalization(name="ln1")(L.Add(name="add1")([x, a]))
    f = L.Dense(32, activation="gelu", name="ffn1")(h)
    f = L.Dense(16, name="ffn2")(f)
    h = L.LayerNormalization(name="ln2")(L.Add(name="add2")([h, f]))
    return keras.Model(x, L.Dense(3, name="out")(L.GlobalAveragePooling1D()(h)))


def test_transformer_warning_names_the_true_blocker_once():
    model = _transformer_block()
    graph, messages = _graph(model)
    assert len(messages) == 1 and len(graph.notes) == 1
    (note,) = graph.notes
    # ffn2's output goes add2 -> ln2: ln2 is named, not the attention upstream.
    assert note.startswith("ffn2: reaches layer 'ln2' (LayerNormalization)"), note
    assert set(graph.prunable()) == {"ffn1", "mha/heads"}  # the attention heads are units too
    masks = {"ffn1": np.arange(32) % 3 != 0}
    shrunk = structured.shrink(model, masks, graph=graph)
    assert shrunk.get_layer("ffn1").units == 21 and shrunk.get_layer("ffn2").kernel.shape[0] == 21


def test_efficientnet_emits_one_warning_at_most():
    keras.utils.set_random_seed(0)
    model = keras.applications.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=10)
    graph, messages = _graph(model)
    assert len(messages) <= 1
    assert len(graph.prunable()) >= 30  # the squeeze-and-excite blocks are followed


def _odd_models():
    keras.utils.set_random_seed(0)
    x = keras.Input((6, 6, 2))
    h = L.Conv2D(4, 3, name="c")(x)
    parts = keras.ops.split(h, 2, axis=-1)  # a multi-output op
    yield "split", keras.Model(x, L.Dense(2)(L.Flatten()(parts[0] * parts[1])))
    shared = L.Dense(4, name="shared")
    v = keras.Input((5,))
    yield "shared", keras.Model(v, L.Dense(2)(L.Add()([shared(v), shared(L.Dense(5)(v))])))
    inner = keras.Sequential([keras.Input((5,)), L.Dense(4, activation="relu")], name="inner")
    yield "nested", keras.Model(v, L.Dense(2)(inner(L.Dense(5, name="pre")(v))))
    h = L.Conv2D(4, 3, data_format="channels_first", name="cf")(keras.Input((2, 6, 6)))
    yield "channels_first", keras.Model(h._keras_history[0].input, L.Dense(2)(L.Flatten()(h)))
    t = keras.Input((7,), dtype="int32")
    e = L.LSTM(6)(L.Embedding(20, 4)(t))
    yield "lstm", keras.Model(t, L.Dense(2)(keras.ops.glu(L.Dense(6, name="pre_glu")(e))))
    h = L.Conv2D(4, 3, name="c2")(x)
    h = keras.ops.transpose(keras.ops.mean(h, axis=-1, keepdims=True), (0, 3, 1, 2))
    q = L.Conv2D(4, 1, name="q")(x)
    q = q / (q + 1.0) + keras.ops.mean(q, axis=(1, 2), keepdims=True) * np.ones(4, "float32")
    h = L.Concatenate()([L.Flatten()(h), L.Flatten()(q[..., :2]), L.Flatten()(q)])
    yield "ops", keras.Model(x, L.Dense(2)(L.Dense(3)(h)))

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = L.Dense(3)

        def call(self, inputs):
            return self.d(inputs)

    sub = Sub()
    sub(np.zeros((1, 5), "float32"))
    yield "subclassed", sub


def test_only_keras_forget_errors_escape():
    for label, model in _odd_models():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                graph = Graph(model)
                structured.shrink(model, _cut(graph), graph=graph)
        except Exception as error:  # anything else is a bug
            assert isinstance(error, KerasForgetError), f"{label}: {error!r}"


def test_shrink_checks_a_random_batch_when_no_sample_is_given(monkeypatch):
    model = _conv_op_model(lambda h: h * 2.0)
    graph, _ = _graph(model)
    masks = _cut(graph)
    seen = []
    check = structured.check_equivalent

    def spy(model, shrunk, masks, sample, **kwargs):
        seen.append(sample)
        return check(model, shrunk, masks, sample, **kwargs)

    monkeypatch.setattr(structured, "check_equivalent", spy)
    shrunk = structured.shrink(model, masks, graph=graph)
    (sample,) = seen
    assert sample.shape == (8, 6, 6, 2) and np.array_equal(sample, structured.random_sample(model))
    masked = structured.masked_copy(model, masks, graph)
    np.testing.assert_allclose(shrunk(sample), masked(sample), atol=1e-5)
    # A wrong rebuild is caught without data: slice a kept filter out of the shrunk model.
    monkeypatch.setattr(structured, "check_equivalent", check)
    bad = structured.shrink(model, masks, graph=graph)
    kernel, bias = bad.get_layer("conv").get_weights()
    bad.get_layer("conv").set_weights([kernel, bias + 1.0])
    with pytest.raises(KerasForgetError, match="differs"):
        structured.check_equivalent(model, bad, masks, sample, graph=graph)


def test_real_mobilenet_v3_small_shrinks_by_thirty_percent():
    start = time.perf_counter()
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV3Small(weights=None, input_shape=(32, 32, 3), classes=10)
    graph, messages = _graph(model)
    assert not messages, messages
    assert len(graph.prunable()) >= 25
    shrunk = structured.shrink(model, _cut(graph, 0.3), graph=graph)  # checked on random data
    assert structured.count_params(shrunk) < 0.7 * structured.count_params(model)
    assert time.perf_counter() - start < 30


def _with_lambda(km, function):
    km.utils.set_random_seed(0)
    inputs = km.Input((8, 8, 1))
    h = km.layers.Dense(12, activation="relu", name="hidden")(km.layers.Flatten()(inputs))
    h = km.layers.Lambda(function, name="fn")(h)
    return km.Model(inputs, km.layers.Dense(10, name="out")(h))


@pytest.mark.parametrize("flavor", ["keras3", "tf_keras"])
def test_a_channelwise_zero_keeping_lambda_is_followed_and_shrunk(flavor):
    import tf_keras

    km = keras if flavor == "keras3" else tf_keras
    model = _with_lambda(km, lambda t: t * 2.0)
    graph, messages = _graph(model)
    assert set(graph.prunable()) == {"hidden"} and not messages
    keep = np.arange(12) % 3 != 0
    shrunk = structured.shrink(model, {"hidden": keep}, graph=graph)  # checked equal to masked
    assert shrunk.get_layer("hidden").units == 8 and shrunk.get_layer("out").kernel.shape[0] == 8


@pytest.mark.parametrize(
    "function, why",
    [
        (lambda t: t * keras.ops.sum(t, axis=-1, keepdims=True), "mixes channels"),
        (lambda t: t + 1.0, "does not keep a zeroed channel at zero"),
        (lambda t: keras.ops.concatenate([t, t], axis=-1), "changes the shape"),
    ],
    ids=["mixes", "shifts", "widens"],
)
def test_a_lambda_the_probe_rejects_leaves_its_input_whole_naming_why(function, why):
    graph, messages = _graph(_with_lambda(keras, function))
    assert "hidden" not in graph.prunable()
    assert len(messages) == 1 and why in messages[0] and "'fn'" in messages[0], messages
