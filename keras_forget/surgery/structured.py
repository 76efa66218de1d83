"""Structured surgery: remove units and filters, so the model physically shrinks.

A *unit mask* is ``{group key: bool array [units]}`` (``False`` = removed) over
the prunable groups of :class:`~keras_forget.introspect.graph.Graph`. Two ways to
apply one:

* :func:`weight_masks` turns it into a MaskMap over weights (a unit's kernel
  column or filter, its bias, and the BatchNormalization / depthwise entries of
  its channel), for masking: the model keeps its shape, the units output zero.
* :func:`shrink` rebuilds the model without the units: fewer units and filters,
  and the layers that read them (next Dense/Conv input rows, BatchNormalization
  parameters, ``Flatten``→Dense row blocks, residual groups) cut to match. The
  result is checked against the masked model on a sample.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from keras_forget import _keras
from keras_forget.data import Data
from keras_forget.errors import InvalidArgumentError, SurgeryError, UnsupportedLayerError
from keras_forget.introspect.graph import CHANNELWISE, PRODUCERS, Graph
from keras_forget.introspect.registry import all_weights, short_name

UnitMasks = Mapping[str, np.ndarray]


def check_unit_masks(graph: Graph, unit_masks: UnitMasks) -> dict[str, np.ndarray]:
    """Validates unit masks against a graph; returns them as bool arrays.

    Raises:
        InvalidArgumentError: an unknown key, a wrong shape, or a group losing
            every unit.
        UnsupportedLayerError: units removed from a group that cannot be cut
            (the message says why).
    """
    out = {}
    for key, mask in unit_masks.items():
        mask = np.asarray(mask, bool)
        if key not in graph.groups:
            known = ", ".join(graph.prunable()) or "none"
            raise InvalidArgumentError(
                f"Unit mask {key!r} names no unit group (prunable: {known})."
            )
        group = graph.groups[key]
        if mask.shape != (group.size,):
            raise InvalidArgumentError(
                f"Unit mask {key!r} has shape {mask.shape}; the group has {group.size} units."
            )
        if mask.all():
            continue
        if not group.prunable:
            raise UnsupportedLayerError(
                f"The units of {key!r} cannot be removed: the group "
                f"{group.frozen or 'has no producer'}."
            )
        if not mask.any():
            raise InvalidArgumentError(f"Unit mask {key!r} removes all {group.size} units.")
        out[key] = mask
    return out


def _channel_layers(graph: Graph) -> list[str]:
    return [n for n in graph.order if graph.classes[n] in CHANNELWISE]


def weight_masks(graph: Graph, unit_masks: UnitMasks) -> dict[str, np.ndarray]:
    """The MaskMap that zeroes the removed units' outputs.

    For a removed unit: its kernel column (filter) and bias in every producer
    of its group; the gamma, beta and moving mean of a BatchNormalization on its
    channel (so the normalized channel is exactly zero); a depthwise kernel's
    slice and bias on its channel. Keys are ``"<layer name>/<weight name>"``.

    Args:
        graph: the model's :class:`Graph`.
        unit_masks: ``{group key: bool [units]}`` (``False`` = removed).

    Returns:
        ``{weight key: bool array shaped like the weight}`` for every weight of
        the producers and channel-wise layers touched.
    """
    masks = check_unit_masks(graph, unit_masks)
    out: dict[str, np.ndarray] = {}
    for key, mask in masks.items():
        for name in graph.groups[key].producers:
            for variable in graph.layer(name).weights:
                shape = tuple(variable.shape)
                out[f"{name}/{short_name(variable)}"] = np.broadcast_to(mask, shape).copy()
    for name in _channel_layers(graph):
        channels = graph.channel_mask(graph.inputs[name][0], masks)
        if channels.all():
            continue
        for variable in graph.layer(name).weights:
            weight = short_name(variable)
            if weight == "moving_variance":
                continue
            shape = tuple(variable.shape)
            if len(shape) == 1:
                keep = channels
            else:  # depthwise kernel [..., channels, multiplier]
                keep = np.broadcast_to(channels[:, None], shape).copy()
            out[f"{name}/{weight}"] = keep
    return out


def apply_masks(model: Any, masks: Mapping[str, np.ndarray]) -> None:
    """Multiplies weights of ``model`` by ``masks`` in place (keys ``"<layer>/<weight>"``)."""
    variables = all_weights(model)
    for key, mask in masks.items():
        if key not in variables:
            raise InvalidArgumentError(f"Mask {key!r} names no weight of model {model.name!r}.")
        value = variables[key].numpy()
        variables[key].assign(value * np.asarray(mask, value.dtype))


def masked_copy(model: Any, unit_masks: UnitMasks, graph: Graph | None = None) -> Any:
    """A copy of ``model`` whose removed units output zero (same shapes)."""
    graph = graph or Graph(model, warn=False)
    copy = _keras.clone(model)
    apply_masks(copy, weight_masks(graph, unit_masks))
    return copy


def _slice_weights(
    graph: Graph, name: str, masks: dict[str, np.ndarray]
) -> list[np.ndarray] | None:
    """The kept part of each weight of layer ``name``; None if it keeps them all."""
    cls, layer = graph.classes[name], graph.layer(name)
    values = [np.asarray(v) for v in layer.get_weights()]
    if cls in PRODUCERS:
        rows = np.flatnonzero(graph.channel_mask(graph.inputs[name][0], masks))
        cols = np.flatnonzero(graph.channel_mask(graph.layouts[name], masks))
        out = []
        for value in values:
            if value.ndim >= 2:  # kernel [..., in, out]
                out.append(np.take(np.take(value, rows, axis=-2), cols, axis=-1))
            else:
                out.append(np.take(value, cols, axis=0))
        return out
    if cls in CHANNELWISE:
        keep = np.flatnonzero(graph.channel_mask(graph.inputs[name][0], masks))
        return [np.take(v, keep, axis=-2 if v.ndim >= 2 else 0) for v in values]
    return None


def shrink(
    model: Any,
    unit_masks: UnitMasks,
    *,
    sample: Any = None,
    atol: float = 1e-5,
    graph: Graph | None = None,
) -> Any:
    """Rebuilds ``model`` without the removed units; ``model`` is not changed.

    Args:
        model: a built Sequential or functional Keras 3 or tf_keras model.
        unit_masks: ``{group key: bool [units]}`` (``False`` = removed); keys
            from ``Graph(model).prunable()``; missing groups are kept whole.
        sample: a batch of inputs; when given, the shrunk model's outputs must
            equal the masked model's (:func:`masked_copy`) within ``atol``.
        atol: tolerance of that check.
        graph: the model's :class:`Graph`, if already built.

    Returns:
        A new, smaller model of the same flavor, with the kept weights.

    Raises:
        InvalidArgumentError: bad unit masks (see :func:`check_unit_masks`).
        UnsupportedLayerError: units removed from a group that cannot be cut.
        SurgeryError: the shrunk and masked outputs differ by more than ``atol``.
    """
    graph = graph or Graph(model)
    masks = check_unit_masks(graph, unit_masks)
    sizes = {name: int(m.sum()) for key, m in masks.items() for name in graph.groups[key].producers}
    km = _keras.keras_module(model)

    def clone_layer(layer: Any) -> Any:
        config = layer.get_config()
        if layer.name in sizes:
            config[PRODUCERS[type(layer).__name__]] = sizes[layer.name]
        return type(layer).from_config(config)

    shrunk = km.models.clone_model(model, clone_function=clone_layer)
    for name in graph.order:
        if graph.classes[name] == "InputLayer" or not name:
            continue
        values = _slice_weights(graph, name, masks)
        if values is None:
            values = graph.layer(name).get_weights()
        if values:
            shrunk.get_layer(name).set_weights(values)
    if sample is not None:
        check_equivalent(model, shrunk, masks, sample, atol=atol, graph=graph)
    return shrunk


def check_equivalent(
    model: Any,
    shrunk: Any,
    unit_masks: UnitMasks,
    sample: Any,
    *,
    atol: float = 1e-5,
    graph: Graph | None = None,
) -> float:
    """Max |shrunk - masked| on ``sample``; raises SurgeryError above ``atol``."""
    masked = masked_copy(model, unit_masks, graph)
    expected = np.asarray(masked(sample, training=False), np.float64)
    actual = np.asarray(shrunk(sample, training=False), np.float64)
    if expected.shape != actual.shape:
        raise SurgeryError(f"Shrunk output shape {actual.shape} != masked {expected.shape}.")
    diff = float(np.max(np.abs(expected - actual), initial=0.0))
    if not diff <= atol:
        raise SurgeryError(
            f"The shrunk model differs from the masked model by {diff:.3g} > atol={atol:.3g}."
        )
    return diff


def _model_input(model: Any) -> Any:
    inputs = model.inputs
    return inputs[0] if len(inputs) == 1 else inputs


def _latest_input(layer: Any) -> Any:
    """The layer's input in the most recent graph it joined (tf_keras reuses layers)."""
    nodes = getattr(layer, "_inbound_nodes", [])
    if len(nodes) > 1 and hasattr(layer, "get_input_at"):
        return layer.get_input_at(len(nodes) - 1)
    return layer.input


