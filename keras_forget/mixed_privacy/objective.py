"""The quadratic objective of a linearized network, and its exact minimiser.

On data ``D`` (``n`` examples, ``K`` outputs) the objective is

    L_D(Δ) = (1/n) Σ_i ‖f(x_i; w_c) + J_i·Δ − s·onehot(y_i)‖² + (λ/2)‖Δ‖²

(squared error summed over the ``K`` outputs, averaged over examples; ``s`` is
the target scale, ``λ`` the weight decay). It is quadratic in Δ with

    ∇L_D(Δ) = (2/n) Jᵀ(f + JΔ − t) + λΔ,        H_D = (2/n) JᵀJ + λI,

so its minimiser is one Newton step from any Δ, solved by conjugate gradient
with Hessian-vector products ``(2/n) Σ_batches J_bᵀ(J_b v) + λv``. Vectors are
flat float64 arrays on the host; the batch kernels run traced, in the
variables' dtype.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from keras_forget.mixed_privacy.linearize import jvp, vjp
from keras_forget.mixed_privacy.preconditioner import Directions, Preconditioner
from keras_forget.mixed_privacy.solve import SolveReport, timed_solve


def _signature(core: Any) -> Any:
    """The input spec of ``core`` with a free batch size: one trace serves every batch."""
    specs = [tf.TensorSpec((None, *t.shape[1:]), t.dtype) for t in core.inputs]
    return specs[0] if len(specs) == 1 else specs


class Objective:
    """``L_D(Δ)`` for a core network and its linearized variables.

    Args:
        core: the core network.
        variables: its linearized variables: the coordinates of Δ.
        num_classes: ``K``, the width of the output.
        scale: ``s``, the targets are ``s·onehot(y)``.
        weight_decay: ``λ > 0``.
    """

    def __init__(
        self,
        core: Any,
        variables: Sequence[tf.Variable],
        *,
        num_classes: int,
        scale: float,
        weight_decay: float,
    ) -> None:
        self.core = core
        self.variables = list(variables)
        self.num_classes = num_classes
        self.scale = scale
        self.weight_decay = weight_decay
        self._shapes = [tuple(v.shape) for v in self.variables]
        self._sizes = [int(np.prod(s)) for s in self._shapes]
        self.size = int(sum(self._sizes))
        self._x_spec = _signature(core)
        deltas = [tf.TensorSpec(v.shape, v.dtype) for v in self.variables]
        t_spec = tf.TensorSpec((None, num_classes), tf.float32)
        self._grad_fn = tf.function(
            self._batch_gradient, input_signature=[self._x_spec, t_spec, deltas]
        )
        self._hvp_fn = tf.function(self._batch_hvp, input_signature=[self._x_spec, deltas])

    # ---- flat vectors and batches ----------------------------------------------

    def split(self, flat: np.ndarray) -> list[tf.Tensor]:
        """A flat vector as one tensor per variable, shaped and typed like it."""
        parts = np.split(np.asarray(flat), np.cumsum(self._sizes)[:-1])
        return [
            tf.constant(p.reshape(s), dtype=v.dtype)
            for p, s, v in zip(parts, self._shapes, self.variables)
        ]

    @staticmethod
    def flat(tensors: Sequence[Any]) -> np.ndarray:
        """Tensors (one per variable) as one flat float64 vector."""
        return np.concatenate([np.ravel(np.asarray(t)) for t in tensors]).astype(np.float64)

    def targets(self, y: np.ndarray) -> np.ndarray:
        """``s·onehot(y)`` as float32."""
        return (self.scale * np.eye(self.num_classes, dtype=np.float32)[y]).astype(np.float32)

    def batches(
        self, x: Any, t: np.ndarray, batch_size: int, order: np.ndarray | None = None
    ) -> Iterator[tuple[Any, tf.Tensor]]:
        """``(inputs, targets)`` batches in ``order`` (default: as given), inputs in the
        dtype of the core's inputs."""
        index = np.arange(len(t)) if order is None else order
        for start in range(0, len(t), batch_size):
            rows = index[start : start + batch_size]
            xb = tf.nest.map_structure(
                lambda a, spec, rows=rows: tf.cast(a[rows], spec.dtype),
                x,
                self._x_spec,
            )
            yield xb, tf.convert_to_tensor(t[rows])

    # ---- batch kernels (traced) ------------------------------------------------

    def _batch_gradient(self, x: Any, t: tf.Tensor, delta: list[tf.Tensor]) -> tuple:
        out, change = jvp(self.core, self.variables, x, delta)
        r = out + change - t
        return vjp(self.core, self.variables, x, r), tf.reduce_sum(tf.square(r))

    def _batch_hvp(self, x: Any, v: list[tf.Tensor]) -> list[tf.Tensor]:
        _, jv = jvp(self.core, self.variables, x, v)
        return vjp(self.core, self.variables, x, jv)

    def batch_gradient(self, x: Any, t: tf.Tensor, delta: Sequence[Any]) -> tuple:
        """``(Jᵀ r, Σ‖r‖²)`` on one batch, ``r = f + J·Δ − t`` (no 2/n, no weight decay)."""
        return self._grad_fn(x, t, list(delta))

    # ---- whole-data quantities ---------------------------------------------------

    def gradient(
        self, x: Any, t: np.ndarray, delta: np.ndarray, batch_size: int
    ) -> tuple[np.ndarray, float]:
        """``(∇L(Δ), L(Δ))`` over all of ``(x, t)``, accumulated in float64."""
        n = len(t)
        tangents = self.split(delta)
        total = np.zeros(self.size)
        sq = 0.0
        for xb, tb in self.batches(x, t, batch_size):
            g, s = self._grad_fn(xb, tb, tangents)
            total += self.flat(g)
            sq += float(s)
        lam = self.weight_decay
        return 2.0 / n * total + lam * delta, sq / n + lam / 2 * float(delta @ delta)

    def hessian(self, x: Any, n: int, batch_size: int) -> Callable[[np.ndarray], np.ndarray]:
        """``v -> H v`` over all ``n`` examples of ``x``."""
        lam = self.weight_decay
        rows = np.zeros(n, np.float32)

        def apply(v: np.ndarray) -> np.ndarray:
            tangents = self.split(v)
            total = np.zeros(self.size)
            for xb, _ in self.batches(x, rows, batch_size):
                total += self.flat(self._hvp_fn(xb, tangents))
            return 2.0 / n * total + lam * v

        return apply

    def newton(
        self,
        x: Any,
        y: np.ndarray,
        start: np.ndarray,
        *,
        tol: float,
        max_iter: int,
        batch_size: int,
        precondition: Preconditioner | None = None,
        record: Directions | None = None,
    ) -> tuple[np.ndarray, SolveReport]:
        """The minimiser over ``(x, y)`` by one Newton step from ``start``.

        CG stops once ``‖∇L(Δ)‖ <= tol · ‖∇L(0)‖``: the accuracy of a solve
        from scratch, whatever ``start`` is. ``seconds`` in the report covers
        the whole step (gradients included). ``precondition`` and ``record``
        go to :func:`~keras_forget.mixed_privacy.solve.conjugate_gradient`.
        """
        began = time.perf_counter()
        t = self.targets(y)
        g, _ = self.gradient(x, t, start, batch_size)
        at_zero = g if not start.any() else self.gradient(x, t, np.zeros_like(start), batch_size)[0]
        step, report = timed_solve(
            self.hessian(x, len(t), batch_size),
            -g,
            tol=tol,
            max_iter=max_iter,
            examples=len(t),
            scale=float(np.linalg.norm(at_zero)),
            precondition=precondition,
            record=record,
        )
        return start + step, dataclasses.replace(report, seconds=time.perf_counter() - began)
