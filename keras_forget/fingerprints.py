"""Content fingerprints of labelled examples: which examples are the same, whatever the container.

Each example is hashed from the bytes (with shape) of every input array and
its integer label; floating inputs are hashed as float32 and integer ones as
int64, so the same examples match whatever precision they are passed in. A
multiset (``Counter``) of hashes lets a duplicated example be counted once per
copy.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

import numpy as np
import tensorflow as tf


def _canonical(a: np.ndarray) -> np.ndarray:
    """``a`` in the dtype its examples are hashed in."""
    if np.issubdtype(a.dtype, np.floating):
        return a.astype(np.float32, copy=False)
    if np.issubdtype(a.dtype, np.integer) or a.dtype == bool:
        return a.astype(np.int64, copy=False)
    return a


def example_hashes(x: Any, y: np.ndarray) -> list[str]:
    """One hex digest per example of ``(x, y)`` (``x`` an array or a structure of arrays).

    Args:
        x: the inputs, examples along the first axis.
        y: integer labels, one per example.

    Returns:
        ``len(y)`` hex digests; equal examples have equal digests.
    """
    parts = [_canonical(np.asarray(a)) for a in tf.nest.flatten(x)]
    hashes = []
    for i in range(len(y)):
        h = hashlib.blake2b(digest_size=16)
        for a in parts:
            row = np.ascontiguousarray(a[i])
            h.update(f"{row.dtype.str}{row.shape}".encode())
            h.update(row.tobytes())
        h.update(np.int64(y[i]).tobytes())
        hashes.append(h.hexdigest())
    return hashes


def counts(x: Any, y: np.ndarray) -> Counter[str]:
    """The multiset of example hashes of ``(x, y)``."""
    return Counter(example_hashes(x, y))
