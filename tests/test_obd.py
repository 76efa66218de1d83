"""OBD saliency against a hand-computed Gauss-Newton diagonal, and where it beats magnitude."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_forget as kf
from keras_forget.data import Data
from keras_forget.scores import OBD, Objective
from keras_forget.scores.accumulate import score

# Input 2 is always 0 on the data: its large weights are the least salient of all.
# Input 0 is large, so its small weight 0.05 matters more than its magnitude says.
W1 = np.array([[0.05, 0.1], [1.0, -0.5], [3.0, 3.0]], np.float32)
B1 = np.array([0.1, 0.2], np.float32)
W2 = np.array([[1.0, -1.0], [-0.5, 0.5]], np.float32)
B2 = np.zeros(2, np.float32)


def _data(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = np.stack([rng.uniform(5, 10, n), rng.uniform(-1, 1, n), np.zeros(n)], 1)
    x = x.astype(np.float32)
    return x, _forward(x, W1)[0].argmax(-1)


def _forward(x: np.ndarray, w1: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits, hidden activations and ReLU derivative, in numpy."""
    a = x @ w1 + B1
    h = np.maximum(a, 0.0)
    return h @ W2 + B2, h, (a > 0).astype(np.float64)


def _log_probs(x: np.ndarray, w1: np.ndarray) -> np.ndarray:
    z = _forward(x, w1)[0].astype(np.float64)
    z -= z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _kl(x: np.ndarray, w1: np.ndarray) -> float:
    """Mean KL(original ‖ pruned) of the predictions: what the GGN is the Hessian of."""
    before, after = _log_probs(x, W1), _log_probs(x, w1)
    return float(np.mean(np.sum(np.exp(before) * (before - after), -1)))


def _numpy_obd(x: np.ndarray) -> dict[str, np.ndarray]:
    """½ · diag(GGN) · w², with GGN = mean_n Jᵀ (diag p − p pᵀ) J in the logits."""
    z, h, r = _forward(x, W1)
    z = z.astype(np.float64) - z.max(-1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    hess = np.einsum("nc,cd->ncd", p, np.eye(2)) - p[:, :, None] * p[:, None, :]
    # dz/dW2[j, c] = h_j e_c  ->  h_j² H_cc
    g2 = np.einsum("nj,ncc->jc", h**2, hess) / len(x)
    # dz/dW1[i, j] = x_i r_j W2[j, :]  ->  (x_i r_j)² W2[j]ᵀ H W2[j]
    quad = np.einsum("jc,ncd,jd->nj", W2, hess, W2)
    g1 = np.einsum("ni,nj,nj->ij", x**2, r**2, quad) / len(x)
    return {"hidden/kernel": 0.5 * g1 * W1**2, "out/kernel": 0.5 * g2 * W2**2}


def _model(flavor: str):
    km = keras
    if flavor == "tf_keras":
        import tf_keras as km
    model = km.Sequential(
        [
            km.Input((3,)),
            km.layers.Dense(2, activation="relu", name="hidden"),
            km.layers.Dense(2, name="out"),
        ]
    )
    model.set_weights([W1, B1, W2, B2])
    return model


@pytest.mark.parametrize("flavor", ["keras3", "tf_keras"])
def test_obd_equals_hand_computed_gauss_newton_diagonal(flavor):
    x, y = _data()
    objective = Objective(from_logits=True, target="log_likelihood")
    model = _model(flavor)
    scores = score(
        model, Data.of((x, y), model), OBD(estimator="ggn"), objective, batch_size=16, verbose=False
    )
    expected = _numpy_obd(x)
    assert set(scores) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(scores[key], value, rtol=2e-4, atol=1e-9, err_msg=key)


def test_obd_prunes_the_dead_weight_magnitude_prunes_the_useful_small_one():
    x, y = _data()
    model = _model("keras3")
    one = 1 / 10  # one of the 10 kernel weights
    by_obd = kf.prune(model, (x, y), sparsity=one, method="obd", verbose=False).masks
    by_size = kf.prune(model, (x, y), sparsity=one, method="magnitude", verbose=False).masks
    assert np.argwhere(~by_obd["hidden/kernel"]).tolist() == [[2, 0]]  # |w| = 3, input always 0
    assert np.argwhere(~by_size["hidden/kernel"]).tolist() == [[0, 0]]  # |w| = 0.05
    assert by_obd["out/kernel"].all() and by_size["out/kernel"].all()
    obd_cost = _kl(x, W1 * by_obd["hidden/kernel"])
    size_cost = _kl(x, W1 * by_size["hidden/kernel"])
    assert obd_cost == pytest.approx(0.0, abs=1e-12)
    assert size_cost > 0.01


def test_obd_prunes_in_rounds_by_default_each_on_the_network_pruned_so_far(
    trained_keras3, digits, monkeypatch
):
    from keras_forget import api, pipeline

    seen = []
    make = pipeline.rescorer

    def recording(*args, **kwargs):
        rescore = make(*args, **kwargs)

        def wrapped(masks):
            seen.append(None if masks is None else {k: m.copy() for k, m in masks.items()})
            return rescore(masks)

        return wrapped

    monkeypatch.setattr(pipeline, "rescorer", recording)
    (x, y), test = digits
    data = (x[:256], y[:256])
    result = kf.prune(
        trained_keras3, data, sparsity=0.9, method="obd", eval_data=test, verbose=False
    )
    rounds = api.DEFAULT_ROUNDS["obd"]
    assert len(seen) == rounds and seen[0] is None
    fractions = [1 - np.mean(np.concatenate([m.ravel() for m in s.values()])) for s in seen[1:]]
    total = sum(m.size for m in result.masks.values())
    ramp = kf.selection.ramp(0.9, rounds)[:-1]
    assert fractions == pytest.approx(ramp, abs=1 / total)  # rescored after each round
    for before, after in zip(seen[1:], [*seen[2:], result.masks]):
        assert all(not np.any(after[k] & ~before[k]) for k in before)  # masks only shrink
    assert result.report.pruned == round(0.9 * total)
    one_shot = kf.prune(
        trained_keras3, data, sparsity=0.9, method="obd", rounds=1, eval_data=test, verbose=False
    )
    assert len(seen) == rounds  # rounds=1 scores once, without the re-scoring loop
    assert result.report.after.accuracy > one_shot.report.after.accuracy + 0.1


def test_min_density_and_lamp_reach_prune(trained_keras3, digits):
    (x, y), _ = digits
    data = (x[:128], y[:128])
    result = kf.prune(
        trained_keras3, data, sparsity=0.9, method="magnitude", min_density=0.08, verbose=False
    )
    for mask in result.masks.values():
        assert mask.mean() >= 0.08
    lamp = kf.prune(trained_keras3, data, sparsity=0.9, normalize="lamp", verbose=False)
    assert lamp.report.pruned == result.report.pruned
    with pytest.raises(kf.InvalidArgumentError, match="min_density"):
        kf.prune(trained_keras3, data, sparsity=0.9, min_density=0.2, verbose=False)
    with pytest.raises(kf.InvalidArgumentError, match="rounds"):
        kf.prune(trained_keras3, data, sparsity=0.5, method="obd", rounds=0, verbose=False)
    with pytest.raises(kf.InvalidArgumentError, match="granularity='weight'"):
        kf.prune(trained_keras3, data, sparsity=0.5, granularity="unit", rounds=3, verbose=False)
