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
