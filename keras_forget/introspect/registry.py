"""Which weights of which layers can be pruned.

Layers are looked up by class name, so one table serves Keras 3 and tf_keras.
A custom layer joins by implementing ``get_prunable_weights()`` (tfmot's
``PrunableLayer`` protocol), which returns the variables to prune.

A layer with trainable weights of a kind not in the table is *left whole*:
none of its weights is pruned, and :func:`left_whole` names it (the verbs
warn once and list it in their report; ``strict=True`` refuses it instead).

Weight keys are paths of layer names, ``"<layer>/<weight>"``: a model nested
in a model adds nothing, a layer holding other layers (``Bidirectional``,
``TimeDistributed``, a custom block) adds its name, and a recurrent layer's
``cell`` adds nothing, so an LSTM's kernels are ``"lstm/kernel"`` and
``"lstm/recurrent_kernel"`` and a bidirectional one's
``"bidirectional/forward_lstm/kernel"``. Keys are the same across copies of
a model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, NamedTuple

from keras_forget.errors import NotPrunableError, UnsupportedLayerError

_RECURRENT = ("kernel", "recurrent_kernel")

#: Layer class name -> attribute names of the weights that are pruned.
PRUNABLE: dict[str, tuple[str, ...]] = {
    "Dense": ("kernel",),
    "EinsumDense": ("kernel",),
    "Conv1D": ("kernel",),
    "Conv2D": ("kernel",),
    "Conv3D": ("kernel",),
    "Conv1DTranspose": ("kernel",),
    "Conv2DTranspose": ("kernel",),
    "Conv3DTranspose": ("kernel",),
    # Keras 3 names the depthwise weight `kernel`, tf_keras `depthwise_kernel`.
    "DepthwiseConv1D": ("kernel", "depthwise_kernel"),
    "DepthwiseConv2D": ("kernel", "depthwise_kernel"),
    "SeparableConv1D": ("depthwise_kernel", "pointwise_kernel"),
    "SeparableConv2D": ("depthwise_kernel", "pointwise_kernel"),
    "Embedding": ("embeddings",),
    # The cells of SimpleRNN, LSTM, GRU and ConvLSTM1D/2D/3D (found through the
    # layer's `cell`, also inside Bidirectional): input and recurrent kernels.
    "SimpleRNNCell": _RECURRENT,
    "LSTMCell": _RECURRENT,
    "GRUCell": _RECURRENT,
    "ConvLSTMCell": _RECURRENT,
}

#: Layers whose weights are deliberately left whole (normalisation statistics,
#: scales and offsets): supported, nothing pruned, not reported.
NOT_PRUNED: frozenset[str] = frozenset(
    {
        "BatchNormalization",
        "LayerNormalization",
        "GroupNormalization",
        "UnitNormalization",
        "RMSNormalization",
        "Normalization",
        "PReLU",
    }
)

#: Attribute marking a ``get_prunable_weights`` that keras_forget itself set on a
#: layer to hand its masks to tfmot's wrapper; it holds the layer's own method
#: (or None), which the registry reads instead.
PATCHED = "_keras_forget_patched"


@dataclasses.dataclass(frozen=True)
class PrunableWeight:
    """One prunable weight of a model.

    Attributes:
        key: stable name ``"<layer path>/<weight name>"``; the key of score and
            mask maps, identical across copies of a model.
        layer: the model's own layer that holds the weight (a ``Bidirectional``
            for its LSTMs' kernels, an ``LSTM`` for its cell's): the layer
            tfmot wraps.
        variable: the weight's variable.
    """

    key: str
    layer: Any
    variable: Any


class LeftWhole(NamedTuple):
    """A layer with trainable weights that keras_forget cannot prune.

    Attributes:
        name: its path of layer names (``"block/layer_scale"``), as in weight keys.
        class_name: its class name.
        params: how many trainable parameters it holds (its own, not its
            sublayers').
    """

    name: str
    class_name: str
    params: int


def short_name(variable: Any) -> str:
    """A variable's own name without scope or ``:0`` (``dense/kernel:0`` -> ``kernel``)."""
    return variable.name.split("/")[-1].split(":")[0]


def _sublayers(layer: Any) -> list[Any]:
    flatten = getattr(layer, "_flatten_layers", None)
    if flatten is None:
        return list(getattr(layer, "layers", []))
    return list(flatten(include_self=False, recursive=False))


def _is_model(layer: Any) -> bool:
    return hasattr(layer, "layers") and callable(getattr(layer, "compile", None))


def _is_wrapper(layer: Any) -> bool:
    return type(layer).__name__ == "PruneLowMagnitude"


def _own_prunable(layer: Any) -> Any:
    """A ``get_prunable_weights`` the user (or tfmot) gave the layer, else None."""
    method = getattr(layer, "get_prunable_weights", None)
    return getattr(method, PATCHED, method)


def _layer_weights(layer: Any) -> list[tuple[str, Any]] | None:
    """(name, variable) pairs to prune in ``layer``; None if the layer is not a leaf we know."""
    name = type(layer).__name__
    if name in PRUNABLE:  # before get_prunable_weights, which tfmot patches onto layers
        return [
            (a, getattr(layer, a)) for a in PRUNABLE[name] if getattr(layer, a, None) is not None
        ]
    method = _own_prunable(layer)
    if method is not None:
        return [(short_name(v), v) for v in method()]
    if name in NOT_PRUNED:
        return []
    return None


def _children(layer: Any, path: str) -> Iterator[tuple[Any, str]]:
    """``(sublayer, its path)``: a model or a recurrent layer's cell adds no name."""
    cell = getattr(layer, "cell", None)
    for child in _sublayers(layer):
        if _is_wrapper(child):
            child = child.layer
        if _is_model(child) or child is cell:
            yield child, path
        else:
            yield child, f"{path}/{child.name}" if path else child.name


def _walk(layer: Any, path: str, top: Any, left: list[LeftWhole]) -> Iterator[tuple[str, Any, Any]]:
    """``(key, top layer, variable)`` for every prunable weight; unknown layers go to ``left``."""
    weights = _layer_weights(layer)
    if weights is not None:
        for name, variable in weights:
            yield f"{path}/{name}", top, variable
        return
    children = list(_children(layer, path))
    for child, child_path in children:
        owner = top if top is not None or _is_model(child) else child
        yield from _walk(child, child_path, owner, left)
    inner = {id(v) for c, _ in children for v in c.trainable_weights}
    own = [v for v in layer.trainable_weights if id(v) not in inner]
    if own:
        size = sum(int(_size(v.shape)) for v in own)
        left.append(LeftWhole(path or layer.name, type(layer).__name__, size))


def _size(shape: Any) -> int:
    out = 1
    for dim in shape:
        out *= int(dim)
    return out


def _scan(model: Any) -> tuple[dict[str, PrunableWeight], list[LeftWhole]]:
    if _is_wrapper(model):
        model = model.layer
    found: dict[str, PrunableWeight] = {}
    left: list[LeftWhole] = []
    path, top = ("", None) if _is_model(model) else (model.name, model)
    for key, layer, variable in _walk(model, path, top, left):
        if key in found:
            raise UnsupportedLayerError(
                f"Two prunable weights share the key {key!r}; give the layers unique names."
            )
        found[key] = PrunableWeight(key, layer, variable)
    return found, left


def unsupported_error(left: list[LeftWhole]) -> UnsupportedLayerError:
    """The error ``strict=True`` raises for layers that would be left whole."""
    named = ", ".join(f"{item.name!r} ({item.class_name})" for item in left)
    subject = f"Layer {named} has" if len(left) == 1 else f"Layers {named} have"
    return UnsupportedLayerError(
        f"{subject} trainable weights that keras_forget does not know how to prune. Make it "
        f"prunable by implementing `get_prunable_weights()` (returning the variables to prune, "
        f"as in tfmot's PrunableLayer), use layers among: {', '.join(sorted(PRUNABLE))}, or "
        f"pass strict=False to leave it whole."
    )


def prunable_weights(
    model: Any, *, required: bool = True, strict: bool = False
) -> dict[str, PrunableWeight]:
    """Lists the prunable weights of a model, in layer order.

    Layers with trainable weights keras_forget cannot prune are skipped (see
    :func:`left_whole`), unless ``strict``.

    Args:
        model: a built Keras 3 or tf_keras model (or a single layer).
        required: raise if there is none (else return an empty dict).
        strict: raise instead of skipping a layer that cannot be pruned.

    Returns:
        ``{key: PrunableWeight}`` with keys ``"<layer path>/<weight name>"``.

    Raises:
        UnsupportedLayerError: with ``strict``, a layer has trainable weights
            and is neither registered nor a ``PrunableLayer``; or two weights
            share a key.
        NotPrunableError: the model has no prunable weight at all.
    """
    found, left = _scan(model)
    if strict and left:
        raise unsupported_error(left)
    if not found and required:
        raise NotPrunableError(
            f"`model` {model.name!r} has no prunable weight (no Dense, Conv, Embedding, "
            f"recurrent or PrunableLayer with weights)."
        )
    return found


def left_whole(model: Any) -> list[LeftWhole]:
    """The layers with trainable weights that :func:`prunable_weights` skips.

    Normalisation layers (:data:`NOT_PRUNED`) are left whole on purpose and
    not listed.

    Args:
        model: a built Keras 3 or tf_keras model (or a single layer).

    Returns:
        One :class:`LeftWhole` ``(name, class_name, params)`` per layer, in
        layer order.
    """
    return _scan(model)[1]


def all_weights(model: Any) -> dict[str, Any]:
    """Every weight of a model's layers, ``{"<layer path>/<weight name>": variable}``.

    Unlike :func:`prunable_weights`, biases and normalization parameters are
    included (unit masks cover them); keys follow the same paths. Inside
    tfmot's ``PruneLowMagnitude`` the wrapped layer's own variables are listed
    under its own name (the raw weights, before the wrapper multiplies them
    by its masks).
    """
    out: dict[str, Any] = {}

    def walk(layer: Any, path: str) -> None:
        children = list(_children(layer, path))
        inner = {id(v) for c in _sublayers(layer) for v in c.weights}
        for variable in layer.weights:
            if id(variable) not in inner:
                out.setdefault(f"{path}/{short_name(variable)}", variable)
        for child, child_path in children:
            walk(child, child_path)

    if _is_wrapper(model):
        model = model.layer
    walk(model, "" if _is_model(model) else model.name)
    return out
