"""Per-example gradient sums of Dense and convolution kernels from one backward pass.

A Dense or convolution layer computes ``z = P·W + b`` at each position of its
output, where the rows of ``P`` are the layer's input at that position (the input
vector of a Dense layer, an input patch of a convolution) and ``W`` is the kernel
as a matrix. For a per-example scalar ``f_n`` (the objective, or one column of
OBD's Gauss-Newton factor), example ``n``'s kernel gradient is

    G_n = Σ_p P_npᵀ δ_np,     δ = ∂f/∂z.

Because ``f_n`` depends on example ``n`` alone, one backward pass of ``Σ_n f_n``
to the layer's outputs gives every ``δ_n`` at once; the layer's inputs come from
the same forward pass. With one position (a Dense layer on vectors) the sums the
scores need have closed forms, as in BackPACK's per-sample statistics:

    Σ_n G_n² = (P²)ᵀ(δ²),   Σ_n |G_n| = |P|ᵀ|δ|,   Σ_n G_n = Pᵀδ.

With several positions (convolutions, Dense on sequences) each ``G_n`` is one
batched matrix product, squared or made absolute, and summed, in chunks that
bound memory. Either way no per-example backward pass is run; the results are
exactly those of per-example gradients (:mod:`keras_forget.scores.per_example`).

The kernels of a Sequential or functional model nested in the scored one and
called once there (a ``keras.applications`` base inside a Sequential, say) are
reached too: the gradient at the nested model's output is carried back through
a second pass over that model alone. Kernels of other layers, of layers called
more than once, grouped or causal convolutions, and non-classifier objectives
keep the per-example path, in the same call. Under a ``tf.distribute`` strategy each
batch is split between the replicas (:mod:`keras_forget.distribute`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from keras_forget import _keras, distribute
from keras_forget.introspect.registry import PrunableWeight
from keras_forget.scores.per_example import MAX_ELEMENTS, reduce_per_example, summed_gradients

#: Most activation floats one factored pass holds, tapped activations × (pseudo-outputs + 1):
#: a batch that would hold more is scored in slices (exactly: the sums add over examples).
MAX_ACTIVATIONS = 2**26

#: Multiply-adds one written float is taken to cost, choosing how squares are summed.
WRITE_COST = 4

#: What is summed over examples: ``G²``, ``|G|`` or ``G``.
STATISTICS = ("square", "abs", "sum")

#: ``(model outputs, labels) -> [batch]`` or ``[batch, k]`` per-example scalars.
PseudoOutputs = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


@dataclasses.dataclass(frozen=True)
class _Linear:
    """How one layer's pre-activation is formed from its input."""

    key: str
    layer: Any
    kind: str  # "dense", "conv1d", "conv2d" or "depthwise"

    @property
    def variable(self) -> Any:
        """The kernel variable."""
        if self.kind == "depthwise":  # tf_keras names it depthwise_kernel, Keras 3 kernel
            if hasattr(self.layer, "depthwise_kernel"):
                return self.layer.depthwise_kernel
        return self.layer.kernel

    @property
    def kernel(self) -> tf.Tensor:
        """The kernel as ``[inputs per position, outputs]`` (depthwise ``[taps, channels]``)."""
        value = tf.cast(tf.convert_to_tensor(self.variable), tf.float32)
        if self.kind == "depthwise":
            return tf.reshape(value, [-1, value.shape[-2]])
        return tf.reshape(value, [-1, value.shape[-1]])

    def patches(self, a: tf.Tensor) -> tf.Tensor:
        """The layer's input as ``[batch, positions, inputs per position]``.

        A depthwise convolution's is ``[batch, positions, taps, channels]``.
        """
        a = tf.cast(a, tf.float32)
        if self.kind == "dense":
            return tf.reshape(a, [tf.shape(a)[0], -1, a.shape[-1]])
        layer = self.layer
        if self.kind == "conv1d":
            a = a[:, None]
            sizes, strides = (1, *layer.kernel_size), (1, *layer.strides)
            rates = (1, *layer.dilation_rate)
        else:
            sizes, strides, rates = layer.kernel_size, layer.strides, layer.dilation_rate
        patches = tf.image.extract_patches(
            a,
            sizes=[1, *sizes, 1],
            strides=[1, *strides, 1],
            rates=[1, *rates, 1],
            padding=layer.padding.upper(),
        )
        if self.kind == "depthwise":
            channels = a.shape[-1]
            return tf.reshape(
                patches, [tf.shape(a)[0], -1, patches.shape[-1] // channels, channels]
            )
        return tf.reshape(patches, [tf.shape(a)[0], -1, patches.shape[-1]])

    def preactivation(self, patches: tf.Tensor) -> tf.Tensor:
        """``z`` ``[batch, positions, outputs]``, before the layer's activation."""
        if self.kind == "depthwise":
            z = tf.einsum("bpkc,kc->bpc", patches, self.kernel)
        else:
            z = tf.einsum("bpi,io->bpo", patches, self.kernel)
        if getattr(self.layer, "use_bias", False):
            z = z + tf.cast(tf.convert_to_tensor(self.layer.bias), tf.float32)
        return z

    @property
    def keys(self) -> tuple[str, ...]:
        """The weight keys whose sums :meth:`sums` returns, in order."""
        return (self.key,)

    def sums(self, statistic: str, a: tf.Tensor, grad_out: tf.Tensor) -> list[tf.Tensor]:
        """``[Σ_n stat(G_n)]`` of the kernel, from the layer's input and output gradients."""
        patches = self.patches(a)
        part = _reduce(statistic, patches, self.deltas(self.preactivation(patches), grad_out))
        return [tf.reshape(part, self.variable.shape)]

    def deltas(self, z: tf.Tensor, grad_out: tf.Tensor) -> tf.Tensor:
        """``∂f_k/∂z`` ``[k, batch, positions, outputs]`` from the gradients at the output.

        Args:
            z: the pre-activation, ``[batch, positions, outputs]``.
            grad_out: ``[k, batch, *output shape]``, one gradient per pseudo-output.
        """
        grad_out = tf.cast(grad_out, tf.float32)
        shape, columns = tf.shape(grad_out), grad_out.shape[0]  # static: the pseudo-outputs
        grad_out = tf.reshape(
            grad_out, [shape[0] if columns is None else columns, shape[1], -1, grad_out.shape[-1]]
        )
        z = tf.broadcast_to(z, tf.shape(grad_out))  # the activation's vjp, once per k
        with tf.GradientTape() as tape:
            tape.watch(z)
            h = self.layer.activation(z)
        return tape.gradient(h, z, output_gradients=grad_out)


@dataclasses.dataclass(frozen=True)
class _Separable:
    """A ``SeparableConv2D`` (depth multiplier 1): a depthwise convolution, then a 1×1 one.

    The pointwise kernel's per-example gradient is that of a 1×1 convolution of the
    depthwise output; the depthwise kernel's, that of a depthwise convolution whose
    output gradient is the pointwise one carried back through the 1×1 kernel.
    """

    depthwise_key: str
    pointwise_key: str
    layer: Any

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.depthwise_key, self.pointwise_key)

    @property
    def variables(self) -> tuple[Any, Any]:
        return self.layer.depthwise_kernel, self.layer.pointwise_kernel

    def sums(self, statistic: str, a: tf.Tensor, grad_out: tf.Tensor) -> list[tf.Tensor]:
        """``[Σ_n stat(G_n) of the depthwise kernel, of the pointwise kernel]``."""
        depthwise = _Linear(self.depthwise_key, self.layer, "depthwise")
        patches = depthwise.patches(a)
        d = tf.einsum("bptc,tc->bpc", patches, depthwise.kernel)
        w = tf.cast(tf.convert_to_tensor(self.layer.pointwise_kernel), tf.float32)
        w = tf.reshape(w, [-1, w.shape[-1]])
        z = tf.einsum("bpc,cf->bpf", d, w)
        if getattr(self.layer, "use_bias", False):
            z = z + tf.cast(tf.convert_to_tensor(self.layer.bias), tf.float32)
        delta = depthwise.deltas(z, grad_out)
        pointwise = _reduce(statistic, d, delta)
        inner = _reduce(statistic, patches, tf.einsum("kbpf,cf->kbpc", delta, w))
        shapes = [v.shape for v in self.variables]
        return [tf.reshape(inner, shapes[0]), tf.reshape(pointwise, shapes[1])]


