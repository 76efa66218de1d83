"""tf_keras models through tensorflow-model-optimization's pruning wrappers.

Our masks go into each ``PruneLowMagnitude`` wrapper's mask variables
(``pruning_vars``), and :class:`FixedMaskSchedule` tells tfmot never to
recompute them, so fine-tuning with tfmot's ``UpdatePruningStep`` keeps the
pruned weights exactly zero. (tfmot's own schedules would overwrite the masks
with magnitude masks at their next pruning step.)

tfmot is imported only here, and only through ``_keras.tfmot()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from keras_forget import _keras
from keras_forget.surgery.registry import prunable_weights


def _sparsity():
    return _keras.tfmot().sparsity.keras


def _schedule_base() -> type:
    return _sparsity().PruningSchedule


def fixed_mask_schedule() -> Any:
    """A tfmot ``PruningSchedule`` that never updates masks (they come from our scores)."""

    class FixedMaskSchedule(_schedule_base()):
        """Never prunes: the masks assigned before training are kept as they are."""

        def __call__(self, step: Any) -> tuple[Any, Any]:
            return tf.constant(False), tf.constant(0.0, tf.float32)

        def get_config(self) -> dict[str, Any]:
            return {"class_name": "FixedMaskSchedule", "config": {}}

    return FixedMaskSchedule()


def _wrapper_class() -> type:
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

    return pruning_wrapper.PruneLowMagnitude


def wrap_with_masks(model: Any, masks: Mapping[str, np.ndarray], schedule: Any = None) -> Any:
    """Wraps the layers owning a mask with ``prune_low_magnitude`` and assigns the masks.

    Args:
        model: a tf_keras Sequential or functional model, owned by the caller
            of this function (its layers are reused by the wrapped model).
        masks: the MaskMap (``False`` = pruned).
        schedule: the tfmot schedule; default :func:`fixed_mask_schedule`.

    Returns:
        The wrapped model, with pruned weights zero.
    """
    sparsity = _sparsity()
    schedule = schedule or fixed_mask_schedule()
    layers = {w.layer.name for k, w in prunable_weights(model).items() if k in masks}
    tfk = _keras.keras_module(model)

    def wrap(layer: Any) -> Any:
        if layer.name in layers:
            return sparsity.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    wrapped = tfk.models.clone_model(model, clone_function=wrap)
    assign_masks(wrapped, masks)
    return wrapped


def _mask_vars(model: Any) -> dict[str, tuple[Any, Any]]:
    """``{weight key: (weight variable, mask variable)}`` over every wrapper."""
    out = {}
    for layer in model.layers:
        if isinstance(layer, _wrapper_class()):
            inner = layer.layer
            by_id = {id(w.variable): k for k, w in prunable_weights(inner, required=False).items()}
            for weight, mask, _ in layer.pruning_vars:
                if id(weight) in by_id:
                    out[by_id[id(weight)]] = (weight, mask)
    return out


def assign_masks(model: Any, masks: Mapping[str, np.ndarray]) -> None:
    """Writes masks into the wrappers' mask variables and zeroes pruned weights."""
    held = _mask_vars(model)
    weights = None
    for key, mask in masks.items():
        mask = np.asarray(mask, np.float32)
        if key in held:
            weight, mask_var = held[key]
            mask_var.assign(mask)
        else:  # a weight tfmot does not wrap: zero it once
            weights = weights or prunable_weights(model)
            weight = weights[key].variable
        weight.assign(weight.numpy() * mask)


def read_masks(model: Any) -> dict[str, np.ndarray]:
    """The masks held by a wrapped model's mask variables."""
    return {k: m.numpy().astype(bool) for k, (_, m) in _mask_vars(model).items()}


def callbacks() -> list[Any]:
    """Callbacks tfmot needs while a wrapped model trains."""
    return [_sparsity().UpdatePruningStep()]


def is_wrapped(model: Any) -> bool:
    return _keras.flavor(model) == "tf_keras" and any(
        isinstance(layer, _wrapper_class()) for layer in getattr(model, "layers", [])
    )


def strip(model: Any) -> Any:
    """A plain copy of a wrapped model: wrappers removed, masks applied.

    ``strip_pruning`` reuses the wrapped layers, so its result is copied and
    each weight set to ``weight · mask``; the input is not changed.
    """
    if not is_wrapped(model):
        return _keras.clone(model)
    masked = {id(w): w.numpy() * m.numpy() for w, m in _mask_vars(model).values()}
    stripped = _sparsity().strip_pruning(model)
    copy = _keras.clone(stripped)
    for shared, own in zip(stripped.weights, copy.weights, strict=True):
        if id(shared) in masked:
            own.assign(masked[id(shared)])
    return copy
