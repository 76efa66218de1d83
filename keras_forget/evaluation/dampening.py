"""Selective Synaptic Dampening (Foster et al., 2024): importances and the dampening rule.

SSD compares, weight by weight, the diagonal Fisher importance on the forget
set, ``I_f``, with that on all the training data, ``I_D``. A weight with
``I_f > α·I_D`` serves the forget set disproportionately and is multiplied by
``min(λ·I_D / I_f, 1)``; the others are left as they are. Every trainable
weight takes part (kernels, biases, normalisation scales and offsets), as in
the reference code.

Two definitions of the importance are offered, because the threshold ``α``
reads them at different scales:

* ``"batch"`` (default), as the public SSD code computes it: the gradient of
  the mean cross-entropy over each minibatch, squared, averaged over the
  minibatches. A forget minibatch (one class) has a coherent gradient while a
  minibatch of all the data largely cancels, so ``I_f / I_D`` is large on the
  weights that serve the forget set; the published ``α = 10, λ = 1`` were set
  for it.
* ``"per_example"``: the textbook diagonal empirical Fisher, the mean over
  examples of the squared per-example gradient of the log-likelihood
  (:class:`keras_forget.scores.Fisher`). Since the forget set is part of the
  data, ``I_D ≥ (|forget| / |data|) · I_f``, so no weight passes ``α = 10``
  once the forget set is a tenth of the data or more.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from keras_forget.data import Data
from keras_forget.introspect.registry import PrunableWeight, all_weights
from keras_forget.scores import Fisher, Objective

IMPORTANCES = ("batch", "per_example")
ImportanceMap = dict[str, np.ndarray]


def trainable_variables(model: Any) -> dict[str, Any]:
    """``{"<layer path>/<weight name>": variable}`` for every trainable weight of ``model``."""
    return {k: v for k, v in all_weights(model).items() if v.trainable}


def importance(
    model: Any,
    data: Data,
    objective: Objective,
    variables: Mapping[str, Any],
    *,
    kind: str = "batch",
    batch_size: int = 64,
    verbose: bool = False,
) -> ImportanceMap:
    """The diagonal Fisher importance of each variable over ``data``.

    Args:
        model: the classifier (inference mode: ``training=False``).
        data: the examples.
        objective: the classifier's outputs (``from_logits``); the
            log-likelihood of the label is differentiated.
        variables: ``{key: variable}`` to score.
        kind: ``"batch"`` or ``"per_example"`` (see the module's docstring).
        batch_size: the minibatch size over array data.
        verbose: show a progress bar.

    Returns:
        ``{key: float64 array shaped like the variable}``.
    """
    if kind == "per_example":
        fisher = Fisher()
        weights = {k: PrunableWeight(k, None, v) for k, v in variables.items()}
        fisher.reset(model, weights, Objective(objective.from_logits, "log_likelihood"))
        for x, y in _progress(data, batch_size, kind, verbose):
            fisher.update(x, y)
        return {k: np.asarray(v, np.float64) for k, v in fisher.result().items()}
    keys = list(variables)
    targets = [variables[k] for k in keys]

    def squared_gradients(x: Any, y: tf.Tensor) -> list[tf.Tensor]:  # eager: one per batch
        with tf.GradientTape() as tape:
            log_p = objective.log_probs(model(x, training=False))
            loss = -tf.reduce_mean(tf.gather(log_p, tf.cast(y, tf.int32), batch_dims=1))
        return [tf.square(g) for g in tape.gradient(loss, targets)]

    totals = {k: np.zeros(tuple(variables[k].shape), np.float64) for k in keys}
    batches = 0
    for x, y in _progress(data, batch_size, kind, verbose):
        for k, g in zip(keys, squared_gradients(x, tf.constant(y))):
            totals[k] += g.numpy()
        batches += 1
    return {k: t / batches for k, t in totals.items()}


def _progress(data: Data, batch_size: int, kind: str, verbose: bool) -> Any:
    return tqdm(
        data.batches(batch_size),
        total=data.num_batches(batch_size),
        desc=f"importance ({kind})",
        unit="batch",
        disable=not verbose,
        leave=False,
    )


def dampen(
    weights: Mapping[str, np.ndarray],
    forget_importance: Mapping[str, np.ndarray],
    data_importance: Mapping[str, np.ndarray],
    *,
    alpha: float,
    lam: float,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """SSD's rule: scale the weights with ``I_f > α·I_D`` by ``min(λ·I_D / I_f, 1)``.

    Pure array code.

    Args:
        weights: ``{key: array}``.
        forget_importance: ``I_f``, shaped like each weight.
        data_importance: ``I_D``, shaped like each weight.
        alpha: the selection threshold ``α``.
        lam: the dampening constant ``λ``.

    Returns:
        ``(new weights, selected)``: the dampened arrays, and ``{key: bool
        array}``, True where a weight was selected.
    """
    new, selected = {}, {}
    for key, w in weights.items():
        f = np.asarray(forget_importance[key], np.float64)
        d = np.asarray(data_importance[key], np.float64)
        chosen = f > alpha * d
        factor = np.minimum(lam * d / np.where(chosen, f, 1.0), 1.0)
        new[key] = np.where(chosen, w * factor, w).astype(np.asarray(w).dtype)
        selected[key] = chosen
    return new, selected
