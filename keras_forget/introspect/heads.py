"""Attention heads as units: the heads of a ``MultiHeadAttention`` layer.

A ``MultiHeadAttention`` layer (Keras 3 or tf_keras) with ``num_heads`` heads
holds four (five with Keras 3's ``use_gate``) ``EinsumDense`` sublayers. The
query, key, value (and gate) kernels are ``[d, heads, dim]`` and their biases
``[heads, dim]``: the heads are axis -2 of each. The output kernel is
``[heads, value_dim, d]``: the heads are axis 0; its bias ``[d]`` belongs to
no head. Removing head h zeroes its slices, so its attention output (a
softmax-weighted sum of zero values) and its share of the output projection
are exactly zero; shrinking drops them and lowers ``num_heads``.

A head's feature for data scores is the L2 norm over ``value_dim`` of its
attention output before the output projection, per example and per query
position, ``[batch, tokens, heads]``, computed from the layer's own sublayers
on the layer's inputs (:func:`norms`): a layer of the model's own Keras,
:class:`HeadNorms` on Keras 3 and its tf_keras twin (built with ``tf`` ops) on
tf_keras. Weight keys follow :mod:`.registry`: ``"<layer>/<sublayer>/<weight>"``
(``"mha/query/kernel"``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from keras_forget.introspect.registry import short_name

#: Class name of the layers whose heads are units.
ATTENTION = "MultiHeadAttention"
#: Call arguments that the head features follow: the inputs and the causal mask.
FOLLOWED = frozenset({"query", "value", "key", "use_causal_mask", "training"})


def key(name: str) -> str:
    """The unit-group key of layer ``name``'s heads (layer names never hold ``/``)."""
    return f"{name}/heads"


def blocker(layer: Any) -> str | None:
    """Why the heads of ``layer`` cannot be cut, or None when they can.

    Args:
        layer: a ``MultiHeadAttention`` layer of a built model.

    Returns:
        A reason (a clause completing "the heads ..."), or None.
    """
    if not all(hasattr(layer, a) for a in ("_query_dense", "_compute_attention")):
        return "are not those of a known MultiHeadAttention layer"
    nodes = getattr(layer, "_inbound_nodes", [])
    if len(nodes) != 1:
        return f"belong to a layer called {len(nodes)} times"
    try:
        arguments = _arguments(layer)
    except (TypeError, ValueError, AttributeError) as exc:
        return f"belong to a call whose arguments could not be read ({exc!r:.80})"
    odd = sorted(k for k, v in arguments.items() if k not in FOLLOWED and v is not None)
    if odd:
        return f"read call argument(s) {', '.join(odd)}, which head features do not follow"
    return None


def _arguments(layer: Any) -> dict[str, Any]:
    """``{argument name: value}`` of the layer's call (defaults left out)."""
    node = layer._inbound_nodes[0]
    if hasattr(node, "arguments"):  # Keras 3
        args, kwargs = node.arguments.args, node.arguments.kwargs
    else:  # tf_keras
        args, kwargs = node.call_args, node.call_kwargs
    bound = inspect.signature(layer.call).bind_partial(*args, **kwargs)
    return {k: v for k, v in bound.arguments.items() if v is not False}


def _sublayers(layer: Any) -> Iterator[tuple[Any, int | None, int | None]]:
    """``(sublayer, heads axis of its kernel, heads axis of its bias)``."""
    for attr in ("_query_dense", "_key_dense", "_value_dense", "_gate_dense"):
        sub = getattr(layer, attr, None)
        if sub is not None:
            yield sub, -2, -2
    yield layer._output_dense, 0, None


def _axes(layer: Any) -> dict[int, tuple[str, int | None]]:
    """``{id(variable): (weight key, heads axis or None)}`` over the layer's weights."""
    out = {}
    for sub, kernel_axis, bias_axis in _sublayers(layer):
        for variable in sub.weights:
            name = short_name(variable)
            axis = kernel_axis if name == "kernel" else bias_axis
            out[id(variable)] = (f"{layer.name}/{sub.name}/{name}", axis)
    return out


def weight_masks(layer: Any, mask: np.ndarray) -> dict[str, np.ndarray]:
    """The masks that zero the removed heads' slices of every sublayer's weights.

    Args:
        layer: a ``MultiHeadAttention`` layer.
        mask: bool ``[heads]`` (``False`` = removed).

    Returns:
        ``{"<layer>/<sublayer>/<weight>": bool array shaped like the weight}``
        for each weight with a heads axis.
    """
    out = {}
    axes = _axes(layer)
    for variable in layer.weights:
        name, axis = axes.get(id(variable), ("", None))
        if axis is not None:
            shape = tuple(variable.shape)
            along = np.reshape(mask, [-1] + [1] * (len(shape) - 1 - axis % len(shape)))
            out[name] = np.broadcast_to(along, shape).copy()
    return out


