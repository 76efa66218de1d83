"""Structured surgery: remove units and filters, so the model physically shrinks.

A *unit mask* is ``{group key: bool array [units]}`` (``False`` = removed) over
the prunable groups of :class:`~keras_forget.introspect.graph.Graph`. Two ways to
apply one:

* :func:`weight_masks` turns it into a MaskMap over weights (a unit's kernel
  column or filter, its bias, and the BatchNormalization / depthwise entries of
  its channel; an attention head's slices of the query, key, value and output
  kernels and biases), for masking: the model keeps its shape, the units output
  zero.
* :func:`shrink` rebuilds the model without the units: fewer units and filters,
  and the layers that read them (next Dense/Conv input rows, BatchNormalization
  parameters, ``Flatten``→Dense row blocks, residual groups, depthwise and
  ``Conv(groups=channels)`` filters, a ``Reshape``'s channel count) cut to match;
  an attention layer without the removed heads has a lower ``num_heads``.
  The result is always checked against the masked model on a sample.

Whatever the model, failures are :class:`~keras_forget.errors.KerasForgetError`
subclasses: units that cannot be cut are refused (UnsupportedLayerError), and an
unexpected failure while rebuilding is a SurgeryError.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from keras_forget import _keras
from keras_forget.data import Data
from keras_forget.errors import (
    InvalidArgumentError,
    KerasForgetError,
    SurgeryError,
    UnsupportedLayerError,
)
from keras_forget.introspect import heads
from keras_forget.introspect.graph import CHANNELWISE, PRODUCERS, Graph
from keras_forget.introspect.inputs import forward_batch
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
    if not isinstance(unit_masks, Mapping):
        raise InvalidArgumentError(f"Unit masks must be a dict, got {type(unit_masks).__name__}.")
    for key, mask in unit_masks.items():
        try:
            mask = np.asarray(mask, bool)
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"Unit mask {key!r} is not a bool array: {exc}") from exc
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


def weight_masks(graph: Graph, unit_masks: UnitMasks) -> dict[str, np.ndarray]:
    """The MaskMap that zeroes the removed units' outputs.

    For a removed unit: its kernel column (filter) and bias in every producer
    of its group (of a recurrent layer: its column of every gate in the kernel,
    recurrent kernel and bias); the gamma, beta and moving mean of a BatchNormalization on its
    channel (so the normalized channel is exactly zero); a depthwise (or
    ``Conv(groups=channels)``) kernel's slice and bias on its channel. For a
    removed attention head: its slices of the query, key and value kernels
    (axis 1) and biases (axis 0) and of the output kernel (axis 0). Keys are
    ``"<layer name>/<weight name>"`` (``"<layer>/<sublayer>/<weight>"`` inside
    an attention layer, as :func:`~keras_forget.introspect.registry.all_weights`).

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
        group = graph.groups[key]
        if group.kind == "heads":
            out.update(heads.weight_masks(graph.layer(group.score_layer), mask))
            continue
        for name in group.producers:
            columns = np.tile(mask, graph.gates(name))  # a recurrent layer: every gate's column
            for variable in graph.layer(name).weights:
                if short_name(variable) != "depthwise_kernel":  # a SeparableConv's input side
                    weight = np.broadcast_to(columns, tuple(variable.shape)).copy()
                    out[f"{name}/{short_name(variable)}"] = weight
    for name in [n for n in graph.order if graph.roles.get(n) in ("channelwise", "grouped")]:
        channels = graph.channel_mask(graph.inputs[name][0], masks)
        if channels.all():
            continue
        for variable in graph.layer(name).weights:
            weight = short_name(variable)
            if weight == "moving_variance":
                continue
            shape = tuple(variable.shape)
            axis = graph.channel_axis(name, len(shape)) % len(shape)
            along = channels.reshape([-1] + [1] * (len(shape) - 1 - axis))
            out[f"{name}/{weight}"] = np.broadcast_to(along, shape).copy()
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
    """A copy of ``model`` whose removed units output zero (same shapes).

    It is rebuilt the way :func:`shrink` rebuilds (``clone_model``, each layer
    from its config), so the two are compared like with like.
    """
    graph = graph or Graph(model, warn=False)
    masks = weight_masks(graph, unit_masks)
    try:
        copy = _rebuild(model, graph, {})
        copy.set_weights(model.get_weights())
    except Exception as exc:
        raise SurgeryError(f"Copying {model.name!r} failed: {exc!r:.300}") from exc
    apply_masks(copy, masks)
    return copy


def _rebuild(model: Any, graph: Graph, masks: dict[str, np.ndarray]) -> Any:
    """A new model like ``model`` with ``masks``' units gone (weights not set)."""

    def clone(layer: Any) -> Any:
        if graph.roles.get(layer.name) == "lambda":
            return layer  # stateless, channel-wise: its Python function needs no config round trip
        return type(layer).from_config(_shrunk_config(graph, layer, masks))

    return _keras.keras_module(model).models.clone_model(model, clone_function=clone)


