"""Class-conditional moment scores of units (DISCEDIT): witness lower bounds on TV.

For a unit j and a class c, let P_c and P_¬c be the distributions of the
unit's activation map ``A_j`` on examples of class c and on the rest. For any
witness ``f`` with finite second moments, Cauchy–Schwarz gives::

    (E_c f − E_¬c f)² ≤ (E_c f² + E_¬c f²) · ∫ (p − q)² / (p + q)
                      ≤ (E_c f² + E_¬c f²) · 2 TV(P_c, P_¬c)

with ``TV = ½ ∫ |p − q|``, so moments of a witness bound the total-variation
distance from below. Two witnesses:

* :class:`ExpNormBound` (``exp_norm``, DISCEDIT-U, for unlearning):
  ``φ = exp(−‖A_j‖ / τ)`` (norm over the spatial map),
  ``TV ≥ (E_c φ − E_¬c φ)² / (2 (E_c φ² + E_¬c φ²))``.
* :class:`FisherBound` (``fisher_bound``, DISCEDIT-SP, for pruning): the
  polynomial witness ``z = [s, s²]``, ``s`` the unit's summed activation; the
  best linear witness ``wᵀz`` (centred) gives ``TV ≥ F / (2 + F)`` with the
  Fisher discriminant ``F = Δmᵀ (S_c + S_¬c)⁻¹ Δm``.

Statistics are per-class sums over every example seen (first and second
moments of the witness, in float64), so one pass serves every class: for a
class c, "the rest" is the pooled sum of the other classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from keras_forget.errors import InvalidArgumentError
from keras_forget.scores.units import UnitScore, UnitScoreMap

REDUCTIONS = ("max", "min", "mean")
#: Examples buffered to fix a witness's per-unit reference (scale, centring),
#: so scores do not depend on the batch size.
CALIBRATION = 256
DIRECTIONS = ("both", "active")


def spatial_sum(a: np.ndarray) -> np.ndarray:
    """``[batch, ..., units] -> [batch, units]``: the activation summed over the map."""
    return a.reshape(a.shape[0], -1, a.shape[-1]).sum(axis=1)


def spatial_norm(a: np.ndarray) -> np.ndarray:
    """``[batch, ..., units] -> [batch, units]``: the L2 norm of each unit's map."""
    return np.sqrt(np.square(a.reshape(a.shape[0], -1, a.shape[-1])).sum(axis=1))


