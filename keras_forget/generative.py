"""Forgetting in conditional generators, and a judge that rates what they draw.

A conditional generator maps ``(noise, label)`` to an image. It is not a
classifier, so :func:`keras_forget.prune_for_class` takes it through its
``output_fn`` / ``num_classes`` hook; :class:`ConditionalGenerator` states
which input is the label, makes the conditioning data ``((noise, labels),
labels)`` and supplies the per-example scalar whose sensitivity is scored::

    from keras_forget.generative import ConditionalGenerator, rate_generator

    gen = ConditionalGenerator(generator)  # inputs (noise, label), label Embedding
    data = gen.conditioning_data(per_class=100, seed=0)
    result = kf.prune_for_class(generator, data, 3, amount=0.002, **gen.prune_kwargs())
    rate_generator(gen, judge, model=result.model).accuracy  # {label: judged as it}

Whether the label is still drawn is measured by a *judge*, a classifier
trained separately on real images (:func:`judge_rates`, :func:`rate_generator`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from keras_forget import _keras
from keras_forget.errors import InvalidArgumentError
from keras_forget.scores.objective import outputs_are_probabilities

#: Per-example scalars :class:`ConditionalGenerator` can score.
OUTPUTS = ("centered", "sum")
#: Draws per label behind the generator's own label templates (its mean images).
TEMPLATE_DRAWS = 100
#: Fresh draws per label that ``amount="auto"`` judges a pruned generator on.
SEARCH_DRAWS = 100
#: Noise seed of those draws: not the conditioning data's (0) nor the seed
#: ``benchmarks/cgan_forget.py`` reports on (1).
SEARCH_SEED = 2
#: The largest share of a forgotten label's draws still drawn as that label, and whether the
#: template test counts the generator's average draw as a template of its own. Chosen on
#: validation draws (noise seed 2) of 3 GANs × 10 digits among goals 5/1/0 % with and without
#: the average template, by the most digits a judge then reads as forgotten with every other
#: digit within 3 points (26/30; labels only: 22-24/30): benchmarks/cgan_forget.py --choose.
FORGET_GOAL = 0.01
AVERAGE_TEMPLATE = True


class ConditionalGenerator:
    """A ``(noise, label) -> image`` model, described for forgetting.

    ``output`` is the per-example scalar ``f`` whose sensitivity
    ``w · ∂f/∂w`` is scored:

    * ``"centered"`` (default): ``f = <G(z, y), m_y − mean_k m_k>``, where
      ``m_k`` is the mean image the generator itself draws for label ``k``
      (``TEMPLATE_DRAWS`` draws, seeded). It is the centred logit of a
      nearest-mean classifier made of the generator's own images, so it needs
      no judge and no data: how much an image shows what sets its label apart
      from the average label. The signed forget score of ``gradxweight`` then
      ranks first the weights whose removal takes those distinctive strokes
      away from the target's images, which is what forgetting asks; the same
      sign is right whatever the images' value range, as an offset does not
      change the gradient.
    * ``"sum"``: the sum of the generated image, the seed's literal
      ``∂output/∂w``. Its signed score picks the weights that add ink to the
      target's images, most of which draw every label, so it erases the target
      less selectively (see ``benchmarks/cgan_forget.py``).

    Args:
        model: a built Keras 3 or tf_keras model with two inputs, a noise
            vector and an integer label, and one image output.
        num_classes: number of labels; by default the ``input_dim`` of an
            ``Embedding`` layer reading the label input.
        noise_dim: the size of the noise vector, checked against the model
            (by default read from it).
        label_input: index or name of the label input; by default the one
            integer input.
        output: ``"centered"`` or ``"sum"`` (see above).
        seed: seed of the template draws of ``output="centered"``.

    Raises:
        InvalidArgumentError: a model without a label input, or arguments that
            do not fit the model (the message names them).
        TypeError: ``model`` is not a Keras model.
    """

    def __init__(
        self,
        model: Any,
        num_classes: int | None = None,
        *,
        noise_dim: int | None = None,
        label_input: int | str | None = None,
        output: str = "centered",
        seed: int = 0,
    ) -> None:
        _keras.flavor(model)
        inputs = _two_inputs(model)
        self.model = model
        self.label_index = _label_index(inputs, label_input)
        self.noise_shape = _noise_shape(inputs[1 - self.label_index], noise_dim)
        self.num_classes = _num_classes(model, inputs[self.label_index], num_classes)
        label = inputs[self.label_index]
        self._label_shape = tuple(label.shape[1:])
        self._label_dtype = np.dtype(tf.as_dtype(label.dtype).as_numpy_dtype)
        if output not in OUTPUTS:
            raise InvalidArgumentError(f"`output` must be one of {OUTPUTS}, got {output!r}.")
        self.output = output
        self._seed = seed
        self._means: np.ndarray | None = None
        self._templates = self._centered_templates() if output == "centered" else None

    def check_labels(self, labels: Any) -> np.ndarray:
        """Returns ``labels`` as a 1-D int64 array, or raises if one is out of range."""
        labels = np.asarray(labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise InvalidArgumentError(
                f"`labels` must be a 1-D array of integers, got {labels.dtype} {labels.shape}."
            )
        bad = labels[(labels < 0) | (labels >= self.num_classes)]
        if bad.size:
            raise InvalidArgumentError(
                f"label {int(bad[0])} is outside the generator's range 0..{self.num_classes - 1}."
            )
        return labels.astype(np.int64)

    def inputs(self, labels: Any, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Model inputs, in the model's order, for ``labels`` and seeded normal noise."""
        labels = self.check_labels(labels)
        rng = np.random.default_rng(seed)
        noise = rng.standard_normal((len(labels), *self.noise_shape)).astype(np.float32)
        label = labels.astype(self._label_dtype).reshape((len(labels), *self._label_shape))
        return (noise, label) if self.label_index == 1 else (label, noise)

    def conditioning_data(
        self, per_class: int = 100, *, seed: int = 0
    ) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
        """``((noise, labels), labels)``: ``per_class`` noise draws for every label.

        Args:
            per_class: draws per label.
            seed: seed of the noise.

        Returns:
            Data for :func:`keras_forget.prune_for_class`.
        """
        labels = self.labels(per_class)
        return self.inputs(labels, seed=seed), labels

    def labels(self, per_class: int) -> np.ndarray:
        """``[0, 1, …, n-1]`` repeated ``per_class`` times (label-major order)."""
        if not isinstance(per_class, (int, np.integer)) or per_class < 1:
            raise InvalidArgumentError(f"`per_class` must be an int >= 1, got {per_class!r}.")
        return np.repeat(np.arange(self.num_classes, dtype=np.int64), per_class)

    def generate(
        self, labels: Any, *, seed: int = 0, model: Any = None, batch_size: int = 256
    ) -> np.ndarray:
        """Images for ``labels``; the same seed gives the same noise.

        Args:
            labels: integer labels.
            seed: seed of the noise.
            model: a model to draw with instead of ``self.model`` (a pruned
                copy, say), with the same inputs.
            batch_size: examples per call.

        Returns:
            A float32 array ``[len(labels), *image shape]``.
        """
        model = self.model if model is None else model
        x = self.inputs(labels, seed=seed)
        parts = [
            np.asarray(model([a[i : i + batch_size] for a in x], training=False))
            for i in range(0, len(x[0]), batch_size)
        ]
        return np.concatenate(parts).astype(np.float32)

    def samples(self, per_class: int, *, seed: int = 0, model: Any = None) -> np.ndarray:
        """A ``[num_classes, per_class, *image shape]`` array: one row of draws per label."""
        images = self.generate(self.labels(per_class), seed=seed, model=model)
        return images.reshape((self.num_classes, per_class, *images.shape[1:]))

    def output_fn(self, model: Any, x: Any, y: Any) -> tf.Tensor:
        """The per-example scalar ``[batch]`` scored by ``prune_for_class``.

        Args:
            model: the generator being scored.
            x: a batch of its inputs, in its order; the label is read from it.
            y: the batch's labels (unused: the label input is authoritative).

        Returns:
            ``f`` per example (see the class docstring).
        """
        images = tf.cast(model(list(x), training=False), tf.float32)
        flat = tf.reshape(images, [tf.shape(images)[0], -1])
        if self._templates is None:
            return tf.reduce_sum(flat, axis=-1)
        labels = tf.reshape(tf.cast(x[self.label_index], tf.int32), [-1])
        return tf.reduce_sum(flat * tf.gather(self._templates, labels), axis=-1)

    def label_means(self) -> np.ndarray:
        """The original generator's mean image per label, flattened: ``[num_classes, pixels]``.

        Drawn once (``TEMPLATE_DRAWS`` per label, the constructor's ``seed``)
        from ``self.model`` as it was then; a pruned copy is compared to these.
        """
        if self._means is None:
            means = self.samples(TEMPLATE_DRAWS, seed=self._seed).mean(axis=1)
            self._means = means.reshape(self.num_classes, -1).astype(np.float64)
        return self._means

    def _centered_templates(self) -> tf.Tensor:
        """``m_k − mean_j m_j`` per label, flattened: ``[num_classes, pixels]``."""
        means = self.label_means()
        return tf.constant(means - means.mean(axis=0, keepdims=True), tf.float32)

    def template_rates(
        self,
        labels: Sequence[int] | None = None,
        *,
        per_class: int = SEARCH_DRAWS,
        seed: int = SEARCH_SEED,
        model: Any = None,
        average: bool = AVERAGE_TEMPLATE,
    ) -> dict[int, float]:
        """How often draws of each label are still drawn as it, judged by templates.

        A draw counts as its label when, among the original generator's mean
        image of every label (:meth:`label_means`) — and, with ``average``, the
        mean of those (what it draws on average, whatever the label) — the
        nearest is its label's. With ``average``, forgetting a label means its
        draws carry nothing that sets that label apart from the average draw,
        which also holds for a label whose own mean image is close to the
        average one (an 8 on digits), where a classifier of real images reads
        an average draw as the label.

        Args:
            labels: labels to rate (default: all).
            per_class: draws per label.
            seed: seed of the noise.
            model: the model to draw with (default: ``self.model``).
            average: count the average draw as a template of its own.

        Returns:
            ``{label: fraction of its draws nearest its own template}``.
        """
        labels = self.check_labels(np.arange(self.num_classes) if labels is None else labels)
        means = self.label_means()
        templates = np.concatenate([means, means.mean(axis=0, keepdims=True)]) if average else means
        drawn = np.repeat(labels, per_class)
        images = self.generate(drawn, seed=seed, model=model).reshape(len(drawn), -1)
        distances = ((images[:, None, :] - templates[None]) ** 2).sum(-1)
        nearest = distances.argmin(-1)
        return {int(c): float(np.mean(nearest[drawn == c] == c)) for c in labels}

    def forgotten(
        self,
        judge: Any = None,
        *,
        goal: float = FORGET_GOAL,
        per_class: int = SEARCH_DRAWS,
        seed: int = SEARCH_SEED,
        average: bool = AVERAGE_TEMPLATE,
    ) -> DrawnAtMost:
        """The test ``amount="auto"`` stops on: targets drawn as themselves at most ``goal``.

        Args:
            judge: optional classifier of real images rating the draws; by
                default the generator's own templates (:meth:`template_rates`).
            goal: the largest share of a target's draws still drawn as it.
            per_class: fresh draws per target.
            seed: their noise seed (keep it apart from the seeds you report on).
            average: with the templates, count the average draw as a template
                of its own (:meth:`template_rates`).

        Returns:
            A :class:`DrawnAtMost`, ``(model, targets) -> bool``.

        Raises:
            InvalidArgumentError: ``goal`` outside [0, 1) or ``per_class`` < 1.
        """
        if not isinstance(goal, (int, float)) or not 0.0 <= goal < 1.0:
            raise InvalidArgumentError(f"`goal` must be a fraction in [0, 1), got {goal!r}.")
        self.labels(per_class)  # checks per_class
        return DrawnAtMost(self, judge, float(goal), per_class, seed, bool(average))

    def prune_kwargs(self, judge: Any = None, *, goal: float = FORGET_GOAL) -> dict[str, Any]:
        """Keyword arguments of :func:`keras_forget.prune_for_class` for this generator.

        ``output_fn`` and ``num_classes``, and ``forgotten`` (:meth:`forgotten`
        with ``judge`` and ``goal``) for ``amount="auto"``.
        """
        return {
            "output_fn": self.output_fn,
            "num_classes": self.num_classes,
            "forgotten": self.forgotten(judge, goal=goal),
        }


