"""Tiny seeded models and data shared by the tests."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from keras_forget import datasets


@pytest.fixture(scope="session")
def digits():
    """The embedded digits, split (train, test)."""
    return datasets.load("digits", seed=0)


def keras3_mlp(softmax: bool = True, hidden: int = 32, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(10, activation="softmax" if softmax else None),
        ]
    )


def tf_keras_mlp(hidden: int = 32, seed: int = 0):
    import tf_keras

    tf_keras.utils.set_random_seed(seed)
    return tf_keras.Sequential(
        [
            tf_keras.Input((8, 8, 1)),
            tf_keras.layers.Flatten(),
            tf_keras.layers.Dense(hidden, activation="relu"),
            tf_keras.layers.Dense(10, activation="softmax"),
        ]
    )


def train(model, data, epochs: int = 15):
    """Fits a classifier with softmax outputs on the training split of ``data``."""
    (x, y), _ = data
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="session")
def trained_keras3(digits):
    """A Keras 3 MLP trained on digits (softmax outputs)."""
    return train(keras3_mlp(hidden=64), digits, epochs=25)


@pytest.fixture(scope="session")
def trained_tf_keras(digits):
    """A tf_keras MLP trained on digits."""
    return train(tf_keras_mlp(hidden=64), digits, epochs=25)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
