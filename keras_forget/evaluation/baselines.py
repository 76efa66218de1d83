"""Unlearning baselines to compare with :func:`keras_forget.prune_for_class`.

Each forgets a class (``target_class``) or given examples (``forget``) of
``data``, never changes the model it is given (it works on a copy), and
returns the :class:`~keras_forget.results.Result` the verbs return, whose
report evaluates the model before and after on ``eval_data`` (default:
``data``):

* :func:`retrain_baseline`: the gold standard, a fresh model trained on the
  retain set only;
* :func:`ssd`: Selective Synaptic Dampening (Foster et al., 2024);
* :func:`finetune_baseline`: fine-tuning on the retain set;
* :func:`gradient_ascent`: ascending the loss on the forget set;
* :func:`random_labels`: fine-tuning on the forget set with random wrong
  labels, together with the retain set.

The three fine-tuning baselines use SGD with momentum 0.9, as the SalUn and
ℓ1-sparse unlearning code does; their default epochs and learning rates are
starting points, not tuned for any data: choose them on a validation split
(``benchmarks/unlearning_suite.py`` does). Nothing is masked, so
``Result.masks`` is empty and the report's ``scope`` is ``"none"``; its
``total`` counts every trainable weight, and ``pruned`` (and ``amount``, their
ratio) the weights SSD dampened (0 for the others).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from keras_forget import _keras
from keras_forget.data import Data
from keras_forget.errors import InvalidArgumentError, NotAModelError
from keras_forget.evaluation import dampening
from keras_forget.evaluation.baseline_tools import (
    baseline_result,
    checked_eval_data,
    common,
    concatenate,
    is_model,
    positive,
    sgd,
    train,
)
from keras_forget.evaluation.forget_set import ForgetSet, resolve
from keras_forget.results import Result
from keras_forget.scores import Objective

#: SSD's published defaults (Foster et al., 2024).
SSD_ALPHA, SSD_LAMBDA = 10.0, 1.0


def retrain_baseline(
    build_fn: Callable[[], Any],
    data: Any,
    *,
    target_class: int | list[int] | None = None,
    forget: Any = None,
    epochs: int = 40,
    learning_rate: float = 1e-3,
    batch_size: int = 32,
    eval_data: Any = None,
    seed: int = 0,
    verbose: bool = True,
) -> Result:
    """The gold standard: a fresh model trained on ``data`` without the forget set.

    Args:
        build_fn: ``() -> model``: a new, built, uncompiled Keras 3 or tf_keras
            classifier of the architecture to compare (seed it inside for a
            repeatable initialisation).
        data: the training data, forget set included.
        target_class: the class or classes to forget; or
        forget: the examples to forget, each in ``data`` (matched by content).
        epochs: training epochs.
        learning_rate: Adam's learning rate (sparse cross-entropy loss).
        batch_size: training batch size.
        eval_data: data for the report's accuracies (default ``data``).
        seed: the shuffling of the training data.
        verbose: show Keras' progress bar.

    Returns:
        A :class:`~keras_forget.results.Result` with the retrained model;
        ``report.before`` is None (there is no model before).

    Raises:
        InvalidArgumentError: a bad argument, named in the message.
        NotAModelError: ``build_fn`` does not return a Keras model.
    """
    if not callable(build_fn) or is_model(build_fn):
        raise InvalidArgumentError(
            f"`build_fn` must be callable, returning a new model: got {type(build_fn).__name__}."
        )
    model = build_fn()
    try:
        common(model, target_class, forget, epochs, learning_rate, batch_size)
    except NotAModelError:
        raise NotAModelError(
            f"`build_fn` must return a Keras 3 or tf_keras model, got {type(model).__name__}."
        ) from None
    split = resolve(model, data, target_class=target_class, forget=forget, batch_size=batch_size)
    eval_data = checked_eval_data(model, eval_data, split)
    start = time.perf_counter()
    optimizer = _keras.keras_module(model).optimizers.Adam(learning_rate)
    train(model, split.retain, from_logits=split.from_logits, optimizer=optimizer,
           epochs=epochs, batch_size=batch_size, seed=seed, verbose=verbose)  # fmt: skip
    seconds = time.perf_counter() - start
    return baseline_result(
        "retrain", model, None, split, eval_data, {"training": seconds, "total": seconds}
    )


def ssd(
    model: Any,
    data: Any,
    *,
    target_class: int | list[int] | None = None,
    forget: Any = None,
    alpha: float = SSD_ALPHA,
    lam: float = SSD_LAMBDA,
    importance: str = "batch",
    batch_size: int = 64,
    eval_data: Any = None,
    verbose: bool = True,
) -> Result:
    """Selective Synaptic Dampening: shrink the weights far more important to the forget set.

    Diagonal-Fisher importances are computed on the forget set (``I_f``) and
    on all of ``data`` (``I_D``); every trainable weight with
    ``I_f > alpha·I_D`` is multiplied by ``min(lam·I_D / I_f, 1)`` (see
    :mod:`keras_forget.evaluation.dampening`). No training.

    Args:
        model: a trained Keras 3 or tf_keras classifier; not modified.
        data: the training data, forget set included.
        target_class: the class or classes to forget; or
        forget: the examples to forget, each in ``data`` (matched by content).
        alpha: the selection threshold ``α`` (published default 10).
        lam: the dampening constant ``λ`` (published default 1).
        importance: ``"batch"`` (the reference code's minibatch Fisher,
            default) or ``"per_example"`` (the library's
            :class:`~keras_forget.scores.Fisher`).
        batch_size: minibatch size of the importances over array data.
        eval_data: data for the report's accuracies (default ``data``).
        verbose: show progress.

    Returns:
        A :class:`~keras_forget.results.Result`; ``report.pruned`` counts the
        dampened weights out of ``report.total`` trainable ones.

    Raises:
        InvalidArgumentError: a bad argument, named in the message.
        NotAModelError: ``model`` is not a Keras model.
    """
    common(model, target_class, forget, None, None, batch_size)
    alpha, lam = positive(alpha, "alpha"), positive(lam, "lam")
    if importance not in dampening.IMPORTANCES:
        raise InvalidArgumentError(
            f"`importance` must be one of {dampening.IMPORTANCES}, got {importance!r}."
        )
    split = resolve(model, data, target_class=target_class, forget=forget, batch_size=batch_size)
    eval_data = checked_eval_data(model, eval_data, split)
    start = time.perf_counter()
    copy = _keras.clone(model)
    variables = dampening.trainable_variables(copy)
    objective = Objective(from_logits=split.from_logits, target="log_likelihood")
    run = dict(kind=importance, batch_size=batch_size, verbose=verbose)
    forget_importance = dampening.importance(copy, split.forget, objective, variables, **run)
    data_importance = dampening.importance(copy, split.data, objective, variables, **run)
    scored = time.perf_counter()
    weights = {k: v.numpy() for k, v in variables.items()}
    new, selected = dampening.dampen(
        weights, forget_importance, data_importance, alpha=alpha, lam=lam
    )
    for key, value in new.items():
        variables[key].assign(value)
    done = time.perf_counter()
    seconds = {"importance": scored - start, "dampening": done - scored, "total": done - start}
    pruned = int(sum(s.sum() for s in selected.values()))
    return baseline_result(
        "ssd", copy, model, split, eval_data, seconds, pruned=pruned, scope="global"
    )


def _fine_tuning(
    name: str,
    model: Any,
    data: Any,
    train_on: Callable[[ForgetSet], Data],
    *,
    target_class: Any,
    forget: Any,
    epochs: int,
    learning_rate: float,
    batch_size: int,
    eval_data: Any,
    seed: int,
    verbose: bool,
    ascent: bool = False,
) -> Result:
    common(model, target_class, forget, epochs, learning_rate, batch_size)
    split = resolve(model, data, target_class=target_class, forget=forget, batch_size=batch_size)
    eval_data = checked_eval_data(model, eval_data, split)
    start = time.perf_counter()
    copy = _keras.clone(model)
    train(copy, train_on(split), from_logits=split.from_logits,
           optimizer=sgd(copy, learning_rate), epochs=epochs, batch_size=batch_size,
           seed=seed, verbose=verbose, ascent=ascent)  # fmt: skip
    seconds = time.perf_counter() - start
    return baseline_result(
        name, copy, model, split, eval_data, {"training": seconds, "total": seconds}
    )


def finetune_baseline(
    model: Any,
    data: Any,
    *,
    target_class: int | list[int] | None = None,
    forget: Any = None,
    epochs: int = 5,
    learning_rate: float = 0.01,
    batch_size: int = 32,
    eval_data: Any = None,
    seed: int = 0,
    verbose: bool = True,
) -> Result:
    """Fine-tuning: train a copy on the retain set only, and let it drift from the forget set.

    Args:
        model: a trained Keras 3 or tf_keras classifier; not modified.
        data: the training data, forget set included.
        target_class: the class or classes to forget; or
        forget: the examples to forget, each in ``data`` (matched by content).
        epochs: passes over the retain set.
        learning_rate: SGD's learning rate (momentum 0.9).
        batch_size: training batch size.
        eval_data: data for the report's accuracies (default ``data``).
        seed: the shuffling of the training data.
        verbose: show Keras' progress bar.

    Returns:
        A :class:`~keras_forget.results.Result`.

    Raises:
        InvalidArgumentError: a bad argument, named in the message.
        NotAModelError: ``model`` is not a Keras model.
    """
    return _fine_tuning(
        "finetune", model, data, lambda s: s.retain, target_class=target_class, forget=forget,
        epochs=epochs, learning_rate=learning_rate, batch_size=batch_size, eval_data=eval_data,
        seed=seed, verbose=verbose,
    )  # fmt: skip


def gradient_ascent(
    model: Any,
    data: Any,
    *,
    target_class: int | list[int] | None = None,
    forget: Any = None,
    epochs: int = 1,
    learning_rate: float = 0.01,
    batch_size: int = 32,
    eval_data: Any = None,
    seed: int = 0,
    verbose: bool = True,
) -> Result:
    """Gradient ascent: train a copy to *raise* the cross-entropy on the forget set.

    Args:
        model: a trained Keras 3 or tf_keras classifier; not modified.
        data: the training data, forget set included.
        target_class: the class or classes to forget; or
        forget: the examples to forget, each in ``data`` (matched by content).
        epochs: passes over the forget set.
        learning_rate: SGD's learning rate (momentum 0.9).
        batch_size: training batch size.
        eval_data: data for the report's accuracies (default ``data``).
        seed: the shuffling of the forget set.
        verbose: show Keras' progress bar.

    Returns:
        A :class:`~keras_forget.results.Result`.

    Raises:
        InvalidArgumentError: a bad argument, named in the message.
        NotAModelError: ``model`` is not a Keras model.
    """
    return _fine_tuning(
        "gradient_ascent", model, data, lambda s: s.forget, target_class=target_class,
        forget=forget, epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
        eval_data=eval_data, seed=seed, verbose=verbose, ascent=True,
    )  # fmt: skip


def random_labels(
    model: Any,
    data: Any,
    *,
    target_class: int | list[int] | None = None,
    forget: Any = None,
    epochs: int = 3,
    learning_rate: float = 0.01,
    batch_size: int = 32,
    eval_data: Any = None,
    seed: int = 0,
    verbose: bool = True,
) -> Result:
    """Random labels: fine-tune a copy on the forget set relabelled at random, plus the retain set.

    Each forget example gets a label drawn uniformly among the *other*
    classes (never its own), with ``seed``; the copy is trained on those
    together with the retain set, shuffled.

    Args:
        model: a trained Keras 3 or tf_keras classifier; not modified.
        data: the training data, forget set included.
        target_class: the class or classes to forget; or
        forget: the examples to forget, each in ``data`` (matched by content).
        epochs: passes over the relabelled forget set and the retain set.
        learning_rate: SGD's learning rate (momentum 0.9).
        batch_size: training batch size.
        eval_data: data for the report's accuracies (default ``data``).
        seed: the random labels and the shuffling.
        verbose: show Keras' progress bar.

    Returns:
        A :class:`~keras_forget.results.Result`.

    Raises:
        InvalidArgumentError: a bad argument, named in the message.
        NotAModelError: ``model`` is not a Keras model.
    """

    def relabelled(split: ForgetSet) -> Data:
        fx, fy = split.forget.arrays()
        rx, ry = split.retain.arrays()
        rng = np.random.default_rng(seed)
        wrong = (fy + rng.integers(1, split.classes, size=len(fy))) % split.classes
        x = concatenate(fx, rx)
        return Data.of((x, np.concatenate([wrong, ry])), model, name="random labels")

    return _fine_tuning(
        "random_labels", model, data, relabelled, target_class=target_class, forget=forget,
        epochs=epochs, learning_rate=learning_rate, batch_size=batch_size, eval_data=eval_data,
        seed=seed, verbose=verbose,
    )  # fmt: skip