def sliced_weights(layer: Any, mask: np.ndarray) -> list[np.ndarray]:
    """The layer's weights (in ``layer.weights`` order) with only the kept heads.

    Args:
        layer: a ``MultiHeadAttention`` layer.
        mask: bool ``[heads]`` (``False`` = removed).

    Returns:
        The values to set on the same layer rebuilt with ``num_heads = mask.sum()``.
    """
    keep, axes, out = np.flatnonzero(mask), _axes(layer), []
    for variable in layer.weights:
        value = np.asarray(variable.numpy())
        axis = axes.get(id(variable), ("", None))[1]
        out.append(value if axis is None else np.take(value, keep, axis=axis))
    return out


def l1(layer: Any) -> np.ndarray:
    """Per head, the L1 norm of its slices of the value and output kernels, ``[heads]``."""
    value = np.asarray(layer._value_dense.kernel.numpy(), np.float64)
    output = np.asarray(layer._output_dense.kernel.numpy(), np.float64)
    heads = value.shape[-2]
    value_part = np.abs(np.moveaxis(value, -2, 0)).reshape(heads, -1).sum(axis=1)
    return value_part + np.abs(output).reshape(heads, -1).sum(axis=1)


class _Attending:
    """Holds an attention layer by reference (not tracked) and whether its call was causal.

    Mixed into a Keras 3 or tf_keras ``Layer`` subclass, before the layer class.

    Args:
        attention: the ``MultiHeadAttention`` layer.
        causal: whether its call used ``use_causal_mask=True``.
        **kwargs: passed to the layer class.
    """

    def __init__(self, attention: Any, causal: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        object.__setattr__(self, "_attention", attention)
        self.causal = bool(causal)


class HeadNorms(_Attending, keras.layers.Layer):
    """``[batch, tokens, heads]``: each head's attention output norm over ``value_dim``.

    Runs the attention layer's own projections and attention on its inputs
    (inference mode), as its ``call`` does, and stops before the output
    projection. The attention layer is referenced, not tracked.

    Args:
        attention: the ``MultiHeadAttention`` layer.
        causal: whether its call used ``use_causal_mask=True``.
        **kwargs: passed to ``keras.layers.Layer``.
    """

    def call(self, query: Any, value: Any, key: Any = None) -> Any:
        """The head norms ``[batch, tokens, heads]`` of the attention on these inputs.

        Args:
            query: the attention layer's query input.
            value: its value input.
            key: its key input (None: ``value``).

        Returns:
            The norms over ``value_dim`` of each head's output.
        """
        mha = self._attention
        key = value if key is None else key
        get = keras.src.backend.get_keras_mask
        mask = mha._compute_attention_mask(
            query,
            value,
            query_mask=get(query),
            value_mask=get(value),
            key_mask=None if key is value else get(key),
            use_causal_mask=self.causal,
        )
        q, k, v = mha._query_dense(query), mha._key_dense(key), mha._value_dense(value)
        out, _ = mha._compute_attention(q, k, v, mask, False)
        if getattr(mha, "_use_gate", False):
            out = keras.ops.multiply(out, mha._gate_dense(query))
        return keras.ops.sqrt(keras.ops.sum(keras.ops.square(out), axis=-1))

    def compute_output_shape(
        self, query_shape: Any, value_shape: Any, key_shape: Any = None
    ) -> tuple:
        """``query_shape`` with its last axis replaced by the number of heads."""
        return (*tuple(query_shape)[:-1], self._attention.num_heads)


@functools.cache
def _tf_keras_head_norms() -> type:
    """:class:`HeadNorms`' tf_keras twin (a class made once, when first needed)."""
    import tensorflow as tf
    import tf_keras

    class TFKerasHeadNorms(_Attending, tf_keras.layers.Layer):
        """:class:`HeadNorms` for a tf_keras ``MultiHeadAttention``, with ``tf`` ops.

        Args:
            attention: the ``MultiHeadAttention`` layer (referenced, not tracked).
            causal: whether its call used ``use_causal_mask=True``.
            **kwargs: passed to ``tf_keras.layers.Layer``.
        """

        def call(self, query: Any, value: Any, key: Any = None) -> Any:
            """The head norms ``[batch, tokens, heads]`` (see :meth:`HeadNorms.call`)."""
            mha = self._attention
            key = value if key is None else key
            mask = mha._compute_attention_mask(query, value, key=key, use_causal_mask=self.causal)
            q, k, v = mha._query_dense(query), mha._key_dense(key), mha._value_dense(value)
            out, _ = mha._compute_attention(q, k, v, mask, False)
            return tf.sqrt(tf.reduce_sum(tf.square(out), axis=-1))

    return TFKerasHeadNorms


def norms(layer: Any) -> Any:
    """The symbolic head features of ``layer``, on the tensors its call read.

    Args:
        layer: a ``MultiHeadAttention`` layer called once in a Keras 3 or
            tf_keras functional model (see :func:`blocker`).

    Returns:
        A Keras tensor ``[batch, tokens, heads]`` of that model's graph (a
        tf_keras one for a tf_keras layer).
    """
    arguments = _arguments(layer)
    causal = bool(arguments.get("use_causal_mask", False))
    inputs = [arguments["query"], arguments["value"]]
    inputs += [arguments["key"]] if arguments.get("key") is not None else []
    kind = HeadNorms if isinstance(layer, keras.layers.Layer) else _tf_keras_head_norms()
    return kind(layer, causal, name=f"{layer.name}_head_norms")(*inputs)