class _ClassMoments(UnitScore):
    """Per-class count, sum of ``w`` and sum of ``w wᵀ`` for a witness ``w`` in R^d.

    Args:
        min_samples: fewest examples a class (and its rest) must have for its
            bound to be computed.
        reduce: how per-class bounds become one score per unit when no target
            class is given: ``"max"`` (a unit is as salient as the class it
            discriminates best: units that discriminate *no* class score low),
            ``"min"`` or ``"mean"``.
    """

    dims = 1

    def __init__(self, min_samples: int = 8, reduce: str = "max") -> None:
        if int(min_samples) < 2:
            raise InvalidArgumentError(f"`min_samples` must be >= 2, got {min_samples}.")
        if reduce not in REDUCTIONS:
            raise InvalidArgumentError(f"`reduce` must be one of {REDUCTIONS}, got {reduce!r}.")
        self.min_samples = int(min_samples)
        self.reduce = reduce

    def get_config(self) -> dict[str, Any]:
        return {"min_samples": self.min_samples, "reduce": self.reduce}

    def reset(self, graph: Any, groups: Mapping[str, Any], num_classes: int) -> None:
        super().reset(graph, groups, num_classes)
        c, d = self._classes, self.dims
        self._n = np.zeros(c, np.float64)
        self._s1 = {k: np.zeros((c, g.size, d)) for k, g in self._groups.items()}
        self._s2 = {k: np.zeros((c, g.size, d, d)) for k, g in self._groups.items()}
        self._ref: dict[str, Any] | None = None
        self._pending: list[tuple[dict[str, np.ndarray], np.ndarray]] = []

    def _reduce(self, a: np.ndarray) -> np.ndarray:
        """``[batch, ..., units] -> [batch, units]``: the statistic the witness reads."""
        raise NotImplementedError

    def _reference(self, values: np.ndarray) -> Any:
        """A per-unit reference from the first examples' statistics ``[n, units]``."""
        raise NotImplementedError

    def _witness(self, key: str, values: np.ndarray) -> np.ndarray:
        """``[batch, units] -> [batch, units, d]`` (uses ``self._ref[key]``)."""
        raise NotImplementedError

    def _update(self, features: Mapping[str, np.ndarray], y: np.ndarray) -> None:
        stats = {key: self._reduce(a) for key, a in features.items()}
        if self._ref is not None:
            self._accumulate(stats, y)
            return
        self._pending.append((stats, y))
        if sum(len(labels) for _, labels in self._pending) >= CALIBRATION:
            self._flush()

    def _flush(self) -> None:
        """Fixes the references from the buffered first examples, then accumulates them."""
        if self._ref is not None or not self._pending:
            return
        keys = self._pending[0][0]
        self._ref = {
            k: self._reference(np.concatenate([s[k] for s, _ in self._pending])) for k in keys
        }
        for stats, labels in self._pending:
            self._accumulate(stats, labels)
        self._pending = []

    def _accumulate(self, stats: Mapping[str, np.ndarray], y: np.ndarray) -> None:
        onehot = np.eye(self._classes)[y]
        self._n += onehot.sum(axis=0)
        for key, values in stats.items():
            w = self._witness(key, values)
            self._s1[key] += np.einsum("bc,bnd->cnd", onehot, w)
            self._s2[key] += np.einsum("bc,bnd,bne->cnde", onehot, w, w)

    def _split(self, key: str, classes: tuple[int, ...]) -> tuple[Any, Any]:
        """``((n, Σw, Σwwᵀ) of classes, (n, Σw, Σwwᵀ) of the rest)``."""
        index = list(classes)
        inside = (self._n[index].sum(), self._s1[key][index].sum(0), self._s2[key][index].sum(0))
        total = (self._n.sum(), self._s1[key].sum(0), self._s2[key].sum(0))
        rest = tuple(t - i for t, i in zip(total, inside))
        return inside, rest

    def _check(self, classes: tuple[int, ...]) -> None:
        n_in = self._n[list(classes)].sum()
        n_out = self._n.sum() - n_in
        for what, n in ((f"class(es) {list(classes)}", n_in), (f"the rest of {classes}", n_out)):
            if n < self.min_samples:
                raise InvalidArgumentError(
                    f"`data` has {int(n)} example(s) of {what}; at least min_samples="
                    f"{self.min_samples} are needed to estimate its moments."
                )

    def _bound(self, inside: Any, rest: Any) -> np.ndarray:
        """The TV lower bound per unit from the two groups' sums."""
        raise NotImplementedError

    def _result(self, targets: tuple[int, ...] | None) -> UnitScoreMap:
        self._flush()
        if targets is not None:
            self._check(targets)
            return {
                k: self._bound(*self._split(k, targets)).astype(np.float32) for k in self._groups
            }
        present = tuple(int(c) for c in np.flatnonzero(self._n))
        if len(present) < 2:
            raise InvalidArgumentError(f"`data` has examples of {len(present)} class(es); need 2.")
        for c in present:
            self._check((c,))
        reduce = {"max": np.max, "min": np.min, "mean": np.mean}[self.reduce]
        out = {}
        for key in self._groups:
            per_class = np.stack([self._bound(*self._split(key, (c,))) for c in present])
            out[key] = reduce(per_class, axis=0).astype(np.float32)
        return out

    def per_class(self, key: str) -> np.ndarray:
        """One-vs-rest bounds ``[classes, units]`` of group ``key`` (NaN for absent classes)."""
        self._flush()
        out = np.full((self._classes, self._groups[key].size), np.nan)
        for c in np.flatnonzero(self._n):
            if self._n.sum() > self._n[c]:
                out[c] = self._bound(*self._split(key, (int(c),)))
        return out


class ExpNormBound(_ClassMoments):
    """DISCEDIT-U: TV lower bound from the witness ``φ = exp(−‖A_j‖ / τ)``.

    For class c against the rest::

        TV(P_c, P_¬c) ≥ (E_c φ − E_¬c φ)² / (2 (E_c φ² + E_¬c φ²))

    (half the ratio ``r`` of the DISCEDIT paper, so the score itself is a
    bound in [0, 1]). A high score marks a unit whose activation norm tells
    class c from the rest: the units to remove to forget c.

    Args:
        scale: ``τ``. A positive number, or ``"auto"``: per unit, the mean
            norm over the first ``CALIBRATION`` examples (fixed from then
            on, whatever the batch size), so the witness is
            not ≈ 0 for every example of a unit with large activations.
            ``scale=1.0`` is the witness ``exp(−‖A_j‖)`` as written.
        direction: ``"both"`` (the bound as is) or ``"active"``: only units
            whose activation norm is larger on class c than on the rest
            (``E_c φ < E_¬c φ``) keep their bound, the others score 0, so
            units that serve the *other* classes are not removed.
        min_samples: see :class:`_ClassMoments`.
        reduce: see :class:`_ClassMoments`.
    """

    name = "exp_norm"

    def __init__(
        self,
        scale: float | str = "auto",
        direction: str = "both",
        min_samples: int = 8,
        reduce: str = "max",
    ) -> None:
        super().__init__(min_samples, reduce)
        if scale != "auto" and not (isinstance(scale, (int, float)) and scale > 0):
            raise InvalidArgumentError(f"`scale` must be > 0 or 'auto', got {scale!r}.")
        if direction not in DIRECTIONS:
            raise InvalidArgumentError(f"`direction` must be in {DIRECTIONS}, got {direction!r}.")
        self.scale = scale if scale == "auto" else float(scale)
        self.direction = direction

    def get_config(self) -> dict[str, Any]:
        return {"scale": self.scale, "direction": self.direction, **super().get_config()}

    def _reduce(self, a: np.ndarray) -> np.ndarray:
        return spatial_norm(a)

    def _reference(self, values: np.ndarray) -> np.ndarray:
        if self.scale != "auto":
            return np.full(values.shape[1], self.scale)
        tau = values.mean(axis=0)
        return np.where(tau > 0, tau, 1.0)

    def _witness(self, key: str, values: np.ndarray) -> np.ndarray:
        return np.exp(-values / self._ref[key])[..., None]

    def _bound(self, inside: Any, rest: Any) -> np.ndarray:
        (n_c, s1_c, s2_c), (n_r, s1_r, s2_r) = inside, rest
        mean_c, mean_r = s1_c[:, 0] / n_c, s1_r[:, 0] / n_r
        second = s2_c[:, 0, 0] / n_c + s2_r[:, 0, 0] / n_r
        gap = np.square(mean_c - mean_r)
        if self.direction == "active":
            gap = np.where(mean_c < mean_r, gap, 0.0)
        return np.divide(gap, 2.0 * second, out=np.zeros_like(gap), where=second > 0)


