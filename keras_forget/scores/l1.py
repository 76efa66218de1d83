"""Data-free unit baselines: the L1 norm of a unit's weights, and random scores."""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_forget.introspect import heads
from keras_forget.scores.units import UnitScore, UnitScoreMap


class L1Norm(UnitScore):
    """``Σ |W[..., j]|``: the L1 norm of unit j's kernel column (filter).

    The classic filter-pruning criterion (Li et al., "Pruning Filters for
    Efficient ConvNets"). For a group of coupled producers (a residual stream)
    the norms of every producer's filter j are added; a recurrent layer's unit j
    adds its input-kernel columns of every gate. An attention head scores
    the L1 norm of its slices of the value and output kernels. Reads no data.
    """

    name = "l1"
    needs_data = False

    def _data_free(self) -> UnitScoreMap:
        out = {}
        for key, group in self._groups.items():
            total = np.zeros(group.size)
            if group.kind == "heads":  # the head's slices of the value and output kernels
                total += heads.l1(self._graph.layer(group.score_layer))
            for name in group.producers if group.kind == "channels" else []:
                kernel = np.asarray(_kernel(self._graph.layer(name)).numpy(), np.float64)
                columns = np.abs(kernel.reshape(-1, kernel.shape[-1])).sum(axis=0)
                total += columns.reshape(-1, group.size).sum(axis=0)  # a recurrent layer's gates
            out[key] = total.astype(np.float32)
        return out


def _kernel(layer: Any) -> Any:
    """A producer's kernel (a recurrent layer's input kernel, held by its cell)."""
    kernel = getattr(layer, "kernel", None)
    return layer.cell.kernel if kernel is None else kernel


class RandomUnits(UnitScore):
    """Uniform random unit scores from a seeded generator: the chance baseline.

    Args:
        seed: seed of the generator.
    """

    name = "random"
    needs_data = False

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)

    def get_config(self) -> dict:
        return {"seed": self.seed}

    def _data_free(self) -> UnitScoreMap:
        rng = np.random.default_rng(self.seed)
        return {k: rng.random(g.size).astype(np.float32) for k, g in self._groups.items()}
