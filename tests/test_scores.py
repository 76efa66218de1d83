"""Every score against numpy on a 2-layer model, and the contract all scores share."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_forget import scores
from keras_forget.data import Data
from keras_forget.errors import InvalidArgumentError
from keras_forget.scores import Objective
from keras_forget.scores.accumulate import score as run_score
from keras_forget.scores.accumulate import score_split

IN, HID, C, N = 4, 3, 3, 6


@pytest.fixture(scope="module")
def toy():
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((IN,)),
            keras.layers.Dense(HID, activation="tanh", use_bias=False, name="l1"),
            keras.layers.Dense(C, use_bias=False, name="l2"),
        ]
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, IN)).astype("float32")
    y = rng.integers(0, C, N)
    return model, x, y


def _jacobians(model, x):
    """Per-example ∂z/∂W1 [n, C, IN, HID] and ∂z/∂W2 [n, C, HID, C] in numpy."""
    w1, w2 = (v.numpy().astype(np.float64) for v in model.weights)
    h = np.tanh(x @ w1)
    dz_dw1 = np.einsum("ni,nj,jk->nkij", x, 1 - h**2, w2)
    dz_dw2 = np.einsum("nj,kl->nljk", h, np.eye(C)).transpose(0, 1, 2, 3)
    return w1, w2, h, dz_dw1, dz_dw2


def _objective_grads(model, x, y, target):
    w1, w2, h, j1, j2 = _jacobians(model, x)
    z = h @ w2
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    if target == "centered_logit":
        coeff = np.eye(C)[y] - 1.0 / C
    else:
        coeff = np.eye(C)[y] - p
    g1 = np.einsum("nk,nkij->nij", coeff, j1)
    g2 = np.einsum("nk,nkij->nij", coeff, j2)
    return (w1, w2), (g1, g2), (j1, j2), p


def _run(model, x, y, score, target="centered_logit"):
    return run_score(
        model,
        Data.of((x, y), model),
        score,
        Objective(from_logits=True, target=target),
        batch_size=4,
        verbose=False,
    )


@pytest.mark.parametrize("target", ["centered_logit", "log_likelihood"])
def test_gradxweight_matches_numpy(toy, target):
    model, x, y = toy
    (w1, w2), (g1, g2), _, _ = _objective_grads(model, x, y, target)
    got = _run(model, x, y, scores.GradXWeight(), target)
    np.testing.assert_allclose(got["l1/kernel"], np.abs(w1 * g1).mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got["l2/kernel"], np.abs(w2 * g2).mean(0), rtol=1e-4, atol=1e-6)
    signed = _run(model, x, y, scores.GradXWeight(signed=True), target)
    np.testing.assert_allclose(signed["l1/kernel"], (w1 * g1).mean(0), rtol=1e-4, atol=1e-6)


def test_fisher_matches_numpy(toy):
    model, x, y = toy
    _, (g1, g2), _, _ = _objective_grads(model, x, y, "log_likelihood")
    got = _run(model, x, y, scores.Fisher(), "log_likelihood")
    np.testing.assert_allclose(got["l1/kernel"], (g1**2).mean(0), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(got["l2/kernel"], (g2**2).mean(0), rtol=1e-4, atol=1e-7)


def test_fisher_obd_is_half_fisher_times_w_squared(toy):
    model, x, y = toy
    (w1, w2), (g1, g2), _, _ = _objective_grads(model, x, y, "log_likelihood")
    got = _run(model, x, y, scores.FisherOBD(), "log_likelihood")
    expected = {
        "l1/kernel": 0.5 * (g1**2).mean(0) * w1**2,
        "l2/kernel": 0.5 * (g2**2).mean(0) * w2**2,
    }
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-4, atol=1e-9)


def test_compression_by_fisher_ranks_by_saliency_forgetting_by_fisher(trained_keras3, digits):
    import keras_forget as kf

    (x, y), _ = digits
    data = (x[:128], y[:128])
    compressed = kf.prune(trained_keras3, data, sparsity=0.5, method="fisher", verbose=False)
    assert compressed.report.method == "fisher_obd"
    forgot = kf.prune_for_class(
        trained_keras3, data, 3, method="fisher", amount=0.01, verbose=False
    )
    assert forgot.report.method == "fisher"
    assert type(scores.get("fisher")) is scores.Fisher


def test_obd_is_half_gauss_newton_diagonal_times_w_squared(toy):
    model, x, y = toy
    (w1, w2), _, (j1, j2), p = _objective_grads(model, x, y, "log_likelihood")
    hess = np.einsum("nk,kl->nkl", p, np.eye(C)) - np.einsum("nk,nl->nkl", p, p)
    diag1 = np.einsum("nkij,nkl,nlij->ij", j1, hess, j1) / N
    diag2 = np.einsum("nkij,nkl,nlij->ij", j2, hess, j2) / N
    got = _run(model, x, y, scores.OBD(estimator="ggn"))
    np.testing.assert_allclose(got["l1/kernel"], 0.5 * diag1 * w1**2, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(got["l2/kernel"], 0.5 * diag2 * w2**2, rtol=1e-4, atol=1e-7)


def test_obd_from_probabilities_equals_from_logits(toy):
    model, x, y = toy
    soft = keras.Sequential([model, keras.layers.Softmax()])
    from_logits = _run(model, x, y, scores.OBD(estimator="ggn"))
    from_probs = run_score(
        soft,
        Data.of((x, y), soft),
        scores.OBD(estimator="ggn"),
        Objective(from_logits=False),
        verbose=False,
    )
    for key in from_logits:
        np.testing.assert_allclose(from_probs[key], from_logits[key], rtol=1e-3, atol=1e-7)


def _hessian_diagonal(model, x, y):
    """Exact diagonal of the Hessian of the mean cross-entropy, by nested tapes."""
    flat = [v for v in model.trainable_variables]
    with tf.GradientTape(persistent=True) as outer:
        with tf.GradientTape() as inner:
            logits = model(x)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
            )
        grads = inner.gradient(loss, flat)
    diag = []
    for v, g in zip(flat, grads):
        jac = outer.jacobian(g, v).numpy().reshape(v.numpy().size, v.numpy().size)
        diag.append(np.diag(jac).reshape(v.shape))
    return diag


def test_hutchinson_estimates_the_hessian_diagonal(toy):
    model, x, y = toy
    exact = _hessian_diagonal(model, x, y)
    noisy = _run(model, x, y, scores.OBD(estimator="hutchinson", probes=400, seed=3))
    w = [v.numpy() for v in model.weights]
    a = np.concatenate([(0.5 * d * wi**2).ravel() for d, wi in zip(exact, w)])
    b = np.concatenate([v.ravel() for v in noisy.values()])
    assert np.corrcoef(a, b)[0, 1] > 0.9


def test_sampled_labels_estimate_the_exact_gauss_newton_diagonal(toy):
    model, x, y = toy
    exact = _run(model, x, y, scores.OBD(estimator="ggn"))
    errors = []
    for probes in (1, 64):
        sampled = _run(model, x, y, scores.OBD(estimator="sampled", probes=probes, seed=1))
        a = np.concatenate([exact[k].ravel() for k in exact])
        b = np.concatenate([sampled[k].ravel() for k in exact])
        errors.append(np.abs(b - a).sum() / np.abs(a).sum())
    assert errors[1] < 0.5 * errors[0]  # the error falls as probes grow
    assert errors[1] < 0.2
    again = _run(model, x, y, scores.OBD(estimator="sampled", seed=1))
    first = _run(model, x, y, scores.OBD(estimator="sampled", seed=1))
    for key in first:
        np.testing.assert_array_equal(again[key], first[key])  # seeded


def test_the_most_probable_classes_give_the_diagonal_from_below_exact_with_every_class(toy):
    model, x, y = toy
    exact = _run(model, x, y, scores.OBD(estimator="ggn"))
    for key, value in _run(model, x, y, scores.OBD(classes=C)).items():
        np.testing.assert_allclose(value, exact[key], rtol=1e-6, atol=1e-12)
    a = np.concatenate([exact[k].ravel() for k in exact])
    errors, previous = [], None
    for m in range(1, C):
        top = _run(model, x, y, scores.OBD(classes=m))
        for key in exact:  # each dropped column adds p_c · (a gradient)² >= 0
            assert np.all(top[key] <= exact[key] * (1 + 1e-5) + 1e-12), (m, key)
            if previous is not None:
                assert np.all(previous[key] <= top[key] * (1 + 1e-5) + 1e-12), (m, key)
        errors.append(np.abs(np.concatenate([top[k].ravel() for k in exact]) - a).sum() / a.sum())
        previous = top
    assert errors == sorted(errors, reverse=True) and errors[0] > errors[-1]


def test_stratified_columns_estimate_the_exact_diagonal_without_bias(toy):
    model, x, y = toy
    exact = _run(model, x, y, scores.OBD(estimator="ggn"))
    a = np.concatenate([exact[k].ravel() for k in exact])

    def flat(score):
        found = _run(model, x, y, score)
        return np.concatenate([found[k].ravel() for k in exact])

    assert scores.OBD(estimator="stratified").classes == 2
    # One class left over: it is drawn surely, and the estimate is exact.
    sure = flat(scores.OBD(estimator="stratified", classes=C - 1))
    np.testing.assert_allclose(sure, a, rtol=1e-5, atol=1e-12)
    draws = [flat(scores.OBD(estimator="stratified", classes=1, seed=s)) for s in range(20)]
    one = np.abs(draws[0] - a).sum() / a.sum()
    mean = np.abs(np.mean(draws, axis=0) - a).sum() / a.sum()
    assert mean < 0.5 * one  # the draws average out to the exact diagonal
    sampled = [flat(scores.OBD(estimator="sampled", seed=s)) for s in range(6)]
    sampled_error = np.mean([np.abs(d - a).sum() / a.sum() for d in sampled])
    stratified_error = np.mean([np.abs(d - a).sum() / a.sum() for d in draws[:6]])
    assert stratified_error < sampled_error  # the top class taken exactly lowers the error


def test_obd_rejects_bad_probes_and_classes():
    with pytest.raises(InvalidArgumentError, match="`probes`"):
        scores.OBD(estimator="sampled", probes=0)
    with pytest.raises(InvalidArgumentError, match="`classes`"):
        scores.OBD(classes=0)
    with pytest.raises(InvalidArgumentError, match="estimator='ggn' or 'stratified' only"):
        scores.OBD(estimator="sampled", classes=2)


def test_magnitude_and_random(toy):
    model, x, y = toy
    mag = _run(model, x, y, scores.Magnitude())
    np.testing.assert_array_equal(mag["l2/kernel"], np.abs(model.weights[1].numpy()))
    r1 = _run(model, x, y, scores.Random(seed=5))
    r2 = _run(model, x, y, scores.Random(seed=5))
    r3 = _run(model, x, y, scores.Random(seed=6))
    np.testing.assert_array_equal(r1["l1/kernel"], r2["l1/kernel"])
    assert not np.array_equal(r1["l1/kernel"], r3["l1/kernel"])


@pytest.mark.parametrize("name", scores.names())
def test_contract_shape_finite_config_round_trip(toy, name):
    model, x, y = toy
    score = scores.get(name)
    result = _run(model, x, y, score)
    assert set(result) == {"l1/kernel", "l2/kernel"}
    for key, weight in zip(result, model.weights):
        assert result[key].shape == tuple(weight.shape)
        assert np.all(np.isfinite(result[key]))
        assert np.all(result[key] >= 0) or getattr(score, "signed", False)
    copy = scores.get(scores.serialize(score))
    assert type(copy) is type(score) and copy.get_config() == score.get_config()
    again = _run(model, x, y, copy)
    for key in result:
        np.testing.assert_allclose(again[key], result[key], rtol=1e-5)


def test_get_rejects_unknown_names_listing_the_valid_ones():
    with pytest.raises(InvalidArgumentError, match="gradxweight"):
        scores.get("grad_x_weight")
    with pytest.raises(InvalidArgumentError, match="method"):
        scores.get(42)


def test_a_user_instance_is_used_as_is():
    mine = scores.Random(seed=9)
    assert scores.get(mine) is mine


def test_rescoring_the_same_model_reuses_its_compiled_function_and_sees_new_weights(toy):
    model, x, y = toy
    score = scores.GradXWeight()
    first = _run(model, x, y, score)
    run = score._run
    original = model.weights[1].numpy()
    model.weights[1].assign(original * 2.0)
    try:
        second = _run(model, x, y, score)
    finally:
        model.weights[1].assign(original)
    assert score._run is run
    np.testing.assert_allclose(second["l1/kernel"], 2.0 * first["l1/kernel"], rtol=1e-4)


class _Batches(scores.base.Score):
    """Records each batch it is given (its sums are zeros)."""

    seen: list = []

    def get_config(self):
        return {}

    def _accumulate(self, x, y):
        _Batches.seen.append((id(self), np.array(x), np.array(y)))
        return {k: np.zeros(w.variable.shape) for k, w in self._weights.items()}


def test_a_split_scores_each_example_once_in_full_batches_per_side(toy):
    model = toy[0]
    rng = np.random.default_rng(3)
    x = rng.normal(size=(100, IN)).astype("float32")
    y = rng.integers(0, C, 100)
    _Batches.seen.clear()
    score_split(model, Data.of((x, y), model), _Batches(), Objective(), [1], batch_size=16,
                verbose=False)  # fmt: skip
    sides = {}
    for owner, bx, by in _Batches.seen:
        sides.setdefault(owner, []).append((bx, by))
    assert len(sides) == 2
    for batches in sides.values():
        sizes = [len(by) for _, by in batches]
        assert all(s == 16 for s in sizes[:-1]) and 0 < sizes[-1] <= 16, sizes
        labels = np.concatenate([by for _, by in batches])
        forget = bool(labels[0] == 1)
        assert np.all((labels == 1) == forget)
        chosen = (y == 1) == forget
        rows = np.concatenate([bx for bx, _ in batches])
        order = np.lexsort(rows.T)
        np.testing.assert_array_equal(rows[order], x[chosen][np.lexsort(x[chosen].T)])
