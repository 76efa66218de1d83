"""Which units must be removed together: channel groups read from the Keras graph.

Every tensor of a model is described by a :class:`Layout`: the channels of its
last axis, as segments that each belong to a *group*. A Dense or Conv layer
(a *producer*) starts a new group, one channel per unit. Channel-wise layers
(BatchNormalization, activations, pooling, dropout) pass the layout on;
``Add``/``Multiply``/... join the groups of their inputs, so a residual block
drops the same channels everywhere; ``Concatenate`` lays the segments side by
side; ``Flatten`` repeats the layout once per spatial position (channels-last).

A group that cannot be cut is *frozen*, with the reason: the model's inputs
and outputs, and every group reaching a layer whose coupling is not followed
(a reshape, a shared layer, an activation with ``f(0) != 0``, ...). The latter
are reported with a ``UserWarning`` naming the layer: such units are left
whole, never cut into a wrong model.

The graph is read from ``model.get_config()``, so one code path serves
Sequential and functional models of Keras 3 and tf_keras.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from keras_forget.errors import UnsupportedLayerError

#: Producer class name -> config key of its number of units.
PRODUCERS: dict[str, str] = {
    "Dense": "units",
    "Conv1D": "filters",
    "Conv2D": "filters",
    "Conv3D": "filters",
}
#: Layers with one weight entry per channel, sliced along the channels.
CHANNELWISE = frozenset({"BatchNormalization", "DepthwiseConv1D", "DepthwiseConv2D"})
#: Weightless layers that map channel j to channel j, and zero to zero.
PASS_THROUGH = frozenset(
    {"Activation", "ReLU", "LeakyReLU", "ELU", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
     "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "Identity",
     "ActivityRegularization", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D",
     "AveragePooling2D", "AveragePooling3D", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
     "Cropping1D", "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D", "UpSampling3D",
     "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
     "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D"}
)  # fmt: skip
#: Pass-through layers whose output is a block's post-activation output (scored).
ACTIVATIONS = frozenset({"Activation", "ReLU", "LeakyReLU", "ELU"})
#: Element-wise merges: their inputs must keep the same channels.
COUPLING = frozenset({"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"})
#: Layers that read all channels together: what feeds them is kept whole.
NEEDS_ALL = frozenset(
    {"Softmax", "LayerNormalization", "UnitNormalization", "GroupNormalization", "RMSNormalization"}
)
#: Activations with f(0) = 0: a removed (zero) channel stays zero through them.
ZERO_AT_ZERO = frozenset(
    {None, "linear", "relu", "relu6", "elu", "selu", "tanh", "gelu", "swish", "silu", "mish",
     "leaky_relu", "softsign", "hard_swish", "hard_silu", "celu", "glu", "sparse_plus"}
)  # fmt: skip
OUTPUT_REASON = "feeds a model output"


@dataclasses.dataclass(frozen=True)
class Layout:
    """The channels of a tensor's last axis.

    Attributes:
        segments: ``(group id, size)`` pairs, in channel order.
        repeat: how many times the segments repeat (spatial positions after
            ``Flatten``); 1 for a channels-last tensor.
    """

    segments: tuple[tuple[int, int], ...]
    repeat: int = 1


@dataclasses.dataclass
class Group:
    """Channels removed together.

    Attributes:
        key: name of the group's first producer (or of the layer that made it).
        size: number of units.
        producers: layers whose output units are the group's channels.
        score_layer: the layer whose output is scored for this group: the last
            producer, BatchNormalization, activation or merge carrying exactly
            these channels (the post-BN, post-activation block output).
        frozen: why the group cannot be cut, or None.
    """

    key: str
    size: int
    producers: list[str] = dataclasses.field(default_factory=list)
    score_layer: str = ""
    frozen: str | None = None

    @property
    def prunable(self) -> bool:
        return self.frozen is None and bool(self.producers)


def _history(obj: Any, out: list[str]) -> None:
    """Collects parent layer names from an ``inbound_nodes`` entry (either format)."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            out.append(obj["config"]["keras_history"][0])
            return
        for value in obj.values():
            _history(value, out)
    elif isinstance(obj, (list, tuple)):
        if len(obj) >= 3 and isinstance(obj[0], str) and all(isinstance(i, int) for i in obj[1:3]):
            out.append(obj[0])
            return
        for value in obj:
            _history(value, out)


