"""The parts of a channel graph: layouts, groups, and the layer graph read from a model config.

:func:`topology` reads ``model.get_config()`` (Sequential and functional, Keras 3
and tf_keras formats, including tf_keras ``TFOpLambda`` calls whose tensors sit
in keyword arguments); :class:`Layout`, :class:`Group` and :class:`Reason` are
what :class:`~keras_forget.introspect.graph.Graph` builds from it.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from typing import Any

from keras_forget.errors import UnsupportedLayerError

OUTPUT_REASON = "feeds a model output"
INPUT_REASON = "is a model input"


@dataclasses.dataclass(frozen=True)
class Reason:
    """Why a group is frozen: ``kind`` is "input", "output" or "block"; ``at`` the node."""

    kind: str
    at: str
    text: str


@dataclasses.dataclass(frozen=True)
class Layout:
    """The channels of a tensor's last axis.

    Attributes:
        segments: ``(group id, size)`` pairs, in channel order.
        repeat: how many times the segments repeat (spatial positions after
            ``Flatten``); 1 for a channels-last tensor.
        dirty: per segment, why its removed channels are not zero (None: they
            are); empty when every segment is clean.
    """

    segments: tuple[tuple[int, int], ...]
    repeat: int = 1
    dirty: tuple[Reason | None, ...] = ()

    def dirt(self) -> tuple[Reason | None, ...]:
        return self.dirty or (None,) * len(self.segments)

    def clean(self) -> Layout:
        return Layout(self.segments, self.repeat)

    def soiled(self, reason: Reason) -> Layout:
        return Layout(self.segments, self.repeat, tuple(d or reason for d in self.dirt()))


@dataclasses.dataclass
class Group:
    """Channels removed together.

    Attributes:
        key: name of the group's first producer (or of the node that made it);
            ``"<layer>/heads"`` for an attention layer's heads.
        size: number of units.
        producers: layers whose output units are the group's channels.
        score_layer: the layer whose output is scored for this group: the last
            producer, BatchNormalization, activation or merge layer carrying
            exactly these channels (the post-BN, post-activation block output).
        fold: how many blocks of the group's channels lie side by side in the
            score layer's output: 2 for a ``Bidirectional`` layer concatenating
            its directions, whose unit j of each is removed together; else 1.
        frozen: why the group cannot be cut, or None.
        reasons: every reason found (``frozen`` is the one nearest the producers).
        kind: ``"channels"`` (the units are channels of tensors) or ``"heads"``
            (the heads of an attention layer, its only producer: internal to it,
            they change no tensor's channels).
    """

    key: str
    size: int
    producers: list[str] = dataclasses.field(default_factory=list)
    score_layer: str = ""
    fold: int = 1
    frozen: str | None = None
    reasons: list[Reason] = dataclasses.field(default_factory=list)
    kind: str = "channels"

    @property
    def prunable(self) -> bool:
        return self.frozen is None and bool(self.producers)


def history(obj: Any, out: list[tuple[str, int]]) -> None:
    """Collects ``(parent name, output index)`` from an ``inbound_nodes`` entry (any format)."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            name, _, index = obj["config"]["keras_history"]
            out.append((name, index))
            return
        for value in obj.values():
            history(value, out)
    elif isinstance(obj, (list, tuple)):
        head = obj[:3]
        if (
            len(head) == 3
            and isinstance(head[0], str)
            and head[0] != "_CONSTANT_VALUE"
            and all(isinstance(i, int) and i >= 0 for i in head[1:])
        ):
            out.append((head[0], head[2]))
            obj = obj[3:]  # tf_keras: then the call's kwargs, which may hold tensors too
        for value in obj:
            history(value, out)


def topology(model: Any) -> tuple[list[dict], dict[str, list[str]], list[str], set[str]]:
    """``(layer configs, parents, output names, names to leave whole: shared or multi-output)``."""
    try:
        config = model.get_config()
    except Exception as exc:  # subclassed models may not serialize at all
        config = {"error": exc}
    layers = config.get("layers") if isinstance(config, dict) else None
    if not isinstance(layers, list):
        raise UnsupportedLayerError(
            f"Structured surgery needs a Sequential or functional model; {model.name!r} "
            f"({type(model).__name__}) has no layer graph in its config."
        )
    parents: dict[str, list[str]] = {}
    odd: set[str] = set()
    if "input_layers" in config:  # functional
        for entry in layers:
            found: list[tuple[str, int]] = []
            nodes = entry.get("inbound_nodes") or []
            odd.update([entry["name"]] if len(nodes) > 1 else [])
            history(nodes, found)
            odd.update(name for name, index in found if index != 0)
            parents[entry["name"]] = [name for name, _ in found]
        outputs: list[tuple[str, int]] = []
        history(config["output_layers"], outputs)
        return layers, parents, [name for name, _ in outputs], odd
    if not layers or layers[0]["class_name"] != "InputLayer":
        shape = list(model.input_shape)
        layers.insert(0, {"class_name": "InputLayer", "config": {"name": "", "batch_shape": shape}})
    previous: list[str] = []
    for entry in layers:
        name = entry["config"]["name"]
        entry["name"] = name
        parents[name] = previous
        previous = [name]
    return layers, parents, previous, odd


def children(parents: dict[str, list[str]]) -> dict[str, list[str]]:
    """``{node: the nodes it feeds}`` from ``{node: its parents}``."""
    out: dict[str, list[str]] = {}
    for child, names in parents.items():
        for parent in names:
            out.setdefault(parent, []).append(child)
    return out


def nearest_first(
    reasons: list[Reason], sources: list[str], graph: dict[str, list[str]]
) -> list[Reason]:
    """The distinct "block" reasons, nearest (in hops downstream of ``sources``) first."""
    blocks = list(dict.fromkeys(r for r in reasons if r.kind == "block"))
    if len(blocks) < 2 or not sources:
        return blocks
    distance = dict.fromkeys(sources, 0)
    queue = deque(sources)
    while queue:
        node = queue.popleft()
        for child in graph.get(node, []):
            if child not in distance:
                distance[child] = distance[node] + 1
                queue.append(child)
    return sorted(blocks, key=lambda r: distance.get(r.at, math.inf))


def dominators(order: list[str], parents: dict[str, list[str]]) -> dict[str, str | None]:
    """The immediate dominator of every node of a layer graph.

    Node ``d`` dominates ``n`` when every path from the model's inputs to ``n``
    passes through ``d``: ``d``'s output then determines ``n``'s inputs. In a
    directed acyclic graph a node's immediate dominator is the nearest common
    dominator of its parents (Cooper, Harvey and Kennedy's walk up the tree).

    Args:
        order: node names in topological order.
        parents: ``{node: [parent names]}``.

    Returns:
        ``{node: its immediate dominator}``; None for the model's inputs and
        for nodes only the model's inputs together dominate.
    """
    index = {name: i for i, name in enumerate(order)}
    idom: dict[str, str | None] = {}

    def common(a: str | None, b: str | None) -> str | None:
        while a != b:
            if a is None or b is None:
                return None
            if index[a] > index[b]:
                a = idom[a]
            else:
                b = idom[b]
        return a

    for name in order:
        known = [p for p in parents.get(name, ()) if p in idom]
        dominator = known[0] if known else None
        for parent in known[1:]:
            dominator = common(dominator, parent)
        idom[name] = dominator
    return idom
