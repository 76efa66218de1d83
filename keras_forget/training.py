"""Fine-tuning a masked model while its masks hold."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from keras_forget import _keras
from keras_forget.data import Data
from keras_forget.errors import InvalidArgumentError

#: ``FineTune(learning_rate=None)`` for each verb and granularity: Adam's rate for the short
#: fine-tuning after pruning. Chosen per job on validation splits (benchmarks/fine_tune.py:
#: 3 seeds × an MLP and VGG- and ResNet-style CNNs, one epoch after the default call, rates
#: 1e-4 / 3e-4 / 1e-3), since no one rate served every job: after forgetting a class, 1e-4
#: kept retain accuracy best (mean 0.984, 0.957 at 1e-3; ResNet 0.984 against 0.920); after
#: removing 50 % of units, 3e-4 (0.981; 0.976 at 1e-3); after pruning 90 % of weights, 1e-3
#: recovered most (MLP 0.857, 0.620 at 1e-4). Unit forgetting was not measured apart: it
#: takes forgetting's rate.
DEFAULT_LEARNING_RATE = {
    ("forget", "weight"): 1e-4,
    ("forget", "unit"): 1e-4,
    ("compress", "weight"): 1e-3,
    ("compress", "unit"): 3e-4,
}


@dataclasses.dataclass(frozen=True)
class FineTune:
    """A short retraining after pruning; pruned weights stay exactly zero.

    Attributes:
        epochs: passes over the data.
        data: ``(x, y)`` or a ``tf.data.Dataset``; by default the data given
            to the pruning call, without the forgotten classes.
        batch_size: batch size for array data.
        learning_rate: Adam's learning rate; None (default): the rate chosen
            for the verb and granularity (:data:`DEFAULT_LEARNING_RATE`).
    """

    epochs: int = 1
    data: Any = None
    batch_size: int = 32
    learning_rate: float | None = None

    def __post_init__(self) -> None:
        if (
            isinstance(self.epochs, bool)
            or not isinstance(self.epochs, (int, np.integer))
            or self.epochs < 1
        ):
            raise InvalidArgumentError(
                f"`FineTune.epochs` must be an int >= 1, got {self.epochs!r}."
            )
        if not isinstance(self.batch_size, (int, np.integer)) or self.batch_size < 1:
            raise InvalidArgumentError(
                f"`FineTune.batch_size` must be an int >= 1, got {self.batch_size!r}."
            )
        rate = self.learning_rate
        if rate is not None and not (isinstance(rate, (int, float)) and rate > 0):
            raise InvalidArgumentError(
                f"`FineTune.learning_rate` must be a number > 0, got {self.learning_rate!r}."
            )


def check(tune: Any) -> FineTune | None:
    """Validates the ``fine_tune`` argument (None or a :class:`FineTune`)."""
    if tune is not None and not isinstance(tune, FineTune):
        raise InvalidArgumentError(
            f"`fine_tune` must be a keras_forget.FineTune or None, got {type(tune).__name__}."
        )
    return tune


def resolve(tune: FineTune | None, task: str, granularity: str) -> FineTune | None:
    """``tune`` with its learning rate set: its own, or the default for the job.

    Args:
        tune: the caller's :class:`FineTune`, or None.
        task: ``"forget"`` or ``"compress"``.
        granularity: ``"weight"`` or ``"unit"``.
    """
    if tune is None or tune.learning_rate is not None:
        return tune
    return dataclasses.replace(tune, learning_rate=DEFAULT_LEARNING_RATE[task, granularity])


def fine_tune(
    model: Any,
    config: FineTune,
    data: Data,
    *,
    from_logits: bool,
    verbose: bool,
    callbacks: list[Any] | None = None,
) -> Any:
    """Trains a masked model in place; its masks hold through training.

    Args:
        model: a masked model (mask constraints, or tfmot wrappers).
        config: the :class:`FineTune` settings.
        data: the checked data to train on.
        from_logits: whether the model outputs logits.
        verbose: show Keras' progress bar.
        callbacks: Keras callbacks; by default those the masks need (tfmot's
            for a tf_keras model, none for Keras 3).

    Returns:
        The Keras ``History``.
    """
    km = _keras.keras_module(model)
    if callbacks is None:
        callbacks = []
        if _keras.flavor(model) == "tf_keras":
            from keras_forget.integrations import tfmot

            callbacks = tfmot.callbacks(model)
    model.compile(
        optimizer=km.optimizers.Adam(
            config.learning_rate or DEFAULT_LEARNING_RATE["compress", "weight"]
        ),
        loss=km.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        metrics=["accuracy"],
    )
    return model.fit(
        data.to_dataset(config.batch_size),
        epochs=config.epochs,
        callbacks=callbacks,
        shuffle=False,
        verbose=1 if verbose else 0,
    )
