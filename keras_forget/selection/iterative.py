"""Pruning in rounds, re-scoring the pruned network between them (no retraining).

Optimal Brain Damage (LeCun et al., 1990) judges each weight as if it alone were
removed from the trained network. Removing most of a layer at once breaks that
assumption: the saliencies of the weights left change as their neighbours go. Its
authors pruned some weights, recomputed the saliencies, and pruned again. Here the
sparsity rises over ``rounds`` along a geometric ramp (each round removes the same
fraction of the weights still kept), and every round after the first ranks the
weights by the scores of the network pruned so far. Nothing is retrained between
rounds; to retrain between pruning steps, prune gradually during fine-tuning
(:mod:`keras_forget.gradual`).

Pure selection logic: the caller supplies ``rescore``, which is what touches a model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from keras_forget.errors import InvalidArgumentError
from keras_forget.selection.weights import MaskMap, ScoreMap, check_amount, tighten

#: ``rounds=None`` for compression by each weight score (1 for any other): pruning in
#: rounds re-scores the pruned network, as OBD's authors did. One-shot OBD ranked over
#: all layers empties the widest layer (98.8 % of the 256×128 layer at 90 %) and collapses:
#: 0.167 validation accuracy at 90 % on the digits MLP, 0.828 in 8 rounds (magnitude 0.706).
#: 8 is the fewest rounds within 0.5 pt of the best mean validation accuracy over 1/4/8/16
#: (3 seeds; two MLPs at 50-95 %, a VGG-style CNN at 50/75 %; benchmarks/obd_diagnosis.py).
DEFAULT_ROUNDS = {"obd": 8, "fisher_obd": 8}

#: ``rescore(masks)``: the scores of the network with ``masks`` applied (None: unpruned).
Rescore = Callable[[Mapping[str, np.ndarray] | None], ScoreMap]


def check_rounds(rounds: object) -> int:
    """Validates ``rounds``, an int >= 1.

    Raises:
        InvalidArgumentError: anything else.
    """
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 1:
        raise InvalidArgumentError(f"`rounds` must be an int >= 1, got {rounds!r}.")
    return int(rounds)


def ramp(sparsity: float, rounds: int) -> list[float]:
    """The sparsity reached after each round: ``1 - (1 - sparsity)^(r / rounds)``.

    Each round prunes the same fraction of the weights still kept; the last
    target is ``sparsity`` itself.
    """
    check_amount(sparsity, "sparsity", allow_zero=True)
    rounds = check_rounds(rounds)
    targets = [1.0 - (1.0 - sparsity) ** (r / rounds) for r in range(1, rounds + 1)]
    targets[-1] = float(sparsity)
    return targets


def prune_in_rounds(
    rescore: Rescore,
    sparsity: float,
    *,
    rounds: int,
    scope: str = "global",
    normalize: str | None = None,
    min_density: float = 0.0,
    on_round: Callable[[int, float, MaskMap], None] | None = None,
) -> MaskMap:
    """Prunes to ``sparsity`` in ``rounds`` rounds, re-scoring before each.

    Args:
        rescore: ``masks -> ScoreMap`` of the network with ``masks`` applied
            (None for the unpruned network, asked for once, first).
        sparsity: the final fraction of weights pruned, in [0, 1).
        rounds: how many rounds (1: one-shot pruning on the first scores).
        scope: ``"global"`` or ``"layer"``.
        normalize: None or ``"lamp"`` (see :func:`keras_forget.selection.lamp`).
        min_density: fraction of every weight kept whatever the ranking.
        on_round: optional ``(round, target, masks)`` callback after each round.

    Returns:
        The MaskMap (``False`` = pruned); exactly ``round(sparsity · n)``
        weights pruned with ``scope="global"`` and no ``min_density``.
    """
    targets = ramp(sparsity, rounds)
    scores = rescore(None)
    masks: MaskMap = {k: np.ones(np.shape(v), bool) for k, v in scores.items()}
    for index, target in enumerate(targets):
        if index:
            scores = rescore(masks)
        masks = tighten(scores, masks, target, scope, normalize=normalize, min_density=min_density)
        if on_round is not None:
            on_round(index, target, masks)
    return masks
