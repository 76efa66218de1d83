"""MixedLinear: a fixed core network plus a linear user part that can be forgotten exactly.

The objective on user data ``D`` (``n`` examples, ``K`` outputs) is

    L_D(Δ) = (1/n) Σ_i ‖f(x_i; w_c) + J_i·Δ − s·onehot(y_i)‖² + (λ/2)‖Δ‖²

(squared error summed over the ``K`` outputs, averaged over examples; ``s`` is
``scale``, ``λ`` is ``weight_decay``). It is quadratic in Δ with

    ∇L_D(Δ) = (2/n) Jᵀ(f + JΔ − t) + λΔ,        H_D = (2/n) JᵀJ + λI,

so its minimiser is one Newton step from any Δ, solved here by conjugate
gradient with Hessian-vector products ``(2/n) Σ_batches J_bᵀ(J_b v) + λv``.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_forget import _keras
from keras_forget.data import Data
from keras_forget.errors import InvalidArgumentError, NotAModelError
from keras_forget.mixed_privacy import membership
from keras_forget.mixed_privacy.linearize import LinearizedModel, jvp, resolve_layers, vjp
from keras_forget.mixed_privacy.solve import SolveReport, timed_solve


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidArgumentError(f"`{name}` must be an int >= 1, got {value!r}.")
    return int(value)


def _positive_float(value: Any, name: str, *, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise InvalidArgumentError(f"`{name}` must be a finite number {bound}, got {value!r}.")
    return float(value)


class MixedLinear:
    """A core network kept fixed plus a linearized user part Δ trained on user data.

    ``f(x) = f(x; w_c) + J_w f(x; w_c)·Δ`` over the weights ``w`` of the
    ``linearize``-d layers (Golatkar et al., "Mixed-Privacy Forgetting in Deep
    Networks", CVPR 2021). The loss is quadratic in Δ (see the module
    docstring), so forgetting part of the user data is one exact Newton step
    and forgetting all of it is ``Δ = 0``. The core network should output
    logits: it is the output that is linearized and regressed on
    ``scale·onehot(y)``.

    The caller's model is never changed: a private copy is linearized.

    Args:
        core_model: a built Keras 3 classifier with one ``(batch, K)`` output,
            trained on the core data.
        linearize: ``"last:k"`` (the last ``k`` top-level layers holding
            trainable weights) or a list of layer names.
        scale: the targets are ``scale·onehot(y)`` (5 in the paper's public code).
        weight_decay: ``λ > 0`` in ``(λ/2)‖Δ‖²``.

    Raises:
        NotAModelError: ``core_model`` is not a Keras 3 model.
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
    ) -> None:
        if _keras.flavor(core_model) != "keras3":
            raise NotAModelError("`core_model`: MixedLinear supports Keras 3 models only.")
        if not core_model.built:
            raise InvalidArgumentError("`core_model` must be built (called or given an Input).")
        outputs = getattr(core_model, "outputs", None)
        if not outputs or len(outputs) != 1 or len(outputs[0].shape) != 2:
            raise InvalidArgumentError(
                "`core_model` must have exactly one output of shape (batch, num_classes)."
            )
        self.scale = _positive_float(scale, "scale")
        self.weight_decay = _positive_float(weight_decay, "weight_decay")
        names = [layer.name for layer in resolve_layers(core_model, linearize)]
        self.num_classes = int(outputs[0].shape[-1])
        self._core = _keras.clone(core_model)
        self.model = LinearizedModel(self._core, names, name=f"{core_model.name}_mixed_linear")
        self.layer_names = names
        self._vars = self.model.linear_variables
        self._shapes = [tuple(v.shape) for v in self._vars]
        self._sizes = [int(np.prod(s)) for s in self._shapes]
        self.num_parameters = int(sum(self._sizes))
        self._fitted: Counter[str] = Counter()
        self._grad_fn = tf.function(self._batch_gradient, reduce_retracing=True)
        self._hvp_fn = tf.function(self._batch_hvp, reduce_retracing=True)

    # ---- Δ as a flat vector -------------------------------------------------

    @property
    def delta(self) -> np.ndarray:
        """Δ as one flat float64 vector (a copy), in the order of the linearized weights."""
        return np.concatenate([np.ravel(d.numpy()) for d in self.model.deltas]).astype(np.float64)

    def _split(self, flat: np.ndarray) -> list[tf.Tensor]:
        parts = np.split(np.asarray(flat), np.cumsum(self._sizes)[:-1])
        return [
            tf.constant(p.reshape(s), dtype=v.dtype)
            for p, s, v in zip(parts, self._shapes, self._vars)
        ]

    def _set_delta(self, flat: np.ndarray) -> None:
        for d, value in zip(self.model.deltas, self._split(flat)):
            d.assign(value)

    @staticmethod
    def _flat(tensors: list[tf.Tensor]) -> np.ndarray:
        return np.concatenate([np.ravel(t.numpy()) for t in tensors]).astype(np.float64)

    @property
    def fitted_examples(self) -> int:
        """How many examples the user part currently holds (0 after :meth:`forget_all`)."""
        return int(sum(self._fitted.values()))

    # ---- batch kernels (traced once) ------------------------------------------

    def _batch_gradient(self, x: Any, t: tf.Tensor, delta: list[tf.Tensor]) -> tuple:
        out, change = jvp(self._core, self._vars, x, delta)
        r = out + change - t
        return vjp(self._core, self._vars, x, r), tf.reduce_sum(tf.square(r))

    def _batch_hvp(self, x: Any, v: list[tf.Tensor]) -> list[tf.Tensor]:
        _, jv = jvp(self._core, self._vars, x, v)
        return vjp(self._core, self._vars, x, jv)

    # ---- data -------------------------------------------------------------------

    def _arrays(self, data: Any, name: str) -> tuple[Any, np.ndarray]:
        checked = Data.of(data, self._core, name=name, num_classes=self.num_classes)
        return checked.arrays()

    def _targets(self, y: np.ndarray) -> np.ndarray:
        return (self.scale * np.eye(self.num_classes, dtype=np.float32)[y]).astype(np.float32)

    @staticmethod
    def _batches(x: Any, t: np.ndarray, batch_size: int, order: np.ndarray | None = None):
        index = np.arange(len(t)) if order is None else order
        for start in range(0, len(t), batch_size):
            rows = index[start : start + batch_size]
            xb = tf.nest.map_structure(lambda a, rows=rows: tf.convert_to_tensor(a[rows]), x)
            yield xb, tf.convert_to_tensor(t[rows])

    def _gradient(self, x: Any, t: np.ndarray, delta: np.ndarray, batch_size: int) -> tuple:
        """``(∇L(Δ), L(Δ))`` over all of ``(x, t)``, accumulated in float64."""
        n = len(t)
        tangents = self._split(delta)
        total = np.zeros(self.num_parameters)
        sq = 0.0
        for xb, tb in self._batches(x, t, batch_size):
            g, s = self._grad_fn(xb, tb, tangents)
            total += self._flat(g)
            sq += float(s)
        lam = self.weight_decay
        return 2.0 / n * total + lam * delta, sq / n + lam / 2 * float(delta @ delta)

    def _hessian(self, x: Any, batch_size: int, n: int):
        lam = self.weight_decay

        def apply(v: np.ndarray) -> np.ndarray:
            tangents = self._split(v)
            total = np.zeros(self.num_parameters)
            for xb, _ in self._batches(x, np.zeros(n), batch_size):
                total += self._flat(self._hvp_fn(xb, tangents))
            return 2.0 / n * total + lam * v

        return apply

    def _newton(
        self, x: Any, y: np.ndarray, start: np.ndarray, tol: float, max_iter: int, batch_size: int
    ) -> tuple[np.ndarray, SolveReport]:
        t = self._targets(y)
        g, _ = self._gradient(x, t, start, batch_size)
        step, report = timed_solve(
            self._hessian(x, batch_size, len(t)), -g, tol=tol, max_iter=max_iter, examples=len(t)
        )
        return start + step, report

    def _solve_options(self, tol: Any, max_iter: Any, batch_size: Any) -> tuple[float, int, int]:
        tol = _positive_float(tol, "tol")
        if max_iter is None:
            max_iter = min(4 * self.num_parameters, 1000)
        return tol, _positive_int(max_iter, "max_iter"), _positive_int(batch_size, "batch_size")

    # ---- public API -------------------------------------------------------------

    def loss(self, data: Any, *, batch_size: int = 256) -> float:
        """The objective ``L_D(Δ)`` on ``data`` at the current Δ (see the module docstring)."""
        batch_size = _positive_int(batch_size, "batch_size")
        x, y = self._arrays(data, "data")
        return self._gradient(x, self._targets(y), self.delta, batch_size)[1]

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
        epochs = _positive_int(epochs, "epochs")
        batch_size = _positive_int(batch_size, "batch_size")
        learning_rate = _positive_float(learning_rate, "learning_rate")
        if not (isinstance(momentum, (int, float)) and 0 <= momentum < 1):
            raise InvalidArgumentError(f"`momentum` must lie in [0, 1), got {momentum!r}.")
        x, y = self._arrays(user_data, "user_data")
        fitted = membership.counts(x, y)
        t = self._targets(y)
        rng = np.random.default_rng(seed)
        velocity = [tf.zeros_like(d) for d in self.model.deltas]
        steps = -(-len(t) // batch_size)
        losses = []
        for epoch in range(epochs):
            bar = keras.utils.Progbar(steps) if verbose else None
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}")
            total = 0.0
            for step, (xb, tb) in enumerate(
                self._batches(x, t, batch_size, rng.permutation(len(t)))
            ):
                deltas = [tf.convert_to_tensor(d) for d in self.model.deltas]
                g, sq = self._grad_fn(xb, tb, deltas)
                count = float(tb.shape[0])
                value = float(sq) / count + self.weight_decay / 2 * sum(
                    float(tf.reduce_sum(tf.square(d))) for d in deltas
                )
                total += value
                for i, (d, gi) in enumerate(zip(self.model.deltas, g)):
                    grad = 2.0 / count * gi + self.weight_decay * deltas[i]
                    velocity[i] = momentum * velocity[i] + grad
                    d.assign(deltas[i] - learning_rate * velocity[i])
                if bar is not None:
                    bar.update(step + 1, [("loss", value)])
            losses.append(total / steps)
        self._fitted = fitted
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
            max_iter: the most CG iterations (default ``min(4·#Δ, 1000)``).
            batch_size: examples per JVP/VJP batch.

        Returns:
            A :class:`SolveReport`.

        Raises:
            InvalidArgumentError: bad data or options (Δ is left as it was).
        """
        tol, max_iter, batch_size = self._solve_options(tol, max_iter, batch_size)
        x, y = self._arrays(user_data, "user_data")
        fitted = membership.counts(x, y)
        delta, report = self._newton(x, y, np.zeros(self.num_parameters), tol, max_iter, batch_size)
        self._set_delta(delta)
        self._fitted = fitted
        return report

    def forget(
        self,
        forget_data: Any,
        *,
        remaining: Any,
        tol: float = 1e-6,
        max_iter: int | None = None,
        batch_size: int = 256,
    ) -> SolveReport:
        """Removes ``forget_data`` from the user part by one exact Newton step.

        The objective is quadratic, so the Newton step from the current Δ with
        the Hessian on ``remaining`` lands on the minimiser over ``remaining``:
        the Δ that :meth:`solve` on ``remaining`` would give.

        Args:
            forget_data: examples of the fitted user data to forget.
            remaining: the fitted user data without ``forget_data`` (the same
                examples, any order).
            tol: stop once the relative residual is at most ``tol``.
            max_iter: the most CG iterations (default ``min(4·#Δ, 1000)``).
            batch_size: examples per JVP/VJP batch.

        Returns:
            A :class:`SolveReport`.

        Raises:
            InvalidArgumentError: nothing fitted; an example of ``forget_data``
                not in the fitted user data; ``forget_data`` being all of it
                (use :meth:`forget_all`); ``remaining`` not being the fitted
                data minus ``forget_data``; bad data or options. Δ is left as it was.
        """
        tol, max_iter, batch_size = self._solve_options(tol, max_iter, batch_size)
        if not self._fitted:
            raise InvalidArgumentError(
                "Nothing to forget: the user part holds no data (call fit or solve first)."
            )
        fx, fy = self._arrays(forget_data, "forget_data")
        forget = membership.counts(fx, fy)
        unknown = forget - self._fitted
        if unknown:
            raise InvalidArgumentError(
                f"`forget_data`: {sum(unknown.values())} of its {len(fy)} examples are not "
                "part of the user data the model was fit on (compared by content: inputs "
                "and labels)."
            )
        if forget == self._fitted:
            raise InvalidArgumentError(
                "`forget_data` is all of the user data: call forget_all() (sets Δ = 0 exactly)."
            )
        if remaining is None:
            raise InvalidArgumentError(
                "`remaining` is required: the user data without `forget_data`."
            )
        x, y = self._arrays(remaining, "remaining")
        rest = membership.counts(x, y)
        if rest != self._fitted - forget:
            missing = sum(((self._fitted - forget) - rest).values())
            extra = sum((rest - (self._fitted - forget)).values())
            raise InvalidArgumentError(
                f"`remaining` must be exactly the fitted user data without `forget_data` "
                f"({self.fitted_examples - len(fy)} examples); it lacks {missing} of them and "
                f"has {extra} others."
            )
        delta, report = self._newton(x, y, self.delta, tol, max_iter, batch_size)
        self._set_delta(delta)
        self._fitted = rest
        return report

    def forget_all(self) -> None:
        """Forgets every user example: Δ = 0, so the model computes the core network exactly."""
        for d in self.model.deltas:
            d.assign(tf.zeros_like(d))
        self._fitted = Counter()

    def predict(self, x: Any, *, batch_size: int = 256) -> np.ndarray:
        """``f(x; w_c) + J·Δ`` as a numpy array."""
        batch_size = _positive_int(batch_size, "batch_size")
        return self.model.predict(x, batch_size=batch_size, verbose=0)
