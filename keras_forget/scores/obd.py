"""Optimal Brain Damage saliency, ``½ · h_kk · w_k²`` (LeCun et al., 1990).

``h_kk`` is the diagonal of the generalised Gauss-Newton (GGN) matrix of the
mean cross-entropy, which is the Hessian at a well-fit minimum without its
term in the residuals and is never negative. It is computed *exactly*, with no
sampling: for softmax outputs the Hessian of the loss in the logits is
``H = diag(p) − p pᵀ = A Aᵀ`` with ``A = diag(√p) − p √pᵀ``, so

    diag(GGN) = Σ_n Σ_c ( ∂(a_ncᵀ z_n) / ∂w )²,

one backward pass per class column ``a_nc`` (``A`` held constant) for Dense and
convolution kernels (:mod:`keras_forget.scores.factored`), one vectorised
per-example gradient per class column for other weights.

``estimator="sampled"`` estimates the same diagonal without bias from labels
drawn from the model's predictions, ``E_ŷ[(∂ log p_ŷ/∂w)²]``: one backward pass
per drawn label instead of one per class, for many classes or large models.

``estimator="stratified"`` takes each example's most probable classes exactly and
one class drawn from the rest, weighted so the estimate stays unbiased.

``estimator="hutchinson"`` instead estimates the diagonal of the true Hessian
as ``E[v ⊙ Hv]`` over Rademacher probes ``v``. It needs no softmax output
(any ``output_fn``), but is noisy: its relative error falls only as
``1/√probes`` and with 100 probes it correlated only about 0.5 with the exact
diagonal on a small MLP. Prefer the default wherever the model is a classifier.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from keras_forget.errors import InvalidArgumentError
from keras_forget.introspect.registry import PrunableWeight
from keras_forget.scores.base import Score, ScoreMap
from keras_forget.scores.factored import gradient_sums
from keras_forget.scores.objective import Objective

ESTIMATORS = ("ggn", "stratified", "sampled", "hutchinson")


class OBD(Score):
    """Optimal Brain Damage saliency ``½ · h_kk · w_k²``.

    Args:
        estimator: ``"ggn"`` (exact Gauss-Newton diagonal, classifiers),
            ``"stratified"`` (its most probable classes exactly and one drawn
            from the rest, unbiased, classifiers; ``classes + 1`` backward
            passes), ``"sampled"`` (the same diagonal estimated from labels drawn
            from the model's own predictions, classifiers; one backward pass per
            probe instead of one per class) or ``"hutchinson"`` (stochastic
            Hessian diagonal, any objective).
        probes: labels drawn per example for ``"sampled"`` (default 1),
            Rademacher probes per batch for ``"hutchinson"`` (default 16).
        classes: for ``"ggn"``, the columns of the square root kept per example:
            None (all: the exact diagonal) or the ``classes`` most probable
            classes of each example, one backward pass each. Column ``c`` adds
            ``p_c · (∂(z_c − pᵀz)/∂w)²``, so the columns dropped carry the
            probability mass outside the example's top classes. For
            ``"stratified"`` (default 2): those columns exactly, plus one column
            drawn from the other classes in proportion to ``p`` and weighted by
            the inverse of its probability, so the estimate stays unbiased
            (``classes + 1`` backward passes).
        seed: seed of the draws.
        factored: compute ``"ggn"``'s sums for Dense and convolution kernels from
            one backward pass per class (:mod:`keras_forget.scores.factored`)
            instead of one per-example gradient per example and class; the
            diagonal is the same.
    """

    name = "obd"

    def __init__(
        self,
        estimator: str = "ggn",
        probes: int | None = None,
        seed: int = 0,
        factored: bool = True,
        classes: int | None = None,
    ) -> None:
        if estimator not in ESTIMATORS:
            raise InvalidArgumentError(
                f"`estimator` must be one of {ESTIMATORS}, got {estimator!r}."
            )
        if probes is None:
            probes = 16 if estimator == "hutchinson" else 1
        if isinstance(probes, bool) or not isinstance(probes, int) or probes < 1:
            raise InvalidArgumentError(f"`probes` must be an int >= 1, got {probes!r}.")
        if classes is not None and (
            isinstance(classes, bool) or not isinstance(classes, int) or classes < 1
        ):
            raise InvalidArgumentError(f"`classes` must be None or an int >= 1, got {classes!r}.")
        if classes is not None and estimator not in ("ggn", "stratified"):
            raise InvalidArgumentError(
                "`classes` applies to estimator='ggn' or 'stratified' only, got "
                f"estimator={estimator!r}."
            )
        if estimator == "stratified" and classes is None:
            classes = 2
        self.estimator, self.probes, self.seed = estimator, int(probes), int(seed)
        self.factored, self.classes = bool(factored), classes

    def get_config(self) -> dict[str, Any]:
        return {
            "estimator": self.estimator,
            "probes": self.probes,
            "seed": self.seed,
            "factored": self.factored,
            "classes": self.classes,
        }

    def reset(
        self, model: Any, weights: Mapping[str, PrunableWeight], objective: Objective
    ) -> None:
        super().reset(model, weights, objective)
        if self._rebound:  # same model and variables: keep the traced function
            return
        variables = {k: w.variable for k, w in weights.items()}
        if self.estimator in ("ggn", "stratified", "sampled"):
            if not objective.is_classifier:
                raise InvalidArgumentError(
                    "OBD's Gauss-Newton diagonal needs a classifier; with `output_fn` "
                    "use OBD(estimator='hutchinson')."
                )
            columns = {"ggn": self._top, "stratified": self._stratified, "sampled": self._sampled}
            columns = columns[self.estimator]()
            self._run = self._ggn(model, weights, objective, columns)
        else:
            self._run = self._hutchinson(model, variables, objective)

    @staticmethod
    def _exact(log_p: tf.Tensor) -> tf.Tensor:
        """``[batch, classes]``: ``a_ncᵀ z_n``, the columns of the GGN's square root."""
        p = tf.stop_gradient(tf.exp(log_p))
        sqrt_p = tf.sqrt(p)
        a = tf.linalg.diag(sqrt_p) - p[:, :, None] * sqrt_p[:, None, :]
        return tf.einsum("bk,bkc->bc", log_p, a)

    def _top(self):
        """``[batch, m]``: the columns of each example's ``classes`` most probable classes."""
        if self.classes is None:
            return self._exact
        m = self.classes

        def columns(log_p: tf.Tensor) -> tf.Tensor:
            every = self._exact(log_p)
            if m >= every.shape[-1]:
                return every
            _, top = tf.math.top_k(tf.stop_gradient(log_p), k=m)
            return tf.gather(every, top, batch_dims=1)

        return columns

    def _stratified(self):
        """``[batch, m + 1]``: the top ``m`` columns, and one drawn from the rest.

        The drawn column ``c`` is divided by ``√q_c``, ``q_c`` the probability of
        drawing it (``p_c`` over the mass outside the top ``m``), so its square
        is an unbiased estimate of the rest's sum.
        """
        rng, m = tf.random.Generator.from_seed(self.seed), self.classes

        def columns(log_p: tf.Tensor) -> tf.Tensor:
            every = self._exact(log_p)
            if m >= every.shape[-1]:
                return every
            fixed = tf.stop_gradient(log_p)
            _, top = tf.math.top_k(fixed, k=m)
            taken = tf.reduce_any(tf.one_hot(top, tf.shape(fixed)[-1]) > 0, axis=1)
            rest = tf.where(taken, tf.constant(-np.inf, fixed.dtype), fixed)
            gumbel = -tf.math.log(-tf.math.log(rng.uniform(tf.shape(rest), 1e-20, 1.0)))
            drawn = tf.argmax(rest + gumbel, axis=-1)
            log_q = tf.gather(tf.nn.log_softmax(rest), drawn, batch_dims=1)
            one = tf.gather(every, drawn, batch_dims=1) * tf.exp(-0.5 * log_q)
            return tf.concat([tf.gather(every, top, batch_dims=1), one[:, None]], axis=-1)

        return columns

    def _sampled(self):
        """``log p_ŷ / √probes`` for ``probes`` labels ``ŷ ~ p`` per example.

        ``E_ŷ[(∂ log p_ŷ/∂w)²]`` is the GGN diagonal of the cross-entropy, so the
        estimate is unbiased; its variance falls as ``1/probes``.
        """
        rng, probes = tf.random.Generator.from_seed(self.seed), self.probes

        def columns(log_p: tf.Tensor) -> tf.Tensor:
            shape = tf.concat([tf.shape(log_p)[:1], [probes], tf.shape(log_p)[1:]], 0)
            gumbel = -tf.math.log(-tf.math.log(rng.uniform(shape, 1e-20, 1.0)))
            drawn = tf.argmax(tf.stop_gradient(log_p)[:, None, :] + gumbel, axis=-1)
            picked = tf.gather(log_p, drawn, batch_dims=1)
            return picked / tf.sqrt(float(probes))

        return columns

    def _ggn(
        self, model: Any, weights: Mapping[str, PrunableWeight], objective: Objective, columns
    ):
        count = self.probes if self.estimator == "sampled" else 16  # for chunk sizing only
        if self.estimator == "stratified":
            count = self.classes + 1
        elif self.estimator == "ggn" and self.classes is not None:
            count = self.classes
        elif self.estimator == "ggn":
            try:
                count = int(model.output_shape[-1])
            except (AttributeError, ValueError, TypeError):
                pass

        def of_outputs(outputs: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
            return columns(objective.log_probs(outputs))  # log_p: logits up to a constant

        return gradient_sums(
            model,
            weights,
            "square",
            of_outputs,
            lambda x, y: of_outputs(model(x, training=False), y),
            outputs=count,
            factored=self.factored,
            autograph=objective.autograph(model),
        )

    def _hutchinson(self, model: Any, variables: Mapping[str, Any], objective: Objective):
        keys = list(variables)
        var_list = [variables[k] for k in keys]
        rng = tf.random.Generator.from_seed(self.seed)
        # The Hessian of the training loss: the label's log-likelihood for a classifier.
        training_objective = (
            dataclasses.replace(objective, target="log_likelihood")
            if objective.is_classifier
            else objective
        )
        probes = self.probes

        @tf.function(reduce_retracing=True)
        def batch_diag(x: tf.Tensor, y: tf.Tensor) -> list[tf.Tensor]:
            total = [tf.zeros_like(v) for v in var_list]
            for _ in tf.range(probes):
                vs = [
                    tf.cast(rng.uniform(v.shape, 0, 2, tf.int32) * 2 - 1, v.dtype) for v in var_list
                ]
                with tf.GradientTape() as outer:
                    with tf.GradientTape() as inner:
                        loss = -tf.reduce_sum(training_objective(model, x, y))
                    grads = inner.gradient(loss, var_list)
                    dot = tf.add_n([tf.reduce_sum(g * v) for g, v in zip(grads, vs)])
                hv = outer.gradient(dot, var_list)
                total = [t + v * h for t, v, h in zip(total, vs, hv)]
            return [t / probes for t in total]

        def run(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
            diag = batch_diag(tf.constant(x), tf.constant(y))
            return {k: d.numpy().astype(np.float64) for k, d in zip(keys, diag)}

        return run

    def _accumulate(self, x: np.ndarray, y: np.ndarray) -> Mapping[str, Any]:
        return self._run(x, y)

    def result(self) -> ScoreMap:
        """``½ · h_kk · w_k²`` with ``h_kk`` averaged over the examples seen."""
        diag = super().result()
        return {
            k: (0.5 * diag[k] * np.square(self._weights[k].variable.numpy())).astype(np.float32)
            for k in diag
        }
