"""Whether a Lambda layer acts channel by channel and keeps a zero channel zero, by probing it.

A ``Lambda`` layer runs arbitrary Python, so its config says nothing about what it
does to channels. Structured surgery can follow it only if removing a channel
before it is the same as removing that channel after it: the layer must act on
each channel of its last axis alone and map an all-zero channel to zero. The
probe calls the layer on random inputs, with and without some channels zeroed,
and checks both. It is evidence, not proof, so the shrunk model is always
compared with the masked one afterwards.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Examples per probe batch.
PROBE_BATCH = 4
#: Largest probe input, in floats (a layer on a larger input is not probed).
MAX_PROBE = 1 << 20


def channelwise_blocker(layer: Any, shape: tuple[int | None, ...]) -> str | None:
    """Why ``layer`` cannot be followed channel by channel, or None when it can.

    Args:
        layer: a built Lambda layer (Keras 3 or tf_keras) taking one tensor.
        shape: its input's batch shape, e.g. ``(None, 8, 8, 16)``.

    Returns:
        A reason completing "it ...", or None.
    """
    dims = tuple(shape[1:])
    if not dims or any(d is None for d in dims):
        return "has an input of unknown shape, so it could not be probed"
    if PROBE_BATCH * int(np.prod(dims)) > MAX_PROBE:
        return "has an input too large to probe"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(PROBE_BATCH, *dims)).astype("float32")
    try:
        full = _call(layer, x)
        for keep in (np.arange(dims[-1]) % 2 == 0, rng.random(dims[-1]) < 0.5):
            part = _call(layer, x * keep)
            if full.shape != x.shape:
                return f"changes the shape {x.shape[1:]} -> {full.shape[1:]}"
            if np.any(part[..., ~keep] != 0):
                return "does not keep a zeroed channel at zero (probed)"
            if not np.allclose(part[..., keep], full[..., keep], rtol=1e-5, atol=1e-6):
                return "mixes channels (probed: zeroing some channels changes the others)"
    except Exception as exc:  # noqa: BLE001  (a layer that fails on the probe is not followed)
        return f"failed on a probe input ({exc!r:.80})"
    return None


def _call(layer: Any, x: np.ndarray) -> np.ndarray:
    return np.asarray(layer(x, training=False) if _takes_training(layer) else layer(x))


def _takes_training(layer: Any) -> bool:
    try:
        return "training" in layer._call_signature.parameters  # Keras 3
    except AttributeError:
        return False
