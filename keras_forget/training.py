"""Fine-tuning a masked model while its masks hold."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from keras_forget import _keras
from keras_forget.data import Data, input_rank
from keras_forget.errors import InvalidArgumentError


@dataclasses.dataclass(frozen=True)
class FineTune:
    """A short retraining after pruning; pruned weights stay exactly zero.

    Attributes:
        epochs: passes over the data.
        data: ``(x, y)`` or a ``tf.data.Dataset``; by default the data given
            to the pruning call, without the forgotten classes.
        batch_size: batch size for array data.
        learning_rate: Adam's learning rate.
    """

    epochs: int = 1
    data: Data | None = None
    batch_size: int = 32
    learning_rate: float = 1e-3

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, (int, np.integer)) or self.epochs < 1:
            raise InvalidArgumentError(
                f"`FineTune.epochs` must be an int >= 1, got {self.epochs!r}."
            )
        if self.batch_size < 1:
            raise InvalidArgumentError(
                f"`FineTune.batch_size` must be >= 1, got {self.batch_size}."
            )
        if not self.learning_rate > 0:
            raise InvalidArgumentError(
                f"`FineTune.learning_rate` must be > 0, got {self.learning_rate}."
            )


def without_classes(data: Data, classes: Sequence[int]) -> Data:
    """``data`` without the examples of ``classes`` (arrays or a dataset)."""
    targets = np.asarray(list(classes), np.int64)
    if isinstance(data, tf.data.Dataset):
        t = tf.constant(targets)

        def keep(x: Any, y: Any) -> Any:
            labels = tf.argmax(y, -1) if y.shape.rank and y.shape[-1] > 1 else tf.reshape(y, [-1])
            labels = tf.cast(labels, tf.int64)
            return tf.logical_not(tf.reduce_any(tf.equal(labels[..., None], t), axis=-1))

        if len(data.element_spec[1].shape) and data.element_spec[1].shape.rank >= 1:
            return data.unbatch().filter(lambda x, y: keep(x[None], y[None])[0])
        return data.filter(lambda x, y: keep(x[None], y[None])[0])
    x, y = data
    y_arr = np.asarray(y)
    labels = y_arr.argmax(-1) if y_arr.ndim >= 2 and y_arr.shape[-1] > 1 else y_arr.reshape(-1)
    keep = ~np.isin(labels, targets)
    return np.asarray(x)[keep], y_arr[keep]


def _sparse_labels(data: Data, batch_size: int, input_rank: int | None) -> Data:
    """Data as a batched dataset of (x, integer labels)."""
    if isinstance(data, tf.data.Dataset):
        ds = data
        if input_rank is not None and ds.element_spec[0].shape.rank == input_rank - 1:
            ds = ds.batch(batch_size)
        return ds.map(
            lambda x, y: (x, tf.argmax(y, -1) if y.shape.rank == 2 and y.shape[-1] > 1 else y)
        )
    x, y = data
    y = np.asarray(y)
    labels = y.argmax(-1) if y.ndim >= 2 and y.shape[-1] > 1 else y.reshape(-1)
    return (
        tf.data.Dataset.from_tensor_slices((np.asarray(x), labels))
        .shuffle(len(labels), seed=0)
        .batch(batch_size)
    )


def fine_tune(
    model: Any,
    config: FineTune,
    data: Data,
    *,
    from_logits: bool,
    verbose: bool,
    callbacks: list[Any] | None = None,
) -> None:
    """Trains a masked model in place; its masks hold through training.

    Args:
        model: a masked model (mask constraints, or tfmot wrappers).
        config: the :class:`FineTune` settings.
        data: the data to train on.
        from_logits: whether the model outputs logits.
        verbose: show Keras' progress bar.
        callbacks: Keras callbacks; by default those the masks need (tfmot's
            for a tf_keras model, none for Keras 3).
    """
    km = _keras.keras_module(model)
    if callbacks is None:
        callbacks = []
        if _keras.flavor(model) == "tf_keras":
            from keras_forget.integrations import tfmot

            callbacks = tfmot.callbacks(model)
    model.compile(
        optimizer=km.optimizers.Adam(config.learning_rate),
        loss=km.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        metrics=["accuracy"],
    )
    ds = _sparse_labels(data, config.batch_size, input_rank(model))
    model.fit(
        ds, epochs=config.epochs, callbacks=callbacks, shuffle=False, verbose=1 if verbose else 0
    )