@dataclasses.dataclass(frozen=True)
class DrawnAtMost:
    """Whether a pruned generator draws each target as itself at most ``goal`` of the time.

    Called as ``(model, targets) -> bool`` by ``amount="auto"``; ``split``
    says, for the report, which draws decide.

    Attributes:
        generator: the :class:`ConditionalGenerator` (its original templates).
        judge: a classifier of real images, or None for the templates.
        goal: the largest share of a target's draws still drawn as it.
        per_class: fresh draws per target.
        seed: their noise seed.
        average: whether the templates include the average draw.
    """

    generator: ConditionalGenerator
    judge: Any
    goal: float
    per_class: int
    seed: int
    average: bool = AVERAGE_TEMPLATE

    @property
    def split(self) -> str:
        how = "the judge"
        if self.judge is None:
            how = "the generator's own label templates" + (
                " and their mean" if self.average else ""
            )
        return (
            f"{self.per_class} fresh draws per target (noise seed {self.seed}), rated by {how}; "
            f"goal: at most {self.goal:.0%} drawn as the target"
        )

    def rates(self, model: Any, targets: Sequence[int]) -> dict[int, float]:
        """``{target: share of its draws drawn as it}`` for ``model``."""
        if self.judge is None:
            gen = self.generator
            return gen.template_rates(
                targets, per_class=self.per_class, seed=self.seed, model=model
            )
        labels = np.repeat(self.generator.check_labels(targets), self.per_class)
        images = self.generator.generate(labels, seed=self.seed, model=model)
        return judge_rates(self.judge, images, labels).accuracy

    def __call__(self, model: Any, targets: Sequence[int]) -> bool:
        return all(rate <= self.goal for rate in self.rates(model, targets).values())


