"""Which units must be removed together: channel groups read from the Keras graph.

Every tensor of a model is described by a :class:`Layout`: the channels of its
last axis, as segments that each belong to a *group*. A Dense or Conv layer
(a *producer*) starts a new group, one channel per unit. Channel-wise layers
(BatchNormalization, depthwise convolutions, ``Conv(groups=channels)``,
activations, pooling, dropout, a ``Reshape`` keeping the last axis) pass the
layout on; ``Add``/``Multiply``/... join the groups of their inputs, so a
residual block drops the same channels everywhere; ``Concatenate`` lays the
segments side by side; ``Flatten`` repeats the layout once per spatial position
(channels-last). Op nodes (``keras.ops`` calls, tf_keras ``TFOpLambda``) are
followed when element-wise with scalar constants (see :mod:`.ops`).

A ``SimpleRNN``, ``GRU`` or ``LSTM`` layer is a producer too: its units are the
channels of its outputs. A unit whose columns are zero in every gate of the
kernel, recurrent kernel and bias outputs exactly zero at every step (its
candidate, and so its state, stays ``activation(0) = 0`` from the zero initial
state), so it is removed like a Dense unit: those columns, and the recurrent
kernel's row that reads it, go. Stateful layers, layers returning their states
and activations that do not map 0 to 0 are left whole. A ``Bidirectional``
layer's directions are *sublayer* producers, named ``"<layer>/<direction's
name>"`` as in weight keys, of one group: unit j of the forward and of the
backward layer go together, whether the directions are concatenated, summed,
averaged or multiplied (Keras 3's ``Bidirectional`` assumes directions of the
same size).

A removed channel is zero in the masked model unless an activation or op maps
0 elsewhere (``sigmoid``, ``x + 3.0``): such a segment is *dirty*. A product
with a clean input, or a BatchNormalization / depthwise layer (whose entries
for the channel are zeroed), makes it clean again, as in squeeze-and-excite
blocks; a dirty segment read by a weighted layer keeps its group whole.

A group that cannot be cut is *frozen*, with the reason: the model's inputs and
outputs, and every group reaching a node whose coupling is not followed (a
reshape of the channels, a shared layer, LayerNormalization, ...), reported in
one ``UserWarning`` per graph, a line per group naming the blocker nearest to its
producers. Such units are left whole, never cut into a wrong model. The graph is
read from ``model.get_config()`` (:mod:`.topology`): one code path for
Sequential and functional models of Keras 3 and tf_keras.

A ``MultiHeadAttention`` node (called once) adds a group of its own, keyed
``"<layer>/heads"``, whose units are its heads (:mod:`.heads`). The group is
internal to the layer: the layer's inputs are kept whole and its output is a
new group left whole, as for any layer whose coupling is not followed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from keras_forget.errors import KerasForgetError, UnsupportedLayerError
from keras_forget.introspect import heads, probe
from keras_forget.introspect import ops as table
from keras_forget.introspect.ops import CHANNELWISE, PRODUCERS, OpCall
from keras_forget.introspect.topology import (
    INPUT_REASON,
    OUTPUT_REASON,
    Group,
    Layout,
    Reason,
    children,
    nearest_first,
    topology,
)

__all__ = ["CHANNELWISE", "PRODUCERS", "Graph", "Group", "Layout", "Reason"]


class Graph:
    """Channel groups of a built Sequential or functional model.

    Args:
        model: a built Keras 3 or tf_keras model with known input shapes.
        warn: emit one ``UserWarning`` listing the groups left whole because of
            a node whose coupling is not followed, and the blocker of each.

    Attributes:
        groups: ``{key: Group}`` for every group, frozen ones included.
        layouts: ``{node name: Layout}`` of each layer's or op's output.
        inputs: ``{node name: [Layout of each input]}``.
        classes: ``{node name: class name}`` (ops: ``"keras.ops.add"``, ``"tf.math.add"``).
        roles: ``{layer name: role}`` of the layers surgery edits: ``"producer"``,
            ``"recurrent"`` (a producer with gates), ``"bidirectional"`` (two of
            them, see ``directions``), ``"channelwise"``, ``"grouped"``
            (``Conv(groups=channels)``), ``"reshape"``, ``"attention"`` (a
            ``MultiHeadAttention`` whose heads are a group).
        ops: ``{node name: OpCall}`` of the op nodes.
        directions: ``{Bidirectional layer: [(sublayer path, Layout of its units)]}``,
            forward first (one group: the same units).
        order: node names in topological order.
        notes: one line per group left whole (the warning's lines).
    """

    def __init__(self, model: Any, *, warn: bool = True) -> None:
        self.model = model
        try:
            layers, self.parents, outputs, odd = topology(model)
            self.ops: dict[str, OpCall] = table.op_calls(model)
            self._live = {getattr(o, "name", ""): o for o in table.operations(model)}
        except KerasForgetError:
            raise
        except Exception as exc:
            raise UnsupportedLayerError(
                f"Cannot read the layer graph of {getattr(model, 'name', model)!r}: {exc!r:.200}"
            ) from exc
        self.order = [entry["name"] for entry in layers]
        self.classes = {entry["name"]: entry["class_name"] for entry in layers}
        self.classes.update({name: call.source for name, call in self.ops.items()})
        self.configs = {entry["name"]: entry.get("config", {}) for entry in layers}
        self.layouts: dict[str, Layout] = {}
        self.inputs: dict[str, list[Layout]] = {}
        self.roles: dict[str, str] = {}
        self.directions: dict[str, list[tuple[str, Layout]]] = {}
        self._sublayers: dict[str, Any] = {}
        self._owners: dict[str, str] = {}
        self._parent: list[int] = []
        self._raw: list[Group] = []
        for name in self.order:
            self.inputs[name] = [self.layouts[p] for p in self.parents[name] if p in self.layouts]
            try:
                if name in odd:
                    self.layouts[name] = self._unknown(name, "it is shared or has several outputs")
                elif len(self.inputs[name]) != len(self.parents[name]):
                    self.layouts[name] = self._unknown(name, "its inputs could not be read")
                else:
                    self.layouts[name] = self._visit(name)
            except KerasForgetError:
                raise
            except Exception as exc:  # a node this code misreads is left whole, never a crash
                self.layouts[name] = self._unknown(name, f"it could not be read ({exc!r:.80})")
        for name in outputs:
            self._freeze(self.layouts.get(name, Layout(())), Reason("output", name, OUTPUT_REASON))
        self.groups = self._collect()
        self.notes = self._notes()
        if warn and self.notes:
            warnings.warn(
                f"Structured surgery leaves {len(self.notes)} unit group(s) of "
                f"{getattr(model, 'name', 'the model')!r} whole:\n- " + "\n- ".join(self.notes),
                UserWarning,
                stacklevel=2,
            )

    # -- building ---------------------------------------------------------------------------
    def _new(self, key: str, size: int, reason: Reason | None = None) -> Layout:
        self._parent.append(len(self._raw))
        self._raw.append(Group(key, size, reasons=[reason] if reason else []))
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
            first.reasons += second.reasons
            if self._position(second.score_layer) > self._position(first.score_layer):
                first.score_layer, first.fold = second.score_layer, second.fold

    def _position(self, name: str) -> int:
        name = self.owner(name)
        return self.order.index(name) if name in self.order else -1

    def _freeze(self, layout: Layout, reason: Reason) -> None:
        for gid, _ in layout.segments:
            self._raw[self._find(gid)].reasons.append(reason)

    def describe(self, name: str) -> str:
        """``"layer 'fc' (Dense)"`` or ``"op 'add' (keras.ops.add with 3)"``."""
        if name not in self.ops:
            return f"layer {name!r} ({self.classes[name]})"
        values = [f"{float(np.ravel(c)[0]):g}" for c in self.ops[name].constants() if np.size(c)]
        return f"op {name!r} ({self.classes[name]}{' with ' if values else ''}{', '.join(values)})"

    def _unknown(self, name: str, why: str) -> Layout:
        """Keeps every input channel of ``name`` whole; its output is a new frozen group."""
        blocker = f"{self.describe(name)}: {why}"
        self.roles.pop(name, None)
        for layout in self.inputs[name]:
            self._freeze(layout, Reason("block", name, f"reaches {blocker}"))
        return self._new(name, self._channels(name), Reason("block", name, f"made by {blocker}"))

    def _reject_dirt(self, layout: Layout, name: str) -> None:
        """Freezes the groups of ``layout`` whose removed channels are not zero."""
        for (gid, _), reason in zip(layout.segments, layout.dirt()):
            if reason is not None:
                text = f"goes through {reason.text}, then {self.describe(name)} reads it"
                self._freeze(Layout(((gid, 0),)), Reason("block", reason.at, text))

    def _channels(self, name: str) -> int:
        try:
            shape = self._shape(name, output=True)
        except Exception:  # shared or multi-output nodes
            return 0
        return int(shape[-1]) if shape and shape[-1] is not None else 0

    def _shape(self, name: str, *, output: bool) -> tuple:
        config = self.configs[name]
        if self.classes[name] == "InputLayer":
            shape = config.get("batch_shape") or config.get("batch_input_shape")
            return tuple(shape)
        node = self._live.get(name) or self.model.get_layer(name)
        tensor = node.output if output else node.input
        return tuple(tensor.shape)

    def _score_at(self, layout: Layout, name: str) -> None:
        if len(layout.segments) == 1 and layout.repeat == 1 and name not in self.ops:
            group = self._raw[self._find(layout.segments[0][0])]
            group.score_layer, group.fold = name, 1

    def _visit(self, name: str) -> Layout:
        cls, config, ins = self.classes[name], self.configs[name], self.inputs[name]
        if name in self.ops:
            return self._op(self.ops[name], ins)
        if cls == "InputLayer":
            return self._new(name, self._channels(name), Reason("input", name, INPUT_REASON))
        if cls == heads.ATTENTION:
            return self._attention(name)
        if len(ins) != 1 and cls not in table.COUPLING and cls != "Concatenate":
            why = "structured surgery does not know this layer"
            return self._unknown(name, f"it has {len(ins)} inputs" if cls in PRODUCERS else why)
        if cls == "Bidirectional":
            return self._bidirectional(name, config, ins[0])
        if cls in table.RECURRENT:
            return self._recurrent(name, config, ins[0])
        if cls in PRODUCERS:
            return self._producer(name, cls, config, ins[0])
        if cls in CHANNELWISE:
            return self._channelwise(name, cls, config, ins[0])
        if cls in table.ACTIVATION_LAYERS:
            return self._activation(name, table.layer_activation(cls, config), ins[0], name)
        if cls in table.PASS_THROUGH:
            return ins[0]
        if cls == "Flatten":
            if config.get("data_format", "channels_last") != "channels_last":
                return self._unknown(name, "channels_first")
            spatial = self._shape(name, output=False)[1:-1]
            if any(d is None for d in spatial):
                return self._unknown(name, "its input has unknown spatial dimensions")
            return Layout(ins[0].segments, ins[0].repeat * math.prod(spatial), ins[0].dirty)
        if cls == "Reshape":
            before, after = self._shape(name, output=False), self._shape(name, output=True)
            if ins[0].repeat != 1 or before[-1] is None or before[-1] != after[-1]:
                return self._unknown(name, "it does not keep the last axis")
            self.roles[name] = "reshape"
            return ins[0]
        if cls in table.COUPLING:
            return self._couple(name, ins, product=cls == "Multiply")
        if cls == "Concatenate":
            if config.get("axis", -1) not in (-1, len(self._shape(name, output=True)) - 1):
                return self._unknown(name, "it does not concatenate the last axis")
            if any(layout.repeat != 1 for layout in ins):
                return self._unknown(name, "it concatenates flattened tensors")
            dirt = tuple(d for layout in ins for d in layout.dirt())
            segments = tuple(s for layout in ins for s in layout.segments)
            return Layout(segments, 1, dirt if any(dirt) else ())
        if cls in table.NEEDS_ALL:
            self._freeze(ins[0], Reason("block", name, self._reads_all(name)))
            return ins[0]
        if cls == "Lambda":
            return self._lambda(name, ins[0])
        return self._unknown(name, "structured surgery does not know this layer")

    def _lambda(self, name: str, layout: Layout) -> Layout:
        """A ``Lambda``: followed when a probe finds it channel-wise and zero-preserving."""
        why = probe.channelwise_blocker(self.layer(name), self._shape(name, output=False))
        if why:
            return self._unknown(name, f"it {why}")
        self.roles[name] = "lambda"
        return layout

    def _attention(self, name: str) -> Layout:
        """A ``MultiHeadAttention`` node: its heads are a group of their own.

        Its inputs are kept whole and its output is a new group, left whole: the
        heads change neither.
        """
        layout = self._unknown(name, "attention reads all channels together")
        layer = self.layer(name)
        why = heads.blocker(layer)
        reason = Reason("block", name, f"the heads of {self.describe(name)} {why}") if why else None
        size = int(self.configs[name]["num_heads"])
        group = self._raw[self._new(heads.key(name), size, reason).segments[0][0]]
        group.producers.append(name)
        group.score_layer, group.kind = name, "heads"
        self.roles[name] = "attention"
        return layout

    def _reads_all(self, name: str) -> str:
        return f"reaches {self.describe(name)}, which reads all channels together"

    def _activation(self, name: str, activation: Any, layout: Layout, score: str | None) -> Layout:
        """``layout`` through ``name``'s activation (scored at ``score`` when given)."""
        effect = table.activation_effect(activation)
        if effect in (table.ZERO, table.NONZERO) and score:
            self._score_at(layout, score)
        if effect == table.ZERO:
            return layout
        if effect == table.NONZERO:
            why = f"{self.describe(name)}, whose activation {activation!r} does not map 0 to 0"
            return layout.soiled(Reason("block", name, why))
        if effect == table.ALL_CHANNELS:
            self._freeze(layout, Reason("block", name, self._reads_all(name)))
            return layout
        why = "halves the channels" if effect == table.HALVES else "is not known"
        blocker = f"{self.describe(name)}: activation {activation!r} {why}"
        self._freeze(layout, Reason("block", name, f"reaches {blocker}"))
        return self._new(name, self._channels(name), Reason("block", name, f"made by {blocker}"))

    def _producer(self, name: str, cls: str, config: Mapping[str, Any], ins: Layout) -> Layout:
        if cls != "Dense":
            if config.get("data_format", "channels_last") != "channels_last":
                return self._unknown(name, "channels_first convolution")
            if config.get("depth_multiplier", 1) != 1:  # SeparableConv
                return self._unknown(name, "depth_multiplier != 1")
            groups = int(config.get("groups", 1) or 1)
            channels = self._shape(name, output=False)[-1]
            if groups == channels == config["filters"] and groups > 1:
                self.roles[name] = "grouped"  # one filter per channel: channel-wise
                return self._channelwise(name, cls, config, ins)
            if groups != 1:
                why = f"grouped convolution (groups={groups}) is followed only when groups == "
                return self._unknown(name, why + "input channels == filters")
        self._reject_dirt(ins, name)
        layout = self._new(name, int(config[PRODUCERS[cls]]))
        group = self._raw[layout.segments[0][0]]
        group.producers.append(name)
        group.score_layer = name
        self.roles[name] = "producer"
        return self._activation(name, table.layer_activation(cls, config), layout, None)

    def _recurrent(self, name: str, config: Mapping[str, Any], ins: Layout) -> Layout:
        """A ``SimpleRNN``/``GRU``/``LSTM``: a producer whose units are its output channels."""
        why = _recurrent_blocker(config) or ("its input is flattened" if ins.repeat != 1 else None)
        if why:
            return self._unknown(name, why)
        self._reject_dirt(ins, name)
        self.roles[name] = "recurrent"
        return self._units(name, name, int(config["units"]))

    def _units(self, producer: str, score_layer: str, size: int) -> Layout:
        """A new group of ``size`` units made by ``producer``, scored at ``score_layer``."""
        layout = self._new(producer, size)
        group = self._raw[layout.segments[0][0]]
        group.producers.append(producer)
        group.score_layer = score_layer
        return layout

    def _bidirectional(self, name: str, config: Mapping[str, Any], ins: Layout) -> Layout:
        """A ``Bidirectional`` recurrent layer: unit j of both directions is one unit."""
        layer = self.layer(name)
        sublayers = [layer.forward_layer, layer.backward_layer]
        for sub in sublayers:
            kind = type(sub).__name__
            why = _recurrent_blocker(sub.get_config()) if kind in table.RECURRENT else None
            if kind not in table.RECURRENT or why:
                return self._unknown(name, why or f"it wraps a {kind}")
        sizes = {int(sub.get_config()["units"]) for sub in sublayers}
        merge = config.get("merge_mode", "concat")
        if len(sizes) != 1:
            return self._unknown(name, f"its directions have {' and '.join(map(str, sizes))} units")
        if merge not in ("concat", "sum", "ave", "mul"):
            return self._unknown(name, f"its directions are merged by {merge!r}")
        if ins.repeat != 1:
            return self._unknown(name, "its input is flattened")
        self._reject_dirt(ins, name)
        self.roles[name] = "bidirectional"
        self.directions[name] = []
        size = sizes.pop()
        for sub in sublayers:
            path = f"{name}/{sub.name}"
            self._sublayers[path], self._owners[path] = sub, name
            self.classes[path] = type(sub).__name__
            self.directions[name].append((path, self._units(path, name, size)))
        forward, backward = (layout for _, layout in self.directions[name])
        if merge != "concat":
            return self._couple(name, [forward, backward], product=merge == "mul")
        self._union(forward.segments[0][0], backward.segments[0][0])
        self._raw[self._find(forward.segments[0][0])].fold = 2
        return Layout(forward.segments + backward.segments)

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
        self.roles.setdefault(name, "channelwise")
        if cls == "BatchNormalization":  # a zeroed gamma and beta give exactly zero
            self._score_at(layout, name)
            return layout.clean() if config.get("scale", True) else layout
        return self._activation(name, table.layer_activation(cls, config), layout.clean(), None)

    def _couple(self, name: str, ins: list[Layout], *, product: bool) -> Layout:
        first = ins[0]
        for other in ins[1:]:
            sizes = [s for _, s in other.segments]
            if sizes != [s for _, s in first.segments] or other.repeat != first.repeat:
                return self._unknown(name, "its inputs' channels do not line up")
        for other in ins[1:]:
            for (a, _), (b, _) in zip(first.segments, other.segments):
                self._union(a, b)
        dirt = []
        for reasons in zip(*(layout.dirt() for layout in ins)):
            if product:  # zero times a finite value is zero
                dirt.append(None if None in reasons else reasons[0])
            else:
                dirt.append(next((r for r in reasons if r is not None), None))
        self._score_at(first, name)
        return Layout(first.segments, first.repeat, tuple(dirt) if any(dirt) else ())

    def _op(self, call: OpCall, ins: list[Layout]) -> Layout:
        name, kind = call.name, call.kind
        if kind in table.REDUCE_OPS:
            axes = call.axis if isinstance(call.axis, (list, tuple)) else [call.axis]
            rank = len(call.tensors[0].shape) if len(call.tensors) == 1 else 0
            if not rank or None in axes or rank - 1 in [int(a) % rank for a in axes]:
                return self._unknown(name, "it reduces the channel axis")
        elif kind not in table.ELEMENTWISE_OPS:
            return self._unknown(name, "structured surgery does not follow this op")
        if not ins or len(ins) != len(call.tensors) or any(x.repeat != 1 for x in ins[1:]):
            return self._unknown(name, "its tensor inputs could not be matched")
        for layout in ins if call.may_blow_up() else []:
            self._reject_dirt(layout, name)  # may turn a non-zero channel into inf or NaN
        if any(np.size(c) != 1 for c in call.constants()):
            return self._unknown(name, "a constant is not a scalar (it may hold one per channel)")
        try:
            value = call.at_zero()
        except Exception as exc:
            return self._unknown(name, f"it could not be run on zeros ({exc!r:.80})")
        if value.size == 0 or not np.all(np.isfinite(value)):
            return self._unknown(name, "it maps 0 to inf or NaN")
        layout = (
            ins[0] if len(ins) == 1 else self._couple(name, ins, product=kind in table.MULTIPLY_OPS)
        )
        if np.any(value != 0):
            why = f"{self.describe(name)}, which maps 0 to {value[value != 0].flat[0]:g}"
            return layout.soiled(Reason("block", name, why))
        return layout

    # -- reasons ------------------------------------------------------------------------------
    def _collect(self) -> dict[str, Group]:
        groups: dict[str, Group] = {}
        roots = [gid for gid in range(len(self._raw)) if self._find(gid) == gid]
        for gid in sorted(roots, key=lambda g: not self._raw[g].producers):  # producers keep keys
            group = self._raw[gid]
            if group.producers and group.kind == "channels":
                group.producers.sort(key=self._position)
                group.key = group.producers[0]
            group.frozen = self._primary(group)
            group.key += f"#{gid}" if group.key in groups else ""  # a producer's activation
            groups[group.key] = group
        self._root_key = {gid: self._raw[self._find(gid)].key for gid in range(len(self._raw))}
        return groups

    def _primary(self, group: Group) -> str | None:
        kinds = {r.kind for r in group.reasons}
        if "output" in kinds:
            return OUTPUT_REASON
        blocks = self._ranked(group)
        return blocks[0].text if blocks else (INPUT_REASON if "input" in kinds else None)

    def _ranked(self, group: Group) -> list[Reason]:
        """The group's blocks, nearest to its producers (downstream) first."""
        if not hasattr(self, "_children"):
            self._children = children(self.parents)
        return nearest_first(group.reasons, group.producers, self._children)

    def _notes(self) -> list[str]:
        notes = []
        for key, group in self.groups.items():
            has_units = group.producers or self.classes.get(key) in PRODUCERS  # a grouped Conv
            if not has_units or group.frozen in (None, OUTPUT_REASON, INPUT_REASON):
                continue
            more = list(dict.fromkeys(r.at for r in self._ranked(group)))[1:]
            also = ", ".join(map(repr, more[:3])) + (f" and {len(more) - 3} more" * bool(more[3:]))
            tail = f" (channels joined with it also reach {also})" if more else ""
            notes.append(f"{key}: {group.frozen}{tail}")
        return notes

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

    def channel_axis(self, name: str, ndim: int) -> int:
        """The channel axis of a channel-wise layer's weight of rank ``ndim``."""
        if ndim == 1:
            return 0
        return -1 if self.roles[name] == "grouped" else -2  # [..., 1, C] or [..., C, multiplier]

    def gates(self, name: str) -> int:
        """Blocks of unit columns in a producer's weights: a recurrent layer's gates, else 1."""
        return table.RECURRENT.get(self.classes.get(name, ""), 1)

    def layer(self, name: str) -> Any:
        """The model's layer called ``name``, or the sublayer at a path (``"bi/forward_lstm"``)."""
        if name in self._sublayers:
            return self._sublayers[name]
        return self.model.get_layer(name)

    def owner(self, name: str) -> str:
        """The model's layer holding a sublayer producer (``"bi"``); ``name`` itself otherwise."""
        return self._owners.get(name, name)


def _recurrent_blocker(config: Mapping[str, Any]) -> str | None:
    """Why a recurrent layer's units cannot be removed, or None."""
    if config.get("stateful"):
        return "it is stateful: its kept states would change shape"
    if config.get("return_state"):
        return "it returns its states"
    activation = config.get("activation", "tanh")
    if table.activation_effect(activation) != table.ZERO:
        return f"its activation {activation!r} does not keep a removed unit at 0"
    return None