#: What the factored path takes: a kernel, or a separable convolution's two.
Factorable = _Linear | _Separable


def _kind(layer: Any) -> str | None:
    """``"dense"``, ``"conv1d"``, ``"conv2d"`` for a layer the factored path handles."""
    name = type(layer).__name__
    if name == "Dense":
        return "dense"
    if name == "DepthwiseConv2D" and getattr(layer, "depth_multiplier", None) == 1:
        return "depthwise" if _plain_conv(layer) else None
    if name not in ("Conv1D", "Conv2D"):
        return None
    return name.lower() if _plain_conv(layer) else None


def _plain_conv(layer: Any) -> bool:
    """Ungrouped, channels-last, ``"valid"`` or ``"same"`` padding."""
    return (
        getattr(layer, "groups", 1) == 1
        and getattr(layer, "data_format", None) == "channels_last"
        and str(layer.padding).lower() in ("valid", "same")  # not "causal"
    )


def _factorable(model: Any, weights: Mapping[str, PrunableWeight]) -> list[Factorable]:
    """The kernels the factored path handles: of layers of ``model`` called once."""
    own = {id(layer) for layer in getattr(model, "layers", [])}
    found: list[Factorable] = []
    separable: dict[int, dict[str, str]] = {}
    for key, weight in weights.items():
        layer = weight.layer
        if id(layer) not in own or not _called_once(layer):
            continue
        if _separable(layer):
            for name in ("depthwise_kernel", "pointwise_kernel"):
                if weight.variable is getattr(layer, name):
                    separable.setdefault(id(layer), {"layer": layer})[name] = key
            continue
        kind = _kind(layer)
        if kind is not None and weight.variable is _Linear(key, layer, kind).variable:
            found.append(_Linear(key, layer, kind))
    for parts in separable.values():
        if len(parts) == 3:
            found.append(
                _Separable(parts["depthwise_kernel"], parts["pointwise_kernel"], parts["layer"])
            )
    return found


