"""tf_keras models through tensorflow-model-optimization's pruning wrappers.

Our masks go into each ``PruneLowMagnitude`` wrapper's mask variables
(``pruning_vars``), and :class:`FixedMaskSchedule` tells tfmot never to
recompute them, so fine-tuning with tfmot's ``UpdatePruningStep`` keeps the
pruned weights exactly zero. (tfmot's own schedules would overwrite the masks
with magnitude masks at their next pruning step.)

Subclassed tf_keras models have no layer graph to rebuild with wrappers
(tf_keras' ``clone_model`` refuses them): their masks are held as variable
constraints (:class:`HeldMask`), which every tf_keras optimizer applies after
each update, like :class:`keras_forget.surgery.masking.MaskConstraint` on
Keras 3. So are the masks of weights inside a model's layer that tfmot cannot
wrap: the sublayers of a ``MultiHeadAttention``, whose call (``query, value,
...``) does not fit the wrapper's ``call(inputs, training)``.

tfmot is imported only here, and only through ``_keras.tfmot()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from keras_forget import _keras
from keras_forget.introspect.registry import PATCHED, all_weights, prunable_weights, short_name


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


class HeldMask:
    """A tf_keras variable constraint: multiplies the weight by a 0/1 mask.

    tf_keras optimizers (``optimizers.Optimizer`` and the legacy
    ``OptimizerV2``) apply ``variable.constraint`` after every update, so the
    pruned entries stay exactly zero through training. The mask lives in a
    variable (not a constant baked into a traced train step), so
    :meth:`set` takes effect in a model that is already training (gradual
    pruning).

    Args:
        mask: bool or 0/1 array shaped like the weight (``False`` = pruned).
        inner: the constraint the variable already had, applied first.
    """

    def __init__(self, mask: np.ndarray, inner: Any = None) -> None:
        self.variable = tf.Variable(np.asarray(mask, np.float32), trainable=False)
        self.inner = inner

    @property
    def mask(self) -> np.ndarray:
        return self.variable.numpy().astype(bool)

    def set(self, mask: np.ndarray) -> None:
        self.variable.assign(np.asarray(mask, np.float32))

    def __call__(self, w: Any) -> Any:
        if self.inner is not None:
            w = self.inner(w)
        return w * tf.cast(self.variable, w.dtype)


def has_layer_graph(model: Any) -> bool:
    """Whether a tf_keras model is Sequential or functional (``clone_model`` can rebuild it)."""
    return bool(getattr(model, "_is_graph_network", False)) or isinstance(
        model, _keras.keras_module(model).Sequential
    )


def _constrain(variable: Any, mask: np.ndarray) -> None:
    """Zeroes the pruned entries of ``variable`` and holds them with a :class:`HeldMask`."""
    mask = np.asarray(mask, bool)
    variable.assign(variable.numpy() * mask.astype(variable.dtype.as_numpy_dtype))
    if isinstance(variable.constraint, HeldMask):
        variable.constraint.set(mask)
    else:  # tf.Variable has no public setter
        variable._constraint = HeldMask(mask, variable.constraint)


def _constrained_weights(model: Any) -> dict[str, Any]:
    """``{weight key: variable}`` over the weights held by a :class:`HeldMask`.

    Prunable weights take their registry key; any other weight (a bias inside
    a ``MultiHeadAttention``) its :func:`all_weights` key.
    """
    out, seen = {}, set()
    listed = {k: w.variable for k, w in prunable_weights(model, required=False).items()}
    for key, variable in [*listed.items(), *all_weights(model).items()]:
        if id(variable) not in seen and isinstance(getattr(variable, "constraint", None), HeldMask):
            out[key] = variable
            seen.add(id(variable))
    return out


def _held_constraints(model: Any) -> dict[str, HeldMask]:
    """``{weight key: HeldMask}`` over the weights held by constraints."""
    return {k: v.constraint for k, v in _constrained_weights(model).items()}


def wrap_with_masks(model: Any, masks: Mapping[str, np.ndarray], schedule: Any = None) -> Any:
    """Wraps the layers owning a mask with ``prune_low_magnitude`` and assigns the masks.

    A subclassed model (no layer graph: tf_keras cannot rebuild it with
    wrappers) is not wrapped: each mask is held by a :class:`HeldMask`
    constraint on its weight instead, and ``schedule`` is unused.

    Args:
        model: a tf_keras model, owned by the caller of this function (a
            Sequential or functional model's layers are reused by the
            wrapped model; a subclassed model is masked in place).
        masks: the MaskMap (``False`` = pruned).
        schedule: the tfmot schedule; default :func:`fixed_mask_schedule`.

    Returns:
        The wrapped (or constrained) model, with pruned weights zero.
    """
    if not has_layer_graph(model):
        weights = prunable_weights(model)
        for key, mask in masks.items():
            _constrain(weights[key].variable, mask)
        return model
    sparsity = _sparsity()
    schedule = schedule or fixed_mask_schedule()
    held: dict[str, list[Any]] = {}
    for key, weight in prunable_weights(model).items():
        if key in masks:
            held.setdefault(weight.layer.name, []).append(weight.variable)
    tfk = _keras.keras_module(model)

    def wrap(layer: Any) -> Any:
        if layer.name not in held:
            return layer
        _hand_over(layer, held[layer.name])
        return sparsity.prune_low_magnitude(layer, pruning_schedule=schedule)

    clone = tfk.models.clone_model
    if not _keras.autograph(model):  # tf_keras would transpile tfmot's wrapper: a second
        clone = tf.autograph.experimental.do_not_convert(clone)
    wrapped = clone(model, clone_function=wrap)
    assign_masks(wrapped, masks)
    return wrapped


def _hand_over(layer: Any, variables: list[Any]) -> None:
    """Makes ``layer`` a tfmot ``PrunableLayer`` whose prunable weights are ``variables``.

    tfmot's own registry would choose the weights itself (none of a depthwise
    kernel, and it refuses ``Bidirectional`` and ``TimeDistributed``). The
    function carries the layer's own ``get_prunable_weights`` (or None) under
    :data:`~keras_forget.introspect.registry.PATCHED`, which the registry reads
    instead.
    """
    variables = list(variables)
    own = getattr(layer, "get_prunable_weights", None)

    def get_prunable_weights() -> list[Any]:
        return list(variables)

    setattr(get_prunable_weights, PATCHED, getattr(own, PATCHED, own))
    layer.get_prunable_weights = get_prunable_weights


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


#: Attribute of a wrapped model holding masks of weights tfmot's wrappers do not
#: hold (tfmot prunes only some weights of some layers, e.g. no depthwise kernel).
UNHELD = "_keras_forget_unheld_masks"


def assign_masks(model: Any, masks: Mapping[str, np.ndarray]) -> None:
    """Writes masks into the wrappers' mask variables and zeroes pruned weights.

    Masks of weights that no wrapper holds are kept on the model and re-applied
    after every training batch by :class:`HoldUnwrappedMasks` (in
    :func:`callbacks`); weights held by a :class:`HeldMask` constraint get the
    new mask as their constraint.
    """
    held = _mask_vars(model)
    constrained = _held_constraints(model)
    weights = prunable_weights(model)
    unheld = dict(getattr(model, UNHELD, {}))
    for key, mask in masks.items():
        mask = np.asarray(mask, np.float32)
        if key in held:
            weight, mask_var = held[key]
            mask_var.assign(mask)
        elif key in constrained:
            _constrain(_constrained_weights(model)[key], mask)
            continue
        else:
            weight = weights[key].variable
            unheld[key] = (weight, mask)
        weight.assign(weight.numpy() * mask)
    object.__setattr__(model, UNHELD, unheld)


def read_masks(model: Any) -> dict[str, np.ndarray]:
    """The masks held by a wrapped model (mask variables, constraints, unwrapped weights)."""
    out = {k: m.numpy().astype(bool) for k, (_, m) in _mask_vars(model).items()}
    out.update({k: c.mask for k, c in _held_constraints(model).items()})
    out.update({k: m.astype(bool) for k, (_, m) in getattr(model, UNHELD, {}).items()})
    return out


def _hold_callback(model: Any) -> Any:
    base = _keras.keras_module(model).callbacks.Callback
    unheld = getattr(model, UNHELD, {})

    class HoldUnwrappedMasks(base):
        """Re-zeroes pruned weights that no tfmot wrapper holds, after every batch."""

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            for weight, mask in unheld.values():
                weight.assign(weight * mask)

    return HoldUnwrappedMasks()


def callbacks(model: Any = None) -> list[Any]:
    """Callbacks a wrapped model needs while it trains (none for constraints alone)."""
    out = [] if model is not None and not is_wrapped(model) else [_sparsity().UpdatePruningStep()]
    if getattr(model, UNHELD, None):
        out.append(_hold_callback(model))
    return out


def is_wrapped(model: Any) -> bool:
    return _keras.flavor(model) == "tf_keras" and any(
        isinstance(layer, _wrapper_class()) for layer in getattr(model, "layers", [])
    )


def strip(model: Any) -> Any:
    """A plain copy of a wrapped model: wrappers removed, masks applied.

    ``strip_pruning`` reuses the wrapped layers, so its result is copied and
    each weight set to ``weight · mask``; the input is not changed. A model
    held by :class:`HeldMask` constraints is copied without them (its
    pruned weights are already zero).
    """
    if not is_wrapped(model):
        copy = _keras.clone(model)
        for variable in _constrained_weights(copy).values():
            variable._constraint = variable.constraint.inner
        return copy
    masked = {id(w): w.numpy() * m.numpy() for w, m in _mask_vars(model).values()}
    masked.update({id(w): w.numpy() * m for w, m in getattr(model, UNHELD, {}).values()})
    stripped = _sparsity().strip_pruning(model)
    copy = _keras.clone(stripped)
    for shared, own in zip(stripped.weights, copy.weights, strict=True):
        if id(shared) in masked:
            own.assign(masked[id(shared)])
    return copy


def score_driven_schedule(schedule: Any, final_sparsity: float) -> Any:
    """A tfmot ``PruningSchedule`` for score-driven gradual pruning.

    It reports the ramp of a :class:`keras_forget.GradualSchedule` (for
    tfmot's summaries) but never lets tfmot update a mask: at the pruning
    steps keras_forget rescores the weights and writes the masks itself with
    :func:`assign_masks`, instead of tfmot's magnitude rule.

    Args:
        schedule: the :class:`keras_forget.GradualSchedule`.
        final_sparsity: the sparsity the ramp ends at.

    Returns:
        A ``PruningSchedule`` instance.
    """
    begin, end = schedule.begin_step, schedule.end_step
    initial, power = float(schedule.initial_sparsity), float(schedule.power)
    final = float(final_sparsity)

    class ScoreDrivenSchedule(_schedule_base()):
        """The polynomial ramp, without tfmot mask updates."""

        def __call__(self, step: Any) -> tuple[Any, Any]:
            span = float(max(end - begin, 1))
            progress = tf.clip_by_value(tf.cast(step - begin, tf.float32) / span, 0.0, 1.0)
            if end == begin:
                progress = tf.cast(step >= begin, tf.float32)
            sparsity = final + (initial - final) * tf.pow(1.0 - progress, power)
            return tf.constant(False), sparsity

        def get_config(self) -> dict[str, Any]:
            return {
                "class_name": "ScoreDrivenSchedule",
                "config": {**schedule.get_config(), "final_sparsity": final},
            }

    return ScoreDrivenSchedule()


def remask(model: Any) -> None:
    """Sets every wrapped weight to ``weight · mask`` now.

    tfmot applies the masks at the start of each forward pass (and at epoch
    end), so right after an optimizer step pruned weights can hold nonzero
    values; calling this after each step keeps them exactly zero.
    """
    for weight, mask in _mask_vars(model).values():
        weight.assign(weight * mask)
    for weight in _constrained_weights(model).values():
        weight.assign(weight * tf.cast(weight.constraint.variable, weight.dtype))


def wrap_with_weight_masks(
    model: Any, masks: Mapping[str, np.ndarray], schedule: Any = None
) -> Any:
    """:func:`wrap_with_masks` for masks over any weight (biases, BatchNormalization too).

    Each layer owning a masked weight is given a ``get_prunable_weights()``
    that returns exactly its masked weights (tfmot's ``PrunableLayer``
    protocol) before it is wrapped, so tfmot's mask variables hold them all
    and apply them at every forward pass, like kernel masks. Masks of weights
    outside the registry (biases, BatchNormalization parameters) are also
    recorded like unwrapped weights, so :func:`strip`, :func:`read_masks` and
    the :func:`callbacks` see them.

    A weight of a layer's sublayer (``"mha/query/kernel"``: a
    ``MultiHeadAttention``, which the wrapper cannot call) is not wrapped: its
    mask is held by a :class:`HeldMask` constraint, which the optimizer
    applies after every update.

    Args:
        model: a tf_keras model owned by the caller (its layers are reused).
        masks: ``{"<layer name>/<weight name>": bool array}`` (or
            ``"<layer>/<sublayer>/<weight>"``).
        schedule: the tfmot schedule; default :func:`fixed_mask_schedule`.

    Returns:
        The wrapped model, with masked weights zero.
    """
    inner = {k: m for k, m in masks.items() if k.count("/") > 1}
    wrapped = _wrap_layers(model, {k: m for k, m in masks.items() if k not in inner}, schedule)
    variables = all_weights(wrapped) if inner else {}
    for key, mask in inner.items():
        _constrain(variables[key], mask)
    return wrapped


def _wrap_layers(model: Any, masks: Mapping[str, np.ndarray], schedule: Any) -> Any:
    """:func:`wrap_with_weight_masks` for keys ``"<layer name>/<weight name>"``."""
    sparsity = _sparsity()
    schedule = schedule or fixed_mask_schedule()
    names: dict[str, list[str]] = {}
    for key in masks:
        layer_name, weight = key.rsplit("/", 1)
        names.setdefault(layer_name, []).append(weight)
    tfk = _keras.keras_module(model)

    def wrap(layer: Any) -> Any:
        if layer.name not in names:
            return layer
        own = {short_name(v): v for v in layer.weights}  # a recurrent layer's are its cell's
        _hand_over(layer, [own[a] for a in names[layer.name]])
        return sparsity.prune_low_magnitude(layer, pruning_schedule=schedule)

    wrapped = tfk.models.clone_model(model, clone_function=wrap)
    registry_held = _mask_vars(wrapped)
    unheld = dict(getattr(wrapped, UNHELD, {}))
    for layer in wrapped.layers:
        if not isinstance(layer, _wrapper_class()):
            continue
        for weight, mask_var, _ in layer.pruning_vars:
            key = f"{layer.layer.name}/{weight.name.split('/')[-1].split(':')[0]}"
            if key not in masks:
                continue
            mask = np.asarray(masks[key], np.float32)
            mask_var.assign(mask)
            weight.assign(weight.numpy() * mask)
            if key not in registry_held:
                unheld[key] = (weight, mask)
    object.__setattr__(wrapped, UNHELD, unheld)
    return wrapped
