"""tfmot is imported only for tf_keras models and never flips the user's tf.keras."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_keras3_user_never_imports_tfmot_and_keeps_tf_keras():
    line = _run(
        """
        import os, sys
        import numpy as np, keras, tensorflow as tf
        import keras_forget as kf
        m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        x, y = np.random.rand(20, 4).astype('float32'), np.arange(20) % 3
        kf.prune_for_class(m, (x, y), 1, amount=0.2, verbose=False)
        print('tensorflow_model_optimization' in sys.modules,
              os.environ.get('TF_USE_LEGACY_KERAS'), tf.keras.__name__.startswith('keras'))
        """
    )
    assert line == "False None True"


def test_tf_keras_user_gets_tfmot_without_the_environment_flag_changing():
    line = _run(
        """
        import os, sys
        import numpy as np, tf_keras
        import keras_forget as kf
        m = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(3)])
        x, y = np.random.rand(20, 4).astype('float32'), np.arange(20) % 3
        r = kf.prune_for_class(m, (x, y), 1, amount=0.2, verbose=False)
        print('tensorflow_model_optimization' in sys.modules,
              os.environ.get('TF_USE_LEGACY_KERAS'),
              type(r.model.layers[0]).__name__)
        """
    )
    assert line == "True None PruneLowMagnitude"


def test_a_non_model_is_refused_with_not_a_model_error():
    import pytest

    import keras_forget as kf
    from keras_forget import _keras

    for thing in (object(), "model", None):
        with pytest.raises(kf.NotAModelError, match="`model` must be a Keras 3") as info:
            _keras.flavor(thing)
        assert isinstance(info.value, TypeError)