def _slice_weights(
    graph: Graph, name: str, masks: dict[str, np.ndarray]
) -> list[np.ndarray] | None:
    """The kept part of each weight of layer ``name``; None if it keeps them all."""
    role = graph.roles.get(name)
    if role == "attention":
        mask = masks.get(heads.key(name))
        return None if mask is None else heads.sliced_weights(graph.layer(name), mask)
    if role == "producer":
        rows = graph.channel_mask(graph.inputs[name][0], masks)
        cols = graph.channel_mask(graph.layouts[name], masks)
        if rows.all() and cols.all():
            return None
        rows, cols = np.flatnonzero(rows), np.flatnonzero(cols)
        layer, out = graph.layer(name), []
        for variable, value in zip(layer.weights, map(np.asarray, layer.get_weights())):
            if short_name(variable) == "depthwise_kernel":  # [..., in, 1]
                out.append(np.take(value, rows, axis=-2))
            elif value.ndim >= 2:  # kernel [..., in, out]
                out.append(np.take(np.take(value, rows, axis=-2), cols, axis=-1))
            else:
                out.append(np.take(value, cols, axis=0))
        return out
    if role == "recurrent":
        rows = graph.channel_mask(graph.inputs[name][0], masks)
        units = graph.channel_mask(graph.layouts[name], masks)
        return _slice_recurrent(graph.layer(name), rows, units, graph.gates(name))
    if role == "bidirectional":
        rows = graph.channel_mask(graph.inputs[name][0], masks)
        out, cut = [], False
        for path, layout in graph.directions[name]:
            units = graph.channel_mask(layout, masks)
            values = _slice_recurrent(graph.layer(path), rows, units, graph.gates(path))
            cut |= values is not None
            out += graph.layer(path).get_weights() if values is None else values
        return out if cut else None
    if role in ("channelwise", "grouped"):
        keep = graph.channel_mask(graph.inputs[name][0], masks)
        if keep.all():
            return None
        values = map(np.asarray, graph.layer(name).get_weights())
        keep = np.flatnonzero(keep)
        return [np.take(v, keep, axis=graph.channel_axis(name, v.ndim)) for v in values]
    return None


def _slice_recurrent(
    layer: Any, rows: np.ndarray, units: np.ndarray, gates: int
) -> list[np.ndarray] | None:
    """A recurrent layer's kept weights: input rows, unit rows and every gate's unit columns.

    Args:
        layer: the ``SimpleRNN``/``GRU``/``LSTM`` layer.
        rows: keep-mask of its input channels.
        units: keep-mask of its units.
        gates: unit column blocks in its kernels (:meth:`Graph.gates`).

    Returns:
        The kept weights in ``layer.get_weights()`` order; None if all are kept.
    """
    if rows.all() and units.all():
        return None
    columns = np.flatnonzero(np.tile(units, gates))
    out = []
    for variable, value in zip(layer.weights, map(np.asarray, layer.get_weights())):
        value = np.take(value, columns, axis=-1)
        if short_name(variable) == "kernel":
            value = np.take(value, np.flatnonzero(rows), axis=0)
        elif short_name(variable) == "recurrent_kernel":
            value = np.take(value, np.flatnonzero(units), axis=0)
        out.append(value)
    return out


def _shrunk_config(graph: Graph, layer: Any, masks: dict[str, np.ndarray]) -> dict[str, Any]:
    """``layer``'s config with its number of units or channels after the cut."""
    config = layer.get_config()
    role, name = graph.roles.get(layer.name), layer.name
    if role is None:
        return config
    if role == "attention":
        config["num_heads"] = int(np.sum(masks.get(heads.key(name), config["num_heads"])))
        return config
    kept = int(graph.channel_mask(graph.layouts[name], masks).sum())
    if role == "producer":
        config[PRODUCERS[type(layer).__name__]] = kept
    elif role == "recurrent":
        config["units"] = kept
    elif role == "bidirectional":
        config = _bidirectional_config(graph, name, _plain(config), masks)
    elif role == "grouped":
        config["filters"] = config["groups"] = kept
    elif role == "reshape" and config["target_shape"][-1] != -1:
        config["target_shape"] = (*tuple(config["target_shape"])[:-1], kept)
    return config


def _bidirectional_config(
    graph: Graph, name: str, config: dict[str, Any], masks: dict[str, np.ndarray]
) -> dict[str, Any]:
    """A ``Bidirectional`` config with the kept units in both directions.

    The directions' build configs go (their inputs may have lost channels).
    """
    (_, layout), _ = graph.directions[name]
    units = int(graph.channel_mask(layout, masks).sum())
    for key in ("layer", "backward_layer"):
        if config.get(key) is not None:  # Keras 3 lists both, tf_keras a custom backward one
            config[key].pop("build_config", None)
            config[key]["config"]["units"] = units
    return config


