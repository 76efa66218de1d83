"""Accuracy-vs-pruned sweeps: bookkeeping, cost, plot, bad inputs."""

from __future__ import annotations

import importlib
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_forget as kf
from keras_forget.introspect.registry import prunable_weights
from keras_forget.sweep import Curve, plot_curves, sweep

# `keras_forget.sweep` the attribute is the function; the module is reached by name.
sweep_module = importlib.import_module("keras_forget.sweep")

POINTS = np.arange(0, 1, 0.1)


@pytest.fixture(scope="module")
def curve(trained_keras3, digits):
    train, test = digits
    return sweep(trained_keras3, train, test, sparsities=POINTS, rounds=1, verbose=False)


def _sizes(model) -> list[int]:
    return [w.variable.numpy().size for w in prunable_weights(model).values()]


def test_every_point_records_the_exact_fraction_pruned(curve, trained_keras3):
    sizes = _sizes(trained_keras3)
    total = sum(sizes)
    assert set(curve.lines) == {"magnitude/global", "magnitude/layer", "obd/global", "obd/layer"}
    for line in curve.lines.values():
        assert line.total == total
        assert line.sparsity == tuple(float(s) for s in POINTS)
        if line.scope == "global":
            expected = [round(s * total) for s in POINTS]
        else:
            expected = [sum(round(s * n) for n in sizes) for s in POINTS]
        assert list(line.pruned) == expected, line.label
        assert np.all(np.diff(line.fraction_pruned) > 0)
        assert line.accuracy[0] == curve.dense_accuracy


def test_accuracy_falls_when_almost_everything_is_pruned(curve):
    assert curve.dense_accuracy > 0.9
    for line in curve.lines.values():
        assert line.accuracy[-1] < curve.dense_accuracy - 0.2, line.label


def test_a_point_prunes_what_prune_prunes(curve, trained_keras3, digits):
    train, test = digits
    result = kf.prune(
        trained_keras3, train, sparsity=0.5, method="obd", rounds=1, eval_data=test, verbose=False
    )
    assert curve.line("obd", "global").accuracy_at(0.5) == result.report.after.accuracy
    assert result.report.eval_split == "eval_data" and result.report.auto_reached is None
    assert result.unit_masks is None and result.history is None


def test_by_default_a_point_is_pruned_in_the_rounds_prune_uses(trained_keras3, digits):
    (x, y), test = digits
    data = (x[:300], y[:300])
    curve = sweep(
        trained_keras3, data, test, methods=["obd", "fisher"], scopes="global",
        sparsities=[0.9], verbose=False,
    )  # fmt: skip
    assert set(curve.lines) == {"obd/global", "fisher_obd/global"}  # compression's Fisher
    for method in ("obd", "fisher"):
        result = kf.prune(
            trained_keras3, data, sparsity=0.9, method=method, eval_data=test, verbose=False
        )  # 8 rounds
        line = curve.line(result.report.method, "global")
        assert line.accuracy == (result.report.after.accuracy,)
    one_shot = sweep(
        trained_keras3, data, test, methods="obd", scopes="global", sparsities=[0.9], rounds=1,
        verbose=False,
    )  # fmt: skip
    assert one_shot.line("obd", "global").accuracy != curve.line("obd", "global").accuracy


def test_one_scoring_pass_per_method_whatever_the_number_of_points(
    trained_keras3, digits, monkeypatch
):
    calls = []
    original = sweep_module.run_score

    def counting(*args, **kwargs):
        calls.append(args[2].name)
        return original(*args, **kwargs)

    monkeypatch.setattr(sweep_module, "run_score", counting)
    (x, y), test = digits
    points = np.arange(0, 1, 0.02)
    methods = ["magnitude", "gradxweight"]
    result = sweep(
        trained_keras3, (x[:200], y[:200]), test, methods=methods, sparsities=points, verbose=False
    )
    assert sorted(calls) == ["gradxweight", "magnitude"]  # one-shot scores by default
    assert len(result.line("gradxweight", "layer").accuracy) == 50


def test_plot_is_written_atomically_and_dict_round_trips(curve, tmp_path):
    path = curve.plot(tmp_path / "accuracy_vs_pruned.png")
    assert os.path.getsize(path) > 1000
    assert os.listdir(tmp_path) == ["accuracy_vs_pruned.png"]  # no temp file left
    copy = Curve.from_dict(json.loads(json.dumps(curve.to_dict())))
    assert copy == curve
    both = plot_curves({"a": curve, "b": copy}, tmp_path / "both.svg", title="two")
    assert open(both).read().startswith("<?xml")


def test_tf_keras_model_and_a_dataset(trained_tf_keras, digits):
    (x, y), (xt, yt) = digits
    ds = tf.data.Dataset.from_tensor_slices((xt, np.eye(10)[yt])).batch(64)
    result = sweep(
        trained_tf_keras,
        None,
        ds,
        methods="magnitude",
        scopes="global",
        sparsities=[0.0, 0.5],
        verbose=False,
    )
    assert list(result.lines) == ["magnitude/global"]
    assert result.line("magnitude", "global").accuracy[0] == result.dense_accuracy > 0.9


@pytest.mark.parametrize(
    "change, message",
    [
        ({"eval_data": "x_only"}, r"`eval_data` must be a pair \(x, y\)"),
        ({"eval_data": "no_labels"}, "`eval_data` must be labelled"),
        ({"eval_data": "dataset_of_x"}, r"`eval_data` must be a tf.data.Dataset of \(x, y\)"),
        ({"sparsities": [0.5, 1.0]}, r"in \[0, 1\)"),
        ({"sparsities": [-0.1]}, r"in \[0, 1\)"),
        ({"sparsities": []}, "empty"),
        ({"scopes": ["global", "per-unit"]}, "scope"),
        ({"methods": ["obd", "obd"]}, "distinct"),
        ({"methods": ["nope"]}, "Unknown score `method`"),
        ({"data": None}, "`data` is required"),
    ],
)
def test_bad_inputs_fail_before_scoring(change, message, trained_keras3, digits, monkeypatch):
    (x, y), (xt, yt) = digits
    labelless = {
        "x_only": xt,
        "no_labels": (xt, None),
        "dataset_of_x": tf.data.Dataset.from_tensor_slices(xt).batch(8),
    }
    kwargs = {"data": (x, y), "eval_data": (xt, yt), "methods": ["obd"]} | change
    if isinstance(kwargs["eval_data"], str):
        kwargs["eval_data"] = labelless[kwargs["eval_data"]]
    monkeypatch.setattr(
        sweep_module, "run_score", lambda *a, **k: pytest.fail("scored before checks")
    )
    with pytest.raises(kf.InvalidArgumentError, match=message):
        sweep(trained_keras3, kwargs.pop("data"), kwargs.pop("eval_data"), verbose=False, **kwargs)


def test_a_model_with_nothing_prunable_is_refused():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Activation("softmax")])
    x, y = np.ones((8, 4), np.float32), np.zeros(8, int)
    with pytest.raises(kf.NotPrunableError):
        sweep(model, (x, y), (x, y), methods="magnitude", verbose=False)