def _topology(model: Any) -> tuple[list[dict], dict[str, list[str]], list[str], set[str]]:
    """``(layer configs, parents, output layer names, shared layer names)``."""
    config = model.get_config()
    layers = config.get("layers")
    if not isinstance(layers, list):
        raise UnsupportedLayerError(
            f"Structured surgery needs a Sequential or functional model; {model.name!r} "
            f"({type(model).__name__}) has no layer graph in its config."
        )
    parents: dict[str, list[str]] = {}
    shared: set[str] = set()
    if "input_layers" in config:  # functional
        for entry in layers:
            names: list[str] = []
            nodes = entry.get("inbound_nodes") or []
            shared.update([entry["name"]] if len(nodes) > 1 else [])
            _history(nodes, names)
            parents[entry["name"]] = names
        outputs: list[str] = []
        _history(config["output_layers"], outputs)
        return layers, parents, outputs, shared
    if not layers or layers[0]["class_name"] != "InputLayer":
        shape = list(model.input_shape)
        layers.insert(0, {"class_name": "InputLayer", "config": {"name": "", "batch_shape": shape}})
    previous: list[str] = []
    for entry in layers:
        name = entry["config"]["name"]
        entry["name"] = name
        parents[name] = previous
        previous = [name]
    return layers, parents, previous, shared


