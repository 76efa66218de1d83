"""Layer-wise Optimal Brain Surgeon on one layer: which weights to remove, and how to compensate.

For one linear map ``y = W x`` (a Dense layer, or a convolution on its input patches)
with calibration inputs ``X`` (rows of the layer's inputs), removing weights of an
output row ``w`` raises that row's reconstruction error ``‖X (w − w₀)‖²`` by the
least when the kept weights are updated to compensate. With ``H = XᵀX / n``:

* Optimal Brain Surgeon (Hassibi & Stork, 1993): removing weight ``q`` alone costs
  ``w_q² / [H⁻¹]_qq`` (up to ½) once the others are updated by ``−w_q H⁻¹e_q / [H⁻¹]_qq``.
* SparseGPT (Frantar & Alistarh, 2023), the one-shot form used here to choose the
  mask: columns are visited in order; in each block of columns the entries with the
  lowest ``w² / [U]_qq²`` are removed (``U`` the upper Cholesky factor of ``H⁻¹``,
  whose rows give the OBS update restricted to the columns not yet visited), and each
  removal is compensated on the later columns.
* For the chosen mask, the kept weights of each row are then set to the exact
  least-squares optimum, ``H_KK w_K = (H w₀)_K`` (:func:`solve_kept`), which the
  column-by-column update only approximates.

Every function here is pure numpy on arrays grouped as ``[groups, rows, columns]``:
one Hessian per group (one for a Dense layer, one per group of a grouped convolution,
one per channel of a depthwise one). :mod:`keras_forget.surgery.obs` gathers the
Hessians from a model and writes the weights back.
"""

from __future__ import annotations

import numpy as np

from keras_forget.errors import InvalidArgumentError, NonFiniteError

#: Most floating-point operations the exact least-squares step may take per layer; above
#: it, the column-by-column update of :func:`sparsegpt` is kept as it is.
MAX_SOLVE_FLOPS = 2e11


def damped(hessian: np.ndarray, damp: float) -> np.ndarray:
    """``H + damp · mean(diag H) · I`` per group (a group whose inputs are all zero gets ``I``).

    An input that is always zero keeps only the dampening on its diagonal, so its
    weights cost almost nothing to remove and go first, as in SparseGPT.

    Args:
        hessian: ``[groups, d, d]`` symmetric positive semi-definite matrices.
        damp: relative dampening, >= 0.

    Returns:
        float64 matrices of the same shape.

    Raises:
        NonFiniteError: NaN or infinite entries.
    """
    h = np.array(hessian, np.float64, copy=True)
    if not np.all(np.isfinite(h)):
        raise NonFiniteError("A layer's input Hessian has NaN or infinite entries.")
    index = np.arange(h.shape[-1])
    diagonal = h[:, index, index]
    mean = diagonal.mean(axis=1, keepdims=True)
    dead = ~(mean > 0)
    h[:, index, index] = np.where(dead, 1.0, diagonal + damp * np.where(dead, 1.0, mean))
    return h


def inverse_cholesky(hessian: np.ndarray) -> np.ndarray:
    """Upper Cholesky factors ``U`` of ``H⁻¹`` (``H⁻¹ = UᵀU``), per group.

    Raises a clear error rather than returning garbage when ``H`` is not positive
    definite (dampening too small for rank-deficient inputs).

    Raises:
        NonFiniteError: ``H`` is not positive definite.
    """
    try:
        lower = np.linalg.cholesky(hessian)
        eye = np.broadcast_to(np.eye(hessian.shape[-1]), hessian.shape)
        inverse_lower = np.linalg.solve(lower, eye)  # L⁻¹
        inverse = np.swapaxes(inverse_lower, -1, -2) @ inverse_lower  # H⁻¹ = L⁻ᵀ L⁻¹
        return np.swapaxes(np.linalg.cholesky(inverse), -1, -2)
    except np.linalg.LinAlgError:
        raise NonFiniteError(
            "A layer's input Hessian is not positive definite: raise OBS's `damp` or "
            "calibrate on more examples."
        ) from None


def _block_counts(count: int, prunable: int, block_size: int) -> list[tuple[int, int, int]]:
    """``(start, stop, weights to remove)`` per block of columns, ``count`` in all."""
    out = []
    for start in range(0, prunable, block_size):
        stop = min(start + block_size, prunable)
        share = round(count * stop / prunable) - round(count * start / prunable)
        out.append((start, stop, share))
    return out