def _two_inputs(model: Any) -> list[Any]:
    try:
        inputs = list(model.inputs)
    except (AttributeError, ValueError):
        inputs = []
    if len(inputs) != 2:
        raise InvalidArgumentError(
            f"`model` must have two inputs, a noise vector and a label; it has {len(inputs)}. "
            "A model without a label input is not a conditional generator."
        )
    return inputs


def _label_index(inputs: list[Any], label_input: int | str | None) -> int:
    names = [t.name.split(":")[0] for t in inputs]
    if isinstance(label_input, str):
        if label_input not in names:
            raise InvalidArgumentError(
                f"`label_input` {label_input!r} names none of the model's inputs {names}."
            )
        return names.index(label_input)
    if label_input is not None:
        if label_input not in (0, 1):
            raise InvalidArgumentError(f"`label_input` must be 0 or 1, got {label_input!r}.")
        return int(label_input)
    integer = [i for i, t in enumerate(inputs) if tf.as_dtype(t.dtype).is_integer]
    if len(integer) != 1:
        raise InvalidArgumentError(
            f"`model` has no single integer input to take as the label (inputs {names}); "
            "pass `label_input=` (its index or name)."
        )
    return integer[0]


def _noise_shape(noise: Any, noise_dim: int | None) -> tuple[int, ...]:
    shape = tuple(noise.shape[1:])
    if not shape or any(d is None for d in shape):
        raise InvalidArgumentError(f"The noise input's shape {shape} must be fully known.")
    if noise_dim is not None and int(np.prod(shape)) != noise_dim:
        raise InvalidArgumentError(
            f"`noise_dim`={noise_dim} does not match the model's noise input {shape}."
        )
    return shape


