"""Score sums over the replicas of a ``tf.distribute`` strategy.

Every data score is a sum over examples, so a batch can be split between
replicas and the per-replica sums added (``ReduceOp.SUM``); the example count
is kept by the caller, who knows the whole batch. A strategy is passed as
``strategy=`` (it then serves the scoring only) or taken from an enclosing
``strategy.scope()``::

    strategy = tf.distribute.MirroredStrategy()       # the GPUs of this machine
    result = kf.prune_for_class(model, data, target_class=3, strategy=strategy)

Across machines, ``tf.distribute.MultiWorkerMirroredStrategy`` reads the
cluster from the ``TF_CONFIG`` environment variable, and every worker runs the
same program on the same data; each scores its own replicas' share of every
batch and the sums are reduced across workers::

    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                "task": {"type": "worker", "index": 0}}'   # index 1 on host2

A batch with fewer examples than replicas (a last, small one) is scored on
the current device instead.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from keras_forget.errors import InvalidArgumentError

#: The strategy a call passed as ``strategy=``, while it runs.
_PASSED: contextvars.ContextVar[tf.distribute.Strategy | None] = contextvars.ContextVar(
    "keras_forget_strategy", default=None
)


def check(strategy: Any) -> tf.distribute.Strategy | None:
    """Validates a ``strategy=`` argument.

    Raises:
        InvalidArgumentError: ``strategy`` is neither None nor a ``tf.distribute.Strategy``.
    """
    if strategy is not None and not isinstance(strategy, tf.distribute.Strategy):
        raise InvalidArgumentError(
            f"`strategy` must be a tf.distribute.Strategy, got {type(strategy).__name__}."
        )
    return strategy


@contextlib.contextmanager
def scoring_under(strategy: tf.distribute.Strategy | None) -> Iterator[None]:
    """Scores run under ``strategy`` inside the block (nothing else does); None: unchanged."""
    token = _PASSED.set(strategy) if strategy is not None else None
    try:
        yield
    finally:
        if token is not None:
            _PASSED.reset(token)


def current() -> tf.distribute.Strategy | None:
    """The strategy to score under: a passed one, else an enclosing scope's, else None."""
    passed = _PASSED.get()
    if passed is not None:
        return passed
    return tf.distribute.get_strategy() if tf.distribute.has_strategy() else None


def bounds(count: int, replicas: int) -> np.ndarray:
    """Contiguous shard boundaries ``[replicas + 1]`` of ``count`` examples."""
    return np.linspace(0, count, replicas + 1).astype(int)


def replica_sums(
    strategy: tf.distribute.Strategy,
    fn: Callable[[Any, tf.Tensor], Sequence[tf.Tensor]],
    x: Any,
    y: np.ndarray,
) -> list[np.ndarray]:
    """``fn`` on each replica's shard of ``(x, y)``, summed over replicas.

    Args:
        strategy: the strategy.
        fn: ``(x, y) -> list of per-shard sums``, a ``tf.function``.
        x: a batch of inputs (an array or a nest of arrays).
        y: its labels.

    Returns:
        The summed values, as numpy arrays.
    """
    edges = bounds(len(y), strategy.num_replicas_in_sync)
    if len(y) < strategy.num_replicas_in_sync:  # a shard would be empty: run it here
        sums = fn(tf.nest.map_structure(tf.constant, x), tf.constant(y))
        return [np.asarray(v) for v in sums]

    def shard(context: tf.distribute.experimental.ValueContext) -> tuple[Any, tf.Tensor]:
        part = slice(
            edges[context.replica_id_in_sync_group], edges[context.replica_id_in_sync_group + 1]
        )
        return tf.nest.map_structure(lambda a: tf.constant(a[part]), x), tf.constant(y[part])

    inputs = strategy.experimental_distribute_values_from_function(shard)
    # A plain function: each replica then calls ``fn`` with its own tensors.
    per_replica = strategy.run(lambda a, b: fn(a, b), args=inputs)
    return [strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None).numpy() for v in per_replica]
