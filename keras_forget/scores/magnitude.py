"""Data-free baselines: weight magnitude and random scores."""

from __future__ import annotations

import numpy as np

from keras_forget.scores.base import Score, ScoreMap


class Magnitude(Score):
    """|w|: the classic magnitude-pruning criterion. Reads no data."""

    name = "magnitude"
    needs_data = False

    def _data_free(self) -> ScoreMap:
        return {
            k: np.abs(np.asarray(w.variable.numpy(), np.float32)) for k, w in self._weights.items()
        }


class Random(Score):
    """Uniform random scores from a seeded generator: the chance baseline.

    Args:
        seed: seed of the generator; the same seed gives the same scores.
    """

    name = "random"
    needs_data = False

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)

    def _data_free(self) -> ScoreMap:
        rng = np.random.default_rng(self.seed)
        return {
            k: rng.random(w.variable.shape).astype(np.float32) for k, w in self._weights.items()
        }

    def get_config(self) -> dict:
        return {"seed": self.seed}
