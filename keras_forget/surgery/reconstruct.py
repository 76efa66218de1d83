"""Refit the layers that read removed units, so they reproduce the original outputs.

Removing units (:func:`keras_forget.surgery.structured.shrink`) leaves every layer
that *consumes* them (the next Dense or convolution) with fewer inputs and weights
fitted to the old ones. As in channel pruning (He et al., 2017; ThiNet, Luo et al.,
2017) and the least-squares step of OBS / SparseGPT, each such layer is refit so that
its outputs on calibration examples match the *original* model's outputs of that
layer, by ridge-dampened least squares over its kept inputs (and its bias):

    min_w ‖X̃ w − X w₀‖² / n + λ‖w‖²,   λ = damp · mean diag(X̃ᵀX̃ / n),

``X̃`` the layer's inputs (a convolution's as patches, with a column of ones for the
bias) in the shrunk network, ``X`` in the original one, ``w₀`` the original kernel
and bias of the kept output units. The outputs matched are the layer's pre-activation
outputs (``X w₀ + b₀``), so a BatchNormalization after it sees what it saw before and
its statistics stay valid. Layers are visited in graph order and each reads its
inputs from the shrunk network as refit so far, so each also makes up for the error
the earlier ones left; those inputs are computed from cached activations of the
layers that dominate it (:class:`~keras_forget.introspect.inputs.LayerInputs`), so
the refit of all layers costs about one forward pass of each network, not one per
layer. ``H = X̃ᵀX̃ / n`` and ``X̃ᵀX / n`` are accumulated batch by
batch (:func:`keras_forget.surgery.obs.chunk` examples at a time).

Consumers that cannot be refit are left as they are: layers other than channels-last
Dense / Conv1D / Conv2D with ``groups=1`` (depthwise, separable, grouped, transposed),
layers whose input is not a single tensor of the model's graph (shared layers,
nested or subclassed models; see :func:`keras_forget.introspect.inputs.input_model`),
and layers whose solve would cost more than
:data:`keras_forget.scores.obs.MAX_SOLVE_FLOPS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from keras_forget.data import Data, size, take
from keras_forget.errors import InvalidArgumentError
from keras_forget.introspect.graph import Graph
from keras_forget.introspect.inputs import LayerInputs
from keras_forget.scores import obs as math
from keras_forget.surgery import obs

#: Whether ``kf.prune(granularity="unit", shrink=True)`` refits by default (with data).
#: Chosen on validation splits (benchmarks/unit_scope.py --reconstruct: 3 seeds × MLP, VGG-
#: and ResNet-style CNNs × 30/50 % of the units, DISCEDIT-SP, scope="layer"): mean validation
#: accuracy after one fine-tuning epoch 0.9730 with the refit, 0.9685 without (before
#: fine-tuning: 0.977 against 0.417); each setting won 3 of the 6 cells after fine-tuning.
DEFAULT = True
#: Calibration examples read from ``data`` by default (OBS's default).
EXAMPLES = 1024
#: Relative ridge of the least-squares refit (OBS's default dampening).
DAMP = 0.01
_KINDS = ("Dense", "Conv1D", "Conv2D")


def check_options(examples: Any, damp: Any) -> tuple[int, float]:
    """Validates ``examples`` (an int >= 1) and ``damp`` (a number >= 0)."""
    if isinstance(examples, bool) or not isinstance(examples, (int, np.integer)) or examples < 1:
        raise InvalidArgumentError(f"`examples` must be an int >= 1, got {examples!r}.")
    if isinstance(damp, bool) or not isinstance(damp, (int, float)) or not damp >= 0:
        raise InvalidArgumentError(f"`damp` must be a number >= 0, got {damp!r}.")
    return int(examples), float(damp)


def _refittable(layer: Any) -> bool:
    """A channels-last Dense, Conv1D or Conv2D (``groups=1``) with a kernel."""
    kind = type(layer).__name__
    if kind not in _KINDS or getattr(layer, "kernel", None) is None:
        return False
    if kind == "Dense":
        return True
    if int(getattr(layer, "groups", 1) or 1) != 1:
        return False
    return obs._Layer.supported(layer, layer.kernel)


def consumers(graph: Graph, unit_masks: Mapping[str, np.ndarray]) -> list[str]:
    """The layers (in graph order) whose input channels ``unit_masks`` cut."""
    out = []
    for name in graph.order:
        if graph.roles.get(name) != "producer" or not graph.inputs.get(name):
            continue
        if not graph.channel_mask(graph.inputs[name][0], unit_masks).all():
            out.append(name)
    return out


def reconstruct(
    model: Any,
    shrunk: Any,
    unit_masks: Mapping[str, np.ndarray],
    data: Data,
    *,
    graph: Graph | None = None,
    examples: int = EXAMPLES,
    damp: float = DAMP,
    batch_size: int = 64,
) -> list[str]:
    """Refits, in place, the layers of ``shrunk`` that read units removed from ``model``.

    Args:
        model: the original model (not changed).
        shrunk: ``model`` without the units of ``unit_masks``
            (:func:`~keras_forget.surgery.structured.shrink`); its weights change.
        unit_masks: ``{group key: bool [units]}`` (``False`` = removed).
        data: calibration data (the first ``examples`` examples are read).
        graph: ``model``'s :class:`Graph`, if already built.
        examples: calibration examples.
        damp: ridge, relative to the mean diagonal of ``X̃ᵀX̃ / n``.
        batch_size: batch size for array data.

    Returns:
        The names of the layers refit (consumers that cannot be refit are skipped).
    """
    examples, damp = check_options(examples, damp)
    graph = graph or Graph(model, warn=False)
    names = consumers(graph, unit_masks)
    if not names:
        return []
    x = obs._calibration(data, examples, batch_size)
    original = LayerInputs(model, x, graph.order, graph.parents)
    current = LayerInputs(shrunk, x, graph.order, graph.parents)
    done = []
    for name in names:
        before_layer, after_layer = graph.layer(name), _get(shrunk, name)
        if after_layer is None or not (_refittable(before_layer) and _refittable(after_layer)):
            continue
        width = obs._Layer(after_layer, after_layer.kernel).width + 1
        if width**3 / 3 > math.MAX_SOLVE_FLOPS:  # too large a solve, as OBS's exact step
            continue
        before, now = original.inputs_to(before_layer), current.inputs_to(after_layer)
        if before is None or now is None:
            continue
        cols = np.flatnonzero(graph.channel_mask(graph.layouts[name], unit_masks))
        try:
            _refit(before_layer, after_layer, before, now, cols, damp)
        except np.linalg.LinAlgError:  # singular without dampening: left as it is
            continue
        done.append(name)
    return done


def _get(model: Any, name: str) -> Any:
    try:
        return model.get_layer(name)
    except ValueError:
        return None


def _refit(original: Any, layer: Any, before: Any, now: Any, cols: np.ndarray, damp: float) -> None:
    """Sets ``layer``'s kernel and bias to the ridge least-squares fit of the original outputs.

    ``before`` and ``now`` are ``(model, inputs)`` pairs giving the layer's inputs in the
    original and the shrunk network (:meth:`LayerInputs.inputs_to`).
    """
    old, new = obs._Layer(original, original.kernel), obs._Layer(layer, layer.kernel)
    bias = new.bias is not None
    hessian, cross = _statistics(old, new, before, now, bias)
    kernel = np.asarray(original.kernel.numpy(), np.float64)
    target = np.take(kernel, cols, axis=-1).reshape(-1, cols.size)  # [d_orig, kept out]
    if bias:
        b0 = np.zeros(cols.size) if old.bias is None else np.take(old.bias.numpy(), cols)
        target = np.concatenate([target, np.asarray(b0, np.float64)[None]], 0)
    h = math.damped(hessian[None], damp)[0]
    solved = np.linalg.solve(h, cross @ target)  # [d_new (+1), kept out]
    dtype = layer.kernel.numpy().dtype
    layer.kernel.assign(solved[: new.width].reshape(new.shape).astype(dtype))
    if bias:
        layer.bias.assign(solved[-1].astype(dtype))


def _statistics(
    old: obs._Layer, new: obs._Layer, before: Any, now: Any, bias: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``(X̃ᵀX̃ / n, X̃ᵀX / n)``: inputs now (X̃) and in the original network (X), with
    a column of ones each when the layer has a bias."""
    (before, x_before), (now, x_now) = before, now
    d_new, d_old = new.width + int(bias), old.width + int(bias)
    hessian, cross, count = np.zeros((d_new, d_new)), np.zeros((d_new, d_old)), 0
    first = _one(now(take(x_now, slice(0, 1)), training=False))
    per_example = new.patches(first).size + old.width * new.patches(first).shape[1]
    step = obs.chunk(per_example, now, before)
    for start in range(0, size(x_now), step):
        rows = slice(start, start + step)
        current = new.patches(_one(now(take(x_now, rows), training=False)))[0]
        reference = old.patches(_one(before(take(x_before, rows), training=False)))[0]
        if bias:
            current, reference = obs._ones(current[None])[0], obs._ones(reference[None])[0]
        hessian += current.T @ current
        cross += current.T @ reference
        count += current.shape[0]
    return hessian / count, cross / count


def _one(outputs: Any) -> Any:
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs
