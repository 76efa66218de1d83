"""Image classification datasets as numpy arrays.

``"digits"`` ships with scikit-learn and is always available offline. The other
names are loaded through ``tensorflow_datasets`` and must already be prepared in
``data_dir`` when no network is available.
"""

from __future__ import annotations

import numpy as np

from keras_forget.errors import DatasetUnavailableError, InvalidArgumentError

NAMES = ("digits", "mnist", "fashion_mnist", "cifar10")
_TFDS_NAMES = frozenset(NAMES[1:])
_NUM_CLASSES = dict.fromkeys(NAMES, 10)

Split = tuple[np.ndarray, np.ndarray]


def num_classes(name: str) -> int:
    """Returns the number of classes of a dataset.

    Args:
        name: One of ``NAMES``.

    Returns:
        The number of distinct labels.

    Raises:
        InvalidArgumentError: If ``name`` is not a known dataset.
    """
    _check_name(name)
    return _NUM_CLASSES[name]


def load(
    name: str,
    *,
    test_fraction: float = 0.25,
    seed: int = 0,
    data_dir: str | None = None,
    max_examples: int | None = None,
) -> tuple[Split, Split]:
    """Loads a dataset as float32 images in [0, 1] and int64 labels.

    Args:
        name: One of ``NAMES``.
        test_fraction: Fraction held out for testing; only used by ``"digits"``
            (the tfds datasets have their own train/test splits).
        seed: Random seed of the ``"digits"`` split.
        data_dir: Directory where tfds looks for prepared data.
        max_examples: Optional cap on the number of examples per tfds split.

    Returns:
        ``((x_train, y_train), (x_test, y_test))`` where each ``x`` has shape
        ``(N, H, W, C)`` and each ``y`` holds class indices.

    Raises:
        InvalidArgumentError: If ``name``, ``test_fraction`` or ``max_examples`` is invalid.
        DatasetUnavailableError: If a tfds dataset is not available in ``data_dir``.
    """
    _check_name(name)
    if not 0.0 < test_fraction < 1.0:
        raise InvalidArgumentError(f"test_fraction must be in (0, 1), got {test_fraction!r}.")
    if max_examples is not None and max_examples < 1:
        raise InvalidArgumentError(
            f"max_examples must be a positive integer, got {max_examples!r}."
        )
    if name == "digits":
        return _load_digits(test_fraction, seed)
    return _load_tfds(name, data_dir, max_examples)


def _check_name(name: str) -> None:
    if name not in NAMES:
        raise InvalidArgumentError(
            f"Unknown dataset name={name!r}; expected one of {', '.join(NAMES)}."
        )


def _load_digits(test_fraction: float, seed: int) -> tuple[Split, Split]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., np.newaxis]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=seed
    )
    return (x_train, y_train), (x_test, y_test)


def _load_tfds(name: str, data_dir: str | None, max_examples: int | None) -> tuple[Split, Split]:
    import tensorflow_datasets as tfds

    try:
        train_ds, test_ds = tfds.load(
            name, split=["train", "test"], as_supervised=True, data_dir=data_dir
        )
    except Exception as err:  # tfds raises several types when data is missing.
        raise DatasetUnavailableError(
            f"Could not load tfds dataset {name!r} from data_dir={data_dir!r}. "
            "It must be downloaded and prepared there first (for example with "
            f"`tfds build {name}` on a machine with network access); tfds cannot "
            "download offline."
        ) from err
    return _to_numpy(train_ds, max_examples), _to_numpy(test_ds, max_examples)


def _to_numpy(ds, max_examples: int | None) -> Split:
    import tensorflow_datasets as tfds

    if max_examples is not None:
        ds = ds.take(max_examples)
    images, labels = [], []
    for image, label in tfds.as_numpy(ds):
        images.append(image)
        labels.append(label)
    if not images:
        raise DatasetUnavailableError("The tfds split is empty.")
    x = np.stack(images).astype(np.float32) / 255.0
    return (x, np.asarray(labels, dtype=np.int64))
