"""Conjugate gradient on a symmetric positive definite operator given as a function.

The vectors live on the host in float64; the operator (a Hessian-vector
product, computed batch by batch on the device) may be float32. The iteration
keeps the recursive residual; :class:`SolveReport` also holds the true residual
measured once at the end.

Residuals are relative to a ``scale`` the caller chooses. For the quadratic
objectives solved here it is ``‖∇L(0)‖``, the gradient at Δ = 0: the right-hand
side of a solve from scratch. A Newton step that starts near the optimum (a
forgetting step) then stops at the same absolute accuracy as a solve from
scratch, instead of over-solving a small right-hand side.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from keras_forget.mixed_privacy.preconditioner import Directions, Preconditioner


@dataclass(frozen=True)
class SolveReport:
    """What one quadratic solve did.

    Attributes:
        iterations: conjugate-gradient iterations (each one Hessian-vector
            product: a pass of JVPs and VJPs over the data).
        residual: the relative residual ``‖b − H·s‖ / scale`` measured at the
            end: for :class:`~keras_forget.mixed_privacy.MixedLinear`,
            ``‖∇L(Δ)‖ / ‖∇L(0)‖`` on the data solved for (0 when the scale is 0).
        converged: whether the recursive residual reached ``tol`` within ``max_iter``.
        seconds: wall time of the whole solve.
        examples: number of examples the objective was built on.
        step_norm: ``‖s‖``, the size of the change applied to Δ.
        gradient_norm: ``‖b − H·s‖``, the norm of the objective's gradient at
            the result (before any noise), measured at the end.
        noise: the standard deviation σ of the Gaussian noise added to Δ
            after the solve (0: none; see :mod:`keras_forget.mixed_privacy.noise`).
        information_bound: with noise, the bound in nats on the information
            about the forgotten data left in Δ; None without noise (unbounded).
        preconditioned: how many recycled directions preconditioned the solve
            (0: plain conjugate gradient; see
            :mod:`keras_forget.mixed_privacy.preconditioner`).
    """

    iterations: int
    residual: float
    converged: bool
    seconds: float
    examples: int
    step_norm: float
    gradient_norm: float = 0.0
    noise: float = 0.0
    information_bound: float | None = None
    preconditioned: int = 0

    def __str__(self) -> str:
        state = "converged" if self.converged else "NOT converged"
        kind = "CG"
        if self.preconditioned:
            kind += f" preconditioned by {self.preconditioned} recycled directions"
        text = (
            f"{kind} {state} in {self.iterations} iterations on {self.examples} examples: "
            f"relative residual {self.residual:.2e}, |step| {self.step_norm:.4g}, "
            f"{self.seconds:.2f} s"
        )
        if self.information_bound is not None:
            text += (
                f"; noise σ = {self.noise:.3g}, information left about the forgotten "
                f"data <= {self.information_bound:.3g} nats"
            )
        return text


def conjugate_gradient(
    apply: Callable[[np.ndarray], np.ndarray],
    b: np.ndarray,
    *,
    tol: float,
    max_iter: int,
    scale: float | None = None,
    precondition: Callable[[np.ndarray], np.ndarray] | None = None,
    record: Directions | None = None,
) -> tuple[np.ndarray, int, bool, float]:
    """Solves ``H s = b`` from ``s = 0`` for a symmetric positive definite ``H``.

    Args:
        apply: ``v -> H v`` on flat float64 vectors.
        b: the right-hand side.
        tol: stop once ``‖r‖ <= tol · scale`` (recursive residual ``b − H s``,
            with or without a preconditioner).
        max_iter: the most iterations.
        scale: what residuals are relative to; ``‖b‖`` by default.
        precondition: ``r -> M r`` for a symmetric positive definite ``M ≈ H⁻¹``;
            None for plain conjugate gradient.
        record: collects each search direction with its Hessian product.

    Returns:
        ``(s, iterations, converged, true residual ‖b − H s‖)``.
    """
    b = np.asarray(b, np.float64)
    s = np.zeros_like(b)
    limit = tol * (float(np.linalg.norm(b)) if scale is None else float(scale))
    if float(np.linalg.norm(b)) <= limit:  # Δ = 0 change is accurate enough (b = 0 included)
        return s, 0, True, float(np.linalg.norm(b))

    def preconditioned(r: np.ndarray) -> np.ndarray:
        return r if precondition is None else precondition(r)

    r = b.copy()
    z = preconditioned(r)
    p = z.copy()
    rz = float(r @ z)
    iterations, converged = 0, False
    while iterations < max_iter:
        hp = apply(p)
        curvature = float(p @ hp)
        if curvature <= 0.0:  # only from round-off: H is positive definite
            break
        if record is not None:
            record.add(p, hp, curvature)
        alpha = rz / curvature
        s += alpha * p
        r -= alpha * hp
        iterations += 1
        if float(np.linalg.norm(r)) <= limit:
            converged = True
            break
        z = preconditioned(r)
        rz_new = float(r @ z)
        p = z + (rz_new / rz) * p
        rz = rz_new
    return s, iterations, converged, float(np.linalg.norm(b - apply(s)))


def timed_solve(
    apply: Callable[[np.ndarray], np.ndarray],
    b: np.ndarray,
    *,
    tol: float,
    max_iter: int,
    examples: int,
    scale: float | None = None,
    precondition: Preconditioner | None = None,
    record: Directions | None = None,
) -> tuple[np.ndarray, SolveReport]:
    """:func:`conjugate_gradient` with a :class:`SolveReport` (``seconds`` from here on)."""
    start = time.perf_counter()
    s, iterations, converged, residual = conjugate_gradient(
        apply, b, tol=tol, max_iter=max_iter, scale=scale, precondition=precondition, record=record
    )
    scale = float(np.linalg.norm(b)) if scale is None else float(scale)
    report = SolveReport(
        iterations=iterations,
        residual=residual / scale if scale > 0 else 0.0,
        converged=converged,
        seconds=time.perf_counter() - start,
        examples=examples,
        step_norm=float(np.linalg.norm(s)),
        gradient_norm=residual,
        preconditioned=0 if precondition is None else precondition.rank,
    )
    return s, report
