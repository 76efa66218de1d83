"""Small reference classifiers for the embedded data, used by the command line,
the examples and the benchmarks."""

from __future__ import annotations

import os
from typing import Any

import keras
import numpy as np

from keras_forget.files import atomic_path


def digits_mlp(
    input_shape: tuple[int, ...] = (8, 8, 1), classes: int = 10, seed: int = 0
) -> keras.Model:
    """A two-hidden-layer MLP with a softmax output (about 17K weights on 8×8 inputs)."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(classes, activation="softmax"),
        ],
        name="digits_mlp",
    )


def train(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 40,
    batch_size: int = 32,
    seed: int = 0,
    verbose: bool = False,
) -> keras.Model:
    """Compiles (Adam, sparse cross-entropy) and fits ``model`` in place; returns it."""
    keras.utils.set_random_seed(seed)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=2 if verbose else 0)
    return model


def save_atomic(model: keras.Model, path: str) -> None:
    """Saves a ``.keras`` file through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        model.save(tmp)


def cached(path: str | None, build: Any, fit: Any) -> tuple[keras.Model, bool]:
    """Loads ``path`` if it exists, else builds, fits and saves a model there.

    Returns:
        ``(model, loaded)``.
    """
    if path and os.path.exists(path):
        return keras.models.load_model(path), True
    model = fit(build())
    if path:
        save_atomic(model, path)
    return model, False
