"""The front door for data: what users pass, checked once and described once.

Accepted: a pair ``(x, y)`` of arrays (``x`` a tuple of arrays for a model with
several inputs), or a ``tf.data.Dataset`` of ``(x, y)`` pairs, batched or not.
Labels are integers (shape ``(N,)`` or ``(N, 1)``) or one-hot rows as wide as
the model's outputs. :meth:`Data.of` checks all of it before any work — the
structure, the labels (format, range, classes present), the inputs (shape
against the model, finite values) and, for datasets, that they end — and
returns a :class:`Data` that every later stage reads batch by batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from keras_forget import _keras, fingerprints
from keras_forget.errors import InvalidArgumentError

Batch = tuple[Any, np.ndarray]
LABEL_FORMATS = ("sparse", "one_hot")


def size(x: Any) -> int:
    """Number of examples in ``x`` (an array, or a tuple of arrays for multi-input models)."""
    return len(tf.nest.flatten(x)[0])


def take(x: Any, index: Any) -> Any:
    """``x[index]`` for an array or each array of a multi-input tuple."""
    return tf.nest.map_structure(lambda a: np.asarray(a)[index], x)


def input_rank(model: Any) -> int | None:
    """Rank of a batch of the model's (first) input, to tell batched datasets from unbatched."""
    shape = _keras.input_shape(model)
    if isinstance(shape, list):
        shape = shape[0]
    return len(shape) if shape is not None else None


def _label_format(y: np.ndarray, name: str) -> str:
    """``"sparse"`` or ``"one_hot"`` for a batch of labels; raises on anything else."""
    if y.dtype.kind not in "iuf":
        raise InvalidArgumentError(
            f"`{name}`: labels must be integers or one-hot rows of numbers; got dtype {y.dtype}."
        )
    if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
        if not np.all(np.isfinite(y)):
            raise InvalidArgumentError(f"`{name}`: labels contain NaN or infinity.")
        if y.dtype.kind == "f" and not np.all(y == np.round(y)):
            raise InvalidArgumentError(
                f"`{name}`: labels of shape {y.shape} must be whole class numbers; "
                f"found fractions such as {float(y[y != np.round(y)][0])!r}."
            )
        return "sparse"
    if y.ndim != 2:
        raise InvalidArgumentError(
            f"`{name}`: labels must have shape (N,) or (N, classes); got {y.shape}."
        )
    if not (np.all(np.isfinite(y)) and np.all((y >= 0) & (y <= 1))) or not np.allclose(
        y.sum(-1), 1.0, atol=1e-3
    ):
        raise InvalidArgumentError(
            f"`{name}`: labels of shape {y.shape} must be one-hot rows (values in [0, 1] "
            f"summing to 1)."
        )
    return "one_hot"


def _to_int(y: np.ndarray, label_format: str) -> np.ndarray:
    if label_format == "one_hot":
        return y.argmax(-1).astype(np.int64)
    return y.reshape(len(y)).astype(np.int64)


def _check_inputs(x: Any, name: str, shapes: Sequence[tuple | None] | None) -> None:
    """Input shapes against the model's and finite values, for one batch."""
    parts = tf.nest.flatten(x)
    if shapes is not None:
        if len(parts) != len(shapes):
            raise InvalidArgumentError(
                f"`{name}`: the model takes {len(shapes)} input(s); x has {len(parts)}."
            )
        for part, expected in zip(parts, shapes):
            actual = tuple(np.shape(part)[1:])
            if expected is not None and (
                len(actual) != len(expected)
                or any(e is not None and e != a for e, a in zip(expected, actual))
            ):
                raise InvalidArgumentError(
                    f"`{name}`: inputs of shape {actual} do not match the model's input "
                    f"{tuple(expected)}."
                )
    for part in parts:
        part = np.asarray(part)
        if part.dtype.kind == "f" and not np.all(np.isfinite(part)):
            raise InvalidArgumentError(f"`{name}`: inputs contain NaN or infinity.")


def _inputs(x: Any, shapes: list | None) -> Any:
    """An array, or a tuple of arrays for a model with several inputs."""
    several = len(shapes) > 1 if shapes is not None else isinstance(x, tuple)
    if several and isinstance(x, (list, tuple)):
        return tuple(np.asarray(a) for a in x)
    return np.asarray(x)


def _model_input_shapes(model: Any) -> list[tuple | None] | None:
    shape = _keras.input_shape(model) if model is not None else None
    if shape is None:
        return None
    shapes = shape if isinstance(shape, list) else [shape]
    return [None if s is None else tuple(s[1:]) for s in shapes]


