"""Gaussian noise that bounds the information a forgetting step leaves about the forgotten data.

Golatkar et al. measure what the weights still hold about the forgotten data
``D_f`` by the KL divergence between what forgetting releases and what
retraining from scratch on the remaining data ``D_r`` would release, with the
same Gaussian noise added to both; it bounds the mutual information between the
released weights and ``D_f``. Here the retrained Δ is the exact minimiser
``Δ*`` of the quadratic objective ``L_r`` on ``D_r`` (it depends on ``D_r``
only), so with noise ``N(0, σ²I)`` added to both,

    KL = ‖Δ − Δ*‖² / (2σ²) <= ‖∇L_r(Δ)‖² / (2σ²λ²)

because ``L_r`` is λ-strongly convex (its Hessian ``(2/n)JᵀJ + λI`` has every
eigenvalue >= λ, the weight decay), so ``‖Δ − Δ*‖ <= ‖∇L_r(Δ)‖ / λ``. The
right-hand side is computable after the solve: the gradient residual is measured
anyway. The noise is scaled to that residual, ``σ = noise_scale · ‖∇L_r(Δ)‖ / λ``,
which makes the bound ``1 / (2 · noise_scale²)`` nats whatever the residual, and
costs accuracy in proportion to it: an exact solve needs almost no noise.

The noise is drawn in float64 and added to the float64 solution before it is
stored as float32; rounding is a function applied alike to the retrained Δ, so it
can only lower the divergence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Noise:
    """The noise of one forgetting step and the bound it gives.

    Attributes:
        sigma: the standard deviation σ added to every coordinate of Δ.
        distance_bound: ``‖∇L_r(Δ)‖ / λ``, a bound on ``‖Δ − Δ*‖`` before noise.
        information_bound: ``‖∇L_r(Δ)‖² / (2σ²λ²)`` nats (0 when the residual is 0).
    """

    sigma: float
    distance_bound: float
    information_bound: float


def scaled_to_residual(gradient_norm: float, weight_decay: float, noise_scale: float) -> Noise:
    """The noise ``σ = noise_scale · ‖∇L_r(Δ)‖ / λ`` and its information bound.

    Args:
        gradient_norm: ``‖∇L_r(Δ)‖`` at the result of the solve.
        weight_decay: ``λ > 0``, a lower bound on the Hessian's eigenvalues.
        noise_scale: ``> 0``; the bound is ``1 / (2 · noise_scale²)`` nats.

    Returns:
        A :class:`Noise`.
    """
    distance = gradient_norm / weight_decay
    sigma = noise_scale * distance
    bound = 0.0 if distance == 0 else distance**2 / (2.0 * sigma**2)
    return Noise(sigma=sigma, distance_bound=distance, information_bound=bound)


def add_noise(delta: np.ndarray, sigma: float, seed: int | None) -> np.ndarray:
    """``delta + σ·n`` with ``n ~ N(0, I)`` in float64 (``delta`` itself is not changed)."""
    rng = np.random.default_rng(seed)
    return np.asarray(delta, np.float64) + sigma * rng.standard_normal(np.shape(delta))
