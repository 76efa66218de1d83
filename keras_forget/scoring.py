"""Running a score over data: one pass, batch by batch, with progress."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from keras_forget.data import Data, batches, input_rank, size, take
from keras_forget.scores.base import Score, ScoreMap
from keras_forget.scores.objective import Objective
from keras_forget.surgery.registry import prunable_weights


def _progress(data: Data, batch_size: int, desc: str, verbose: bool) -> tqdm:
    total = None
    if isinstance(data, (tuple, list)):
        total = -(-size(data[0]) // batch_size)
    return tqdm(total=total, desc=desc, unit="batch", disable=not verbose, leave=False)


def score(
    model: Any,
    data: Data | None,
    method: Score,
    objective: Objective,
    *,
    batch_size: int = 64,
    verbose: bool = True,
) -> ScoreMap:
    """Scores every prunable weight of ``model`` over all of ``data``.

    Args:
        model: the model to score (not modified).
        data: ``(x, y)`` or a ``tf.data.Dataset``; ignored by data-free scores.
        method: the score; it is reset, so an instance may be reused.
        objective: what the model's output means.
        batch_size: batch size for array data.
        verbose: show a progress bar.

    Returns:
        The ScoreMap.
    """
    method.reset(model, prunable_weights(model), objective)
    if method.needs_data:
        rank = input_rank(model)
        with _progress(data, batch_size, f"scoring ({method.name})", verbose) as bar:
            for x, y in batches(data, batch_size, input_rank=rank):
                method.update(x, y)
                bar.update(1)
    return method.result()


def score_split(
    model: Any,
    data: Data,
    method: Score,
    objective: Objective,
    target_classes: Sequence[int],
    *,
    batch_size: int = 64,
    verbose: bool = True,
) -> tuple[ScoreMap, ScoreMap]:
    """Scores the examples of ``target_classes`` and the rest separately, in one pass.

    Memory holds two accumulators per weight, whatever the number of classes.

    Returns:
        ``(forget scores, retain scores)``.
    """
    weights = prunable_weights(model)
    forget, retain = method.forget_variant(), method.fresh()
    forget.reset(model, weights, objective)
    retain.reset(model, weights, objective)
    rank = input_rank(model)
    targets = np.asarray(list(target_classes))
    with _progress(data, batch_size, f"scoring ({method.name})", verbose) as bar:
        for x, y in batches(data, batch_size, input_rank=rank):
            in_target = np.isin(y, targets)
            forget.update(take(x, in_target), y[in_target])
            retain.update(take(x, ~in_target), y[~in_target])
            bar.update(1)
    return forget.result(), retain.result()
