"""Scores under a tf.distribute strategy equal single-device scores."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_forget as kf
from keras_forget import distribute
from keras_forget.errors import InvalidArgumentError

#: Runs in a fresh interpreter: logical devices must be set before TensorFlow starts.
SCRIPT = textwrap.dedent(
    """
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import keras
    import numpy as np

    import keras_forget as kf
    from keras_forget.introspect.registry import prunable_weights
    from keras_forget.scores.gradient import Fisher, GradXWeight
    from keras_forget.scores.obd import OBD
    from keras_forget.scores.objective import Objective

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(3, 3, activation="relu"),
        keras.layers.DepthwiseConv2D(3, depth_multiplier=2),  # per-example path
        keras.layers.Flatten(),
        keras.layers.Dense(3),
    ])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(23, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, 23)

    def scores(make):
        score = make()
        score.reset(model, prunable_weights(model), Objective())
        for part in (slice(0, 16), slice(16, 22), slice(22, 23)):  # the last: one example
            score.update(x[part], y[part])
        return score.result()

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    worst = 0.0
    for make in (lambda: GradXWeight(signed=True), OBD, lambda: Fisher(factored=False)):
        single = scores(make)
        with strategy.scope():
            both = scores(make)
        for key, value in single.items():
            worst = max(worst, float(np.abs(both[key] - value).max() / np.abs(value).max()))
    single = kf.prune(model, (x, y), sparsity=0.5, method="fisher", verbose=False)
    both = kf.prune(
        model, (x, y), sparsity=0.5, method="fisher", verbose=False, strategy=strategy
    )
    same = all(np.array_equal(single.masks[k], both.masks[k]) for k in single.masks)
    print(f"worst {worst:.3e} masks {same}")
    """
)


def test_scores_on_two_logical_devices_equal_one_device():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = done.stdout.strip().splitlines()[-1]
    worst, same = float(line.split()[1]), line.split()[3]
    assert worst <= 1e-5, line
    assert same == "True", line


def test_current_takes_a_passed_strategy_then_the_enclosing_scope():
    assert distribute.current() is None
    strategy, other = tf.distribute.OneDeviceStrategy("/cpu:0"), tf.distribute.get_strategy()
    with strategy.scope():
        assert distribute.current() is strategy
    with distribute.scoring_under(strategy):
        assert distribute.current() is strategy
    assert distribute.current() is None
    assert distribute.check(None) is None and distribute.check(other) is other


def test_a_bad_strategy_is_refused_before_any_work():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    data = (np.zeros((4, 4), "float32"), np.array([0, 1, 0, 1]))
    with pytest.raises(InvalidArgumentError, match="`strategy`"):
        kf.prune(model, data, strategy="mirrored")
    with pytest.raises(InvalidArgumentError, match="`strategy`"):
        kf.prune_for_class(model, data, target_class=0, strategy=2)


def test_bounds_cover_every_example_once():
    assert distribute.bounds(5, 2).tolist() == [0, 2, 5]
    assert distribute.bounds(7, 3).tolist() == [0, 2, 4, 7]
