"""Conjugate gradient on a symmetric positive definite operator given as a function.

The vectors live on the host in float64; the operator (a Hessian-vector
product, computed batch by batch on the device) may be float32. The iteration
keeps the recursive residual; :class:`SolveReport` also holds the true relative
residual measured once at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SolveReport:
    """What one quadratic solve did.

    Attributes:
        iterations: conjugate-gradient iterations (each one Hessian-vector
            product: a pass of JVPs and VJPs over the data).
        residual: the relative residual ``‖b − H·s‖ / ‖b‖`` measured at the end
            (0 when ``b`` is 0).
        converged: whether the recursive residual reached ``tol`` within ``max_iter``.
        seconds: wall time of the whole solve.
        examples: number of examples the objective was built on.
        step_norm: ``‖s‖``, the size of the change applied to Δ.
    """

    iterations: int
    residual: float
    converged: bool
    seconds: float
    examples: int
    step_norm: float

    def __str__(self) -> str:
        state = "converged" if self.converged else "NOT converged"
        return (
            f"CG {state} in {self.iterations} iterations on {self.examples} examples: "
            f"relative residual {self.residual:.2e}, |step| {self.step_norm:.4g}, "
            f"{self.seconds:.2f} s"
        )


def conjugate_gradient(
    apply: Callable[[np.ndarray], np.ndarray],
    b: np.ndarray,
    *,
    tol: float,
    max_iter: int,
) -> tuple[np.ndarray, int, bool, float]:
    """Solves ``H s = b`` from ``s = 0`` for a symmetric positive definite ``H``.

    Args:
        apply: ``v -> H v`` on flat float64 vectors.
        b: the right-hand side.
        tol: stop once ``‖r‖ <= tol · ‖b‖`` (recursive residual).
        max_iter: the most iterations.

    Returns:
        ``(s, iterations, converged, true relative residual)``.
    """
    b = np.asarray(b, np.float64)
    s = np.zeros_like(b)
    b_norm = float(np.linalg.norm(b))
    if b_norm == 0.0:
        return s, 0, True, 0.0
    r = b.copy()
    p = r.copy()
    rr = float(r @ r)
    iterations, converged = 0, False
    while iterations < max_iter:
        hp = apply(p)
        curvature = float(p @ hp)
        if curvature <= 0.0:  # only from round-off: H is positive definite
            break
        alpha = rr / curvature
        s += alpha * p
        r -= alpha * hp
        iterations += 1
        rr_new = float(r @ r)
        if np.sqrt(rr_new) <= tol * b_norm:
            converged = True
            break
        p = r + (rr_new / rr) * p
        rr = rr_new
    true_residual = float(np.linalg.norm(b - apply(s))) / b_norm
    return s, iterations, converged, true_residual


def timed_solve(
    apply: Callable[[np.ndarray], np.ndarray],
    b: np.ndarray,
    *,
    tol: float,
    max_iter: int,
    examples: int,
) -> tuple[np.ndarray, SolveReport]:
    """:func:`conjugate_gradient` with a :class:`SolveReport`."""
    start = time.perf_counter()
    s, iterations, converged, residual = conjugate_gradient(apply, b, tol=tol, max_iter=max_iter)
    report = SolveReport(
        iterations=iterations,
        residual=residual,
        converged=converged,
        seconds=time.perf_counter() - start,
        examples=examples,
        step_norm=float(np.linalg.norm(s)),
    )
    return s, report