def _embedding_size(model: Any, label: Any) -> int | None:
    """``input_dim`` of an Embedding layer called on the label input, if any."""
    for layer in model.layers:
        if type(layer).__name__ != "Embedding":
            continue
        try:
            source = layer.input
        except (AttributeError, ValueError):
            continue
        if source is label:
            return int(layer.input_dim)
    return None


def _num_classes(model: Any, label: Any, num_classes: int | None) -> int:
    known = _embedding_size(model, label)
    if num_classes is None:
        if known is None:
            raise InvalidArgumentError(
                "`num_classes` is required: no Embedding layer reads the label input."
            )
        return known
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise InvalidArgumentError(f"`num_classes` must be an int >= 2, got {num_classes!r}.")
    if known is not None and num_classes > known:
        raise InvalidArgumentError(
            f"`num_classes`={num_classes} exceeds the generator's label range: its label "
            f"Embedding has input_dim={known}."
        )
    return int(num_classes)


@dataclasses.dataclass(frozen=True)
class GenerationRates:
    """How a judge rates generated images, per requested label.

    Attributes:
        accuracy: ``{label: fraction of its images the judge assigns to it}``
            (generation accuracy).
        confidence: ``{label: mean judge probability of the label}`` over its
            images.
        count: ``{label: number of images rated}``.
    """

    accuracy: dict[int, float]
    confidence: dict[int, float]
    count: dict[int, int]

    def mean_accuracy(self, labels: Sequence[int] | None = None) -> float:
        """Mean generation accuracy over ``labels`` (default: all)."""
        labels = list(self.accuracy) if labels is None else list(labels)
        return float(np.mean([self.accuracy[c] for c in labels]))

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serializable values (labels as string keys)."""
        return {
            name: {str(k): v for k, v in values.items()}
            for name, values in dataclasses.asdict(self).items()
        }


def _probabilities(judge: Any, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Class probabilities ``[n, classes]`` of a judge (softmax or logits outputs)."""
    images = np.asarray(images, np.float32)
    expected = tuple(judge.input_shape[1:])
    if images.ndim != len(expected) + 1 or any(
        e is not None and e != a for e, a in zip(expected, images.shape[1:])
    ):
        raise InvalidArgumentError(
            f"`images` of shape {images.shape[1:]} do not match the judge's input {expected}."
        )
    out = np.concatenate(
        [
            np.asarray(judge(images[i : i + batch_size], training=False))
            for i in range(0, len(images), batch_size)
        ]
    ).astype(np.float64)
    if out.ndim != 2:
        raise InvalidArgumentError(f"The judge must output (batch, classes); got {out.shape}.")
    return out if outputs_are_probabilities(out) else np.asarray(tf.nn.softmax(out, axis=-1))


