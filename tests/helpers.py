"""Assertions shared by the tests."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from keras_forget.introspect.registry import all_weights


def assert_pruned_zero(model, masks: Mapping[str, np.ndarray]) -> None:
    """Every pruned entry of ``masks`` is exactly zero in ``model``'s raw variables.

    Reads the variables themselves — inside tfmot's wrappers too — never a
    stripped copy: stripping a tf_keras model multiplies by the masks, which
    would hide a weight that training had moved.
    """
    weights = all_weights(model)
    for key, mask in masks.items():
        value = np.asarray(weights[key].numpy())
        leaked = int(np.count_nonzero(value[~np.asarray(mask, bool)]))
        assert leaked == 0, f"{key}: {leaked} pruned entries are nonzero"


def randomize_batchnorm(model, seed: int = 0):
    """Gives every BatchNormalization seeded, non-trivial statistics (so surgery is tested)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            layer.set_weights(
                [rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in layer.get_weights()]
            )
    return model
