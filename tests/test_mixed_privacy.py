"""Mixed-privacy forgetting: linearization, exact quadratic solves, forgetting, bad input."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_forget as kf
from keras_forget.errors import InvalidArgumentError, NotAModelError
from keras_forget.mixed_privacy import MixedLinear, SolveReport
from keras_forget.mixed_privacy.preconditioner import Directions
from keras_forget.mixed_privacy.solve import conjugate_gradient

N, D, K = 60, 8, 4
LAM = 1e-2


@pytest.fixture(scope="module")
def core():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((D,)),
            keras.layers.Dense(16, activation="leaky_relu", name="hidden"),
            keras.layers.Dense(K, name="logits"),
        ],
        name="core",
    )
    return model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(N, D)).astype("float32"), rng.integers(0, K, N)


def _weights(model):
    return [w.copy() for w in model.get_weights()]


def test_linearization_is_the_network_at_zero_and_its_first_order_expansion(core, data):
    x, _ = data
    ml = MixedLinear(core, "last:2", weight_decay=LAM)
    base = core.predict(x, verbose=0)
    assert np.abs(ml.predict(x) - base).max() <= 1e-6
    assert ml.num_parameters == D * 16 + 16 + 16 * K + K

    d = np.random.default_rng(1).normal(size=ml.num_parameters)
    d /= np.linalg.norm(d)
    ml._set_delta(d)
    jd = ml.predict(x) - base  # J·d
    moved = keras.models.clone_model(core)
    errors = []
    for eps in (1e-2, 1e-3):
        parts = ml._objective.split(eps * d)
        moved.set_weights([w + p.numpy() for w, p in zip(core.get_weights(), parts)])
        diff = moved(x).numpy() - base
        errors.append(np.linalg.norm(diff - eps * jd) / np.linalg.norm(eps * jd))
    assert errors[0] < 1e-2 and errors[1] < 2e-3
    assert errors[1] < errors[0] / 2  # the remainder is O(ε)


def test_cg_solve_equals_closed_form_least_squares(core, data):
    x, y = data
    ml = MixedLinear(core, "last:2", weight_decay=LAM)
    report = ml.solve((x, y), tol=1e-7)
    assert isinstance(report, SolveReport) and report.examples == N
    assert report.residual < 1e-5

    variables = [v for layer in core.layers for v in layer.trainable_weights]
    with tf.GradientTape() as tape:
        out = core(x)
    jac = tape.jacobian(out, variables)  # the test only: J of shape (N, K, *w.shape)
    J = np.concatenate([j.numpy().reshape(N * K, -1) for j in jac], axis=1).astype(np.float64)
    t = 5.0 * np.eye(K)[y]
    r = (t - out.numpy()).reshape(-1)
    # ∇L = (2/n) Jᵀ(f + JΔ − t) + λΔ = 0  <=>  (JᵀJ + λn/2 I) Δ = Jᵀ(t − f)
    exact = np.linalg.solve(J.T @ J + LAM * N / 2 * np.eye(J.shape[1]), J.T @ r)
    assert np.linalg.norm(ml.delta - exact) / np.linalg.norm(exact) <= 1e-4


def test_forget_equals_retraining_on_the_remaining_data(core, data):
    x, y = data
    ml = MixedLinear(core, "last:2", weight_decay=LAM)
    ml.fit((x, y), epochs=2, batch_size=16, verbose=False)  # forget must not need the optimum
    ml.solve((x, y))
    assert ml.fitted_examples == N
    gone = np.random.default_rng(2).choice(N, N // 10, replace=False)
    keep = np.setdiff1d(np.arange(N), gone)
    report = ml.forget((x[gone], y[gone]), remaining=(x[keep[::-1]], y[keep[::-1]]))
    assert report.converged and report.examples == len(keep)
    assert ml.fitted_examples == len(keep)

    retrained = MixedLinear(core, "last:2", weight_decay=LAM)
    retrained.solve((x[keep], y[keep]))
    target = retrained.delta
    assert np.linalg.norm(ml.delta - target) / np.linalg.norm(target) <= 1e-3
    np.testing.assert_allclose(ml.predict(x), retrained.predict(x), atol=1e-3)


def test_datasets_one_hot_labels_and_other_dtypes_are_the_same_examples(core, data):
    x, y = data
    ml = MixedLinear(core, "last:1", weight_decay=LAM)
    ml.solve((x, y), tol=1e-7)
    from_dataset = MixedLinear(core, "last:1", weight_decay=LAM)
    ds = tf.data.Dataset.from_tensor_slices((x, np.eye(K, dtype="float32")[y])).batch(7)
    from_dataset.solve(ds, tol=1e-7)
    np.testing.assert_allclose(from_dataset.delta, ml.delta, rtol=1e-4, atol=1e-5)
    # data given in float64: matched by content, not by dtype, and fed as float32
    ml.forget((x[:5].astype("float64"), y[:5]), remaining=(x[5:].astype("float64"), y[5:]))
    assert ml.fitted_examples == N - 5


def test_fit_lowers_the_loss_towards_the_exact_optimum(core, data):
    x, y = data
    ml = MixedLinear(core, "last:1", weight_decay=LAM)
    start = ml.loss((x, y))
    losses = ml.fit((x, y), epochs=3, batch_size=16, learning_rate=0.01, verbose=False)
    assert len(losses) == 3 and losses[-1] < losses[0]
    fitted = ml.loss((x, y))
    ml.solve((x, y))
    assert ml.loss((x, y)) <= fitted + 1e-6 < start


def test_forget_all_restores_the_core_outputs(core, data):
    x, y = data
    ml = MixedLinear(core, ["logits"], weight_decay=LAM)
    ml.solve((x, y))
    assert np.abs(ml.predict(x) - core.predict(x, verbose=0)).max() > 1e-2
    ml.forget_all()
    assert not ml.delta.any() and ml.fitted_examples == 0
    assert np.abs(ml.predict(x) - core.predict(x, verbose=0)).max() <= 1e-6


def test_bad_forget_requests_raise_and_leave_delta_unchanged(core, data):
    x, y = data
    ml = MixedLinear(core, "last:2", weight_decay=LAM)
    with pytest.raises(InvalidArgumentError, match="fit or solve first"):
        ml.forget((x[:3], y[:3]), remaining=(x[3:], y[3:]))
    ml.solve((x[:50], y[:50]))
    before = ml.delta
    stranger = (x[50:53], y[50:53])  # never fitted
    changed_label = (x[:3], (y[:3] + 1) % K)
    bad_calls = [
        (dict(forget_data=stranger, remaining=(x[:50], y[:50])), "not part of the user data"),
        (dict(forget_data=changed_label, remaining=(x[3:50], y[3:50])), "not part"),
        (dict(forget_data=(x[:50], y[:50]), remaining=None), "forget_all"),
        (dict(forget_data=(x[:3], y[:3]), remaining=None), "`remaining` is required"),
        (dict(forget_data=(x[:3], y[:3]), remaining=(x[:50], y[:50])), "exactly the fitted"),
        (dict(forget_data=(x[:3], y[:3]), remaining=(x[3:40], y[3:40])), "exactly the fitted"),
        (dict(forget_data=(x[:3], np.full(3, K)), remaining=(x[3:50], y[3:50])), "forget_data"),
        (dict(forget_data=(x[:3], y[:3]), remaining=(x[3:50], y[3:50]), tol=0), "tol"),
        (dict(forget_data=(x[:3], y[:3]), remaining=(x[3:50], y[3:50]), noise_scale=-1), "noise"),
    ]
    for kwargs, message in bad_calls:
        with pytest.raises(InvalidArgumentError, match=message):
            ml.forget(**kwargs)
        np.testing.assert_array_equal(ml.delta, before)
    assert ml.fitted_examples == 50
    with pytest.raises(InvalidArgumentError):
        ml.solve((x, np.full(N, K)))
    with pytest.raises(InvalidArgumentError, match="epochs"):
        ml.fit((x, y), epochs=0)
    np.testing.assert_array_equal(ml.delta, before)


def test_bad_models_and_specs_raise(core):
    for spec in ("last:0", "last:3", "first:2", "last", [], ["nope"], ["hidden", "hidden"], 3):
        with pytest.raises(InvalidArgumentError):
            MixedLinear(core, spec)
    with pytest.raises(InvalidArgumentError, match="scale"):
        MixedLinear(core, scale=0)
    with pytest.raises(InvalidArgumentError, match="weight_decay"):
        MixedLinear(core, weight_decay=-1.0)
    weightless = keras.Sequential([keras.Input((D,)), keras.layers.Activation("relu")])
    with pytest.raises(InvalidArgumentError, match="no layer with trainable weights"):
        MixedLinear(weightless)
    with_act = keras.Sequential(
        [
            keras.Input((D,)),
            keras.layers.Dense(K, name="d"),
            keras.layers.Activation("relu", name="a"),
        ]
    )
    with pytest.raises(InvalidArgumentError, match="no trainable weight"):
        MixedLinear(with_act, ["a"])
    with pytest.raises(NotAModelError):
        MixedLinear("not a model")


def test_core_model_is_never_changed_and_model_is_a_keras_model(core, data, tmp_path):
    x, y = data
    before = _weights(core)
    ml = MixedLinear(core, "last:2", weight_decay=LAM)
    ml.fit((x, y), epochs=1, verbose=False)
    ml.solve((x, y))
    ml.forget((x[:6], y[:6]), remaining=(x[6:], y[6:]))
    for old, new in zip(before, core.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert core.trainable and all(layer.trainable for layer in core.layers)

    assert isinstance(ml.model, keras.Model)
    np.testing.assert_allclose(ml.model.predict(x, verbose=0), ml.predict(x), atol=1e-6)
    ml.model.export(str(tmp_path / "saved"), verbose=False)
    restored = tf.saved_model.load(str(tmp_path / "saved"))
    np.testing.assert_allclose(restored.serve(x).numpy(), ml.predict(x), atol=1e-5)


def test_noise_is_scaled_to_the_residual_and_bounds_the_distance_to_retraining(core, data):
    x, y = data
    gone, keep = (x[:6], y[:6]), (x[6:], y[6:])
    retrained = MixedLinear(core, "last:2", weight_decay=LAM)
    retrained.solve(keep, tol=1e-8)

    def forget(**kwargs):
        ml = MixedLinear(core, "last:2", weight_decay=LAM)
        ml.solve((x, y))
        return ml, ml.forget(gone, remaining=keep, tol=1e-2, max_iter=3, **kwargs)

    rough, report = forget()  # a loose solve: a residual far from 0
    assert report.noise == 0 and report.information_bound is None
    distance = np.linalg.norm(rough.delta - retrained.delta)
    assert 0.01 < distance <= report.gradient_norm / LAM  # ‖Δ − Δ*‖ <= ‖∇L_r(Δ)‖ / λ

    noisy, noisy_report = forget(noise_scale=3.0, seed=0)
    sigma = 3.0 * noisy_report.gradient_norm / LAM
    assert noisy_report.noise == pytest.approx(sigma)
    assert noisy_report.information_bound == pytest.approx(1 / (2 * 3.0**2))
    assert "nats" in str(noisy_report)
    z = (noisy.delta - rough.delta) / sigma  # the same deterministic solve, plus noise
    assert abs(z.mean()) < 0.25 and 0.85 < z.std() < 1.15
    again, _ = forget(noise_scale=3.0, seed=0)
    np.testing.assert_array_equal(again.delta, noisy.delta)  # seeded


def test_sequential_requests_still_equal_retraining(core, data):
    x, y = data
    ml = MixedLinear(core, "last:2", weight_decay=LAM)
    ml.solve((x, y))
    ml.forget((x[:5], y[:5]), remaining=(x[5:], y[5:]))
    report = ml.forget(
        (x[40:50], y[40:50]), remaining=(np.r_[x[5:40], x[50:]], np.r_[y[5:40], y[50:]])
    )
    assert report.converged and ml.fitted_examples == N - 15
    retrained = MixedLinear(core, "last:2", weight_decay=LAM)
    retrained.solve((np.r_[x[5:40], x[50:]], np.r_[y[5:40], y[50:]]))
    assert np.linalg.norm(ml.delta - retrained.delta) <= 1e-3 * np.linalg.norm(retrained.delta)


def _reloaded(path, x):
    restored = tf.saved_model.load(str(path / "saved_model"))
    (out,) = restored.signatures["serving_default"](tf.constant(x)).values()
    return out.numpy()


def test_export_traces_the_jvp_into_saved_model_and_tflite(core, data, tmp_path):
    x, y = data
    ml = MixedLinear(core, "last:1", weight_decay=LAM)  # only the logits layer: TFLite builtins
    ml.solve((x, y))
    report = kf.export(ml.model, tmp_path / "last1", tflite=True, sample=x[:8], verbose=False)
    assert report.max_abs_diff["model.tflite"] <= 1e-4
    np.testing.assert_allclose(_reloaded(tmp_path / "last1", x), ml.predict(x), atol=1e-5)

    deep = MixedLinear(core, "last:2", weight_decay=LAM)  # through the hidden activation
    deep.solve((x, y))
    kf.export(deep.model, tmp_path / "last2", tflite=False, verbose=False)
    np.testing.assert_allclose(_reloaded(tmp_path / "last2", x), deep.predict(x), atol=1e-5)
    assert np.abs(deep.predict(x) - core.predict(x, verbose=0)).max() > 1e-2  # Δ is exported


def test_tf_keras_core_forgets_exactly_and_exports(data, tmp_path):
    import tf_keras

    x, y = data
    tf_keras.utils.set_random_seed(0)
    core = tf_keras.Sequential(
        [
            tf_keras.Input((D,)),
            tf_keras.layers.Dense(16, activation="tanh", name="hidden"),
            tf_keras.layers.Dense(K, name="logits"),
        ]
    )
    before = [w.copy() for w in core.get_weights()]
    ml = MixedLinear(core, "last:2", weight_decay=LAM)
    assert isinstance(ml.model, tf_keras.Model)
    base = core.predict(x, verbose=0)
    assert np.abs(ml.predict(x) - base).max() <= 1e-6
    losses = ml.fit((x, y), epochs=2, batch_size=16, verbose=False)
    assert losses[-1] < losses[0]
    ml.solve((x, y))
    ml.forget((x[:6], y[:6]), remaining=(x[6:], y[6:]))
    retrained = MixedLinear(core, "last:2", weight_decay=LAM)
    retrained.solve((x[6:], y[6:]))
    assert np.linalg.norm(ml.delta - retrained.delta) <= 1e-3 * np.linalg.norm(retrained.delta)
    np.testing.assert_allclose(ml.predict(x), retrained.predict(x), atol=1e-3)

    kf.export(ml.model, tmp_path, tflite=False, verbose=False)
    np.testing.assert_allclose(_reloaded(tmp_path, x), ml.predict(x), atol=1e-5)
    ml.forget_all()
    assert np.abs(ml.predict(x) - base).max() <= 1e-6
    for old, new in zip(before, core.get_weights()):
        np.testing.assert_array_equal(old, new)


def _gauss_newton(rows: np.ndarray, lam: float) -> np.ndarray:
    """``(2/n) JᵀJ + λI`` of Jacobian rows ``J`` (the objective's Hessian)."""
    return 2.0 / len(rows) * rows.T @ rows + lam * np.eye(rows.shape[1])


def test_the_recycled_preconditioner_inverts_h_on_its_directions_and_is_spd():
    rng = np.random.default_rng(0)
    h = _gauss_newton(rng.normal(size=(60, 40)) * np.logspace(0, -2, 40), 1e-3)
    record = Directions(40)
    conjugate_gradient(lambda v: h @ v, rng.normal(size=40), tol=1e-12, max_iter=5, record=record)
    m = record.preconditioner()
    assert len(record) == 5 and m.rank == 5
    matrix = np.stack([m(e) for e in np.eye(40)], axis=1)
    np.testing.assert_allclose(matrix, matrix.T, atol=1e-10)
    assert np.linalg.eigvalsh((matrix + matrix.T) / 2).min() > 0
    np.testing.assert_allclose(matrix @ h @ m.w, m.w, atol=1e-8)  # M = H⁻¹ on span(W)

    twice = Directions(40)
    for w, hw in 2 * list(zip(record._w, record._y)):
        twice.add(w, hw, 1.0)  # already scaled: pᵀHp = 1
    assert len(twice) == 10 and twice.preconditioner().rank == 5  # repeats are dropped
    capped = Directions(40, max_floats=2 * 40 * 3)
    for w, hw in zip(record._w, record._y):
        capped.add(w, hw, 1.0)
    assert len(capped) == 3


def test_recycled_directions_precondition_the_solve_on_a_subset_of_the_data():
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(400, 200)) * np.logspace(0, -3, 200)
    h, lam = _gauss_newton(rows, 1e-3), 1e-3
    b = rng.normal(size=200)
    record = Directions(200)
    conjugate_gradient(lambda v: h @ v, b, tol=1e-8, max_iter=2000, record=record)
    rest = _gauss_newton(rows[40:], lam)  # 10 % of the examples forgotten
    exact = np.linalg.solve(rest, b)
    solves = {
        name: conjugate_gradient(lambda v: rest @ v, b, tol=1e-8, max_iter=2000, precondition=m)
        for name, m in (("plain", None), ("recycled", record.preconditioner()))
    }
    for s, _, converged, _ in solves.values():
        assert converged
        assert np.linalg.norm(s - exact) <= 1e-5 * np.linalg.norm(exact)
    assert solves["recycled"][1] * 3 <= solves["plain"][1]