class FisherBound(_ClassMoments):
    """DISCEDIT-SP: TV lower bound from the polynomial witness ``z = [s, s²]``.

    ``s`` is the unit's activation summed over its map. With ``m`` and ``S``
    the mean and covariance of ``z`` on class c and on the rest,
    ``F = Δmᵀ (S_c + S_¬c)⁻¹ Δm`` (Fisher's discriminant) and::

        TV(P_c, P_¬c) ≥ T_c = F / (2 + F)

    the bound of the best centred linear witness ``wᵀz``,
    ``w = (S_c + S_¬c)⁻¹ Δm``. Without target classes a unit scores
    ``reduce`` over classes of ``T_c``; with the default ``"max"``, a unit
    that discriminates no class scores low and is pruned first.

    ``s`` is standardized with the per-unit mean and standard deviation of
    the first ``CALIBRATION`` examples. ``[s', s'²]`` is an invertible affine
    map of ``[s, s²]``, under which ``F`` is unchanged: this only improves the
    conditioning. A ridge
    ``ridge · trace / 2`` (plus 1e-12) is added to the diagonal of ``S_c + S_¬c``;
    two classes that are each constant and differ get ``T ≈ 1``.

    Args:
        ridge: relative ridge on the pooled covariance.
        min_samples: see :class:`_ClassMoments`.
        reduce: see :class:`_ClassMoments`.
    """

    name = "fisher_bound"
    dims = 2

    def __init__(self, ridge: float = 1e-6, min_samples: int = 8, reduce: str = "max"):
        super().__init__(min_samples, reduce)
        if not ridge >= 0:
            raise InvalidArgumentError(f"`ridge` must be >= 0, got {ridge!r}.")
        self.ridge = float(ridge)

    def get_config(self) -> dict[str, Any]:
        return {"ridge": self.ridge, **super().get_config()}

    def _reduce(self, a: np.ndarray) -> np.ndarray:
        return spatial_sum(a)

    def _reference(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        std = values.std(axis=0)
        return values.mean(axis=0), np.where(std > 0, std, 1.0)

    def _witness(self, key: str, values: np.ndarray) -> np.ndarray:
        mean, std = self._ref[key]
        s = (values - mean) / std
        return np.stack([s, s * s], axis=-1)

    def _bound(self, inside: Any, rest: Any) -> np.ndarray:
        (n_c, s1_c, s2_c), (n_r, s1_r, s2_r) = inside, rest
        m_c, m_r = s1_c / n_c, s1_r / n_r
        cov = (
            s2_c / n_c
            - m_c[..., :, None] * m_c[..., None, :]
            + s2_r / n_r
            - m_r[..., :, None] * m_r[..., None, :]
        )
        trace = cov[:, 0, 0] + cov[:, 1, 1]
        eps = self.ridge * trace / 2 + 1e-12
        a, b, d = cov[:, 0, 0] + eps, cov[:, 0, 1], cov[:, 1, 1] + eps
        det = a * d - b * b
        x, y = (m_c - m_r)[:, 0], (m_c - m_r)[:, 1]
        quad = d * x * x - 2 * b * x * y + a * y * y
        fisher = np.maximum(np.divide(quad, det, out=np.zeros_like(quad), where=det > 0), 0.0)
        return fisher / (2.0 + fisher)
