"""Data is checked and described once, whatever form it comes in."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_forget as kf
from keras_forget.data import Data
from keras_forget.errors import InvalidArgumentError

from .conftest import keras3_mlp


def _arrays(n=30):
    rng = np.random.default_rng(0)
    return rng.random((n, 8, 8, 1)).astype("float32"), np.arange(n) % 10


@pytest.mark.parametrize(
    "make",
    [
        lambda x, y: (x, y),
        lambda x, y: (x, y.reshape(-1, 1)),
        lambda x, y: (x, np.eye(10)[y]),
        lambda x, y: (x, y.astype("float32")),
        lambda x, y: tf.data.Dataset.from_tensor_slices((x, y)),
        lambda x, y: tf.data.Dataset.from_tensor_slices((x, np.eye(10)[y])).batch(7),
    ],
    ids=["ints", "ints (N, 1)", "one-hot", "whole floats", "unbatched dataset", "one-hot batches"],
)
def test_every_form_gives_the_same_batches(make):
    x, y = _arrays()
    data = Data.of(make(x, y), keras3_mlp(), num_classes=10, batch_size=8)
    assert data.size == 30 and data.classes == tuple(range(10))
    assert data.counts == {c: 3 for c in range(10)}
    xs, ys = zip(*data.batches(8))
    np.testing.assert_array_equal(np.concatenate(ys), y)
    np.testing.assert_allclose(np.concatenate(xs), x)


def test_steps_limit_what_is_read_and_tame_an_infinite_dataset():
    x, y = _arrays()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(10).repeat()
    data = Data.of(ds, keras3_mlp(), steps=2)
    assert data.size == 20
    assert sum(len(b[1]) for b in data.batches()) == 20


def test_without_and_split_keep_labels_and_classes():
    x, y = _arrays(40)
    for source in ((x, y), tf.data.Dataset.from_tensor_slices((x, y)).batch(6)):
        data = Data.of(source, keras3_mlp())
        rest = data.without([3, 4])
        assert 3 not in rest.classes and 4 not in rest.classes and rest.size == 32
        assert np.all(~np.isin(np.concatenate([b[1] for b in rest.batches()]), [3, 4]))
    kept, held = Data.of((x, y), keras3_mlp()).split(0.25, seed=0)
    assert kept.size + held.size == 40 and held.classes == tuple(range(10))
    assert held.size == 10


def test_select_and_split_stream_datasets_with_one_hot_labels():
    x, y = _arrays(40)
    arrays = Data.of((x, y), keras3_mlp())
    ds = tf.data.Dataset.from_tensor_slices((x, np.eye(10, dtype="float32")[y])).batch(7)
    streamed = Data.of(ds, keras3_mlp())
    keep = np.arange(40) % 3 == 0
    for data in (arrays, streamed):
        part = data.select(keep)
        got_x = np.concatenate([b[0] for b in part.batches()])
        got_y = np.concatenate([b[1] for b in part.batches()])
        np.testing.assert_array_equal(got_x, x[keep])
        np.testing.assert_array_equal(got_y, y[keep])
        assert part.size == keep.sum() and part.hashes() == arrays.select(keep).hashes()
        kept, held = data.split(0.25, seed=0)
        assert not set(kept.hashes()) & set(held.hashes()) and held.size == 10
    with pytest.raises(kf.InvalidArgumentError, match="flags"):
        arrays.select(keep[:5])


def test_hashes_match_the_same_examples_in_any_precision():
    x, y = _arrays(5)
    same = Data.of((x.astype("float32"), y)).hashes()
    assert same == Data.of((x.astype("float32"), np.eye(10)[y])).hashes()
    assert len(set(same)) == 5
    assert Data.of((x + 1e-3, y)).hashes() != same


def test_to_dataset_trains_a_model():
    x, y = _arrays()
    model = keras3_mlp()
    model.compile("adam", "sparse_categorical_crossentropy")
    history = model.fit(Data.of((x, np.eye(10)[y]), model).to_dataset(8), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_several_inputs_are_a_tuple():
    a = keras.Input((3,), name="a")
    b = keras.Input((2,), name="b")
    out = keras.layers.Dense(4, activation="softmax")(keras.layers.Concatenate()([a, b]))
    model = keras.Model([a, b], out)
    x = (np.ones((12, 3), "float32"), np.ones((12, 2), "float32"))
    data = Data.of((x, np.arange(12) % 4), model, num_classes=4)
    first = data.first(5)
    assert isinstance(first, tuple) and first[0].shape == (5, 3) and first[1].shape == (5, 2)
    with pytest.raises(kf.InvalidArgumentError, match="2 input"):
        Data.of((x[0], np.arange(12) % 4), model)


def test_a_one_input_model_takes_a_list_as_one_array():
    x, y = _arrays(4)
    data = Data.of((x.tolist(), y.tolist()), keras3_mlp())
    assert data.size == 4 and data.first().shape == (4, 8, 8, 1)


def test_matching_flags_one_copy_per_named_example_and_refuses_strangers():
    x = np.arange(12, dtype="float32").reshape(6, 2)
    x[3] = x[1]  # examples 1 and 3 are the same
    y = np.array([0, 1, 0, 1, 0, 1])
    data = Data.of((x, y))
    chosen = data.matching(Data.of((x[[1, 4]], y[[1, 4]])))
    assert chosen.tolist() == [False, True, False, False, True, False]
    both = data.matching(Data.of((x[[1, 1]], y[[1, 1]])))
    assert both.tolist() == [False, True, False, True, False, False]
    with pytest.raises(InvalidArgumentError, match="1 of its 3 examples are not in `data`"):
        data.matching(Data.of((x[[1, 1, 1]], y[[1, 1, 1]])))
    with pytest.raises(InvalidArgumentError, match="`forget` is all of `data`"):
        data.matching(data)
