"""Per-example gradients, vectorised over a batch and chunked to bound memory."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from keras_forget import distribute

#: Most per-example gradient entries held at once (floats): ~128 MB.
MAX_ELEMENTS = 2**25
#: Batches a summed gradient runs eagerly before it is traced (see :func:`summed_gradients`).
EAGER_CALLS = 4


def chunk_size(batch: int, params: int, outputs: int = 1) -> int:
    """How many examples fit in one vectorised chunk."""
    return int(max(1, min(batch, MAX_ELEMENTS // max(1, params * outputs))))


def reduce_per_example(
    pseudo_outputs: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
    variables: Mapping[str, Any],
    reduce: Callable[[str, tf.Tensor], tf.Tensor],
    outputs: int = 1,
    autograph: bool = True,
) -> Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]:
    """Builds a function summing a per-example gradient statistic over a batch.

    Args:
        pseudo_outputs: ``(x, y) -> tensor [batch]`` or ``[batch, k]``; the
            gradient of each entry is taken separately.
        variables: ``{key: variable}`` to differentiate.
        reduce: ``(key, grads) -> summed statistic``, where ``grads`` has shape
            ``[batch, (k,) *variable.shape]``.
        outputs: ``k`` (1 for ``[batch]`` outputs), to size chunks.
        autograph: trace with AutoGraph (see :func:`keras_forget._keras.autograph`).

    Returns:
        ``f(x, y) -> {key: numpy array shaped like the variable}``.
    """
    keys = list(variables)
    var_list = [variables[k] for k in keys]
    params = sum(int(np.prod(v.shape)) for v in var_list)

    def chunk(x: tf.Tensor, y: tf.Tensor) -> list[tf.Tensor]:
        with tf.GradientTape() as tape:
            values = pseudo_outputs(x, y)
        grads = tape.jacobian(values, var_list, experimental_use_pfor=True)
        return [reduce(k, g) for k, g in zip(keys, grads)]

    compiled: list[Any] = []  # traced once, for any batch size, on first use

    def run(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        if not compiled:
            compiled.append(
                tf.function(chunk, input_signature=signature(x, y), autograph=autograph)
            )
        strategy = distribute.current()
        replicas = 1 if strategy is None else strategy.num_replicas_in_sync
        size = chunk_size(len(y), params, outputs) * replicas
        totals = {k: 0.0 for k in keys}
        for start in range(0, len(y), size):
            window = slice(start, start + size)
            if strategy is None:
                part = tf.nest.map_structure(lambda a, w=window: tf.constant(a[w]), x)
                sums = compiled[0](part, tf.constant(y[window]))
            else:
                part = tf.nest.map_structure(lambda a, w=window: np.asarray(a)[w], x)
                sums = distribute.replica_sums(strategy, compiled[0], part, y[window])
            for k, s in zip(keys, sums):
                totals[k] = totals[k] + np.asarray(s, np.float64)
        return totals

    return run


def summed_gradients(
    pseudo_outputs: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
    variables: Mapping[str, Any],
    autograph: bool = True,
) -> Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]:
    """Builds ``(x, y) -> {key: Σ_n ∂f_n/∂w}``: the signed sum needs no per-example gradient.

    In inference mode no example's output depends on another's, so the sum of the
    per-example gradients is the gradient of the summed outputs: one ordinary
    backward pass per batch. Tracing that pass costs about as much as running it
    eagerly ten times, so the first :data:`EAGER_CALLS` batches run eagerly and a
    traced function serves the rest: the data to forget is often a few batches.

    Args:
        pseudo_outputs: ``(x, y) -> tensor [batch]`` or ``[batch, k]``; every entry is summed.
        variables: ``{key: variable}`` to differentiate.
        autograph: trace with AutoGraph (see :func:`keras_forget._keras.autograph`).

    Returns:
        ``f(x, y) -> {key: float64 numpy array shaped like the variable}``.
    """
    keys = list(variables)
    var_list = [variables[k] for k in keys]

    def total(x: tf.Tensor, y: tf.Tensor) -> list[tf.Tensor]:
        with tf.GradientTape() as tape:
            value = tf.reduce_sum(pseudo_outputs(x, y))
        grads = tape.gradient(value, var_list, unconnected_gradients="zero")
        return [tf.convert_to_tensor(g) for g in grads]  # an embedding's rows: IndexedSlices

    compiled: list[Any] = []  # traced once, for any batch size, after EAGER_CALLS calls
    calls = [0]

    def run(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        calls[0] += 1
        strategy = distribute.current()
        if strategy is None and calls[0] <= EAGER_CALLS:
            sums = total(tf.nest.map_structure(tf.constant, x), tf.constant(y))
            return {k: np.asarray(s, np.float64) for k, s in zip(keys, sums)}
        if not compiled:
            compiled.append(
                tf.function(total, input_signature=signature(x, y), autograph=autograph)
            )
        if strategy is None:
            sums = compiled[0](tf.nest.map_structure(tf.constant, x), tf.constant(y))
        else:
            sums = distribute.replica_sums(strategy, compiled[0], x, np.asarray(y))
        return {k: np.asarray(s, np.float64) for k, s in zip(keys, sums)}

    return run


def signature(x: Any, y: np.ndarray) -> list[Any]:
    """Input signature with a free batch axis, so one trace serves every batch size."""

    def spec(a: Any) -> tf.TensorSpec:
        a = np.asarray(a)
        return tf.TensorSpec((None, *a.shape[1:]), tf.as_dtype(a.dtype))

    return [tf.nest.map_structure(spec, x), spec(y)]
