"""What a layer, an activation or an op node does to a removed (zero) channel.

Structured surgery zeroes a removed unit's weights in the *masked* model and
drops the unit in the *shrunk* one; the two agree only where a removed channel
is exactly zero when a weighted layer reads it. The tables here say which
layers and activations keep a zero channel zero, and :class:`OpCall` reads the
op nodes of a functional graph: ``keras.ops`` calls in Keras 3 (an
:class:`~keras.src.ops.operation.Operation` in ``model.operations`` that is not
a layer, e.g. ``keras.src.ops.numpy.Add`` for ``x + 3.0``) and ``TFOpLambda``
layers in tf_keras (``tf.__operators__.add``). An op node is followed when it is
element-wise with scalar constants; what it maps 0 to is computed, not assumed.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np

from keras_forget import _keras

#: Effects of an activation on its input channels.
ZERO, NONZERO, ALL_CHANNELS, HALVES = "zero", "nonzero", "all channels", "halves"
#: Every activation of ``keras.activations`` and tf_keras (verified by tests/test_graph.py):
#: ZERO: element-wise, f(0) == 0; NONZERO: element-wise, f(0) != 0 (``threshold``: depends on
#: its arguments); ALL_CHANNELS: reads the whole last axis; HALVES: halves the channels.
ACTIVATIONS: dict[str, str] = {
    **dict.fromkeys(
        ("linear", "relu", "relu6", "elu", "selu", "celu", "gelu", "silu", "swish", "mish",
         "tanh", "leaky_relu", "softsign", "hard_silu", "hard_swish", "hard_tanh",
         "hard_shrink", "soft_shrink", "tanh_shrink"), ZERO),
    **dict.fromkeys(
        ("sigmoid", "hard_sigmoid", "softplus", "sparse_plus", "sparse_sigmoid", "squareplus",
         "log_sigmoid", "exponential", "threshold"), NONZERO),
    **dict.fromkeys(("softmax", "log_softmax", "sparsemax"), ALL_CHANNELS),
    "glu": HALVES,
}  # fmt: skip

#: Producer class name -> config key of its number of units.
PRODUCERS: dict[str, str] = {
    "Dense": "units",
    "Conv1D": "filters",
    "Conv2D": "filters",
    "Conv3D": "filters",
    "SeparableConv1D": "filters",  # depthwise then pointwise: a producer like a Conv
    "SeparableConv2D": "filters",
}
#: Recurrent producer class name -> gates per unit: its kernel, recurrent kernel and bias
#: hold ``gates`` blocks of ``units`` columns, one block per gate, in this order.
RECURRENT: dict[str, int] = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}
#: Layers with one weight entry per channel, sliced along the channels (a Conv with
#: ``groups == input channels == filters`` is one too).
CHANNELWISE = frozenset({"BatchNormalization", "DepthwiseConv1D", "DepthwiseConv2D"})
#: Weightless layers that map channel j to channel j, and zero to zero.
PASS_THROUGH = frozenset(
    {"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
     "GaussianDropout", "AlphaDropout", "Identity", "ActivityRegularization", "MaxPooling1D",
     "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
     "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D",
     "UpSampling1D", "UpSampling2D", "UpSampling3D", "GlobalAveragePooling1D",
     "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalMaxPooling1D",
     "GlobalMaxPooling2D", "GlobalMaxPooling3D"}
)  # fmt: skip
#: Activation layers (their output is a block's post-activation output, scored).
ACTIVATION_LAYERS = frozenset({"Activation", "ReLU", "LeakyReLU", "ELU"})
#: Element-wise merges: their inputs must keep the same channels.
COUPLING = frozenset({"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"})
#: Layers that read all channels together: what feeds them is kept whole.
NEEDS_ALL = frozenset(
    {"Softmax", "LayerNormalization", "UnitNormalization", "GroupNormalization", "RMSNormalization"}
)

#: Element-wise ops (Keras 3 class names and tf function names, in snake case).
ELEMENTWISE_OPS = frozenset(
    {"abs", "absolute", "fabs", "negative", "square", "sqrt", "rsqrt", "exp", "exp2", "expm1",
     "log", "log1p", "log2", "log10", "sin", "cos", "tan", "tanh", "sinh", "cosh", "arcsin",
     "arcsinh", "arctan", "arctanh", "sign", "round", "floor", "ceil", "trunc", "clip",
     "clip_by_value", "cast", "saturate_cast", "copy", "identity", "stop_gradient", "reciprocal",
     "cbrt", "erf", "erfc", "nan_to_num", "relu", "relu6", "elu", "selu", "celu", "gelu", "silu",
     "swish", "mish", "leaky_relu", "hard_sigmoid", "hard_silu", "hard_swish", "hard_tanh",
     "hard_shrink", "soft_shrink", "tanh_shrink", "sigmoid", "log_sigmoid", "softplus",
     "softsign", "sparse_plus", "sparse_sigmoid", "squareplus", "threshold", "add", "subtract",
     "sub", "multiply", "mul", "multiply_no_nan", "divide", "true_divide", "truediv", "div",
     "divide_no_nan", "floor_divide", "floordiv", "mod", "fmod", "floormod", "power", "pow",
     "maximum", "minimum", "fmax", "fmin", "squared_difference", "hypot", "arctan2", "logaddexp"}
)  # fmt: skip
#: Products: a zero in any input gives zero, whatever the others hold.
MULTIPLY_OPS = frozenset({"multiply", "mul", "multiply_no_nan"})
#: Ops that may turn a finite input into inf or NaN (not followed on a non-zero channel).
UNSAFE_OPS = frozenset(
    {"sqrt", "rsqrt", "log", "log1p", "log2", "log10", "reciprocal", "tan", "arcsin", "arctanh",
     "divide", "true_divide", "truediv", "div", "divide_no_nan", "floor_divide", "floordiv",
     "mod", "fmod", "floormod", "power", "pow", "exp", "exp2", "expm1"}
)  # fmt: skip
#: Divisions: ``x / c`` keeps a finite x finite (c != 0 is checked: 0 / 0 is NaN).
DIVIDE_OPS = frozenset({"divide", "true_divide", "truediv", "div", "divide_no_nan"})
#: Reductions, followed when they keep the last axis.
REDUCE_OPS = frozenset(
    {"mean", "sum", "max", "min", "amax", "amin", "reduce_mean", "reduce_sum", "reduce_max",
     "reduce_min"}
)  # fmt: skip


def activation_effect(name: Any) -> str | None:
    """The effect of an activation (a name or a serialized config); None when unknown."""
    if name is None:
        return ZERO
    if isinstance(name, Mapping):  # a serialized function
        name = name.get("config", name.get("class_name"))
    return ACTIVATIONS.get(name) if isinstance(name, str) else None


def layer_activation(cls: str, config: Mapping[str, Any]) -> Any:
    """The activation of a layer config: a name, ``"relu"`` for ReLU-like layers, or None."""
    if cls == "ReLU":
        threshold, slope = config.get("threshold") or 0.0, config.get("negative_slope") or 0.0
        return "relu" if threshold <= 0 or slope == 0 else f"relu(threshold={threshold})"
    if cls in ("LeakyReLU", "ELU"):
        return "relu"
    return config.get("activation")


def snake(name: str) -> str:
    """``"HardSilu"`` -> ``"hard_silu"``; ``"__operators__.add"`` -> ``"add"``."""
    name = name.rsplit(".", 1)[-1]
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


@dataclasses.dataclass
class OpCall:
    """One op node of a functional graph, with what it was called on.

    Attributes:
        name: the node's name in the model config.
        kind: the op in snake case (``"add"``, ``"hard_silu"``, ``"reduce_mean"``).
        source: how the user wrote it (``"keras.ops.add"``, ``"tf.math.add"``).
        function: calls the op on concrete values.
        args: positional arguments (KerasTensors and constants).
        kwargs: keyword arguments.
        tensors: the KerasTensors among them, in order.
        axis: the reduction axis (reductions only).
        zeros: makes a zero tensor ``(shape, dtype)``.
    """

    name: str
    kind: str
    source: str
    function: Callable[..., Any]
    args: tuple
    kwargs: dict
    tensors: list
    axis: Any
    zeros: Callable[[list[int], Any], Any]

    def constants(self) -> list[Any]:
        """Numeric constants among the arguments (not the tensors, names or dtypes)."""
        found: list[Any] = []
        ids = {id(t) for t in self.tensors}

        def walk(value: Any) -> None:
            if id(value) in ids or value is None or isinstance(value, (str, bool)):
                return
            if isinstance(value, (list, tuple)):
                for item in value:
                    walk(item)
            elif isinstance(value, Mapping):
                for item in value.values():
                    walk(item)
            elif isinstance(value, (int, float, np.ndarray, np.generic)) or hasattr(value, "shape"):
                found.append(value)

        walk((self.args, {k: v for k, v in self.kwargs.items() if k not in ("name", "dtype")}))
        return found

    def may_blow_up(self) -> bool:
        """Whether a finite input may give inf or NaN (``log``, ``c / x``; not ``x / c``)."""
        if self.kind in DIVIDE_OPS and len(self.tensors) == 1 and self.args:
            return self.args[0] is not self.tensors[0]
        return self.kind in UNSAFE_OPS

    def at_zero(self) -> np.ndarray:
        """The op's output when every tensor input is zero (batch and unknown dims of 1)."""
        ids = {id(t): t for t in self.tensors}

        def swap(value: Any) -> Any:
            if id(value) in ids:
                shape = [1 if d is None else int(d) for d in value.shape]
                return self.zeros(shape, value.dtype)
            if isinstance(value, (list, tuple)):
                return type(value)(swap(v) for v in value)
            if isinstance(value, dict):
                return {k: swap(v) for k, v in value.items()}
            return value

        out = self.function(*swap(tuple(self.args)), **swap(dict(self.kwargs)))
        return np.asarray(out.numpy() if hasattr(out, "numpy") else out, np.float64)


