"""Tests for keras_forget.datasets."""

from __future__ import annotations

import numpy as np
import pytest

from keras_forget import datasets
from keras_forget.errors import DatasetUnavailableError, InvalidArgumentError


def _check_arrays(x: np.ndarray, y: np.ndarray, shape: tuple[int, ...]) -> None:
    assert x.dtype == np.float32
    assert y.dtype == np.int64
    assert x.shape[1:] == shape
    assert len(x) == len(y)
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert 0 <= y.min() and y.max() < 10


def test_digits_shapes_range_and_classes():
    (x_train, y_train), (x_test, y_test) = datasets.load("digits")
    _check_arrays(x_train, y_train, (8, 8, 1))
    _check_arrays(x_test, y_test, (8, 8, 1))
    assert x_train.max() == 1.0  # pixel value 16 maps to exactly 1
    assert len(x_train) + len(x_test) == 1797
    assert set(y_train.tolist()) == set(range(10))
    assert set(y_test.tolist()) == set(range(10))


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_digits_split_size_follows_test_fraction(fraction):
    (x_train, _), (x_test, _) = datasets.load("digits", test_fraction=fraction)
    assert len(x_test) == int(np.ceil(1797 * fraction))
    assert len(x_train) == 1797 - len(x_test)


def test_digits_split_is_seeded():
    (a_train, a_ytr), (a_test, _) = datasets.load("digits", seed=3)
    (b_train, b_ytr), (b_test, _) = datasets.load("digits", seed=3)
    (c_train, _), _ = datasets.load("digits", seed=4)
    np.testing.assert_array_equal(a_train, b_train)
    np.testing.assert_array_equal(a_ytr, b_ytr)
    np.testing.assert_array_equal(a_test, b_test)
    assert not np.array_equal(a_train, c_train)


@pytest.mark.parametrize(("name", "shape"), [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))])
def test_tfds_names_load_through_mock(name, shape):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=6):
        (x_train, y_train), (x_test, y_test) = datasets.load(name)
        (x_small, y_small), (x_small_test, _) = datasets.load(name, max_examples=4)
    _check_arrays(x_train, y_train, shape)
    _check_arrays(x_test, y_test, shape)
    assert len(x_train) == len(x_test) == 6
    assert len(x_small) == len(y_small) == len(x_small_test) == 4
    assert x_train.max() > 0.5  # uint8 values were rescaled, not truncated to zero


def test_num_classes():
    assert all(datasets.num_classes(name) == 10 for name in datasets.NAMES)


@pytest.mark.parametrize("call", [datasets.load, datasets.num_classes])
def test_unknown_name_raises(call):
    with pytest.raises(InvalidArgumentError, match="name") as info:
        call("imagenet")
    assert isinstance(info.value, ValueError)
    assert "digits" in str(info.value) and "cifar10" in str(info.value)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_bad_test_fraction_raises(fraction):
    with pytest.raises(InvalidArgumentError, match="test_fraction") as info:
        datasets.load("digits", test_fraction=fraction)
    assert isinstance(info.value, ValueError)


def test_bad_max_examples_raises():
    with pytest.raises(InvalidArgumentError, match="max_examples") as info:
        datasets.load("mnist", max_examples=0)
    assert isinstance(info.value, ValueError)


def test_missing_tfds_data_raises_runtime_error(monkeypatch, tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    original = OSError("no network")

    def fail(*args, **kwargs):
        raise original

    monkeypatch.setattr(tfds, "load", fail)
    with pytest.raises(DatasetUnavailableError, match="data_dir") as info:
        datasets.load("fashion_mnist", data_dir=str(tmp_path))
    assert isinstance(info.value, RuntimeError)
    assert str(tmp_path) in str(info.value)
    assert info.value.__cause__ is original
