"""Attention heads as unit groups: graph, features, scores, masks, fine-tuning, shrink."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

import keras_forget as kf
from keras_forget.data import Data
from keras_forget.errors import UnsupportedLayerError
from keras_forget.introspect import heads
from keras_forget.introspect.graph import Graph
from keras_forget.introspect.registry import all_weights
from keras_forget.scores import units
from keras_forget.scores.accumulate import feature_model, score_units
from keras_forget.surgery import masking, structured

FLAVORS = ["keras3", "tf_keras"]
HEAD_WEIGHTS = {
    f"mha/{sub}/{w}" for sub in ("query", "key", "value") for w in ("kernel", "bias")
} | {"mha/attention_output/kernel"}


def _keras(flavor: str, seed: int = 0):
    """The Keras package of ``flavor``, seeded."""
    if flavor == "tf_keras":
        import tf_keras as km
    else:
        km = keras
    km.utils.set_random_seed(seed)
    return km


def _model(flavor: str = "keras3", seed: int = 0):
    km = _keras(flavor, seed)
    L = km.layers
    x = km.Input((8, 8))
    h = L.Dense(16, name="emb")(x)
    a = L.MultiHeadAttention(num_heads=4, key_dim=4, name="mha")(h, h)
    h = L.LayerNormalization(name="ln")(L.Add(name="add")([h, a]))
    return km.Model(x, L.Dense(10, name="out")(L.GlobalAveragePooling1D()(h)))


@pytest.fixture(scope="module")
def split(digits):
    (x, y), (x_test, y_test) = digits
    return (x.reshape(-1, 8, 8), y), (x_test.reshape(-1, 8, 8), y_test)


@pytest.fixture(scope="module")
def models(split):
    """``{flavor: trained model}``, each trained on first use."""
    (x, y), _ = split
    out = {}

    def get(flavor: str):
        if flavor not in out:
            model = _model(flavor)
            loss = _keras(flavor).losses.SparseCategoricalCrossentropy(from_logits=True)
            model.compile("adam", loss)
            model.fit(x, y, epochs=4, batch_size=64, verbose=0)
            out[flavor] = model
        return out[flavor]

    return get


@pytest.fixture(scope="module")
def trained(models):
    return models("keras3")


def _graph(model: keras.Model) -> Graph:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Graph(model)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_graph_lists_the_heads_as_an_internal_group(flavor):
    graph = _graph(_model(flavor))
    group = graph.groups["mha/heads"]
    assert (group.size, group.kind, group.producers, group.prunable) == (4, "heads", ["mha"], True)
    assert set(graph.prunable()) == {"mha/heads"}
    # The output is still a new group of d_model channels, joined with emb by the Add, left whole.
    assert graph.group_of("mha") is graph.groups["emb"] and not graph.groups["emb"].prunable
    assert [size for _, size in graph.layouts["mha"].segments] == [16]
    assert graph.roles == {"emb": "producer", "out": "producer", "mha": "attention"}


def _attention(q, k, v, causal=False):
    """Per-head attention outputs ``[B, T, N, H]`` of projected inputs, in numpy."""
    scores = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(q.shape[-1])
    if causal:
        scores = np.where(np.tril(np.ones(scores.shape[-2:], bool)), scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return np.einsum("bnts,bsnh->btnh", weights, v)


def _project(layer, x):
    return np.einsum("btd,dnh->btnh", x, layer.kernel.numpy()) + layer.bias.numpy()


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("form", ["cross", "cross_key", "causal"])
def test_head_features_are_the_norms_of_each_heads_attention_output(form, flavor):
    km = _keras(flavor, 1)
    L = km.layers
    q_in, v_in = km.Input((5, 6)), km.Input((7, 3))
    mha = L.MultiHeadAttention(num_heads=3, key_dim=2, value_dim=4, name="mha")
    if form == "cross":
        out = mha(q_in, v_in)
    elif form == "cross_key":
        out = mha(q_in, v_in, L.Dense(3, name="k")(v_in))
    else:
        v_in = q_in
        out = mha(q_in, q_in, use_causal_mask=True)
    inputs = [q_in] if form == "causal" else [q_in, v_in]
    model = km.Model(inputs, L.Dense(2, name="out")(L.Flatten()(out)))
    graph = _graph(model)
    assert graph.groups["mha/heads"].prunable
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((4, *tuple(t.shape)[1:])).astype("f4") for t in inputs]
    features = np.asarray(feature_model(graph, ["mha/heads"])(xs[0] if len(xs) == 1 else xs))
    query, value = xs[0], xs[-1]
    key = np.asarray(model.get_layer("k")(value)) if form == "cross_key" else value
    q = _project(mha._query_dense, query)
    k, v = _project(mha._key_dense, key), _project(mha._value_dense, value)
    expected = np.linalg.norm(_attention(q, k, v, causal=form == "causal"), axis=-1)
    assert features.shape == (4, 5, 3)
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_masking_a_head_equals_zeroing_its_slices_by_hand(models, split, flavor):
    trained = models(flavor)
    graph = _graph(trained)
    unit_masks = {"mha/heads": np.array([True, False, True, True])}
    masks = structured.weight_masks(graph, unit_masks)
    assert set(masks) == HEAD_WEIGHTS and set(masks) <= set(all_weights(trained))
    assert not masks["mha/query/kernel"][:, 1].any() and masks["mha/query/kernel"][:, 0].all()
    assert (
        not masks["mha/value/bias"][1].any() and not masks["mha/attention_output/kernel"][1].any()
    )
    masked = structured.masked_copy(trained, unit_masks, graph)
    held = masking.mask_weights(trained, masks)  # constraints (Keras 3), HeldMask (tf_keras)
    by_hand = _keras(flavor).models.clone_model(trained)
    by_hand.set_weights(trained.get_weights())
    mha = by_hand.get_layer("mha")
    for variable, index in (
        (mha._value_dense.kernel, (slice(None), 1)),
        (mha._value_dense.bias, 1),
        (mha._output_dense.kernel, 1),
    ):
        value = variable.numpy()
        value[index] = 0
        variable.assign(value)
    x = split[1][0][:64]
    np.testing.assert_allclose(masked(x), by_hand(x), atol=1e-5)
    np.testing.assert_allclose(held(x), by_hand(x), atol=1e-5)
    assert not np.allclose(masked(x), trained(x), atol=1e-3)


@pytest.mark.parametrize(
    ("method", "flavor"),
    [(m, "keras3") for m in ("exp_norm", "fisher_bound", "l1", "random")]
    + [(m, "tf_keras") for m in ("exp_norm", "l1")],
)
def test_unit_scores_rank_heads(models, split, method, flavor):
    (x, y), _ = split
    trained = models(flavor)
    data = Data.of((x[:300], y[:300]), trained)
    scores = score_units(_graph(trained), data, units.get(method), num_classes=10)
    assert set(scores) == {"mha/heads"} and scores["mha/heads"].shape == (4,)
    assert np.all(np.isfinite(scores["mha/heads"]))
    if method == "l1":
        mha = trained.get_layer("mha")
        value, output = mha._value_dense.kernel.numpy(), mha._output_dense.kernel.numpy()
        expected = np.abs(value).sum((0, 2)) + np.abs(output).sum((1, 2))
        np.testing.assert_allclose(scores["mha/heads"], expected, rtol=1e-5)
        np.testing.assert_allclose(heads.l1(mha), expected, rtol=1e-6)


def _head_slices(model: keras.Model, removed: np.ndarray) -> list[np.ndarray]:
    mha = model.get_layer("mha")
    return [
        mha._query_dense.kernel.numpy()[:, removed],
        mha._key_dense.bias.numpy()[removed],
        mha._value_dense.kernel.numpy()[:, removed],
        mha._output_dense.kernel.numpy()[removed],
    ]


@pytest.mark.parametrize("flavor", FLAVORS)
def test_removed_heads_stay_zero_through_fine_tuning(models, split, flavor):
    train, test = split
    result = kf.prune(
        models(flavor),
        train,
        sparsity=0.5,
        granularity="unit",
        fine_tune=kf.FineTune(epochs=1),
        eval_data=test,
        verbose=False,
    )
    kept = result.unit_masks["mha/heads"]
    assert kept.sum() == 2
    assert all(not np.any(s) for s in _head_slices(result.model, ~kept))
    assert all(np.all(s != 0) for s in _head_slices(result.model, kept))
    assert result.report.pruned == 2


def test_masked_tf_keras_heads_are_read_back_and_exported(models, split, tmp_path):
    train, test = split
    result = kf.prune(models("tf_keras"), train, sparsity=0.5, granularity="unit", verbose=False)
    held = kf.masks_of(result.model)
    assert set(held) == set(result.masks) == HEAD_WEIGHTS
    assert all(np.array_equal(held[k], result.masks[k]) for k in held)
    report = kf.export(result.model, tmp_path, tflite=True, sample=test[0][:8])
    assert report.max_abs_diff["model.tflite"] < 1e-4


def test_prune_for_class_removes_heads(trained, split):
    train, test = split
    result = kf.prune_for_class(
        trained, train, 3, granularity="unit", eval_data=test, verbose=False
    )
    assert set(result.unit_masks) == {"mha/heads"}
    assert result.unit_masks["mha/heads"].any() and result.report.after is not None
    assert set(result.masks) <= HEAD_WEIGHTS
    print(result.report)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_shrink_drops_heads(models, split, flavor):
    train, test = split
    trained = models(flavor)
    result = kf.prune(trained, train, sparsity=0.5, granularity="unit", shrink=True, verbose=False)
    shrunk = result.model
    assert shrunk.get_layer("mha").get_config()["num_heads"] == 2
    assert structured.count_params(shrunk) < structured.count_params(trained)
    masked = structured.masked_copy(trained, result.unit_masks)
    x = test[0][:128]
    np.testing.assert_allclose(shrunk(x), masked(x), atol=1e-5)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_heads_read_with_an_attention_mask_are_left_whole(flavor):
    km = _keras(flavor)
    L = km.layers
    x, m = km.Input((6, 4)), km.Input((6, 6))
    a = L.MultiHeadAttention(2, 2, name="mha")(x, x, attention_mask=m)
    model = km.Model([x, m], L.Dense(2, name="out")(L.Flatten()(a)))
    with pytest.warns(UserWarning, match="mha/heads: the heads of layer 'mha'.*attention_mask"):
        graph = Graph(model)
    assert not graph.groups["mha/heads"].prunable
    with pytest.raises(UnsupportedLayerError, match="mha/heads"):
        structured.weight_masks(graph, {"mha/heads": np.array([True, False])})
