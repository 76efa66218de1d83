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
