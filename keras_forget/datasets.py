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
    try:
        import tensorflow_datasets as tfds
    except ModuleNotFoundError as err:
        raise DatasetUnavailableError(_missing_module_message(name, err)) from err
    try:
        train_ds, test_ds = tfds.load(
            name, split=["train", "test"], as_supervised=True, data_dir=data_dir
        )
    except Exception as err:  # tfds raises several types when data is missing.
        if _missing_module(err):
            raise DatasetUnavailableError(_missing_module_message(name, err)) from err
        where = (
            f"data_dir={data_dir!r}"
            if data_dir
            else "data_dir=None (tfds's default, ~/tensorflow_datasets)"
        )
        reported = " ".join(f"{type(err).__name__}: {err}".split())
        raise DatasetUnavailableError(
            f"tfds dataset {name!r} is not prepared in {where} and could not be downloaded "
            "(tfds cannot download offline). Prepare it on a machine with network access "
            f"(`tfds build {name} --data_dir DIR`), copy DIR here and pass it as data_dir "
            f"(keras-forget: --data-dir DIR). tfds reported: {reported[:300]}"
        ) from err
    return _to_numpy(train_ds, max_examples), _to_numpy(test_ds, max_examples)


def _missing_module(err: BaseException | None) -> str | None:
    """The top-level name of a module whose absence caused ``err``, if one did."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, ModuleNotFoundError) and err.name:
            return err.name.split(".")[0]
        err = err.__cause__ or err.__context__
    return None


def _missing_module_message(name: str, err: BaseException) -> str:
    module = _missing_module(err) or "tensorflow_datasets"
    return (
        f"Loading tfds dataset {name!r} needs the Python module {module!r}, which is not "
        f"installed: install it with `pip install {module}`. (A missing module, not missing "
        "data. Once it is installed, tfds downloads the data if the network allows, or reads "
        "it prepared in data_dir; keras-forget: --data-dir DIR.)"
    )


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
