"""``method="obs"``: layer-wise Optimal Brain Surgeon, one-shot (OBC / SparseGPT).

Optimal Brain Damage ranks weights by a diagonal Hessian and leaves the rest of
the network as it is. Optimal Brain Surgeon, the method OBD simplified, also
*updates* the weights that are kept to make up for those removed. On a whole
network its Hessian is out of reach; per layer it is not: the error of a Dense
layer's (or a convolution's) outputs is quadratic in its weights, with Hessian
``H = XᵀX / n`` of the layer's inputs. So, layer after layer, in order:

1. the layer's inputs on calibration examples of ``data`` are taken from the
   network pruned so far (a convolution's as patches, grouped and depthwise
   convolutions one Hessian per group or channel), and ``H`` is accumulated batch
   by batch, so memory is one ``d × d`` matrix per group whatever the data;
2. the weights to remove and the update of the kept ones follow SparseGPT's
   column-by-column OBS updates, and the kept weights of each output row are then
   set to the least-squares optimum for that mask
   (:func:`keras_forget.scores.obs.prune_layer`); the bias, never removed, is
   updated too. By default (``correct=True``) the outputs matched are the
   layer's outputs in the *original* network, so each layer also makes up for the
   error the earlier layers left.

``scope="layer"`` removes the same fraction of every layer; ``scope="global"``
removes from each layer as many weights as a global ranking of LAMP scores of
``w²`` would (``allocation="lamp"``), and OBS then chooses which ones. (OBS saliencies
measure each layer's own output error, which does not compare across layers:
ranked globally they emptied whole layers of an MLP.) Weights of layers this cannot
read (Embedding, recurrent, transposed or 3-D convolutions, separable
convolutions, shared or nested layers) are pruned by magnitude at the same
fraction, without update, and named in one warning.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from keras_forget import _keras, selection
from keras_forget.data import Data, size, take
from keras_forget.errors import InvalidArgumentError, KerasForgetError
from keras_forget.introspect import inputs
from keras_forget.introspect.inputs import LayerInputs, forward_floats, input_model
from keras_forget.introspect.registry import prunable_weights
from keras_forget.introspect.topology import topology
from keras_forget.scores import obs as math
from keras_forget.scores.resolver import Configurable

MaskMap = dict[str, np.ndarray]
#: Most patch entries held at once while a Hessian accumulates (float32): 16 MB; each
#: chunk's products are summed in float32, the chunks in float64.
MAX_PATCH_ELEMENTS = 2**22
_CONVS = ("Conv1D", "Conv2D", "DepthwiseConv1D", "DepthwiseConv2D")
#: How ``scope="global"`` shares the weights to remove between layers.
ALLOCATIONS = ("lamp", "magnitude")


class _Layer:
    """A Dense or convolution as ``[groups, rows, d]`` weights on ``[groups, n, d]`` inputs.

    Args:
        layer: the layer.
        kernel: its kernel variable.
    """

    def __init__(self, layer: Any, kernel: Any) -> None:
        self.layer, self.kernel = layer, kernel
        self.bias = getattr(layer, "bias", None) if getattr(layer, "use_bias", False) else None
        self.kind = type(layer).__name__
        shape = tuple(int(s) for s in kernel.shape)
        self.one_d = self.kind.endswith("1D")
        self.shape = shape
        if self.kind == "Dense":
            self.groups, self.rows, self.width = 1, shape[1], shape[0]
            return
        self.window = (1, shape[0]) if self.one_d else tuple(shape[:2])
        taps = self.window[0] * self.window[1]
        if self.kind.startswith("Depthwise"):
            self.groups, self.rows, self.width = shape[-2], shape[-1], taps
        else:
            self.groups = int(getattr(layer, "groups", 1) or 1)
            self.rows, self.width = shape[-1] // self.groups, taps * shape[-2]

    @staticmethod
    def supported(layer: Any, kernel: Any) -> bool:
        """Whether ``kernel`` is the main kernel of a channels-last Dense or convolution."""
        kind = type(layer).__name__
        if kind == "Dense":
            return getattr(layer, "kernel", None) is kernel
        if kind not in _CONVS or getattr(layer, "data_format", "channels_last") != "channels_last":
            return False
        own = getattr(layer, "depthwise_kernel", None)
        own = getattr(layer, "kernel", None) if own is None else own
        return own is kernel and getattr(layer, "padding", "") in ("same", "valid", "causal")

    def to_rows(self, kernel: np.ndarray) -> np.ndarray:
        if self.kind == "Dense":
            return kernel.T[None]
        # [kh, kw, in per group, out] or, depthwise, [kh, kw, channels, multiplier]
        return kernel.reshape(self.width, self.groups, self.rows).transpose(1, 2, 0)

    def from_rows(self, rows: np.ndarray) -> np.ndarray:
        if self.kind == "Dense":
            return rows[0].T
        return rows.transpose(2, 0, 1).reshape(self.shape)

    def patches(self, x: Any) -> np.ndarray:
        """``[groups, n, d]`` input rows of the layer for inputs ``x``."""
        x = tf.convert_to_tensor(x, tf.float32)
        if self.kind == "Dense":
            return tf.reshape(x, [-1, self.width]).numpy()[None]
        if self.one_d:
            x = x[:, None]
        padding = str(self.layer.padding).upper()
        rates = _pair(self.layer.dilation_rate, self.one_d)
        if padding == "CAUSAL":
            x = tf.pad(x, [[0, 0], [0, 0], [rates[1] * (self.window[1] - 1), 0], [0, 0]])
            padding = "VALID"
        found = tf.image.extract_patches(
            x,
            [1, *self.window, 1],
            [1, *_pair(self.layer.strides, self.one_d), 1],
            [1, *rates, 1],
            padding,
        ).numpy()
        taps = self.window[0] * self.window[1]
        if self.kind.startswith("Depthwise"):
            return found.reshape(-1, taps, self.groups).transpose(2, 0, 1)
        per_group = found.reshape(-1, taps, self.groups, self.width // taps)
        return per_group.transpose(2, 0, 1, 3).reshape(self.groups, -1, self.width)


def _pair(value: Any, one_d: bool) -> tuple[int, int]:
    values = tuple(int(v) for v in (value if isinstance(value, (list, tuple)) else (value,)))
    return (1, values[0]) if one_d else (values[0], values[-1])


def _with_bias(rows: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    return rows if bias is None else np.concatenate([rows, bias[..., None]], -1)


def _ones(patches: np.ndarray) -> np.ndarray:
    return np.concatenate([patches, np.ones((*patches.shape[:2], 1), patches.dtype)], -1)


class OBS(Configurable):
    """Layer-wise Optimal Brain Surgeon: prune each layer and update its kept weights.

    Args:
        damp: dampening of each input Hessian, relative to its mean diagonal (>= 0).
        examples: calibration examples read from ``data`` (the first ones).
        block_size: columns per SparseGPT block (>= 1).
        correct: match each layer's outputs in the original network (True), or in
            the network pruned so far (False, as SparseGPT). Sequential only.
        sequential: take each layer's inputs from the network pruned so far, one
            pass over the calibration examples per layer (True); or all from the
            unpruned network in one pass (False: faster on deep networks, since
            the sequential passes cost about ``layers² / 2`` layer evaluations).
        allocation: how ``scope="global"`` shares the weights to remove between
            layers: as a global ranking of LAMP scores of ``w²`` (``"lamp"``) or of
            ``w²`` itself (``"magnitude"``).

    The defaults (``damp=0.01``, ``allocation="lamp"``, with ``kf.prune``'s default
    ``scope="global"``) had the best mean validation accuracy without retraining among
    dampening 0.01 / 0.1 × layer-wise / LAMP / magnitude allocation (3 seeds; two MLPs
    and a VGG-style CNN at 50-95 %; benchmarks/obd_diagnosis.py): 0.965, against 0.879
    for layer-wise OBS.
    """

    name: ClassVar[str] = "obs"
    needs_data: ClassVar[bool] = True

    def __init__(
        self,
        damp: float = 0.01,
        examples: int = 1024,
        block_size: int = 128,
        correct: bool = True,
        sequential: bool = True,
        allocation: str = "lamp",
    ) -> None:
        if isinstance(damp, bool) or not isinstance(damp, (int, float)) or not damp >= 0:
            raise InvalidArgumentError(f"`OBS.damp` must be a number >= 0, got {damp!r}.")
        for name, value in (("examples", examples), ("block_size", block_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InvalidArgumentError(f"`OBS.{name}` must be an int >= 1, got {value!r}.")
        self.damp, self.examples, self.block_size = float(damp), int(examples), int(block_size)
        self.correct, self.sequential = bool(correct), bool(sequential)
        if allocation not in ALLOCATIONS:
            raise InvalidArgumentError(
                f"`OBS.allocation` must be one of {ALLOCATIONS}, got {allocation!r}."
            )
        self.allocation = allocation

    def get_config(self) -> dict[str, Any]:
        return {
            "damp": self.damp,
            "examples": self.examples,
            "block_size": self.block_size,
            "correct": self.correct,
            "sequential": self.sequential,
            "allocation": self.allocation,
        }

    def prune(
        self,
        model: Any,
        data: Data,
        sparsity: float,
        *,
        scope: str = "layer",
        min_density: float = 0.0,
        batch_size: int = 64,
        verbose: bool = True,
    ) -> tuple[Any, MaskMap]:
        """Prunes a copy of ``model`` to ``sparsity`` and updates its kept weights.

        Args:
            model: a built Keras 3 or tf_keras model (not changed).
            data: the checked calibration data.
            sparsity: fraction of the prunable weights to remove, in [0, 1).
            scope: ``"layer"`` (each layer alike) or ``"global"`` (as many weights
                removed from each layer as the global ranking of ``allocation``;
                ``kf.prune``'s default).
            min_density: with ``"global"``, the fraction of every layer kept.
            batch_size: batch size for array data.
            verbose: show progress over layers.

        Returns:
            ``(the updated copy, MaskMap)``; pruned weights are zero in the copy.
        """
        work = _keras.clone(model)
        weights = prunable_weights(work)
        x = _calibration(data, self.examples, batch_size)
        layers = {
            k: _Layer(w.layer, w.variable)
            for k, w in weights.items()
            if _Layer.supported(w.layer, w.variable) and input_model(work, [w.layer]) is not None
        }
        _warn_unsupported([k for k in weights if k not in layers])
        counts = self._counts(weights, sparsity, scope, min_density)
        feeds = self._feeds(model, work, layers)
        masks: MaskMap = {}
        for key in tqdm(list(weights), desc="OBS", unit="layer", disable=not verbose, leave=False):
            if key in layers:
                statistics = feeds(key, x)
                masks[key] = self._surgery(layers[key], *statistics, counts[key])
            else:
                masks[key] = _by_magnitude(weights[key].variable, counts[key])
        return work, masks

    def _feeds(self, model: Any, work: Any, layers: dict[str, _Layer]) -> Any:
        """``(key, x) -> (H, cross or None)`` of a layer, in the order layers are pruned.

        Sequential: the inputs come from ``work`` as pruned so far (and, with
        ``correct``, from an untouched copy of ``model`` for the cross term).
        Otherwise every Hessian is gathered at once, in one pass over the
        unpruned network.
        """
        if not self.sequential:
            keys = list(layers)
            together = input_model(work, [layers[k].layer for k in keys])
            found: dict[str, tuple] = {}

            def all_at_once(key: str, x: Any) -> tuple:
                if not found:
                    stats = _statistics([layers[k] for k in keys], together, None, x)
                    found.update(zip(keys, stats))
                return found.pop(key)

            return all_at_once
        reference = _keras.clone(model) if self.correct else None
        originals = None if reference is None else prunable_weights(reference)
        runs: dict[str, Any] = {}

        def one_by_one(key: str, x: Any) -> tuple:
            if not runs:  # each layer's inputs resumed from cached activations
                runs.update(now=_layer_inputs(work, x), before=_layer_inputs(reference, x))
            now, x_now = _inputs_to(runs["now"], work, layers[key].layer, x)
            if reference is None:
                return _statistics([layers[key]], now, None, x_now)[0]
            before, x_before = _inputs_to(runs["before"], reference, originals[key].layer, x)
            return _statistics([layers[key]], now, before, x_now, x_before)[0]

        return one_by_one

    def _surgery(
        self, layer: _Layer, hessian: np.ndarray, cross: np.ndarray | None, count: int
    ) -> np.ndarray:
        """Prunes one layer in place (kernel and bias updated); returns its kept mask."""
        kernel = layer.kernel.numpy()
        bias = None if layer.bias is None else layer.bias.numpy().reshape(layer.groups, -1)
        rows = _with_bias(layer.to_rows(kernel.astype(np.float64)), bias)
        new, keep = math.prune_layer(
            rows,
            hessian,
            count,
            cross=cross,
            prunable=layer.width,
            damp=self.damp,
            block_size=self.block_size,
        )
        layer.kernel.assign(layer.from_rows(new[..., : layer.width]).astype(kernel.dtype))
        if layer.bias is not None:
            layer.bias.assign(new[..., -1].reshape(-1).astype(kernel.dtype))
        return layer.from_rows(keep[..., : layer.width])

    def _counts(self, weights: dict, sparsity: float, scope: str, min_density: float) -> dict:
        """Weights to remove per layer: the same fraction, or as a global ranking does."""
        squares = {k: np.square(w.variable.numpy().astype(np.float64)) for k, w in weights.items()}
        normalize = "lamp" if self.allocation == "lamp" else None
        chosen = selection.select(
            squares, sparsity, scope=scope, normalize=normalize, min_density=min_density
        )
        return {k: int(m.size - np.count_nonzero(m)) for k, m in chosen.items()}


def _calibration(data: Data, examples: int, batch_size: int) -> Any:
    """The inputs of the first ``examples`` examples of ``data``."""
    parts, seen = [], 0
    for xb, _ in data.batches(batch_size):
        parts.append(xb)
        seen += size(xb)
        if seen >= examples:
            break
    joined = tf.nest.map_structure(lambda *p: np.concatenate(p), *parts)
    return take(joined, slice(0, examples))


def _layer_inputs(model: Any, x: Any) -> LayerInputs | None:
    """A :class:`LayerInputs` over ``model`` (None for no model, or one without a graph)."""
    if model is None:
        return None
    try:
        layers, parents, _, _ = topology(model)
    except KerasForgetError:  # a subclassed model: passes from its inputs
        return None
    return LayerInputs(model, x, [entry["name"] for entry in layers], parents)


def _inputs_to(runs: LayerInputs | None, model: Any, layer: Any, x: Any) -> tuple[Any, Any]:
    """``(model, inputs)`` giving ``layer``'s input on the calibration examples ``x``."""
    found = None if runs is None else runs.inputs_to(layer)
    return found if found is not None else (input_model(model, [layer]), x)


def _statistics(
    layers: list[_Layer], now: Any, before: Any, x: Any, x_before: Any = None
) -> list[tuple]:
    """Per layer, ``(X̃ᵀX̃ / n, X̃ᵀX / n or None)`` over the calibration inputs ``x``.

    ``now`` maps inputs to the layers' inputs in the network as it is (``X̃``),
    ``before`` (or None) in the original network (``X``), reading ``x_before``
    when given (the same examples, from another cut) and ``x`` otherwise. Each chunk's products are
    taken in float32 and summed over chunks in float64; a chunk holds at most
    :data:`MAX_PATCH_ELEMENTS` patch entries and
    :data:`~keras_forget.introspect.inputs.MAX_FORWARD_FLOATS` layer outputs of the
    forward passes (at least one example).
    """
    sizes = [layer.width + int(layer.bias is not None) for layer in layers]
    hessians = [np.zeros((layer.groups, d, d)) for layer, d in zip(layers, sizes)]
    crosses = [None if before is None else np.zeros_like(h) for h in hessians]
    counts = [0] * len(layers)
    first = _flat(now(take(x, slice(0, 1)), training=False))
    per_example = sum(layer.patches(a).size for layer, a in zip(layers, first))
    step = chunk(per_example, now, before)
    for start in range(0, size(x), step):
        xb = take(x, slice(start, start + step))
        seen = _flat(now(xb, training=False))
        xo = xb if x_before is None else take(x_before, slice(start, start + step))
        old = None if before is None else _flat(before(xo, training=False))
        for i, layer in enumerate(layers):
            current = _rows(layer, seen[i])
            hessians[i] += np.matmul(current.transpose(0, 2, 1), current)
            if old is not None:
                crosses[i] += np.matmul(current.transpose(0, 2, 1), _rows(layer, old[i]))
            counts[i] += current.shape[1]
    return [(h / n, None if c is None else c / n) for h, c, n in zip(hessians, crosses, counts)]


def chunk(patch_elements: int, *models: Any) -> int:
    """Examples per chunk: at most :data:`MAX_PATCH_ELEMENTS` patch entries and
    :data:`~keras_forget.introspect.inputs.MAX_FORWARD_FLOATS` layer outputs of each of
    ``models`` (None ignored); >= 1."""
    forward = max((forward_floats(m) for m in models if m is not None), default=0)
    by_patches = MAX_PATCH_ELEMENTS // max(1, patch_elements)
    return max(1, min(by_patches, inputs.MAX_FORWARD_FLOATS // max(1, forward)))


def _flat(outputs: Any) -> list[Any]:
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _rows(layer: _Layer, inputs: Any) -> np.ndarray:
    """``[groups, n, d]`` input rows of ``layer``, with a column of ones for its bias."""
    patches = layer.patches(inputs)
    return _ones(patches) if layer.bias is not None else patches


def _by_magnitude(variable: Any, count: int) -> np.ndarray:
    """Prunes ``count`` entries of ``variable`` by magnitude, in place; returns the kept mask."""
    value = variable.numpy()
    keep = np.ones(value.size, bool)
    keep[np.argsort(np.abs(value).ravel(), kind="stable")[:count]] = False
    keep = keep.reshape(value.shape)
    variable.assign(value * keep)
    return keep


def _warn_unsupported(keys: list[str]) -> None:
    if keys:
        warnings.warn(
            f"OBS cannot read the inputs of {len(keys)} weight(s) ({', '.join(keys)}): they are "
            f"pruned by magnitude at the same fraction, without update. OBS reads channels-last "
            f"Dense, Conv1D/2D and DepthwiseConv1D/2D layers called once in a Sequential or "
            f"functional model.",
            UserWarning,
            stacklevel=3,
        )