def _called_once(layer: Any) -> bool:
    """Whether ``layer`` has one inbound node (a shared layer's input is not one tensor)."""
    try:
        return len(layer._inbound_nodes) == 1
    except AttributeError:
        return False


def _separable(layer: Any) -> bool:
    """A 2-D separable convolution the factored path handles."""
    return (
        type(layer).__name__ == "SeparableConv2D"
        and getattr(layer, "depth_multiplier", None) == 1
        and _plain_conv(layer)
    )


@dataclasses.dataclass(frozen=True)
class _Nested:
    """A model called once inside the scored one, with the kernels of its layers taken.

    Attributes:
        model: the nested model.
        linears: the kernels of its own layers the factored path takes.
        entry: its input tensor in the outer model's graph.
        exit: its output tensor there.
        tap: ``x -> [inputs of each layer, outputs of each layer, its output]``.
    """

    model: Any
    linears: list[Factorable]
    entry: Any
    exit: Any
    tap: Any


def _graph_nodes(model: Any) -> list[Any]:
    """Every node of a Sequential or functional model's graph (none for a subclassed one)."""
    graph = getattr(model, "_functional", None) or model
    return [node for nodes in getattr(graph, "_nodes_by_depth", {}).values() for node in nodes]


def _call_of(model: Any, layer: Any) -> tuple[Any, Any] | None:
    """``(input, output)`` of ``layer``'s one call in ``model``'s graph, or None."""
    calls = [
        node
        for node in _graph_nodes(model)
        if (getattr(node, "operation", None) or getattr(node, "layer", None)) is layer
    ]
    if len(calls) != 1:
        return None
    outputs = getattr(calls[0], "output_tensors", None)  # Keras 3; tf_keras: outputs
    ins = tf.nest.flatten(calls[0].input_tensors)
    outs = tf.nest.flatten(calls[0].outputs if outputs is None else outputs)
    return (ins[0], outs[0]) if len(ins) == len(outs) == 1 else None


def _nested(model: Any, weights: Mapping[str, PrunableWeight]) -> list[_Nested]:
    """The nested models whose own kernels the factored path can reach."""
    found = []
    for layer in getattr(model, "layers", []):
        if not isinstance(getattr(layer, "layers", None), list):
            continue
        linears = _factorable(layer, weights)
        call = _call_of(model, layer) if linears else None
        tap = _tap_model(layer, linears) if call is not None else None
        if tap is not None:
            found.append(_Nested(layer, linears, *call, tap))
    return found


def _tap_model(model: Any, linears: list[Factorable], extra: tuple[Any, ...] = ()) -> Any | None:
    """``x -> [inputs of each layer, outputs of each layer, *extra, model output]``, or None."""
    try:
        inputs = list(model.inputs)
        outputs = model.outputs
        if len(outputs) != 1:
            return None
        taps = [lin.layer.input for lin in linears] + [lin.layer.output for lin in linears]
        taps += list(extra)
        if any(isinstance(t, (list, tuple, dict)) for t in taps):
            return None
        km = _keras.keras_module(model)
        return km.Model(inputs[0] if len(inputs) == 1 else inputs, [*taps, outputs[0]])
    except Exception:  # a subclassed model, or a layer whose input is not in the graph
        return None


def _transform(statistic: str, values: tf.Tensor) -> tf.Tensor:
    return tf.square(values) if statistic == "square" else tf.abs(values)


def _reduce(statistic: str, patches: tf.Tensor, deltas: tf.Tensor) -> tf.Tensor:
    """``Σ_k Σ_n stat(G_nk)``: ``[inputs, outputs]``, or depthwise ``[taps, channels]``.

    Args:
        statistic: ``"square"`` or ``"abs"`` (a signed sum never reaches the factored
            path: it is one ordinary backward pass, see :func:`gradient_sums`).
        patches: ``[batch, positions, inputs]`` (depthwise ``[..., taps, channels]``).
        deltas: ``[k, batch, positions, outputs]``.
    """
    if patches.shape.rank == 4:  # depthwise: G_nk[t, c] = Σ_p P_nptc δ_kpnc
        return _explicit(statistic, "bptc,bpc->btc", patches, deltas)
    if patches.shape[1] == 1:  # one position: closed forms, |a·δ| = |a|·|δ|
        a, d = patches[:, 0], deltas[:, :, 0]
        d = tf.reduce_sum(_transform(statistic, d), axis=0)
        return tf.matmul(_transform(statistic, a), d, transpose_a=True)
    if statistic == "square" and _pairs_cheaper(patches.shape[1], deltas.shape[0]):
        return _pairs(patches, deltas)
    return _explicit(statistic, "bpi,bpo->bio", patches, deltas)


def _pairs_cheaper(positions: int | None, outputs: int) -> bool:
    """Whether :func:`_pairs` costs less than :func:`_explicit` for a layer.

    Per example and kernel entry, the pairs take ``positions²`` multiply-adds in
    one large matrix product; the explicit gradients ``positions · outputs`` and
    write ``outputs`` floats, counted as :data:`WRITE_COST` multiply-adds each.
    """
    if positions is None:
        return False
    return positions * positions <= outputs * (positions + WRITE_COST)


