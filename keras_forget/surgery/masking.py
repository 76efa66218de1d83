"""Holding a MaskMap in a model: pruned weights are zero and stay zero.

Two backends behind one pair of verbs, :func:`mask_model` and :func:`strip`:

* Keras 3 models (which tfmot refuses) hold each mask as a variable
  *constraint*, applied by the optimizer after every step, so it works with
  ``jit_compile`` and ``steps_per_execution`` (a batch-end callback would not).
  Constraints are not saved in ``.keras`` files: :func:`strip` removes them,
  and :func:`mask_model` re-attaches them.
* tf_keras Sequential and functional models go through tfmot's pruning
  wrappers (:mod:`keras_forget.integrations.tfmot`); subclassed tf_keras
  models, which tf_keras cannot rebuild with wrappers, hold each mask as a
  variable constraint (``tfmot.HeldMask``), which tf_keras optimizers apply
  after every update too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from keras_forget import _keras
from keras_forget.errors import InvalidArgumentError
from keras_forget.introspect.registry import all_weights, prunable_weights


class MaskConstraint(keras.constraints.Constraint):
    """Multiplies a weight by a fixed 0/1 mask after every optimizer step.

    Args:
        mask: bool or 0/1 array shaped like the weight (``False`` = pruned).
        inner: a constraint the weight already had, applied first.
    """

    def __init__(self, mask: np.ndarray, inner: Any = None) -> None:
        self.mask = np.asarray(mask, bool)
        self.inner = inner

    def __call__(self, w: Any) -> Any:
        if self.inner is not None:
            w = self.inner(w)
        return w * keras.ops.cast(self.mask, w.dtype)

    def get_config(self) -> dict[str, Any]:
        return {"mask": self.mask.tolist(), "inner": keras.constraints.serialize(self.inner)}


def check_masks(model: Any, masks: Mapping[str, np.ndarray]) -> None:
    """Raises if a mask names no prunable weight of ``model`` or has the wrong shape."""
    weights = prunable_weights(model)
    for key, mask in masks.items():
        if key not in weights:
            raise InvalidArgumentError(
                f"`masks` has key {key!r}, which is not a prunable weight of the model "
                f"(known: {', '.join(weights)})."
            )
        if tuple(np.shape(mask)) != tuple(weights[key].variable.shape):
            raise InvalidArgumentError(
                f"`masks[{key!r}]` has shape {np.shape(mask)}, the weight has "
                f"{tuple(weights[key].variable.shape)}."
            )


def _mask_keras3(model: Any, masks: Mapping[str, np.ndarray]) -> Any:
    weights = prunable_weights(model)
    for key, mask in masks.items():
        variable = weights[key].variable
        variable.assign(variable.numpy() * np.asarray(mask, variable.dtype))
        inner = variable.constraint
        if isinstance(inner, MaskConstraint):
            inner = inner.inner
        variable.constraint = MaskConstraint(mask, inner)
    return model


def mask_model(model: Any, masks: Mapping[str, np.ndarray], *, inplace: bool = False) -> Any:
    """Zeroes the pruned weights and holds them at zero through training.

    Args:
        model: a Keras 3 or tf_keras model.
        masks: the MaskMap (``False`` = pruned).
        inplace: change ``model`` itself instead of a copy (Keras 3 only;
            tf_keras models are always copied).

    Returns:
        The masked model: ``model`` itself if ``inplace``, else a new model.
        A tf_keras Sequential or functional model comes back wrapped in
        tfmot's ``PruneLowMagnitude``; a subclassed one comes back with mask
        constraints on its weights.
    """
    check_masks(model, masks)
    if _keras.flavor(model) == "tf_keras":
        from keras_forget.integrations import tfmot

        return tfmot.wrap_with_masks(_keras.clone(model), masks)
    target = model if inplace else _keras.clone(model)
    return _mask_keras3(target, masks)


def masks_of(model: Any) -> dict[str, np.ndarray]:
    """The MaskMap a masked model holds (all-True for weights without a mask)."""
    if _keras.flavor(model) == "tf_keras":
        from keras_forget.integrations import tfmot

        return tfmot.read_masks(model)
    out = {}
    for key, weight in prunable_weights(model).items():
        constraint = weight.variable.constraint
        if isinstance(constraint, MaskConstraint):
            out[key] = constraint.mask.copy()
        else:
            out[key] = np.ones(weight.variable.shape, bool)
    return out


def strip(model: Any) -> Any:
    """A copy of ``model`` without mask constraints or pruning wrappers.

    The weights (zeros included) are kept; only the machinery that holds the
    masks during training is removed. ``model`` itself is not changed.
    """
    if _keras.flavor(model) == "tf_keras":
        from keras_forget.integrations import tfmot

        return tfmot.strip(model)
    copy = _keras.clone(model)
    for weight in prunable_weights(copy, required=False).values():
        constraint = weight.variable.constraint
        if isinstance(constraint, MaskConstraint):
            weight.variable.constraint = constraint.inner
    return copy


def check_weight_masks(model: Any, masks: Mapping[str, np.ndarray]) -> None:
    """Raises if a mask names no weight of ``model`` or has the wrong shape."""
    weights = all_weights(model)
    for key, mask in masks.items():
        if key not in weights:
            raise InvalidArgumentError(f"`masks` has key {key!r}, which is no weight of the model.")
        if tuple(np.shape(mask)) != tuple(weights[key].shape):
            raise InvalidArgumentError(
                f"`masks[{key!r}]` has shape {np.shape(mask)}, the weight has "
                f"{tuple(weights[key].shape)}."
            )


def mask_weights(model: Any, masks: Mapping[str, np.ndarray], *, inplace: bool = False) -> Any:
    """:func:`mask_model` for masks over any weight: kernels, biases, BatchNormalization.

    Keys are ``"<layer name>/<weight name>"`` (``"conv/bias"``, ``"bn/gamma"``).
    On Keras 3 every trainable masked weight gets a :class:`MaskConstraint`;
    non-trainable ones (moving statistics) are zeroed once. tf_keras models
    are wrapped with tfmot's ``PruneLowMagnitude``, whose mask variables hold
    every masked weight of the layer; a weight of a sublayer (an attention
    head's slices, ``"mha/query/kernel"``) is held by a variable constraint
    instead (see :func:`keras_forget.integrations.tfmot.wrap_with_weight_masks`).

    Args:
        model: a Keras 3 or tf_keras model.
        masks: ``{weight key: bool array shaped like the weight}``.
        inplace: change ``model`` itself (Keras 3 only).

    Returns:
        The masked model.
    """
    check_weight_masks(model, masks)
    if _keras.flavor(model) == "tf_keras":
        from keras_forget.integrations import tfmot

        return tfmot.wrap_with_weight_masks(_keras.clone(model), masks)
    target = model if inplace else _keras.clone(model)
    weights = all_weights(target)
    for key, mask in masks.items():
        variable = weights[key]
        variable.assign(variable.numpy() * np.asarray(mask, variable.dtype))
        if variable.trainable:
            inner = variable.constraint
            if isinstance(inner, MaskConstraint):
                inner = inner.inner
            variable.constraint = MaskConstraint(mask, inner)
    return target