def test_forget_is_preconditioned_by_the_last_plain_solve_and_equals_plain_cg(core, data):
    x, y = data
    deltas, reports = {}, {}
    for recycle in (True, False):
        ml = MixedLinear(core, "last:2", weight_decay=LAM, recycle=recycle)
        ml.solve((x, y))
        reports[recycle] = ml.forget((x[:6], y[:6]), remaining=(x[6:], y[6:]))
        deltas[recycle] = ml.delta
    assert reports[True].preconditioned > 0 and reports[False].preconditioned == 0
    assert reports[True].iterations < reports[False].iterations
    assert np.linalg.norm(deltas[True] - deltas[False]) <= 1e-3 * np.linalg.norm(deltas[False])

    ml = MixedLinear(core, "last:2", weight_decay=LAM)
    ml.fit((x, y), epochs=1, batch_size=16, verbose=False)  # SGD records nothing
    first = ml.forget((x[:3], y[:3]), remaining=(x[3:], y[3:]))
    second = ml.forget((x[3:6], y[3:6]), remaining=(x[6:], y[6:]))
    assert first.preconditioned == 0 and second.preconditioned > 0
    ml.forget_all()
    assert ml._preconditioner is None  # nothing computed on the forgotten data is kept
    with pytest.raises(InvalidArgumentError, match="recycle"):
        MixedLinear(core, "last:2", recycle="yes")
