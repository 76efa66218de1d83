"""What layers see: a model from a model's inputs to some of its layers' inputs.

Layer-wise methods (Optimal Brain Surgeon) need the inputs of each layer on
calibration data. A layer of a Sequential or functional model called once has a
symbolic input in the model's graph, and ``Model(model.inputs, [layer.input])``
computes it with the model's own variables, so changing an earlier layer's
weights changes what the later ones see. A layer called more than once (shared),
inside a nested model, inside a wrapper, or in a subclassed model has no such
single input; :func:`input_model` then returns None and the caller decides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from keras_forget import _keras


def input_model(model: Any, layers: Sequence[Any]) -> Any | None:
    """A model mapping ``model``'s inputs to the list of ``layers``' inputs, or None.

    The returned model shares ``model``'s layers and variables; called, it returns
    one tensor per layer, in order (a list, even for one layer).

    Args:
        model: a built Keras 3 or tf_keras model.
        layers: some of its layers.

    Returns:
        The model, or None when a layer's input is not a single tensor reachable
        from ``model``'s inputs (shared or nested layers, subclassed models, layers
        inside wrappers, layers taking several inputs).
    """
    try:
        inputs = list(model.inputs)
        tensors = [layer.input for layer in layers]
        if not tensors or any(isinstance(t, (list, tuple, dict)) for t in tensors):
            return None
        km = _keras.keras_module(model)
        return km.Model(inputs[0] if len(inputs) == 1 else inputs, tensors)
    except Exception:  # no graph, several inbound nodes, disconnected: no single input
        return None


#: Most layer outputs a forward pass may hold at once (float32): 256 MB. An eager pass
#: of a functional model keeps every layer's output until it returns.
MAX_FORWARD_FLOATS = 2**26


def forward_batch(model: Any, batch_size: int) -> int:
    """``batch_size``, lowered so an eager forward pass holds at most
    :data:`MAX_FORWARD_FLOATS` layer outputs (at least 1)."""
    return max(1, min(batch_size, MAX_FORWARD_FLOATS // max(1, forward_floats(model))))


def forward_floats(model: Any) -> int:
    """Floats of every layer output of ``model`` for one example.

    This is what an eager forward pass holds per example. A layer whose output
    cannot be read (a subclassed model's, or a shared layer's) counts nothing.
    """
    total = 0
    for layer in model.layers:
        try:
            outputs = layer.output
        except (AttributeError, ValueError, RuntimeError):
            continue
        for tensor in outputs if isinstance(outputs, (list, tuple)) else [outputs]:
            shape = getattr(tensor, "shape", None)
            if shape is not None:
                total += math.prod(int(d or 1) for d in tuple(shape)[1:])
    return total