def _plain(value: Any) -> Any:
    """``value`` with every mapping and list copied into plain ``dict`` and ``list``."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def random_sample(model: Any, n: int = 8, *, seed: int = 0) -> Any:
    """A seeded batch shaped like the model's inputs (unknown sizes: 32; integers: 0 or 1)."""
    rng = np.random.default_rng(seed)
    batch = []
    for tensor in model.inputs:
        shape = [n] + [32 if d is None else int(d) for d in tuple(tensor.shape)[1:]]
        dtype = str(getattr(tensor.dtype, "name", tensor.dtype))
        if dtype.startswith(("int", "uint", "bool")):
            batch.append(rng.integers(0, 2, shape).astype(dtype))
        else:  # float16 and bfloat16 inputs take float32
            batch.append(rng.standard_normal(shape).astype("float64" if "64" in dtype else "f4"))
    return batch[0] if len(batch) == 1 else batch


def shrink(
    model: Any,
    unit_masks: UnitMasks,
    *,
    sample: Any = None,
    atol: float = 1e-5,
    graph: Graph | None = None,
) -> Any:
    """Rebuilds ``model`` without the removed units; ``model`` is not changed.

    The shrunk model's outputs are always checked against the masked model's
    (:func:`masked_copy`) on ``sample``. Pass real examples there (the pipeline
    passes ``data.first(32)``): a random batch exercises the graph but not the
    activations the model really sees.

    Args:
        model: a built Sequential or functional Keras 3 or tf_keras model.
        unit_masks: ``{group key: bool [units]}`` (``False`` = removed); keys
            from ``Graph(model).prunable()``; missing groups are kept whole.
        sample: a batch of inputs for the check; None uses a seeded random
            batch shaped like the model's inputs (:func:`random_sample`).
        atol: tolerance of that check (see :func:`check_equivalent`).
        graph: the model's :class:`Graph`, if already built.

    Returns:
        A new, smaller model of the same flavor, with the kept weights.

    Raises:
        InvalidArgumentError: bad unit masks (see :func:`check_unit_masks`).
        UnsupportedLayerError: units removed from a group that cannot be cut.
        SurgeryError: the rebuild failed, or the shrunk and masked outputs differ.
    """
    graph = graph or Graph(model)
    masks = check_unit_masks(graph, unit_masks)
    try:
        shrunk = _rebuild(model, graph, masks)
        for name in graph.order:
            if not name or name in graph.ops or graph.classes[name] == "InputLayer":
                continue
            values = _slice_weights(graph, name, masks)
            if values is None:
                values = graph.layer(name).get_weights()
            if values:
                shrunk.get_layer(name).set_weights(values)
        if sample is None:
            sample = random_sample(model)
    except KerasForgetError:
        raise
    except Exception as exc:
        raise SurgeryError(
            f"Rebuilding {model.name!r} without the removed units failed: {exc!r:.300}"
        ) from exc
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
    """Max |shrunk - masked| over every output on ``sample``.

    Raises:
        SurgeryError: the outputs differ in shape, or by more than ``atol``
            times the outputs' scale (their largest magnitude, when above 1).
    """
    graph = graph or Graph(model, warn=False)
    try:
        masked = masked_copy(model, unit_masks, graph)
        expected = [np.asarray(v, np.float64) for v in _flat(masked(sample, training=False))]
        actual = [np.asarray(v, np.float64) for v in _flat(shrunk(sample, training=False))]
    except KerasForgetError:
        raise
    except Exception as exc:
        raise SurgeryError(f"The shrunk model could not run on the sample: {exc!r:.300}") from exc
    shapes = [v.shape for v in expected], [v.shape for v in actual]
    if shapes[0] != shapes[1]:
        raise SurgeryError(f"Shrunk output shapes {shapes[1]} != masked {shapes[0]}.")
    flat = [np.concatenate([v.ravel() for v in vs] or [np.zeros(0)]) for vs in (expected, actual)]
    diff = float(np.max(np.abs(flat[0] - flat[1]), initial=0.0))  # NaN propagates: a failure
    scale = max(1.0, float(np.max(np.abs(flat[0]), initial=0.0)))
    if not diff <= atol * scale:
        raise SurgeryError(
            f"The shrunk model differs from the masked model by {diff:.3g} > atol={atol:.3g}"
            f"{f' x output scale {scale:.3g}' if scale > 1 else ''}."
        )
    return diff


def _flat(outputs: Any) -> list[Any]:
    if isinstance(outputs, Mapping):
        return [v for k in sorted(outputs) for v in _flat(outputs[k])]
    if isinstance(outputs, (list, tuple)):
        return [v for item in outputs for v in _flat(item)]
    return [outputs]


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
        batch_size: batch size for array data (lowered for a large model, see
            :func:`~keras_forget.introspect.inputs.forward_batch`).

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
        for x, _ in data.batches(forward_batch(probe, batch_size)):
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