class Graph:
    """Channel groups of a built Sequential or functional model.

    Args:
        model: a built Keras 3 or tf_keras model with known input shapes.
        warn: emit a ``UserWarning`` for each group left whole because of a
            layer whose coupling is not followed.

    Attributes:
        groups: ``{key: Group}`` for every group, frozen ones included.
        layouts: ``{layer name: Layout}`` of each layer's output.
        inputs: ``{layer name: [Layout of each input]}``.
        classes: ``{layer name: class name}``.
        order: layer names in topological order.
        notes: the messages of the warnings.
    """

    def __init__(self, model: Any, *, warn: bool = True) -> None:
        self.model = model
        layers, self.parents, outputs, shared = _topology(model)
        self.order = [entry["name"] for entry in layers]
        self.classes = {entry["name"]: entry["class_name"] for entry in layers}
        self.configs = {entry["name"]: entry.get("config", {}) for entry in layers}
        self.layouts: dict[str, Layout] = {}
        self.inputs: dict[str, list[Layout]] = {}
        self._parent: list[int] = []
        self._raw: list[Group] = []
        self._blocked: dict[int, str] = {}  # group id -> layer that blocks it (warned)
        for name in self.order:
            self.inputs[name] = [self.layouts[p] for p in self.parents[name]]
            if name in shared:
                self.layouts[name] = self._unknown(name, "it is called more than once")
            else:
                self.layouts[name] = self._visit(name)
        for name in outputs:
            for gid, _ in self.layouts[name].segments:
                self._raw[self._find(gid)].frozen = OUTPUT_REASON
        self.groups = self._collect()
        self.notes = self._notes()
        if warn:
            for note in self.notes:
                warnings.warn(note, UserWarning, stacklevel=3)

    # -- building ---------------------------------------------------------------------------
    def _new(self, key: str, size: int, frozen: str | None = None) -> Layout:
        self._parent.append(len(self._raw))
        self._raw.append(Group(key, size, frozen=frozen))
        return Layout(((len(self._raw) - 1, size),))

    def _find(self, gid: int) -> int:
        while self._parent[gid] != gid:
            self._parent[gid] = self._parent[self._parent[gid]]
            gid = self._parent[gid]
        return gid

    def _union(self, a: int, b: int) -> None:
        a, b = self._find(a), self._find(b)
        if a != b:
            keep, drop = min(a, b), max(a, b)
            self._parent[drop] = keep
            first, second = self._raw[keep], self._raw[drop]
            first.producers += second.producers
            first.frozen = first.frozen or second.frozen
            first.score_layer = max(first.score_layer, second.score_layer, key=self._position)
            if drop in self._blocked:
                self._blocked.setdefault(keep, self._blocked[drop])

    def _position(self, name: str) -> int:
        return self.order.index(name) if name in self.order else -1

    def _freeze(self, layout: Layout, reason: str, blocker: str | None = None) -> None:
        for gid, _ in layout.segments:
            root = self._find(gid)
            self._raw[root].frozen = self._raw[root].frozen or reason
            if blocker is not None:
                self._blocked.setdefault(root, blocker)

    def _unknown(self, name: str, why: str) -> Layout:
        """Keeps every input channel of ``name`` whole; its output is a new frozen group."""
        blocker = f"layer {name!r} ({self.classes[name]}): {why}"
        for layout in self.inputs[name]:
            self._freeze(layout, f"reaches {blocker}", blocker)
        size = self._channels(name)
        return self._new(name, size, frozen=f"made by {blocker}")

    def _channels(self, name: str) -> int:
        try:
            shape = self._shape(name, output=True)
        except (AttributeError, ValueError, RuntimeError):  # shared or multi-output layers
            return 0
        return int(shape[-1]) if shape and shape[-1] is not None else 0

    def _shape(self, name: str, *, output: bool) -> tuple:
        config = self.configs[name]
        if self.classes[name] == "InputLayer":
            shape = config.get("batch_shape") or config.get("batch_input_shape")
            return tuple(shape)
        layer = self.model.get_layer(name)
        tensor = layer.output if output else layer.input
        return tuple(tensor.shape)

    def _score_at(self, layout: Layout, name: str) -> None:
        if len(layout.segments) == 1 and layout.repeat == 1:
            self._raw[self._find(layout.segments[0][0])].score_layer = name

    def _visit(self, name: str) -> Layout:
        cls, config, ins = self.classes[name], self.configs[name], self.inputs[name]
        if cls == "InputLayer":
            return self._new(name, self._channels(name), frozen="is a model input")
        if cls in PRODUCERS:
            return self._producer(name, cls, config)
        if len(ins) != 1 and cls not in COUPLING and cls != "Concatenate":
            return self._unknown(name, f"it has {len(ins)} inputs")
        if cls in CHANNELWISE:
            return self._channelwise(name, cls, config, ins[0])
        if cls in PASS_THROUGH:
            activation = _activation(cls, config)
            if activation not in ZERO_AT_ZERO:
                return self._unknown(name, f"activation {activation!r} does not map 0 to 0")
            if cls in ACTIVATIONS:
                self._score_at(ins[0], name)
            return ins[0]
        if cls == "Flatten":
            if config.get("data_format", "channels_last") != "channels_last":
                return self._unknown(name, "channels_first")
            spatial = self._shape(name, output=False)[1:-1]
            if any(d is None for d in spatial):
                return self._unknown(name, "its input has unknown spatial dimensions")
            return Layout(ins[0].segments, ins[0].repeat * math.prod(spatial))
        if cls in COUPLING:
            return self._couple(name, ins)
        if cls == "Concatenate":
            if config.get("axis", -1) not in (-1, len(self._shape(name, output=True)) - 1):
                return self._unknown(name, "it does not concatenate the last axis")
            if any(layout.repeat != 1 for layout in ins):
                return self._unknown(name, "it concatenates flattened tensors")
            return Layout(tuple(s for layout in ins for s in layout.segments))
        if cls in NEEDS_ALL:
            self._freeze(ins[0], f"feeds {name!r} ({cls}), which reads all channels together")
            return ins[0]
        return self._unknown(name, "structured surgery does not know this layer")

    def _producer(self, name: str, cls: str, config: Mapping[str, Any]) -> Layout:
        if cls != "Dense" and (
            config.get("groups", 1) != 1
            or config.get("data_format", "channels_last") != "channels_last"
        ):
            return self._unknown(name, "grouped or channels_first convolution")
        if len(self.inputs[name]) != 1:
            return self._unknown(name, "it has several inputs")
        layout = self._new(name, int(config[PRODUCERS[cls]]))
        group = self._raw[layout.segments[0][0]]
        group.producers.append(name)
        group.score_layer = name
        activation = _activation(cls, config)
        if activation not in ZERO_AT_ZERO:
            blocker = f"layer {name!r} ({cls}): activation {activation!r} does not map 0 to 0"
            self._freeze(layout, blocker, blocker)
        return layout

    def _channelwise(
        self, name: str, cls: str, config: Mapping[str, Any], layout: Layout
    ) -> Layout:
        rank = len(self._shape(name, output=True))
        if cls == "BatchNormalization":
            axis = config.get("axis", -1)
            axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
            if axis not in (-1, rank - 1):
                return self._unknown(name, f"it normalizes axis {axis}, not the channels")
        elif config.get("depth_multiplier", 1) != 1:
            return self._unknown(name, "depth_multiplier != 1")
        if layout.repeat != 1:
            return self._unknown(name, "its input is flattened")
        if cls == "BatchNormalization":
            self._score_at(layout, name)
        return layout

    def _couple(self, name: str, ins: list[Layout]) -> Layout:
        first = ins[0]
        for other in ins[1:]:
            sizes = [s for _, s in other.segments]
            if sizes != [s for _, s in first.segments] or other.repeat != first.repeat:
                return self._unknown(name, "its inputs' channels do not line up")
        for other in ins[1:]:
            for (a, _), (b, _) in zip(first.segments, other.segments):
                self._union(a, b)
        self._score_at(first, name)
        return first

    def _collect(self) -> dict[str, Group]:
        groups: dict[str, Group] = {}
        for gid, group in enumerate(self._raw):
            if self._find(gid) == gid:
                if group.producers:
                    group.producers.sort(key=self.order.index)
                    group.key = group.producers[0]
                groups[group.key] = group
        self._root_key = {gid: self._raw[self._find(gid)].key for gid in range(len(self._raw))}
        return groups

    def _notes(self) -> list[str]:
        notes: dict[str, list[str]] = {}
        for root, blocker in self._blocked.items():
            group = self._raw[self._find(root)]
            if group.producers and group.frozen != OUTPUT_REASON:
                notes.setdefault(blocker, []).append(group.key)
        return [
            f"Structured surgery cannot follow {blocker}; the units of {', '.join(keys)} "
            f"are left whole."
            for blocker, keys in notes.items()
        ]

    # -- queries ------------------------------------------------------------------------------
    def prunable(self) -> dict[str, Group]:
        """The groups that may lose units, ``{key: Group}``."""
        return {k: g for k, g in self.groups.items() if g.prunable}

    def group_of(self, name: str) -> Group:
        """The group of a producer's (or any single-group layer's) output channels."""
        (gid, _), *rest = self.layouts[name].segments
        return self.groups[self._root_key[gid]]

    def channel_mask(self, layout: Layout, unit_masks: Mapping[str, np.ndarray]) -> np.ndarray:
        """The keep-mask of a tensor's last axis under ``unit_masks`` (missing = all kept)."""
        parts = []
        for gid, size in layout.segments:
            mask = unit_masks.get(self._root_key[gid])
            parts.append(np.ones(size, bool) if mask is None else np.asarray(mask, bool))
        return np.tile(np.concatenate(parts) if parts else np.ones(0, bool), layout.repeat)

    def layer(self, name: str) -> Any:
        """The model's layer called ``name``."""
        return self.model.get_layer(name)


def _activation(cls: str, config: Mapping[str, Any]) -> Any:
    """The activation name of a layer config (None when it has none)."""
    if cls in ("ReLU", "LeakyReLU", "ELU"):
        return "relu"
    if cls != "Activation" and cls not in PRODUCERS:
        return None
    activation = config.get("activation")
    if isinstance(activation, Mapping):  # a serialized function
        activation = activation.get("config", activation.get("class_name"))
    return activation
