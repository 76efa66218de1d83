"""Small reference classifiers for the embedded data, used by the command line,
the examples and the benchmarks, and the cache the command line keeps them in."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np

from keras_forget.files import atomic_path, write_json

#: Hidden layer widths of :func:`digits_mlp`.
HIDDEN = (128, 64)


def digits_mlp(
    input_shape: tuple[int, ...] = (8, 8, 1),
    classes: int = 10,
    seed: int = 0,
    hidden: Sequence[int] = HIDDEN,
) -> keras.Model:
    """An MLP with ReLU hidden layers and a softmax output (about 17K weights on 8×8 inputs)."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Flatten(),
            *(keras.layers.Dense(width, activation="relu") for width in hidden),
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


def fingerprint(*arrays: np.ndarray) -> str:
    """A short hash of the arrays' dtypes, shapes and contents."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()[:16]


def cache_path(directory: str, name: str, settings: Mapping[str, Any]) -> str:
    """Where a classifier trained with ``settings`` is cached.

    Args:
        directory: the cache directory.
        name: a readable prefix (the dataset's name).
        settings: everything that shapes the trained model (data fingerprint,
            architecture, epochs, seed, ...), JSON-serializable.

    Returns:
        ``{directory}/{name}_mlp-{key}.keras``, where ``key`` is a short hash of
        ``settings``: other settings never reuse this file.
    """
    text = json.dumps(dict(settings), sort_keys=True, default=str)
    key = hashlib.sha256(text.encode()).hexdigest()[:12]
    return os.path.join(directory, f"{name}_mlp-{key}.keras")


def cached(
    path: str | None,
    build: Any,
    fit: Any,
    *,
    refresh: bool = False,
    settings: Mapping[str, Any] | None = None,
) -> tuple[keras.Model, bool]:
    """Loads ``path`` if it exists, else builds, fits and saves a model there.

    Args:
        path: the cache file (see :func:`cache_path`), or None for no cache.
        build: ``() -> model``.
        fit: ``model -> trained model``.
        refresh: train again even if ``path`` exists, and replace it.
        settings: written beside the model as ``{path}.json`` when it is saved,
            to say what it was trained with.

    Returns:
        ``(model, loaded)``.
    """
    if path and not refresh and os.path.exists(path):
        return keras.models.load_model(path), True
    model = fit(build())
    if path:
        save_atomic(model, path)
        if settings is not None:
            write_json(path + ".json", dict(settings))
    return model, False