def sparsegpt(
    weights: np.ndarray,
    hessian: np.ndarray,
    count: int,
    *,
    prunable: int | None = None,
    block_size: int = 128,
) -> tuple[np.ndarray, np.ndarray]:
    """SparseGPT: removes ``count`` weights and compensates, column by column.

    Args:
        weights: ``[groups, rows, d]``; columns at or after ``prunable`` (a bias
            column) are never removed but take part in the compensation.
        hessian: ``[groups, d, d]``, damped (positive definite).
        count: how many weights to remove over all groups and rows.
        prunable: number of leading columns that may be removed (default: all).
        block_size: columns per block; each block removes its share of ``count``.

    Returns:
        ``(updated weights, kept mask)``; removed entries are exactly zero.

    Raises:
        InvalidArgumentError: ``count`` is more than the removable weights.
    """
    w = np.array(weights, np.float64, copy=True)
    groups, rows, width = w.shape
    prunable = width if prunable is None else prunable
    if not 0 <= count <= groups * rows * prunable:
        raise InvalidArgumentError(
            f"Cannot remove {count} of {groups * rows * prunable} weights of a layer."
        )
    upper = inverse_cholesky(hessian)
    diagonal = np.einsum("gii->gi", upper)
    keep = np.ones(w.shape, bool)
    for start, stop, share in _block_counts(count, prunable, block_size):
        if share:
            cost = np.square(w[:, :, start:stop]) / np.square(diagonal[:, None, start:stop])
            flat = keep[:, :, start:stop].copy().reshape(-1)
            flat[np.argsort(cost.reshape(-1), kind="stable")[:share]] = False
            keep[:, :, start:stop] = flat.reshape(groups, rows, stop - start)
        for column in range(start, stop):
            removed = np.where(keep[:, :, column], 0.0, w[:, :, column])
            error = removed / diagonal[:, None, column]  # [groups, rows]
            w[:, :, column:] -= error[:, :, None] * upper[:, None, column, column:]
            w[:, :, column] = np.where(keep[:, :, column], w[:, :, column], 0.0)
    return w, keep


def solve_kept(
    target: np.ndarray, hessian: np.ndarray, keep: np.ndarray, *, max_flops: float = MAX_SOLVE_FLOPS
) -> np.ndarray | None:
    """The least-squares optimal kept weights for a fixed mask, row by row.

    Minimises ``(w − t)ᵀ H (w − t)`` over ``w`` with ``w = 0`` where ``keep`` is
    False: ``H_KK w_K = (H t)_K``. With ``H = XᵀX`` this is the least-squares fit of
    ``X t`` by the kept columns of ``X``.

    Args:
        target: ``[groups, rows, d]``, the weights whose outputs are matched.
        hessian: ``[groups, d, d]``, positive definite.
        keep: ``[groups, rows, d]`` bool.
        max_flops: above this estimated cost, return None (too large a layer).

    Returns:
        The weights, or None when the solve would cost more than ``max_flops``.
    """
    kept = keep.sum(-1)
    if float(np.sum(np.asarray(kept, np.float64) ** 3)) / 3 > max_flops:
        return None
    out = np.zeros(target.shape, np.float64)
    rhs = np.einsum("gij,grj->gri", hessian, target)
    for g in range(target.shape[0]):
        for r in range(target.shape[1]):
            index = np.flatnonzero(keep[g, r])
            if index.size:
                block = hessian[g][np.ix_(index, index)]
                out[g, r, index] = np.linalg.solve(block, rhs[g, r, index])
    return out


def prune_layer(
    weights: np.ndarray,
    hessian: np.ndarray,
    count: int,
    *,
    cross: np.ndarray | None = None,
    prunable: int | None = None,
    damp: float = 0.01,
    block_size: int = 128,
) -> tuple[np.ndarray, np.ndarray]:
    """Removes ``count`` weights of one layer and updates the rest to compensate.

    Args:
        weights: ``[groups, rows, d]`` (a bias, if any, as the last columns).
        hessian: ``[groups, d, d]``, ``X̃ᵀX̃ / n`` of the layer's calibration inputs.
        count: how many weights to remove.
        cross: optional ``[groups, d, d]``, ``X̃ᵀX / n`` between the inputs the
            layer now sees (``X̃``, after earlier layers were pruned) and those it saw
            before (``X``): the outputs matched are then the original ones, ``X w₀``.
        prunable: leading columns that may be removed (the rest are biases).
        damp: relative dampening of ``H`` (see :func:`damped`).
        block_size: SparseGPT's block of columns.

    Returns:
        ``(new weights, kept mask)``, both ``[groups, rows, d]``.
    """
    h = damped(hessian, damp)
    target = np.asarray(weights, np.float64)
    if cross is not None:  # the unconstrained optimum for the new inputs
        rhs = np.einsum("gij,grj->gri", np.asarray(cross, np.float64), target)
        target = np.swapaxes(np.linalg.solve(h, np.swapaxes(rhs, 1, 2)), 1, 2)
    updated, keep = sparsegpt(target, h, count, prunable=prunable, block_size=block_size)
    exact = solve_kept(target, h, keep)
    return (updated if exact is None else exact), keep
