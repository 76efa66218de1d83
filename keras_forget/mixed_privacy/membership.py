"""Which examples the user part was fit on, by content hash.

Each example is hashed from the bytes (with shape) of every input array and
its integer label; floating inputs are hashed as float32 and integer ones as
int64, so the same examples match whatever precision they are passed in. A
multiset (``Counter``) of hashes is kept, so a duplicated example can be
forgotten once per copy.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

import numpy as np
import tensorflow as tf

from keras_forget.errors import InvalidArgumentError


def _canonical(a: np.ndarray) -> np.ndarray:
    """``a`` in the dtype its examples are hashed in."""
    if np.issubdtype(a.dtype, np.floating):
        return a.astype(np.float32, copy=False)
    if np.issubdtype(a.dtype, np.integer) or a.dtype == bool:
        return a.astype(np.int64, copy=False)
    return a


def example_hashes(x: Any, y: np.ndarray) -> list[str]:
    """One hex digest per example of ``(x, y)`` (``x`` an array or a structure of arrays)."""
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


def check_forget(fitted: Counter[str], forget: Counter[str]) -> None:
    """Raises unless ``forget`` is part of, and not all of, the ``fitted`` examples.

    Raises:
        InvalidArgumentError: an example of ``forget`` was never fitted (or
            more copies of it are asked than were fitted), or ``forget`` is all
            of the fitted data (that is ``forget_all``).
    """
    unknown = forget - fitted
    if unknown:
        raise InvalidArgumentError(
            f"`forget_data`: {sum(unknown.values())} of its {sum(forget.values())} examples are "
            "not part of the user data the model was fit on (compared by content: inputs "
            "and labels)."
        )
    if forget == fitted:
        raise InvalidArgumentError(
            "`forget_data` is all of the user data: call forget_all() (sets Δ = 0 exactly)."
        )


def check_remaining(fitted: Counter[str], forget: Counter[str], rest: Counter[str]) -> None:
    """Raises unless ``rest`` is exactly ``fitted`` without ``forget``.

    Raises:
        InvalidArgumentError: saying how many examples ``rest`` lacks and has extra.
    """
    expected = fitted - forget
    if rest != expected:
        missing = sum((expected - rest).values())
        extra = sum((rest - expected).values())
        raise InvalidArgumentError(
            f"`remaining` must be exactly the fitted user data without `forget_data` "
            f"({sum(expected.values())} examples); it lacks {missing} of them and "
            f"has {extra} others."
        )
