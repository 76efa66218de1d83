"""Turning what users pass as data into batches of ``(x, integer labels)``.

Accepted: a tuple ``(x, y)`` of arrays, or a ``tf.data.Dataset`` of ``(x, y)``
(batched or not). Labels may be integers or one-hot. Data is read batch by
batch; a dataset is never materialised whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from keras_forget.errors import InvalidArgumentError

Data = Any  # tuple[np.ndarray, np.ndarray] | tf.data.Dataset


def _labels(y: Any) -> np.ndarray:
    """Integer class labels from integer or one-hot labels."""
    y = np.asarray(y)
    if y.ndim >= 2 and y.shape[-1] > 1:
        return y.argmax(axis=-1).astype(np.int64)
    return y.reshape(len(y)).astype(np.int64) if y.ndim else y.astype(np.int64)


def size(x: Any) -> int:
    """Number of examples in ``x`` (an array, or a tuple/list of arrays for multi-input models)."""
    return len(tf.nest.flatten(x)[0])


def take(x: Any, index: Any) -> Any:
    """``x[index]`` for an array or each array of a multi-input tuple."""
    return tf.nest.map_structure(lambda a: np.asarray(a)[index], x)


def input_rank(model: Any) -> int | None:
    """Rank of a batch of the model's (first) input, to tell batched datasets from unbatched."""
    from keras_forget._keras import input_shape

    shape = input_shape(model)
    if isinstance(shape, list):
        shape = shape[0]
    return len(shape) if shape is not None else None


def _check_tuple(data: tuple, name: str) -> None:
    if len(data) != 2:
        raise InvalidArgumentError(f"`{name}` must be a pair (x, y); got a tuple of {len(data)}.")
    x, y = data
    x = tuple(x) if isinstance(x, list) else x
    if size(x) == 0:
        raise InvalidArgumentError(f"`{name}` is empty: x has no example.")
    if size(x) != len(y):
        raise InvalidArgumentError(f"`{name}`: x has {size(x)} examples but y has {len(y)} labels.")


def batches(
    data: Data, batch_size: int = 64, *, input_rank: int | None = None, name: str = "data"
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yields ``(x, labels)`` numpy batches (``x`` a tuple of arrays for multi-input models).

    Args:
        data: ``(x, y)`` arrays or a ``tf.data.Dataset`` of ``(x, y)``.
        batch_size: batch size for arrays and for unbatched datasets.
        input_rank: rank of one batch of model input, used to tell a batched
            dataset from an unbatched one.
        name: the argument's name in error messages.

    Yields:
        ``(x, labels)`` with integer labels.

    Raises:
        InvalidArgumentError: data of the wrong kind, or empty.
    """
    if isinstance(data, tf.data.Dataset):
        yield from _dataset_batches(data, batch_size, input_rank, name)
        return
    if not isinstance(data, (tuple, list)):
        raise InvalidArgumentError(
            f"`{name}` must be a tuple (x, y) of arrays or a tf.data.Dataset of (x, y); "
            f"got {type(data).__name__}."
        )
    _check_tuple(tuple(data), name)
    x, y = data
    x = tuple(x) if isinstance(x, list) else x
    for start in range(0, size(x), batch_size):
        window = slice(start, start + batch_size)
        yield take(x, window), _labels(y[window])


def _dataset_batches(
    ds: tf.data.Dataset, batch_size: int, input_rank: int | None, name: str
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    spec = ds.element_spec
    if not isinstance(spec, tuple) or len(spec) < 2:
        raise InvalidArgumentError(
            f"`{name}` must be a tf.data.Dataset of (x, y) pairs; its elements are {spec}."
        )
    first = tf.nest.flatten(spec[0])[0]
    if input_rank is not None and first.shape.rank == input_rank - 1:
        ds = ds.batch(batch_size)
    seen = False
    for element in ds.as_numpy_iterator():
        seen = True
        x = tuple(element[0]) if isinstance(element[0], list) else element[0]
        yield x, _labels(element[1])
    if not seen:
        raise InvalidArgumentError(f"`{name}` is empty: the dataset yielded no batch.")


def first_batch(
    data: Data, batch_size: int = 64, *, input_rank: int | None = None, name: str = "data"
):
    """The first ``(x, labels)`` batch of ``data`` (for validation before work)."""
    return next(batches(data, batch_size, input_rank=input_rank, name=name))


def concat(data: Data, *, input_rank: int | None = None, name: str = "data"):
    """All of ``data`` as two arrays (used for small evaluation sets only)."""
    xs, ys = zip(*batches(data, 256, input_rank=input_rank, name=name))
    x = tf.nest.map_structure(lambda *parts: np.concatenate(parts), *xs)
    return x, np.concatenate(ys)