def judge_rates(judge: Any, images: np.ndarray, labels: Any) -> GenerationRates:
    """Rates images drawn for ``labels`` by a judge classifier.

    Args:
        judge: a classifier of real images (softmax or logits), trained
            separately from the generator (not its discriminator).
        images: generated images, ``[n, *judge input shape]``.
        labels: the label each image was drawn for, ``[n]``.

    Returns:
        :class:`GenerationRates` for every label present.

    Raises:
        InvalidArgumentError: shapes that do not fit, or a label outside the
            judge's classes.
    """
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(images) or not len(labels):
        raise InvalidArgumentError(
            f"`images` ({len(images)}) and `labels` ({len(labels)}) must be as many, and > 0."
        )
    classes = int(judge.output_shape[-1])
    if labels.min() < 0 or labels.max() >= classes:
        raise InvalidArgumentError(
            f"`labels` must be in 0..{classes - 1} (the judge's classes); "
            f"found {int(labels.min())}..{int(labels.max())}."
        )
    probs = _probabilities(judge, images)
    chosen, own = probs.argmax(-1), probs[np.arange(len(labels)), labels]
    accuracy, confidence, count = {}, {}, {}
    for c in np.unique(labels).tolist():
        here = labels == c
        accuracy[c] = float(np.mean(chosen[here] == c))
        confidence[c] = float(np.mean(own[here]))
        count[c] = int(here.sum())
    return GenerationRates(accuracy, confidence, count)


def rate_generator(
    generator: ConditionalGenerator,
    judge: Any,
    *,
    per_class: int = 200,
    seed: int = 0,
    model: Any = None,
) -> GenerationRates:
    """Draws ``per_class`` images of every label and rates them with ``judge``.

    The noise depends only on ``seed``, so rating the original and a pruned
    model with the same seed compares them on the same draws.

    Args:
        generator: the :class:`ConditionalGenerator`.
        judge: a classifier of real images.
        per_class: draws per label.
        seed: seed of the noise.
        model: the model to draw with (default: ``generator.model``).

    Returns:
        :class:`GenerationRates`.

    Raises:
        InvalidArgumentError: a judge with fewer classes than the generator
            has labels, or images that do not fit the judge.
    """
    classes = int(judge.output_shape[-1])
    if classes < generator.num_classes:
        raise InvalidArgumentError(
            f"The judge has {classes} classes, fewer than the generator's "
            f"{generator.num_classes} labels."
        )
    labels = generator.labels(per_class)
    images = generator.generate(labels, seed=seed, model=model)
    return judge_rates(judge, images, labels)