def recalibrate_batchnorm(model: Any, data: Data, *, batch_size: int = 256) -> int:
    """Re-estimates every BatchNormalization's moving statistics on ``data``, in place.

    Removing units changes what later BatchNormalization layers see, and a
    short fine-tuning moves their moving averages only a little (momentum
    0.99). Layer by layer in graph order, the mean and variance of each
    layer's input are computed over all of ``data`` in inference mode (earlier
    layers already re-estimated) and assigned. Weights are not changed.
    Layers wrapped by tfmot are handled through the wrapper.

    Args:
        model: a Keras 3 or tf_keras functional or Sequential model.
        data: a checked :class:`~keras_forget.data.Data` (labels are ignored).
        batch_size: batch size for array data.

    Returns:
        The number of layers re-estimated.
    """
    km = _keras.keras_module(model)
    done = 0
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        if type(inner).__name__ != "BatchNormalization":
            continue
        tensor = _latest_input(layer)
        probe = km.Model(_model_input(model), tensor)
        channels = int(tensor.shape[-1])
        total, squares, count = np.zeros(channels), np.zeros(channels), 0
        for x, _ in data.batches(batch_size):
            a = np.asarray(probe(x, training=False), np.float64).reshape(-1, channels)
            total, squares, count = total + a.sum(0), squares + np.square(a).sum(0), count + len(a)
        mean = total / count
        inner.moving_mean.assign(mean.astype(np.float32))
        inner.moving_variance.assign(np.maximum(squares / count - mean**2, 0.0).astype(np.float32))
        done += 1
    return done


def count_params(model: Any) -> int:
    """Number of weights (trainable and not) of a model."""
    return int(sum(np.prod(v.shape) for v in model.weights))


def flops(model: Any) -> int:
    """Multiply-accumulates ×2 of the Dense and Conv layers for one example."""
    total = 0
    for layer in model.layers:
        name = type(layer).__name__
        kernel = getattr(layer, "kernel", None)
        if kernel is None or name not in PRODUCERS and name not in CHANNELWISE:
            continue
        out = tuple(layer.output.shape)[1:-1]
        positions = int(np.prod([d for d in out if d is not None])) if out else 1
        total += 2 * positions * int(np.prod(kernel.shape))
    return total


def describe(graph: Graph) -> str:
    """One line per group: key, size, producers, and why it is frozen."""
    lines = []
    for key, group in graph.groups.items():
        state = "prunable" if group.prunable else f"frozen ({group.frozen})"
        lines.append(f"{key}: {group.size} units, producers {group.producers}, {state}")
    return "\n".join(lines)