def op_calls(model: Any) -> dict[str, OpCall]:
    """``{node name: OpCall}`` for the op nodes of a Keras 3 or tf_keras model."""
    calls = {}
    keras3 = _keras.flavor(model) == "keras3"
    for op in operations(model):
        cls = type(op).__name__
        if cls == "TFOpLambda":
            nodes = getattr(op, "inbound_nodes", [])  # several: shared, left whole anyway
            if nodes:
                calls[op.name] = _tf_call(op, nodes[0])
        elif keras3 and not isinstance(op, keras.layers.Layer):
            nodes = getattr(op, "_inbound_nodes", [])
            if nodes:
                calls[op.name] = _keras3_call(op, nodes[0])
    return calls


def operations(model: Any) -> list[Any]:
    """The layers and ops of a model (Keras 3 functional: ``model.operations``)."""
    try:
        operations = model.operations  # Keras 3 functional: layers and ops
    except (AttributeError, ValueError, RuntimeError):
        operations = None
    return list(operations if operations is not None else getattr(model, "layers", []))


def _keras3_call(op: Any, node: Any) -> OpCall:
    kind = snake(type(op).__name__)
    arguments = node.arguments
    return OpCall(
        op.name,
        kind,
        f"keras.ops.{kind}",
        op,
        tuple(arguments.args),
        dict(arguments.kwargs),
        list(arguments.keras_tensors),
        getattr(op, "axis", None),
        lambda shape, dtype: keras.ops.zeros(shape, dtype),
    )


def _tf_call(layer: Any, node: Any) -> OpCall:
    import tensorflow as tf

    symbol = str(layer.get_config().get("function", layer.name))
    args, kwargs = tuple(node.call_args), dict(node.call_kwargs)
    axis = kwargs.get("axis", args[1] if len(args) > 1 else None)
    return OpCall(
        layer.name,
        snake(symbol),
        f"tf.{symbol}",
        layer.function,
        args,
        kwargs,
        list(node.keras_inputs),
        axis,
        lambda shape, dtype: tf.zeros(shape, dtype),
    )
