"""The first-order expansion of a network around its core weights.

For the weights ``w`` of the chosen layers, the mixed-linear network is

    f_lin(x) = f(x; w_c) + J_w f(x; w_c) · Δ

where ``w_c`` are the core weights (kept fixed) and ``Δ`` is the only thing
trained on user data. ``J·Δ`` is a Jacobian-vector product (forward mode,
``tf.autodiff.ForwardAccumulator``) and ``Jᵀ·r`` a vector-Jacobian product
(``tf.GradientTape`` with ``output_gradients``); the Jacobian itself is never formed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from keras_forget.errors import InvalidArgumentError

_LAST = re.compile(r"^last:(\d+)$")


def weighted_layers(model: Any) -> list[Any]:
    """The model's top-level layers that hold trainable weights, in order."""
    return [layer for layer in model.layers if layer.trainable_weights]


def resolve_layers(model: Any, linearize: Any) -> list[Any]:
    """The layers a ``linearize`` spec names.

    Args:
        model: a built Keras model.
        linearize: ``"last:k"`` (the last ``k`` top-level layers holding
            trainable weights) or a non-empty list of layer names.

    Returns:
        The layers, in the model's order.

    Raises:
        InvalidArgumentError: a malformed spec, ``k`` larger than the number of
            layers with weights, an unknown name, a layer without trainable
            weights, or a model with no such layer at all.
    """
    candidates = weighted_layers(model)
    if not candidates:
        raise InvalidArgumentError(
            f"`core_model` {model.name!r} has no layer with trainable weights to linearize."
        )
    names = [layer.name for layer in candidates]
    if isinstance(linearize, str):
        match = _LAST.match(linearize.strip())
        if match is None:
            raise InvalidArgumentError(
                f"`linearize` must be 'last:k' (k >= 1) or a list of layer names, "
                f"got {linearize!r}."
            )
        k = int(match.group(1))
        if not 1 <= k <= len(candidates):
            raise InvalidArgumentError(
                f"`linearize={linearize!r}`: k must lie in 1..{len(candidates)}, the number "
                f"of layers with trainable weights ({names})."
            )
        return candidates[-k:]
    if (
        not isinstance(linearize, Sequence)
        or isinstance(linearize, bytes)
        or not linearize
        or not all(isinstance(name, str) for name in linearize)
    ):
        raise InvalidArgumentError(
            f"`linearize` must be 'last:k' or a non-empty list of layer names, got {linearize!r}."
        )
    if len(set(linearize)) != len(linearize):
        raise InvalidArgumentError(f"`linearize` names a layer twice: {list(linearize)}.")
    all_names = {layer.name for layer in model.layers}
    for name in linearize:
        if name not in all_names:
            raise InvalidArgumentError(
                f"`linearize` names {name!r}, which is not a layer of {model.name!r}; "
                f"layers with trainable weights: {names}."
            )
        if name not in names:
            raise InvalidArgumentError(
                f"`linearize` names {name!r}, which has no trainable weight; "
                f"layers with trainable weights: {names}."
            )
    return [layer for layer in candidates if layer.name in set(linearize)]


def tf_variable(variable: Any) -> tf.Variable:
    """The ``tf.Variable`` behind a Keras 3 variable (a tf_keras one is returned as is)."""
    return variable if isinstance(variable, tf.Variable) else variable.value


def linear_variables(layers: Sequence[Any]) -> list[tf.Variable]:
    """The trainable ``tf.Variable`` of ``layers``, in order; the coordinates of Δ."""
    return [tf_variable(v) for layer in layers for v in layer.trainable_weights]


def _zeros_if_none(value: Any, like: tf.Tensor) -> tf.Tensor:
    return tf.zeros_like(like) if value is None else value


def jvp(
    model: Any, variables: Sequence[tf.Variable], x: Any, tangents: Sequence[tf.Tensor]
) -> tuple[tf.Tensor, tf.Tensor]:
    """The network's output and ``J·tangents`` on a batch.

    Args:
        model: the core network.
        variables: the linearized variables (from :func:`linear_variables`).
        x: a batch of inputs.
        tangents: one tensor per variable, shaped like it.

    Returns:
        ``(f(x; w_c), J_w f(x; w_c) · tangents)``, both shaped like the output.
    """
    with tf.autodiff.ForwardAccumulator(list(variables), list(tangents)) as acc:
        out = model(x, training=False)
    return out, _zeros_if_none(acc.jvp(out), out)


def vjp(
    model: Any, variables: Sequence[tf.Variable], x: Any, cotangent: tf.Tensor
) -> list[tf.Tensor]:
    """``Jᵀ·cotangent`` on a batch: one tensor per variable.

    Args:
        model: the core network.
        variables: the linearized variables.
        x: a batch of inputs.
        cotangent: shaped like the network's output on ``x``.

    Returns:
        The products, one per variable, shaped like it (summed over the batch).
    """
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(list(variables))
        out = model(x, training=False)
    grads = tape.gradient(out, list(variables), output_gradients=cotangent)
    return [_zeros_if_none(g, v) for g, v in zip(grads, variables)]


class LinearizedModel(keras.Model):
    """A Keras model computing ``f(x; w_c) + J_w f(x; w_c) · Δ``.

    It owns a private copy of the core network (frozen) and one variable per
    linearized weight holding Δ. ``predict``, ``evaluate`` and
    ``export`` (SavedModel) work as for any Keras model; changing Δ (through
    :class:`~keras_forget.mixed_privacy.MixedLinear`) changes what it computes.

    Args:
        core: the core network (already a private copy).
        layer_names: the names of the linearized layers.
        **kwargs: passed to ``keras.Model``.
    """

    def __init__(self, core: Any, layer_names: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.layer_names = list(layer_names)
        self._linear = tuple(linear_variables([core.get_layer(n) for n in self.layer_names]))
        self.core = core
        self.core.trainable = False  # after the variables are read: it empties trainable_weights
        self.deltas = [
            self.add_weight(
                shape=tuple(v.shape),
                initializer="zeros",
                trainable=False,
                dtype=v.dtype,
                name=f"delta_{i}",
            )
            for i, v in enumerate(self._linear)
        ]

    @property
    def linear_variables(self) -> list[tf.Variable]:
        """The core's linearized variables, in the order of :attr:`deltas`."""
        return list(self._linear)

    def call(self, inputs: Any, training: bool = False) -> tf.Tensor:
        """``f(x; w_c) + J·Δ``; ``training`` is ignored (the core runs in inference mode)."""
        out, change = jvp(
            self.core, self._linear, inputs, [tf_variable(d).read_value() for d in self.deltas]
        )
        return out + change