def _pairs(patches: tf.Tensor, deltas: tf.Tensor) -> tf.Tensor:
    """``Σ_k Σ_n G_nk²`` without forming any ``G_nk``.

    ``G_nk = Σ_p a_npᵀ δ_knp``, so entry by entry

        Σ_k Σ_n G_nk² = Σ_n Σ_pq (a_np ⊙ a_nq)ᵀ (Σ_k δ_knp ⊙ δ_knq),

    one matrix product over examples and position pairs, with the
    pseudo-outputs summed before it (BackPACK's trick for the diagonal of the
    Gauss-Newton matrix, here for several positions). Formed a slice of examples
    at a time, holding at most about :data:`MAX_ELEMENTS` floats.
    """
    positions, inputs, outputs = patches.shape[1], patches.shape[2], deltas.shape[-1]
    rows = max(1, MAX_ELEMENTS // (positions * positions * (inputs + outputs)))

    def body(start: tf.Tensor, total: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        a = patches[start : start + rows]
        d = deltas[:, start : start + rows]
        left = tf.reshape(a[:, :, None] * a[:, None], [-1, inputs])
        right = tf.reshape(tf.einsum("kbpo,kbqo->bpqo", d, d), [-1, outputs])
        return start + rows, total + tf.matmul(left, right, transpose_a=True)

    count = tf.shape(patches)[0]
    _, total = tf.while_loop(
        lambda start, _: start < count,
        body,
        (tf.constant(0), tf.zeros([inputs, outputs], tf.float32)),
    )
    return total


def _explicit(statistic: str, equation: str, patches: tf.Tensor, deltas: tf.Tensor) -> tf.Tensor:
    """``Σ_k Σ_n stat(G_nk)`` from each example's gradient ``G_nk``.

    The gradients are formed a slice of examples and one pseudo-output at a time,
    so at most about :data:`MAX_ELEMENTS` floats of them are held at once.
    """
    size = int(np.prod(patches.shape[2:])) * (1 if patches.shape.rank == 4 else deltas.shape[-1])
    rows = max(1, MAX_ELEMENTS // size)
    shape = patches.shape[2:] if patches.shape.rank == 4 else [patches.shape[-1], deltas.shape[-1]]

    def body(start: tf.Tensor, total: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        part = patches[start : start + rows]
        for k in range(deltas.shape[0]):
            grads = tf.einsum(equation, part, deltas[k, start : start + rows])
            total = total + tf.reduce_sum(_transform(statistic, grads), axis=0)
        return start + rows, total

    count = tf.shape(patches)[0]
    _, total = tf.while_loop(
        lambda start, _: start < count, body, (tf.constant(0), tf.zeros(shape, tf.float32))
    )
    return total


def _reduce_all(
    statistic: str, linears: list[Factorable], ins: list[tf.Tensor], grads: list[tf.Tensor]
) -> list[tf.Tensor]:
    """``Σ_n stat(G_n)`` per kernel from its layer's inputs and output gradients."""
    result = []
    for lin, a, g in zip(linears, ins, grads):
        result += lin.sums(statistic, a, g)
    return result


def _factored(
    model: Any,
    linears: list[Factorable],
    nested: list[_Nested],
    pseudo_outputs: PseudoOutputs,
    statistic: str,
) -> tuple[Callable[[Any, tf.Tensor], list[tf.Tensor]], int] | None:
    """``((x, y) -> [Σ_n stat(G_n) per kernel of linears, then of each nested], floats)``;
    None if the graph has no taps. ``floats``: the tapped activations of one example.

    One forward pass; one backward pass to the layers' outputs per pseudo-output,
    vectorised over the pseudo-outputs; for each nested model, one more forward
    pass of it and one backward pass through it per pseudo-output.
    """
    ends = tuple(n.entry for n in nested) + tuple(n.exit for n in nested)
    tap = _tap_model(model, linears, ends)
    if tap is None:
        return None
    count, many = len(linears), len(nested)
    taps = [*tap.outputs, *(t for n in nested for t in n.tap.outputs)]
    floats = sum(int(np.prod([d or 1 for d in t.shape[1:]])) for t in taps)

    def sums(x: Any, y: tf.Tensor) -> list[tf.Tensor]:
        with tf.GradientTape(persistent=bool(nested)) as tape:
            values = tap(x, training=False)
            ins, outs, final = values[:count], values[count : 2 * count], values[-1]
            entries = values[2 * count : 2 * count + many]
            exits = values[2 * count + many : 2 * count + 2 * many]
            passes = [n.tap(e, training=False) for n, e in zip(nested, entries)]
            real = tf.cast(y >= 0, tf.float32)  # label -1: a padding example
            pseudo = tf.cast(pseudo_outputs(final, tf.maximum(y, 0)), tf.float32)
            pseudo = pseudo[:, None] if pseudo.shape.rank == 1 else pseudo
            pseudo = pseudo * real[:, None]
            totals = tf.reduce_sum(pseudo, axis=0)  # [k], k static
            single = totals[0] if totals.shape[0] == 1 else None
        targets = [*outs, *exits]
        if single is not None:  # one pseudo-output: a plain backward pass
            grads = tape.gradient(single, targets, unconnected_gradients="zero")
            grads = [g[None] for g in grads]
        else:
            grads = tape.jacobian(
                totals, targets, unconnected_gradients="zero", experimental_use_pfor=True
            )
        result = _reduce_all(statistic, linears, ins, grads[:count])
        for n, values, g in zip(nested, passes, grads[count:]):
            c = len(n.linears)
            n_outs = values[c : 2 * c]
            per_k = [
                tape.gradient(
                    values[-1], n_outs, output_gradients=g[j], unconnected_gradients="zero"
                )
                for j in range(g.shape[0])
            ]
            n_grads = [tf.stack([p[i] for p in per_k]) for i in range(c)]
            result += _reduce_all(statistic, n.linears, values[:c], n_grads)
        return result

    return sums, floats


def gradient_sums(
    model: Any,
    weights: Mapping[str, PrunableWeight],
    statistic: str,
    pseudo_outputs: PseudoOutputs | None,
    pseudo_of_inputs: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
    outputs: int = 1,
    factored: bool = True,
    autograph: bool = True,
) -> Callable[[Any, np.ndarray], dict[str, np.ndarray]]:
    """Builds ``(x, y) -> {key: Σ_n stat(per-example gradient)}`` over a batch.

    Args:
        model: the model whose weights are scored.
        weights: its prunable weights.
        statistic: ``"square"``, ``"abs"`` or ``"sum"``.
        pseudo_outputs: the per-example scalars from the model's outputs and the
            labels; None when they cannot be written so (the per-example path).
        pseudo_of_inputs: the same from the inputs, ``(x, y) -> [batch(, k)]``,
            for the per-example path.
        outputs: ``k`` (1 for ``[batch]`` pseudo-outputs), to size chunks.
        factored: use the factored path wherever it applies (a ``"sum"`` is one
            backward pass either way).
        autograph: trace with AutoGraph, which user code may need (see
            :meth:`keras_forget.scores.objective.Objective.autograph`); our own
            traced code does not.

    Returns:
        The function; its values are float64 arrays shaped like the weights.
    """
    if statistic == "sum":  # the gradient of the sum: no per-example gradient needed
        variables = {k: w.variable for k, w in weights.items()}
        return summed_gradients(pseudo_of_inputs, variables, autograph=autograph)
    take = factored and pseudo_outputs is not None
    linears = _factorable(model, weights) if take else []
    nested = _nested(model, weights) if take else []
    built = (
        _factored(model, linears, nested, pseudo_outputs, statistic) if linears or nested else None
    )
    fast, floats = built or (None, 0)
    linears = [*linears, *(lin for n in nested for lin in n.linears)] if fast else []
    micro = max(1, MAX_ACTIVATIONS // max(1, floats * (outputs + 1)))
    keys = [key for lin in linears for key in lin.keys]
    rest = {k: w.variable for k, w in weights.items() if k not in set(keys)}
    slow = reduce_per_example(
        pseudo_of_inputs,
        rest,
        _per_example_reduce(statistic, rest),
        outputs,
        autograph=autograph,
    )
    traced: list[Any] = []

    def run(x: Any, y: np.ndarray) -> dict[str, np.ndarray]:
        totals = slow(x, y) if rest else {}
        if not keys:
            return totals
        if not traced:
            # One trace per batch shape (pfor needs it static), and a trace of a large
            # model's Jacobian takes minutes and holds memory: every later window is
            # padded to the first one's size.
            traced.append(tf.function(fast, autograph=autograph))
            traced.append(min(micro, len(y)))
        strategy, step = distribute.current(), traced[1]
        for start in range(0, len(y), step):  # exact: the sums add over examples
            xs, ys = _window(x, y, start, step)
            if strategy is None:
                sums = traced[0](tf.nest.map_structure(tf.constant, xs), tf.constant(ys))
            else:
                sums = distribute.replica_sums(strategy, traced[0], xs, ys)
            for key, s in zip(keys, sums):
                totals[key] = totals.get(key, 0.0) + np.asarray(s, np.float64)
        return totals

    return run


def _window(x: Any, y: np.ndarray, start: int, size: int) -> tuple[Any, np.ndarray]:
    """Examples ``start:start + size`` of ``(x, y)``, padded to ``size`` when fewer remain.

    A padding example repeats a real one, so its outputs stay finite, and has the
    label -1, which zeroes its pseudo-outputs: it adds nothing to the sums.
    """
    window = slice(start, start + size)
    xs = tf.nest.map_structure(lambda a: np.asarray(a[window]), x)
    ys = np.asarray(y[window])
    short = size - len(ys)
    if short <= 0:
        return xs, ys
    again = np.arange(short) % len(ys)
    xs = tf.nest.map_structure(lambda a: np.concatenate([a, a[again]]), xs)
    return xs, np.concatenate([ys, np.full(short, -1, dtype=ys.dtype)])


def _per_example_reduce(
    statistic: str, rest: Mapping[str, Any]
) -> Callable[[str, tf.Tensor], tf.Tensor]:
    """The per-example path's reduction of ``[batch, (k,) *shape]`` gradients."""
    ranks = {k: len(v.shape) for k, v in rest.items()}
    transform = {"square": tf.square, "abs": tf.abs}[statistic]

    def reduce(key: str, grads: tf.Tensor) -> tf.Tensor:
        lead = grads.shape.rank - ranks[key]
        return tf.reduce_sum(transform(grads), axis=list(range(lead)))

    return reduce
