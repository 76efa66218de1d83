"""The first-order expansion of a network around its core weights.

For the weights ``w`` of the chosen layers, the mixed-linear network is

    f_lin(x) = f(x; w_c) + J_w f(x; w_c) · Δ

where ``w_c`` are the core weights (kept fixed) and ``Δ`` is the only thing
trained on user data. ``J·Δ`` is a Jacobian-vector product (forward mode,
``tf.autodiff.ForwardAccumulator``) and ``Jᵀ·r`` a vector-Jacobian product
(``tf.GradientTape`` with ``output_gradients``); the Jacobian itself is never formed.

:func:`linearized_model` wraps the expansion as a functional model of the core's
Keras (Keras 3 or tf_keras) whose one layer, :class:`LinearizedLayer`, holds the
core and Δ; the JVP is traced into its graph, so a SavedModel export computes
``f + J·Δ`` for any core. A TFLite conversion needs every op of that graph to
be a TFLite builtin, and the tangent through a ReLU or leaky ReLU is carried by
``ReluGrad`` / ``LeakyReluGrad``, which are not: TFLite export works when no
such activation lies after the first linearized weight (``linearize="last:1"``
on a logits layer without activation).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import keras
import tensorflow as tf

from keras_forget import _keras
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


def trainable_indices(layer: Any) -> list[int]:
    """The positions in ``layer.weights`` of its trainable weights."""
    trainable = {id(v) for v in layer.trainable_weights}
    return [i for i, v in enumerate(layer.weights) if id(v) in trainable]


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


class _Variables:
    """Holds the linearized variables out of sight of Keras' attribute tracking.

    The variables belong to the core network; a layer attribute holding them
    directly would make tf_keras count them a second time as the layer's own.
    """

    def __init__(self, variables: Sequence[tf.Variable]) -> None:
        self.variables = tuple(variables)


class _Linearized:
    """``f(x; w_c) + J_w f(x; w_c)·Δ`` as a layer of either Keras (mixed into its ``Layer``).

    The layer owns the core network (frozen) and one non-trainable variable per
    linearized weight, holding Δ. Its config holds the serialized core, so the
    layer can be copied (``from_config(get_config())``) and saved.

    Args:
        core: the core network (a private copy: it is frozen here).
        layer_names: the names of the linearized layers of ``core``.
        weight_indices: for each of those layers, the positions in its
            ``weights`` of the linearized variables; by default its trainable
            weights (a frozen core, as in a config, has none).
        **kwargs: passed to the Keras ``Layer``.
    """

    #: ``keras`` or ``tf_keras``: the Keras the subclass is built on.
    keras_module: Any = keras

    def __init__(
        self,
        core: Any,
        layer_names: Sequence[str],
        weight_indices: Sequence[Sequence[int]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.layer_names = list(layer_names)
        layers = [core.get_layer(n) for n in self.layer_names]
        if weight_indices is None:
            weight_indices = [trainable_indices(layer) for layer in layers]
        self.weight_indices = [[int(i) for i in idx] for idx in weight_indices]
        self._linear = _Variables(
            tf_variable(layer.weights[i])
            for layer, idx in zip(layers, self.weight_indices)
            for i in idx
        )
        self.core = core
        self.core.trainable = False  # Δ alone changes; Keras training leaves the core as is
        self.deltas = [
            self.add_weight(
                shape=tuple(v.shape),
                initializer="zeros",
                trainable=False,
                dtype=v.dtype,
                name=f"delta_{i}",
            )
            for i, v in enumerate(self._linear.variables)
        ]

    @property
    def linear_variables(self) -> list[tf.Variable]:
        """The core's linearized variables, in the order of :attr:`deltas`."""
        return list(self._linear.variables)

    def call(self, inputs: Any, training: Any = None) -> tf.Tensor:
        """``f(x; w_c) + J·Δ``; ``training`` is ignored (the core runs in inference mode)."""
        tangents = [tf_variable(d).read_value() for d in self.deltas]
        out, change = jvp(self.core, self._linear.variables, inputs, tangents)
        return out + change

    def compute_output_shape(self, input_shape: Any) -> Any:
        """The core's output shape."""
        return self.core.compute_output_shape(input_shape)

    def get_config(self) -> dict[str, Any]:
        """The layer's config, with the core network serialized in it."""
        saving = self.keras_module.saving
        return {
            **super().get_config(),
            "core": saving.serialize_keras_object(self.core),
            "layer_names": list(self.layer_names),
            "weight_indices": [list(idx) for idx in self.weight_indices],
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        """Rebuilds the layer (Δ = 0) from :meth:`get_config`."""
        config = dict(config)
        core = cls.keras_module.saving.deserialize_keras_object(config.pop("core"))
        return cls(core, **config)


@keras.saving.register_keras_serializable(package="keras_forget")
class LinearizedLayer(_Linearized, keras.layers.Layer):
    """The Keras 3 layer computing ``f(x; w_c) + J·Δ`` (see :func:`linearized_model`)."""


@functools.cache
def _tf_keras_layer_class(module: ModuleType) -> type:
    """The tf_keras twin of :class:`LinearizedLayer` (made once tf_keras is in use)."""
    cls = type(
        "LinearizedLayer",
        (_Linearized, module.layers.Layer),
        {"__module__": __name__, "__doc__": LinearizedLayer.__doc__, "keras_module": module},
    )
    return module.saving.register_keras_serializable(package="keras_forget")(cls)


def layer_class(core: Any) -> type:
    """:class:`LinearizedLayer` of the Keras that ``core`` was built with."""
    module = _keras.keras_module(core)
    return LinearizedLayer if module is keras else _tf_keras_layer_class(module)


def linearized_model(core: Any, layer_names: Sequence[str], name: str) -> Any:
    """A functional model of ``core``'s Keras: its inputs, then one linearized layer.

    It computes ``f(x; w_c) + J·Δ``; ``predict``, ``evaluate``, saving and
    :func:`keras_forget.export` work as for any functional model, the JVP
    traced into the graph. Δ lives in the layer's :attr:`~_Linearized.deltas`.

    Args:
        core: the core network (a private copy: it is frozen).
        layer_names: the names of the linearized layers.
        name: the model's name.

    Returns:
        The model; its layer named ``"linearized"`` holds the core and Δ.
    """
    module = _keras.keras_module(core)
    layer = layer_class(core)(core, layer_names, name="linearized")
    inputs = [module.Input(shape=tuple(t.shape[1:]), dtype=t.dtype) for t in core.inputs]
    inputs = inputs[0] if len(inputs) == 1 else inputs
    return module.Model(inputs, layer(inputs), name=name)
