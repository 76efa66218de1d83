"""Pictures of what a conditional generator draws: one row per label, panels side by side."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from keras_forget.errors import InvalidArgumentError
from keras_forget.plots import save_figure, subplots


def _check_panels(panels: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Validates ``{title: [rows, columns, height, width(, channels)]}`` arrays."""
    if not panels:
        raise InvalidArgumentError("`panels` is empty: give at least one {title: images}.")
    arrays = {str(k): np.asarray(v, np.float32) for k, v in panels.items()}
    for title, a in arrays.items():
        channels_ok = a.ndim == 4 or (a.ndim == 5 and a.shape[-1] in (1, 3))
        if not channels_ok or not a.size:
            raise InvalidArgumentError(
                f"`panels[{title!r}]` must be [rows, columns, height, width(, 1 or 3)] and "
                f"non-empty; got shape {a.shape}."
            )
    if len({a.shape for a in arrays.values()}) != 1:
        shapes = {t: a.shape for t, a in arrays.items()}
        raise InvalidArgumentError(f"`panels` must all have the same shape; got {shapes}.")
    return arrays


def _mosaic(images: np.ndarray, pad: int = 1, fill: float = 0.0) -> np.ndarray:
    """Tiles ``[rows, columns, h, w(, c)]`` into one image with ``pad`` pixels between tiles."""
    if images.ndim == 5 and images.shape[-1] == 1:
        images = images[..., 0]
    rows, cols, h, w = images.shape[:4]
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, *images.shape[4:]), fill)
    for r in range(rows):
        for c in range(cols):
            out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = images[r, c]
    return out


def plot_generations(
    panels: Mapping[str, Any],
    path: str | os.PathLike[str],
    *,
    labels: Sequence[Any] | None = None,
    marked: Sequence[Any] = (),
    title: str | None = None,
) -> str:
    """Writes a grid PNG of generated images: one row per label, one panel per model.

    As in the "Final Results" figure of Singh & Roy's forgetting-by-pruning
    report: the same noise drawn for every label by the original and the
    pruned generator, side by side.

    Args:
        panels: ``{panel title: images [rows, columns, height, width(, channels)]}``,
            e.g. ``{"before": ..., "after forgetting 3": ...}`` from
            :meth:`keras_forget.ConditionalGenerator.samples`; all the same shape.
        path: the PNG to write (atomically: temporary file, then rename).
        labels: row names (default ``0..rows-1``).
        marked: row names to flag with ``*`` (the forgotten labels).
        title: figure title.

    Returns:
        ``path`` as a string.

    Raises:
        InvalidArgumentError: panels of the wrong or differing shapes, or
            ``labels`` not one per row.
    """
    arrays = _check_panels(panels)
    first = next(iter(arrays.values()))
    rows, h = first.shape[0], first.shape[2]
    labels = list(range(rows)) if labels is None else list(labels)
    if len(labels) != rows:
        raise InvalidArgumentError(f"`labels` has {len(labels)} names for {rows} rows.")
    low = min(0.0, *(float(a.min()) for a in arrays.values()))
    high = max(1.0, *(float(a.max()) for a in arrays.values()))
    figure, axes = subplots(1, len(arrays), figsize=(3.2 * len(arrays), 0.35 * rows + 1.0))
    for axis, (name, images) in zip(np.atleast_1d(axes), arrays.items()):
        axis.imshow(_mosaic(images, fill=low), cmap="gray", vmin=low, vmax=high)
        axis.set_title(name)
        axis.set_xticks([])
        axis.set_yticks(np.arange(rows) * (h + 1) + (h - 1) / 2)
        axis.set_yticklabels([f"{c}*" if c in marked else str(c) for c in labels])
    if title:
        figure.suptitle(title)
    return save_figure(figure, os.fspath(path))
