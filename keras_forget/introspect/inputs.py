"""What layers see: a model from a model's inputs to some of its layers' inputs.

Layer-wise methods (Optimal Brain Surgeon) need the inputs of each layer on
calibration data. A layer of a Sequential or functional model called once has a
symbolic input in the model's graph, and ``Model(model.inputs, [layer.input])``
computes it with the model's own variables, so changing an earlier layer's
weights changes what the later ones see. A layer called more than once (shared),
inside a nested model, inside a wrapper, or in a subclassed model has no such
single input; :func:`input_model` then returns None and the caller decides.
:class:`LayerInputs` runs those passes from cached activations instead of the
model's inputs, for methods that visit every layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from keras_forget import _keras
from keras_forget.introspect import topology


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


#: Most floats of cached activations a :class:`LayerInputs` keeps (float32): 256 MB.
MAX_CACHED_FLOATS = 2**26


class LayerInputs:
    """Layers' inputs on fixed examples, resumed from cached activations.

    Layer-wise methods visit layers in graph order, changing each layer's weights
    before the next one reads its inputs. Running the model from its inputs to
    every visited layer costs about L²/2 layer passes for L layers. This runs
    each pass from the nearest cached activation that *dominates* the layer
    (every path from the model's inputs to it passes through that output: a
    residual block's output, a dense block's concatenation), caching the
    activation of the layer's nearest dominator first, so that all passes
    together cost about one pass through the model. An activation is computed
    once all layers before it in graph order have changed and only later ones
    change afterwards, so it stays valid when layers are visited in graph order
    (visiting a layer out of that order drops the activations after it).

    Activations are kept while they dominate the layer visited last, oldest
    dropped first beyond ``budget`` floats; without room (large inputs, many
    examples) a pass starts from a farther cut, at worst the model's inputs.

    Args:
        model: a built Sequential or functional Keras 3 or tf_keras model.
        x: the examples' inputs (array or list of arrays, one row per example).
        order: node names of ``model`` in topological order.
        parents: ``{node: [parent names]}`` (see :func:`topology.topology`).
        budget: most floats of activations kept (default :data:`MAX_CACHED_FLOATS`).
    """

    def __init__(
        self,
        model: Any,
        x: Any,
        order: list[str],
        parents: dict[str, list[str]],
        *,
        budget: int | None = None,
    ) -> None:
        self.model = model
        self.budget = MAX_CACHED_FLOATS if budget is None else int(budget)
        self._idom = topology.dominators(order, parents)
        self._index = {name: i for i, name in enumerate(order)}
        self._cache: dict[str | None, Any] = {None: x}
        self._uncuttable: set[str] = set()

    def inputs_to(self, layer: Any) -> tuple[Any, Any] | None:
        """``(model, inputs)``: ``model(inputs)`` is ``layer``'s input on the examples.

        Returns:
            None when ``layer`` has no single input in the model's graph
            (see :func:`input_model`).
        """
        try:
            tensor = layer.input
        except (AttributeError, ValueError, RuntimeError):  # shared, nested or subclassed
            return None
        if isinstance(tensor, (list, tuple, dict)):
            return None
        self._forget_after(layer.name)
        start = self._cached(self._idom.get(layer.name))
        target = self._cut(layer.name, start)
        if target != start:
            values = self._forward(start, target)
            if values is not None and self._room(target, values):
                self._cache[target], start = values, target
        try:
            return self._between(start, layer), self._cache[start]
        except Exception:  # Keras cannot cut the graph there: from the model's inputs
            whole = input_model(self.model, [layer])
            return None if whole is None else (whole, self._cache[None])

    def _forget_after(self, name: str) -> None:
        """Drops activations at or after ``name`` in graph order, which its change would
        make stale (none when layers are visited in graph order)."""
        last = self._index.get(name, -1)
        for node in [n for n in self._cache if n is not None and self._index[n] >= last]:
            del self._cache[node]

    def _cached(self, name: str | None) -> str | None:
        """The nearest cached dominator of ``name`` (``name`` itself included)."""
        while name is not None and name not in self._cache:
            name = self._idom.get(name)
        return name

    def _cut(self, name: str, start: str | None) -> str | None:
        """The nearest dominator of ``name`` after ``start`` whose output is one tensor."""
        node = self._idom.get(name)
        while node is not None and node != start:
            if node not in self._uncuttable:
                try:
                    output = self.model.get_layer(node).output
                    if not isinstance(output, (list, tuple, dict)):
                        return node
                except Exception:  # an op node, a shared or nested layer
                    pass
                self._uncuttable.add(node)
            node = self._idom.get(node)
        return start

    def _between(self, start: str | None, end: Any) -> Any:
        """A model from ``start``'s output (None: the model's inputs) to ``end``'s input
        (a layer) or output (a node name)."""
        if start is None:
            if isinstance(end, str):
                km = _keras.keras_module(self.model)
                inputs = list(self.model.inputs)
                return km.Model(
                    inputs[0] if len(inputs) == 1 else inputs, self.model.get_layer(end).output
                )
            return input_model(self.model, [end])
        km = _keras.keras_module(self.model)
        source = self.model.get_layer(start).output
        target = self.model.get_layer(end).output if isinstance(end, str) else end.input
        return _Identity() if target is source else km.Model(source, [target])

    def _forward(self, start: str | None, target: str) -> np.ndarray | None:
        """``target``'s output on every example, run from ``start``'s, a chunk at a time."""
        try:
            model, x = self._between(start, target), self._cache[start]
            step = forward_batch(model, 256)
            count = len(x[0] if isinstance(x, (list, tuple)) else x)
            parts = []
            for begin in range(0, count, step):
                rows = slice(begin, begin + step)
                chunk = [a[rows] for a in x] if isinstance(x, (list, tuple)) else x[rows]
                out = model(chunk, training=False)
                parts.append(np.asarray(out[0] if isinstance(out, (list, tuple)) else out))
            return np.concatenate(parts)
        except Exception:  # a cut Keras cannot run alone: start farther up
            return None

    def _room(self, target: str, values: np.ndarray) -> bool:
        """Drops activations no longer needed; whether ``values`` fit in the budget."""
        if values.size > self.budget:
            return False
        keep, node = set(), target
        while node is not None:
            keep.add(node)
            node = self._idom.get(node)
        for name in [n for n in self._cache if n is not None and n not in keep]:
            del self._cache[name]
        held = [n for n in self._cache if n is not None]
        held.sort(key=self._index.__getitem__)
        while held and sum(self._cache[n].size for n in held) + values.size > self.budget:
            del self._cache[held.pop(0)]
        return True


class _Identity:
    """A model whose output is its input (a layer reading a cached activation as it is)."""

    layers: list[Any] = []

    def __call__(self, inputs: Any, training: bool = False) -> list[Any]:
        return [inputs]
