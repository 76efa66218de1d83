"""Class-conditional moment scores of units: hand-computed bounds and contracts."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_forget.data import Data
from keras_forget.errors import InvalidArgumentError
from keras_forget.introspect.graph import Graph
from keras_forget.scores import accumulate, units
from keras_forget.scores.class_moments import (
    ExpNormBound,
    FisherBound,
    spatial_norm,
    spatial_sum,
)


def _toy(hidden_kernel: np.ndarray) -> keras.Model:
    """Input(2) -> Dense(2, linear, fixed kernel, zero bias) "hidden" -> Dense(3)."""
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(2, name="hidden"), keras.layers.Dense(3, name="out")]
    )
    model.get_layer("hidden").set_weights([hidden_kernel, np.zeros(2, np.float32)])
    return model


IDENTITY = np.eye(2, dtype=np.float32)


def score_units(model, data, method, **kwargs) -> dict[str, np.ndarray]:
    """Runs :func:`accumulate.score_units` as the pipeline does: graph, checked data, classes."""
    data = None if data is None else Data.of(data, model)
    num_classes = int(model.output_shape[-1])
    return accumulate.score_units(Graph(model), data, method, num_classes=num_classes, **kwargs)


def _data(unit0: dict[int, list[float]], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Examples whose hidden unit 0 takes the given values per class (unit 1: noise)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label, values in unit0.items():
        for v in values:
            xs.append([v, rng.standard_normal()])
            ys.append(label)
    order = rng.permutation(len(ys))
    return np.asarray(xs, np.float32)[order], np.asarray(ys)[order]


def test_exp_norm_bound_matches_hand_computed_moments():
    # Class 0: |a| = 0 -> φ = 1 (E φ = 1, E φ² = 1). Class 1: |a| = ln 2 -> φ = 1/2
    # (E φ = 1/2, E φ² = 1/4). Bound = (1 - 1/2)² / (2 (1 + 1/4)) = 0.1.
    data = _data({0: [0.0] * 4, 1: [np.log(2.0), -np.log(2.0)] * 3})
    score = ExpNormBound(scale=1.0, min_samples=2)
    scores = score_units(_toy(IDENTITY), data, score, target_classes=[0], batch_size=3)
    np.testing.assert_allclose(scores["hidden"][0], 0.1, rtol=1e-5)
    # The bound is symmetric in the two groups.
    other = score_units(_toy(IDENTITY), data, score, target_classes=[1], batch_size=5)
    np.testing.assert_allclose(other["hidden"][0], 0.1, rtol=1e-5)


def test_fisher_bound_matches_hand_computed_moments():
    # s on class 0: {-1, 1}: m = (0, 1), S = diag(1, 0).
    # s on class 1: {1, 3}: m = (2, 5), S = [[1, 4], [4, 16]].
    # Δm = (-2, -4), S0 + S1 = [[2, 4], [4, 16]], F = Δmᵀ(S0+S1)⁻¹Δm = 2, T = F/(2+F) = 0.5.
    data = _data({0: [-1.0, 1.0] * 3, 1: [1.0, 3.0] * 3})
    score = FisherBound(ridge=0.0, min_samples=2)
    scores = score_units(_toy(IDENTITY), data, score, target_classes=[0], batch_size=4)
    np.testing.assert_allclose(scores["hidden"][0], 0.5, rtol=1e-6)


def test_fisher_bound_is_invariant_to_scaling_the_unit():
    data = _data({0: [-1.0, 1.0] * 3, 1: [1.0, 3.0] * 3})
    scaled = np.diag([7.5, 1.0]).astype(np.float32)
    score = FisherBound(ridge=0.0, min_samples=2)
    scores = score_units(_toy(scaled), data, score, target_classes=[0], batch_size=4)
    np.testing.assert_allclose(scores["hidden"][0], 0.5, rtol=1e-6)


@pytest.mark.parametrize("score", [ExpNormBound(), FisherBound()])
def test_statistics_cover_every_batch_not_only_the_last(score):
    data = _data({0: list(np.linspace(0, 2, 20)), 1: list(np.linspace(1, 4, 20))}, seed=1)
    whole = score_units(_toy(IDENTITY), data, score.fresh(), target_classes=[0], batch_size=64)
    split = score_units(_toy(IDENTITY), data, score.fresh(), target_classes=[0], batch_size=3)
    last = score_units(
        _toy(IDENTITY),
        (data[0][-6:], data[1][-6:]),
        ExpNormBound(min_samples=2),
        target_classes=[0],
    )
    np.testing.assert_allclose(split["hidden"], whole["hidden"], rtol=1e-4, atol=1e-7)
    assert not np.allclose(last["hidden"], whole["hidden"])


def test_saliency_is_the_best_class_bound_by_default():
    # Unit 0 tells class 0 from the rest; classes 1 and 2 look alike on it.
    data = _data({0: [5.0, 6.0] * 5, 1: [0.0, 1.0] * 5, 2: [0.0, 1.0] * 5})
    model = _toy(IDENTITY)
    graph = Graph(model)
    score = FisherBound(min_samples=2)
    score.reset(graph, graph.prunable(), 3)
    features = {"hidden": data[0] @ IDENTITY}
    score.update(features, data[1])
    per_class = score.per_class("hidden")[:, 0]
    assert per_class[0] > 0.9 and per_class[0] > per_class[1]
    np.testing.assert_allclose(score.result()["hidden"][0], per_class.max(), rtol=1e-6)
    low = FisherBound(min_samples=2, reduce="min")
    low.reset(graph, graph.prunable(), 3)
    low.update(features, data[1])
    np.testing.assert_allclose(low.result()["hidden"][0], per_class.min(), rtol=1e-6)


def test_spatial_sum_and_norm_reduce_the_map():
    a = np.arange(2 * 2 * 2 * 3, dtype=np.float64).reshape(2, 2, 2, 3)
    np.testing.assert_allclose(spatial_sum(a), a.sum(axis=(1, 2)))
    np.testing.assert_allclose(spatial_norm(a), np.sqrt((a**2).sum(axis=(1, 2))))


def test_too_few_examples_of_a_class_is_rejected():
    data = _data({0: [0.0, 1.0], 1: [1.0, 2.0] * 10})
    with pytest.raises(InvalidArgumentError, match=r"2 example\(s\) of class\(es\) \[0\]"):
        score_units(_toy(IDENTITY), data, ExpNormBound(min_samples=5), target_classes=[0])
    with pytest.raises(InvalidArgumentError, match="min_samples"):
        score_units(_toy(IDENTITY), data, FisherBound(min_samples=5))


@pytest.mark.parametrize("name", units.names())
def test_every_unit_score_round_trips_and_scores_every_unit(name):
    score = units.get(name)
    copy = units.get(units.serialize(score))
    assert type(copy) is type(score) and copy.get_config() == score.get_config()
    data = _data({0: list(np.linspace(0, 2, 10)), 1: list(np.linspace(1, 4, 10))})
    scores = score_units(_toy(IDENTITY), data, copy)
    assert set(scores) == {"hidden"}
    assert scores["hidden"].shape == (2,) and np.all(np.isfinite(scores["hidden"]))


def test_unknown_unit_method_is_rejected():
    with pytest.raises(InvalidArgumentError, match="valid: exp_norm"):
        units.get("nope")
    with pytest.raises(InvalidArgumentError):
        ExpNormBound(direction="sideways")


def test_l1_adds_the_filters_of_coupled_producers():
    x = keras.Input((4,))
    a = keras.layers.Dense(3, name="a")(x)
    b = keras.layers.Dense(3, name="b")(x)
    out = keras.layers.Dense(2, name="out")(keras.layers.Add()([a, b]))
    model = keras.Model(x, out)
    expected = sum(np.abs(model.get_layer(n).kernel.numpy()).sum(0) for n in "ab")
    scores = score_units(model, None, units.get("l1"))
    np.testing.assert_allclose(scores["a"], expected, rtol=1e-6)