class Data:
    """Labelled data, checked once; every stage reads it through :meth:`batches`.

    Build it with :meth:`Data.of`. Attributes:

    Attributes:
        name: the argument it came from, for messages (``"data"``, ``"eval_data"``).
        label_format: ``"sparse"`` (integer labels) or ``"one_hot"``.
        counts: ``{class: number of examples}``; its keys are the classes present.
        size: number of examples.
        steps: for a dataset, the most batches read (None: the whole dataset).
    """

    def __init__(
        self,
        source: Any,
        *,
        name: str,
        label_format: str,
        labels: np.ndarray,
        batched: bool,
        steps: int | None,
        batch_size: int,
        width: int | None = None,
        num_batches: int | None = None,
    ) -> None:
        self._source = source
        self._num_batches = num_batches
        self._width = width
        self.name = name
        self.label_format = label_format
        self._labels = labels
        self._batched = batched
        self.steps = steps
        self._batch_size = batch_size
        classes, counts = np.unique(labels, return_counts=True)
        self.counts = {int(c): int(n) for c, n in zip(classes, counts)}
        self.size = int(labels.size)

    @property
    def classes(self) -> tuple[int, ...]:
        """The classes present, sorted."""
        return tuple(self.counts)

    def num_batches(self, batch_size: int) -> int:
        """How many batches one pass yields (``batch_size`` applies to arrays, unbatched data)."""
        if self._batched:
            if self._num_batches is not None:
                return self._num_batches
            return -(-self.size // self._batch_size)
        return -(-self.size // batch_size)

    def check_classes(self, num_classes: int) -> Data:
        """Checks the labels against a model with ``num_classes`` outputs; returns ``self``.

        Raises:
            InvalidArgumentError: one-hot rows of another width, or labels out of range.
        """
        if self._width is not None and self._width != num_classes:
            raise InvalidArgumentError(
                f"`{self.name}`: labels are one-hot rows of {self._width} classes, but the model "
                f"has {num_classes} outputs. Give integer labels of shape (N,) or one-hot rows "
                f"of width {num_classes}."
            )
        _check_range(self._labels, self.name, num_classes)
        return self

    @property
    def labels(self) -> np.ndarray:
        """Every integer label, in order (a copy)."""
        return self._labels.copy()

    @classmethod
    def of(
        cls,
        data: Any,
        model: Any = None,
        *,
        name: str = "data",
        num_classes: int | None = None,
        steps: int | None = None,
        batch_size: int = 64,
    ) -> Data:
        """Checks ``data`` and describes it; a :class:`Data` is returned as it is.

        Args:
            data: ``(x, y)`` arrays or a ``tf.data.Dataset`` of ``(x, y)``.
            model: the model it will be fed to: its input shapes are checked,
                and a batched dataset is told from an unbatched one by rank.
            name: the argument's name, used in every message.
            num_classes: the labels must lie in ``0..num_classes-1`` (one-hot
                rows must be this wide).
            steps: for a dataset, read at most this many batches; required for
                an infinite (``.repeat()``-ed) dataset.
            batch_size: batch size for arrays and unbatched datasets.

        Returns:
            A :class:`Data`.

        Raises:
            InvalidArgumentError: naming ``name`` and what is wrong.
        """
        if isinstance(data, Data):
            return data
        if steps is not None and (
            isinstance(steps, bool) or not isinstance(steps, int) or steps < 1
        ):
            raise InvalidArgumentError(f"`steps` must be an int >= 1, got {steps!r}.")
        shapes = _model_input_shapes(model)
        if isinstance(data, tf.data.Dataset):
            return cls._of_dataset(data, model, name, num_classes, steps, batch_size, shapes)
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise InvalidArgumentError(
                f"`{name}` must be a pair (x, y) of arrays or a tf.data.Dataset of (x, y) pairs; "
                f"got {type(data).__name__}"
                + (f" of length {len(data)}." if isinstance(data, (tuple, list)) else ".")
            )
        x, y = data
        x = _inputs(x, shapes)
        if y is None:
            raise InvalidArgumentError(f"`{name}` must be labelled: (x, y) with y not None.")
        y = np.asarray(y)
        if size(x) == 0 or y.size == 0:
            raise InvalidArgumentError(f"`{name}` is empty: x has no example.")
        if size(x) != len(y):
            raise InvalidArgumentError(
                f"`{name}`: x has {size(x)} examples but y has {len(y)} labels."
            )
        label_format = _label_format(y, name)
        _check_inputs(x, name, shapes)
        data = cls(
            (x, y),
            name=name,
            label_format=label_format,
            labels=_to_int(y, label_format),
            batched=False,
            steps=None,
            batch_size=batch_size,
            width=y.shape[-1] if label_format == "one_hot" else None,
        )
        return data if num_classes is None else data.check_classes(num_classes)

    @classmethod
    def _of_dataset(
        cls,
        ds: tf.data.Dataset,
        model: Any,
        name: str,
        num_classes: int | None,
        steps: int | None,
        batch_size: int,
        shapes: Any,
    ) -> Data:
        spec = ds.element_spec
        if not isinstance(spec, tuple) or len(spec) != 2:
            raise InvalidArgumentError(
                f"`{name}` must be a tf.data.Dataset of (x, y) pairs; its elements are {spec}."
            )
        if steps is None and int(ds.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
            raise InvalidArgumentError(
                f"`{name}` is an infinite dataset (it repeats): pass `steps=` (batches to read) "
                f"or give a finite dataset."
            )
        rank = input_rank(model) if model is not None else None
        first = tf.nest.flatten(spec[0])[0]
        batched = not (rank is not None and first.shape.rank == rank - 1)
        label_format, labels = None, []
        for x, y in _dataset_batches(ds, batched, steps, batch_size):
            y = np.asarray(y)
            fmt = _label_format(y, name)
            if label_format not in (None, fmt):
                raise InvalidArgumentError(f"`{name}`: batches mix integer and one-hot labels.")
            label_format = fmt
            labels.append(_to_int(y, fmt))
            _check_inputs(x, name, shapes)
        if not labels or sum(lab.size for lab in labels) == 0:
            raise InvalidArgumentError(f"`{name}` is empty: the dataset yielded no example.")
        width = int(y.shape[-1]) if label_format == "one_hot" else None
        data = cls(
            ds,
            name=name,
            label_format=label_format,
            labels=np.concatenate(labels),
            batched=batched,
            steps=steps,
            batch_size=batch_size,
            width=width,
            num_batches=len(labels),
        )
        return data if num_classes is None else data.check_classes(num_classes)

    def batches(self, batch_size: int | None = None) -> Iterator[Batch]:
        """Yields ``(x, integer labels)`` numpy batches, in order.

        Args:
            batch_size: for arrays and unbatched datasets (default: the one
                given to :meth:`of`); a batched dataset keeps its batches.
        """
        batch_size = batch_size or self._batch_size
        if isinstance(self._source, tf.data.Dataset):
            for x, y in _dataset_batches(self._source, self._batched, self.steps, batch_size):
                yield x, _to_int(np.asarray(y), self.label_format)
            return
        x, y = self._source
        for start in range(0, size(x), batch_size):
            window = slice(start, start + batch_size)
            yield take(x, window), _to_int(y[window], self.label_format)

    def first(self, count: int = 32) -> Any:
        """The inputs of the first ``count`` examples (or fewer)."""
        x, _ = next(self.batches(count))
        return take(x, slice(0, count))

    def arrays(self, classes: Sequence[int] | None = None, limit: int | None = None) -> Batch:
        """``(x, integer labels)`` as arrays, of ``classes`` only if given, at most ``limit``."""
        xs, ys, count = [], [], 0
        for x, y in self.batches(256):
            keep = np.ones(len(y), bool) if classes is None else np.isin(y, list(classes))
            if keep.any():
                xs.append(take(x, keep))
                ys.append(y[keep])
                count += int(keep.sum())
            if limit is not None and count >= limit:
                break
        if not ys:
            raise InvalidArgumentError(
                f"`{self.name}` has no example of class(es) {list(classes or [])}."
            )
        x = tf.nest.map_structure(lambda *parts: np.concatenate(parts)[:limit], *xs)
        return x, np.concatenate(ys)[:limit]

    def select(self, keep: np.ndarray) -> Data:
        """The examples where ``keep`` is True, in order (arrays sliced, datasets filtered).

        Args:
            keep: a boolean array with one entry per example.

        Raises:
            InvalidArgumentError: ``keep`` has another length.
        """
        keep = np.asarray(keep, bool)
        if keep.shape != (self.size,):
            raise InvalidArgumentError(
                f"`{self.name}`: a selection needs {self.size} flags, got shape {keep.shape}."
            )
        labels = self._labels[keep]
        if isinstance(self._source, tf.data.Dataset):
            flags = tf.constant(keep)
            ds = self.to_dataset(self._batch_size, shuffle_seed=None).unbatch().enumerate()
            ds = ds.filter(lambda i, example: tf.gather(flags, i)).map(lambda i, example: example)
            return Data(
                ds.batch(self._batch_size),
                name=self.name,
                label_format="sparse",
                labels=labels,
                batched=True,
                steps=None,
                batch_size=self._batch_size,
            )
        x, y = self._source
        return Data(
            (take(x, keep), y[keep]),
            name=self.name,
            label_format=self.label_format,
            labels=labels,
            batched=False,
            steps=None,
            batch_size=self._batch_size,
        )

    def without(self, classes: Sequence[int]) -> Data:
        """The examples whose labels are not in ``classes``."""
        return self.select(~np.isin(self._labels, [int(c) for c in classes]))

    def split(self, fraction: float, seed: int = 0) -> tuple[Data, Data]:
        """Two disjoint parts, stratified by class: ``(1 - fraction, fraction)`` of the examples.

        A class with a single example stays whole in the first part.
        """
        rng = np.random.default_rng(seed)
        held = np.zeros(self.size, bool)
        for c in self.classes:
            index = np.flatnonzero(self._labels == c)
            count = int(round(fraction * index.size)) if index.size > 1 else 0
            held[rng.permutation(index)[:count]] = True
        return self.select(~held), self.select(held)

    def hashes(self) -> list[str]:
        """One content fingerprint per example, in order (see :mod:`keras_forget.fingerprints`)."""
        out: list[str] = []
        for x, y in self.batches(256):
            out.extend(fingerprints.example_hashes(x, y))
        return out

    def matching(self, other: Data, name: str = "forget") -> np.ndarray:
        """Flags the examples of this data that ``other`` names, one copy per example of it.

        Examples are matched by content (inputs and label, :meth:`hashes`).

        Args:
            other: the examples to find, each in this data.
            name: the argument ``other`` was passed as, for messages.

        Returns:
            A bool array over this data's examples.

        Raises:
            InvalidArgumentError: an example of ``other`` (or one more copy of it)
                is not in this data, or ``other`` is all of it.
        """
        wanted = Counter(other.hashes())
        chosen = np.zeros(self.size, bool)
        for i, digest in enumerate(self.hashes()):
            if wanted[digest] > 0:
                wanted[digest] -= 1
                chosen[i] = True
        missing = sum(wanted.values())
        if missing:
            raise InvalidArgumentError(
                f"`{name}`: {missing} of its {other.size} examples are not in `data` (matched by "
                f"content: inputs and label). {name.capitalize()} examples must be training "
                "examples in `data`."
            )
        if chosen.all():
            raise InvalidArgumentError(
                f"`{name}` is all of `data`: nothing would be retained. To forget everything, "
                "train a new model."
            )
        return chosen

    def to_dataset(self, batch_size: int, *, shuffle_seed: int | None = 0) -> tf.data.Dataset:
        """A batched ``tf.data.Dataset`` of ``(x, integer labels)`` for ``fit``."""
        if isinstance(self._source, tf.data.Dataset):
            fmt = self.label_format
            ds = self._dataset(batch_size)
            return ds.map(
                lambda x, y: (
                    x,
                    tf.argmax(y, -1)
                    if fmt == "one_hot"
                    else tf.reshape(tf.cast(y, tf.int64), [-1]),
                )
            )
        x, _ = self._source
        ds = tf.data.Dataset.from_tensor_slices((x, self._labels))
        if shuffle_seed is not None:
            ds = ds.shuffle(self.size, seed=shuffle_seed)
        return ds.batch(batch_size)

    def _dataset(self, batch_size: int) -> tf.data.Dataset:
        ds = self._source if self._batched else self._source.batch(batch_size)
        return ds.take(self.steps) if self.steps is not None else ds

    def __repr__(self) -> str:
        kind = "dataset" if isinstance(self._source, tf.data.Dataset) else "arrays"
        return (
            f"Data({self.name!r}: {self.size} examples of classes {list(self.classes)}, "
            f"{self.label_format} labels, {kind})"
        )


def _dataset_batches(
    ds: tf.data.Dataset, batched: bool, steps: int | None, batch_size: int
) -> Iterator[tuple[Any, Any]]:
    if not batched:
        ds = ds.batch(batch_size)
    if steps is not None:
        ds = ds.take(steps)
    for x, y in ds.as_numpy_iterator():
        yield (tuple(x) if isinstance(x, list) else x), y


def _check_range(labels: np.ndarray, name: str, num_classes: int | None) -> None:
    if (
        num_classes is not None
        and labels.size
        and (labels.min() < 0 or labels.max() >= num_classes)
    ):
        raise InvalidArgumentError(
            f"`{name}`: labels must be in 0..{num_classes - 1} for a model with {num_classes} "
            f"outputs; found {int(labels.min())}..{int(labels.max())}."
        )


def of(data: Any, model: Any = None, **kwargs: Any) -> Data:
    """Shorthand for :meth:`Data.of`."""
    return Data.of(data, model, **kwargs)
