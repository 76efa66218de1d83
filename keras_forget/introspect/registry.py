"""Which weights of which layers can be pruned.

Layers are looked up by class name, so one table serves Keras 3 and tf_keras.
A custom layer joins by implementing ``get_prunable_weights()`` (tfmot's
``PrunableLayer`` protocol), which returns the variables to prune.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from keras_forget.errors import NotPrunableError, UnsupportedLayerError

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
}

#: Layers whose weights are deliberately left whole (normalisation statistics,
#: scales and offsets): supported, nothing pruned.
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


@dataclasses.dataclass(frozen=True)
class PrunableWeight:
    """One prunable weight of a model.

    Attributes:
        key: stable name ``"<layer name>/<weight name>"``; the key of score and
            mask maps, identical across copies of a model.
        layer: the layer that owns the weight.
        variable: the weight's variable.
    """

    key: str
    layer: Any
    variable: Any


def short_name(variable: Any) -> str:
    """A variable's own name without scope or ``:0`` (``dense/kernel:0`` -> ``kernel``)."""
    return variable.name.split("/")[-1].split(":")[0]


def _sublayers(layer: Any) -> list[Any]:
    flatten = getattr(layer, "_flatten_layers", None)
    if flatten is None:
        return list(getattr(layer, "layers", []))
    return list(flatten(include_self=False, recursive=False))


def _layer_weights(layer: Any) -> list[tuple[str, Any]] | None:
    """(name, variable) pairs to prune in ``layer``; None if the layer is unknown."""
    if type(layer).__name__ == "PruneLowMagnitude":  # tfmot's wrapper: look inside
        return _layer_weights(layer.layer)
    name = type(layer).__name__
    if name in PRUNABLE:  # before get_prunable_weights, which tfmot patches onto layers
        return [
            (a, getattr(layer, a)) for a in PRUNABLE[name] if getattr(layer, a, None) is not None
        ]
    if hasattr(layer, "get_prunable_weights"):
        return [(short_name(v), v) for v in layer.get_prunable_weights()]
    if name in NOT_PRUNED:
        return []
    return None


def _walk(layer: Any) -> Iterator[tuple[str, Any, Any]]:
    weights = _layer_weights(layer)
    if weights is not None:
        owner = layer.layer if type(layer).__name__ == "PruneLowMagnitude" else layer
        for name, variable in weights:
            yield f"{owner.name}/{name}", owner, variable
        return
    children = _sublayers(layer)
    if children:
        for child in children:
            yield from _walk(child)
        own = {id(v) for v in layer.trainable_weights} - {
            id(v) for c in children for v in c.trainable_weights
        }
        if not own:
            return
    elif not layer.trainable_weights:
        return
    raise UnsupportedLayerError(
        f"Layer {layer.name!r} ({type(layer).__name__}) has trainable weights that "
        f"keras_forget does not know how to prune. Make it prunable by implementing "
        f"`get_prunable_weights()` (returning the variables to prune, as in tfmot's "
        f"PrunableLayer), or use layers among: {', '.join(sorted(PRUNABLE))}."
    )


def prunable_weights(model: Any, *, required: bool = True) -> dict[str, PrunableWeight]:
    """Lists the prunable weights of a model, in layer order.

    Args:
        model: a built Keras 3 or tf_keras model (or a single layer).
        required: raise if there is none (else return an empty dict).

    Returns:
        ``{key: PrunableWeight}`` with keys ``"<layer name>/<weight name>"``.

    Raises:
        UnsupportedLayerError: a layer has trainable weights and is neither
            registered nor a ``PrunableLayer``.
        NotPrunableError: the model has no prunable weight at all.
    """
    found: dict[str, PrunableWeight] = {}
    for key, layer, variable in _walk(model):
        if key in found:
            raise UnsupportedLayerError(
                f"Two prunable weights share the key {key!r}; give the layers unique names."
            )
        found[key] = PrunableWeight(key, layer, variable)
    if not found and required:
        raise NotPrunableError(
            f"`model` {model.name!r} has no prunable weight (no Dense, Conv, Embedding or "
            f"PrunableLayer with weights)."
        )
    return found


def all_weights(model: Any) -> dict[str, Any]:
    """Every weight of a model's layers, ``{"<layer name>/<weight name>": variable}``.

    Unlike :func:`prunable_weights`, biases and normalization parameters are
    included (unit masks cover them). Inside tfmot's ``PruneLowMagnitude`` the
    wrapped layer's own variables are listed under its own name (the raw
    weights, before the wrapper multiplies them by its masks).
    """
    out: dict[str, Any] = {}

    def walk(layer: Any) -> None:
        if type(layer).__name__ == "PruneLowMagnitude":
            layer = layer.layer
        children = getattr(layer, "layers", None)
        if children:
            for child in children:
                walk(child)
            return
        for variable in layer.weights:
            out[f"{layer.name}/{short_name(variable)}"] = variable

    walk(model)
    return out
