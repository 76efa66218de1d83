"""MixedLinear: a fixed core network plus a linear user part that can be forgotten exactly.

The user part Δ minimises a quadratic objective on the user data (see
:mod:`keras_forget.mixed_privacy.objective`), so forgetting some user examples
is one exact Newton step on the remaining ones, and forgetting all of them is
Δ = 0.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_forget import _keras
from keras_forget.data import Data
from keras_forget.errors import InvalidArgumentError
from keras_forget.mixed_privacy import membership, noise
from keras_forget.mixed_privacy.linearize import linearized_model, resolve_layers
from keras_forget.mixed_privacy.objective import Objective
from keras_forget.mixed_privacy.options import positive_float, positive_int
from keras_forget.mixed_privacy.preconditioner import Directions, Preconditioner
from keras_forget.mixed_privacy.solve import SolveReport

#: The default cap on CG iterations (also at most 4 per coordinate of Δ). With the default
#: weight decay, the MLP of benchmarks/mixed_privacy.py needs 1,330 to 1,370 (tol 1e-6).
MAX_ITER = 5000


class MixedLinear:
    """A core network kept fixed plus a linearized user part Δ trained on user data.

    ``f(x) = f(x; w_c) + J_w f(x; w_c)·Δ`` over the weights ``w`` of the
    ``linearize``-d layers (Golatkar et al., "Mixed-Privacy Forgetting in Deep
    Networks", CVPR 2021). The loss is quadratic in Δ (see
    :mod:`keras_forget.mixed_privacy.objective`), so forgetting part of the
    user data is one exact Newton step and forgetting all of it is ``Δ = 0``.
    The core network should output logits: it is the output that is
    linearized and regressed on ``scale·onehot(y)``.

    The caller's model is never changed: a private copy is linearized.

    Args:
        core_model: a built Keras 3 or tf_keras classifier with one
            ``(batch, K)`` output, trained on the core data.
        linearize: ``"last:k"`` (the last ``k`` top-level layers holding
            trainable weights) or a list of layer names.
        scale: the targets are ``scale·onehot(y)`` (5 in the paper's public code).
        weight_decay: ``λ > 0`` in ``(λ/2)‖Δ‖²``.
        recycle: keep the search directions of a plain conjugate-gradient solve
            (:meth:`solve`, or the first :meth:`forget` after :meth:`fit`) as a
            preconditioner for every later :meth:`forget` (see
            :mod:`keras_forget.mixed_privacy.preconditioner`). Building it is
            part of that solve and of its reported time. It holds curvature of
            the data solved on, forgotten examples included, until :meth:`fit`,
            :meth:`solve` or :meth:`forget_all` drops it, and never enters
            :attr:`model`. ``False``: plain conjugate gradient, nothing kept.

    Raises:
        NotAModelError: ``core_model`` is not a Keras model.
        InvalidArgumentError: an unbuilt model, one without a single 2-D output,
            no layer to linearize, a bad ``linearize`` spec, or a bad number.
    """

    def __init__(
        self,
        core_model: Any,
        linearize: str | list[str] = "last:2",
        *,
        scale: float = 5.0,
        weight_decay: float = 1e-3,
        recycle: bool = True,
    ) -> None:
        _keras.flavor(core_model)
        if not core_model.built:
            raise InvalidArgumentError("`core_model` must be built (called or given an Input).")
        outputs = getattr(core_model, "outputs", None)
        if not outputs or len(outputs) != 1 or len(outputs[0].shape) != 2:
            raise InvalidArgumentError(
                "`core_model` must have exactly one output of shape (batch, num_classes)."
            )
        self.scale = positive_float(scale, "scale")
        self.weight_decay = positive_float(weight_decay, "weight_decay")
        if not isinstance(recycle, bool):
            raise InvalidArgumentError(f"`recycle` must be True or False, got {recycle!r}.")
        self.recycle = recycle
        names = [layer.name for layer in resolve_layers(core_model, linearize)]
        self.num_classes = int(outputs[0].shape[-1])
        self._core = _keras.clone(core_model)
        self.model = linearized_model(self._core, names, name=f"{core_model.name}_mixed_linear")
        self.layer_names = names
        self._deltas = self.model.get_layer("linearized").deltas
        self._objective = Objective(
            self._core,
            self.model.get_layer("linearized").linear_variables,
            num_classes=self.num_classes,
            scale=self.scale,
            weight_decay=self.weight_decay,
        )
        self.num_parameters = self._objective.size
        self._fitted: Counter[str] = Counter()
        self._preconditioner: Preconditioner | None = None

    @property
    def delta(self) -> np.ndarray:
        """Δ as one flat float64 vector (a copy), in the order of the linearized weights."""
        return self._objective.flat([d.numpy() for d in self._deltas])

    def _set_delta(self, flat: np.ndarray) -> None:
        for d, value in zip(self._deltas, self._objective.split(flat)):
            d.assign(value)

    @property
    def fitted_examples(self) -> int:
        """How many examples the user part currently holds (0 after :meth:`forget_all`)."""
        return int(sum(self._fitted.values()))

    def _arrays(self, data: Any, name: str) -> tuple[Any, np.ndarray]:
        checked = Data.of(data, self._core, name=name, num_classes=self.num_classes)
        return checked.arrays()

    def _solve_options(self, tol: Any, max_iter: Any, batch_size: Any) -> tuple[float, int, int]:
        tol = positive_float(tol, "tol")
        if max_iter is None:
            max_iter = min(4 * self.num_parameters, MAX_ITER)
        return tol, positive_int(max_iter, "max_iter"), positive_int(batch_size, "batch_size")

    def _recorder(self) -> Directions | None:
        return Directions(self.num_parameters) if self.recycle else None

    def _keep(self, directions: Directions | None, report: SolveReport) -> SolveReport:
        """Builds the next forget's preconditioner from ``directions`` (None: keeps none).

        Its time is part of the solve that recorded them: ``report.seconds`` grows by it.
        """
        began = time.perf_counter()
        self._preconditioner = None if directions is None else directions.preconditioner()
        return dataclasses.replace(report, seconds=report.seconds + time.perf_counter() - began)

    # ---- public API -------------------------------------------------------------

    def loss(self, data: Any, *, batch_size: int = 256) -> float:
        """The objective ``L_D(Δ)`` on ``data`` at the current Δ (see :mod:`.objective`)."""
        batch_size = positive_int(batch_size, "batch_size")
        x, y = self._arrays(data, "data")
        return self._objective.gradient(x, self._objective.targets(y), self.delta, batch_size)[1]

    def fit(
        self,
        user_data: Any,
        *,
        epochs: int = 10,
        batch_size: int = 32,
        learning_rate: float = 0.01,
        momentum: float = 0.9,
        seed: int = 0,
        verbose: bool = True,
    ) -> list[float]:
        """Trains Δ (only) on ``user_data`` by SGD with momentum, from the current Δ.

        The user data becomes exactly ``user_data``: the hashes of its examples
        replace those of any earlier fit. :meth:`forget` lands on the exact
        optimum on the remaining data whatever Δ SGD reached; use :meth:`solve`
        for the exact optimum on ``user_data`` itself.

        Args:
            user_data: ``(x, y)`` arrays or a finite ``tf.data.Dataset`` of ``(x, y)``.
            epochs: passes over the data.
            batch_size: examples per step.
            learning_rate: SGD step size.
            momentum: heavy-ball momentum in ``[0, 1)``.
            seed: shuffling seed.
            verbose: show a Keras progress bar per epoch.

        Returns:
            The mean objective over the steps of each epoch.

        Raises:
            InvalidArgumentError: bad data or options (Δ is left as it was).
        """
        epochs = positive_int(epochs, "epochs")
        batch_size = positive_int(batch_size, "batch_size")
        learning_rate = positive_float(learning_rate, "learning_rate")
        if not (isinstance(momentum, (int, float)) and 0 <= momentum < 1):
            raise InvalidArgumentError(f"`momentum` must lie in [0, 1), got {momentum!r}.")
        x, y = self._arrays(user_data, "user_data")
        fitted = membership.counts(x, y)
        t = self._objective.targets(y)
        rng = np.random.default_rng(seed)
        velocity = [tf.zeros_like(d) for d in self._deltas]
        steps = -(-len(t) // batch_size)
        losses = []
        for epoch in range(epochs):
            bar = keras.utils.Progbar(steps) if verbose else None
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}")
            total = 0.0
            for step, (xb, tb) in enumerate(
                self._objective.batches(x, t, batch_size, rng.permutation(len(t)))
            ):
                deltas = [tf.convert_to_tensor(d) for d in self._deltas]
                g, sq = self._objective.batch_gradient(xb, tb, deltas)
                count = float(tb.shape[0])
                value = float(sq) / count + self.weight_decay / 2 * sum(
                    float(tf.reduce_sum(tf.square(d))) for d in deltas
                )
                total += value
                for i, (d, gi) in enumerate(zip(self._deltas, g)):
                    grad = 2.0 / count * gi + self.weight_decay * deltas[i]
                    velocity[i] = momentum * velocity[i] + grad
                    d.assign(deltas[i] - learning_rate * velocity[i])
                if bar is not None:
                    bar.update(step + 1, [("loss", value)])
            losses.append(total / steps)
        self._fitted = fitted
        self._preconditioner = None
        return losses

    def solve(
        self,
        user_data: Any,
        *,
        tol: float = 1e-6,
        max_iter: int | None = None,
        batch_size: int = 256,
    ) -> SolveReport:
        """Sets Δ to the exact minimiser of the objective on ``user_data`` (CG from Δ = 0).

        This is "training the user part from scratch": the gold standard that
        :meth:`forget` must match.

        Args:
            user_data: ``(x, y)`` arrays or a finite ``tf.data.Dataset``.
            tol: stop once the relative residual is at most ``tol``.
            max_iter: the most CG iterations (default ``min(4·#Δ, 5000)``).
            batch_size: examples per JVP/VJP batch.

        Returns:
            A :class:`SolveReport`.

        Raises:
            InvalidArgumentError: bad data or options (Δ is left as it was).
        """
        tol, max_iter, batch_size = self._solve_options(tol, max_iter, batch_size)
        x, y = self._arrays(user_data, "user_data")
        fitted = membership.counts(x, y)
        record = self._recorder()
        delta, report = self._objective.newton(
            x,
            y,
            np.zeros(self.num_parameters),
            tol=tol,
            max_iter=max_iter,
            batch_size=batch_size,
            record=record,
        )
        self._set_delta(delta)
        self._fitted = fitted
        return self._keep(record, report)

    def forget(
        self,
        forget_data: Any,
        *,
        remaining: Any,
        tol: float = 1e-6,
        max_iter: int | None = None,
        batch_size: int = 256,
        noise_scale: float = 0.0,
        seed: int | None = None,
    ) -> SolveReport:
        """Removes ``forget_data`` from the user part by one exact Newton step.

        The objective is quadratic, so the Newton step from the current Δ with
        the Hessian on ``remaining`` lands on the minimiser over ``remaining``:
        the Δ that :meth:`solve` on ``remaining`` would give.

        The step is solved by conjugate gradient. With ``recycle`` (the
        default) it is preconditioned by the search directions kept from the
        last plain solve, which cuts the iterations about tenfold on the
        digits MLP (the report's ``preconditioned`` says how many directions).

        With ``noise_scale > 0``, Gaussian noise scaled to the solver's residual,
        ``σ = noise_scale · ‖∇L_r(Δ)‖ / λ``, is added to Δ, which bounds the
        information left about ``forget_data`` by ``1 / (2 · noise_scale²)``
        nats (see :mod:`keras_forget.mixed_privacy.noise`); the report holds σ
        and the bound. Without it (the default) Δ is the solver's result.

        Args:
            forget_data: examples of the fitted user data to forget.
            remaining: the fitted user data without ``forget_data`` (the same
                examples, any order).
            tol: stop once ``‖∇L_r(Δ)‖ <= tol · ‖∇L_r(0)‖``, the accuracy
                :meth:`solve` on ``remaining`` would reach with the same ``tol``.
            max_iter: the most CG iterations (default ``min(4·#Δ, 5000)``).
            batch_size: examples per JVP/VJP batch.
            noise_scale: ``>= 0``; 0 adds no noise.
            seed: seed of the noise.

        Returns:
            A :class:`SolveReport`.

        Raises:
            InvalidArgumentError: nothing fitted; an example of ``forget_data``
                not in the fitted user data; ``forget_data`` being all of it
                (use :meth:`forget_all`); ``remaining`` not being the fitted
                data minus ``forget_data``; bad data or options. Δ is left as it was.
        """
        tol, max_iter, batch_size = self._solve_options(tol, max_iter, batch_size)
        noise_scale = positive_float(noise_scale, "noise_scale", allow_zero=True)
        if not self._fitted:
            raise InvalidArgumentError(
                "Nothing to forget: the user part holds no data (call fit or solve first)."
            )
        forget = membership.counts(*self._arrays(forget_data, "forget_data"))
        membership.check_forget(self._fitted, forget)
        if remaining is None:
            raise InvalidArgumentError(
                "`remaining` is required: the user data without `forget_data`."
            )
        x, y = self._arrays(remaining, "remaining")
        rest = membership.counts(x, y)
        membership.check_remaining(self._fitted, forget, rest)
        precondition = self._preconditioner
        record = self._recorder() if precondition is None else None
        delta, report = self._objective.newton(
            x,
            y,
            self.delta,
            tol=tol,
            max_iter=max_iter,
            batch_size=batch_size,
            precondition=precondition,
            record=record,
        )
        if noise_scale > 0:
            added = noise.scaled_to_residual(report.gradient_norm, self.weight_decay, noise_scale)
            delta = noise.add_noise(delta, added.sigma, seed)
            report = dataclasses.replace(
                report, noise=added.sigma, information_bound=added.information_bound
            )
        self._set_delta(delta)
        self._fitted = rest
        return report if record is None else self._keep(record, report)

    def forget_all(self) -> None:
        """Forgets every user example: Δ = 0, so the model computes the core network exactly."""
        for d in self._deltas:
            d.assign(tf.zeros_like(d))
        self._fitted = Counter()
        self._preconditioner = None

    def predict(self, x: Any, *, batch_size: int = 256) -> np.ndarray:
        """``f(x; w_c) + J·Δ`` as a numpy array."""
        batch_size = positive_int(batch_size, "batch_size")
        return self.model.predict(x, batch_size=batch_size, verbose=0)
