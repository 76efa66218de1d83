"""Recurrent models: SimpleRNN/LSTM/GRU cells (also inside Bidirectional) are pruned
weight by weight and unit by unit on both flavours, and their masks hold through
fine-tuning.

The 8x8 digits are read as sequences of 8 rows of 8 pixels.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest

import keras_forget as kf
from keras_forget import _keras
from keras_forget.integrations import tfmot
from keras_forget.introspect.registry import left_whole, prunable_weights
from keras_forget.surgery.masking import MaskConstraint

from .helpers import assert_pruned_zero

RECURRENT = ("kernel", "recurrent_kernel")
#: Examples scored by prune_for_class (enough for every class; keeps the file fast).
SCORED = 300


@pytest.fixture(scope="module")
def sequences(digits):
    """The digits split, each image a sequence of 8 rows: ``(N, 8, 8)``."""
    (x, y), (x_test, y_test) = digits
    return (x.reshape(-1, 8, 8), y), (x_test.reshape(-1, 8, 8), y_test)


def _classifier(flavor: str, cell: str, units: int = 24):
    import tf_keras

    km = keras if flavor == "keras3" else tf_keras
    km.utils.set_random_seed(0)
    layer = {"lstm": km.layers.LSTM, "gru": km.layers.GRU}[cell]
    return km.Sequential(
        [km.Input((8, 8)), layer(units, name=cell), km.layers.Dense(10, name="out")]
    )


def _fit(model, train, epochs: int = 6):
    km = _keras.keras_module(model)
    model.compile(
        km.optimizers.Adam(0.02),
        km.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(*train, epochs=epochs, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def trained(sequences):
    """Trained classifiers by (flavor, cell), built on first use."""
    cache = {}

    def get(flavor: str, cell: str):
        if (flavor, cell) not in cache:
            cache[flavor, cell] = _fit(_classifier(flavor, cell), sequences[0])
        return cache[flavor, cell]

    return get


@pytest.mark.parametrize(
    ("flavor", "cell"), [("keras3", "lstm"), ("keras3", "gru"), ("tf_keras", "lstm")]
)
def test_recurrent_classifier_forgets_a_class_and_masks_hold(sequences, trained, flavor, cell):
    (x, y), test = sequences
    model = trained(flavor, cell)
    assert set(prunable_weights(model)) == {
        f"{cell}/kernel",
        f"{cell}/recurrent_kernel",
        "out/kernel",
    }
    assert left_whole(model) == []
    result = kf.prune_for_class(
        model,
        (x[:SCORED], y[:SCORED]),
        3,
        eval_data=test,
        fine_tune=kf.FineTune(epochs=1),
        batch_size=SCORED,
        verbose=False,
    )
    report = result.report
    assert report.before.accuracy > 0.8
    assert report.after.forget_accuracy <= 0.05
    assert report.after.retain_accuracy >= report.before.retain_accuracy - 0.05
    assert report.fine_tuned.forget_accuracy <= 0.05
    assert report.fine_tuned.retain_accuracy >= report.before.retain_accuracy - 0.05
    assert report.left_whole == ()
    assert_pruned_zero(result.model, result.masks)


@pytest.mark.parametrize("flavor", ["keras3", "tf_keras"])
def test_recurrent_kernels_are_pruned_and_stay_zero_through_fine_tune(sequences, trained, flavor):
    train, test = sequences
    model = trained(flavor, "lstm")
    result = kf.prune(
        model,
        train,
        sparsity=0.5,
        method="magnitude",
        fine_tune=kf.FineTune(epochs=1),
        eval_data=test,
        verbose=False,
    )
    for name in RECURRENT:
        mask = result.masks[f"lstm/{name}"]
        assert 0.2 < (~mask).mean() < 0.8, name
    assert result.report.fine_tuned.accuracy > 0.7
    # The raw variables (inside tfmot's wrappers on tf_keras) after training.
    assert_pruned_zero(result.model, result.masks)
    held = kf.masks_of(result.model)
    for key, mask in result.masks.items():
        np.testing.assert_array_equal(held[key], mask)
    if flavor == "tf_keras":  # held by the LSTM's own wrapper, not re-zeroed by a callback
        assert type(result.model.layers[0]).__name__ == "PruneLowMagnitude"
        assert not getattr(result.model, tfmot.UNHELD, {})
    else:  # on the cell's variables, applied by the optimizer
        cell = result.model.get_layer("lstm").cell
        assert isinstance(cell.kernel.constraint, MaskConstraint)


@pytest.mark.parametrize("flavor", ["keras3", "tf_keras"])
def test_bidirectional_lstm_prunes_forward_and_backward_kernels(sequences, flavor):
    import tf_keras

    km = keras if flavor == "keras3" else tf_keras
    km.utils.set_random_seed(0)
    layers = km.layers
    model = km.Sequential(
        [
            km.Input((8, 8)),
            layers.Bidirectional(layers.LSTM(8, name="lstm"), name="bi"),
            layers.Dense(10, name="out"),
        ]
    )
    keys = [f"bi/{side}_lstm/{name}" for side in ("forward", "backward") for name in RECURRENT]
    assert list(prunable_weights(model)) == [*keys, "out/kernel"]
    assert list(prunable_weights(_keras.clone(model))) == [*keys, "out/kernel"]
    (x, y), _ = sequences
    result = kf.prune(
        model,
        (x[:128], y[:128]),
        sparsity=0.5,
        method="magnitude",
        fine_tune=kf.FineTune(epochs=1),
        verbose=False,
    )
    for key in keys:
        assert 0.2 < (~result.masks[key]).mean() < 0.8, key
    assert_pruned_zero(result.model, result.masks)
    forward = kf.strip(result.model).get_layer("bi").forward_layer.cell.kernel.numpy()
    assert np.all(forward[~result.masks["bi/forward_lstm/kernel"]] == 0)


def test_lstm_exports_as_saved_model(sequences, trained, tmp_path):
    (x, y), (x_test, _) = sequences
    result = kf.prune(trained("keras3", "lstm"), (x, y), sparsity=0.5, verbose=False)
    kf.export(result.model, tmp_path / "saved", tflite=False, sample=x_test[:16])
    assert (tmp_path / "saved" / "saved_model").is_dir()


@pytest.mark.parametrize(
    ("flavor", "cell"), [("keras3", "lstm"), ("keras3", "gru"), ("tf_keras", "lstm")]
)
def test_recurrent_model_exports_to_tflite_with_a_fixed_batch_of_one(
    sequences, trained, tmp_path, flavor, cell
):
    """TFLite cannot lower the loop's TensorList ops with a free batch size: export
    retries from a batch-1 signature, says so, and checks parity one example at a time."""
    import tensorflow as tf

    (x, y), (x_test, _) = sequences
    model = trained(flavor, cell)
    result = kf.prune(model, (x[:SCORED], y[:SCORED]), sparsity=0.5, verbose=False)
    report = kf.export(result.model, tmp_path / "tflite", sample=x_test[:16], verbose=False)
    assert any("fixed batch of 1" in note and "one example at a time" in note
               for note in report.notes)  # fmt: skip
    # tf_keras' LSTM converts to TFLite's fused LSTM, whose state outlives a run.
    assert any("reset_all_variables" in note for note in report.notes) == (flavor == "tf_keras")
    assert report.max_abs_diff["model.tflite"] <= 1e-4
    assert sorted(os.listdir(tmp_path / "tflite")) == ["model.tflite", "saved_model"]
    # The SavedModel keeps its free batch size.
    serving = tf.saved_model.load(report.saved_model_dir).signatures["serving_default"]
    (spec,) = serving.structured_input_signature[1].values()
    assert spec.shape[0] is None
    # The TFLite file takes one example; run alone, it matches Keras.
    interpreter = tf.lite.Interpreter(model_path=report.tflite_path)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert list(inp["shape"]) == [1, 8, 8]
    interpreter.set_tensor(inp["index"], x_test[:1].astype("float32"))
    interpreter.invoke()
    expected = np.asarray(kf.strip(result.model)(x_test[:1], training=False))
    np.testing.assert_allclose(interpreter.get_tensor(out["index"]), expected, atol=1e-4)


def _stacked(flavor: str, cell: str):
    """A recurrent layer returning sequences, another reading them, a Dense head."""
    import tf_keras

    km = keras if flavor == "keras3" else tf_keras
    km.utils.set_random_seed(0)
    layer = {"lstm": km.layers.LSTM, "gru": km.layers.GRU, "rnn": km.layers.SimpleRNN}[cell]
    return km.Sequential(
        [
            km.Input((8, 8)),
            layer(16, return_sequences=True, name="first"),
            layer(12, name="second"),
            km.layers.Dense(10, name="out"),
        ]
    )


@pytest.mark.parametrize(
    ("flavor", "cell"),
    [("keras3", "lstm"), ("keras3", "gru"), ("keras3", "rnn"), ("tf_keras", "gru")],
)
def test_recurrent_units_are_removed_and_the_smaller_model_computes_the_same(
    sequences, flavor, cell
):
    from keras_forget.introspect.graph import Graph
    from keras_forget.surgery import structured

    (x, y), (x_test, _) = sequences
    model = _fit(_stacked(flavor, cell), (x[:256], y[:256]), epochs=2)
    graph = Graph(model)
    assert {k: g.size for k, g in graph.prunable().items()} == {"first": 16, "second": 12}
    data = (x[:256], y[:256])
    result = kf.prune(
        model, data, sparsity=0.25, granularity="unit", shrink=True, reconstruct=False,
        verbose=False,
    )  # fmt: skip
    kept = {k: int(m.sum()) for k, m in result.unit_masks.items()}
    assert kept == {"first": 12, "second": 9}
    small = result.model
    assert small.get_layer("first").get_config()["units"] == 12
    assert small.get_layer("second").get_config()["units"] == 9
    assert small.get_layer("out").get_weights()[0].shape == (9, 10)
    # Removed units output exactly zero at every step of the masked model ...
    masked = structured.masked_copy(model, result.unit_masks)
    km = _keras.keras_module(model)
    steps = km.Model(masked.inputs[0], masked.get_layer("first").output)(x_test[:32])
    removed = ~result.unit_masks["first"]
    assert np.all(np.asarray(steps)[..., removed] == 0)
    # ... and the smaller model computes what the masked one does.
    np.testing.assert_allclose(
        np.asarray(small(x_test[:64])), np.asarray(masked(x_test[:64])), atol=1e-5
    )
    assert small.count_params() < model.count_params()
    # The refit (the default) refits the Dense head; the recurrent reader is left as it is.
    refit = kf.prune(model, data, sparsity=0.25, granularity="unit", shrink=True, verbose=False)
    assert refit.report.reconstructed
    np.testing.assert_array_equal(
        refit.model.get_layer("second").get_weights()[0], small.get_layer("second").get_weights()[0]
    )


@pytest.mark.parametrize("flavor", ["keras3", "tf_keras"])
def test_removed_recurrent_units_stay_zero_through_fine_tune(sequences, trained, flavor):
    (x, y), test = sequences
    model = trained(flavor, "lstm")
    result = kf.prune(
        model,
        (x[:SCORED], y[:SCORED]),
        sparsity=0.25,
        granularity="unit",
        fine_tune=kf.FineTune(epochs=1),
        eval_data=test,
        verbose=False,
    )
    removed = ~result.unit_masks["lstm"]
    assert removed.sum() == 6  # a quarter of 24 units
    gates = np.tile(removed, 4)  # input, forget, cell and output gate columns
    weights = {k.split("/")[-1]: v for k, v in result.masks.items() if k.startswith("lstm/")}
    assert set(weights) == {"kernel", "recurrent_kernel", "bias"}
    for name, mask in weights.items():
        np.testing.assert_array_equal(np.all(~mask.reshape(-1, 96), axis=0), gates, name)
    # The raw variables after training, inside tfmot's wrapper on tf_keras.
    assert_pruned_zero(result.model, result.masks)
    assert result.report.fine_tuned.accuracy > 0.6


def _bidirectional(flavor: str, merge: str):
    """Two Bidirectional layers (the first returning sequences), a Dense head."""
    import tf_keras

    km = keras if flavor == "keras3" else tf_keras
    km.utils.set_random_seed(0)
    layers = km.layers
    return km.Sequential(
        [
            km.Input((8, 8)),
            layers.Bidirectional(
                layers.LSTM(12, return_sequences=True), merge_mode=merge, name="first"
            ),
            layers.Bidirectional(layers.GRU(8), name="second"),
            layers.Dense(10, name="out"),
        ]
    )


@pytest.mark.parametrize("flavor", ["keras3", "tf_keras"])
def test_bidirectional_layers_lose_unit_j_of_both_directions(sequences, flavor):
    from keras_forget.introspect.graph import Graph
    from keras_forget.surgery import structured

    (x, y), (x_test, _) = sequences
    model = _fit(_bidirectional(flavor, "concat"), (x[:256], y[:256]), epochs=1)
    bi = model.get_layer("first")
    forward, backward = (f"first/{s.name}" for s in (bi.forward_layer, bi.backward_layer))
    groups = Graph(model).prunable()
    assert groups[forward].size == 12
    assert groups[forward].producers == [forward, backward]
    keep = np.arange(12) % 3 != 0
    small = structured.shrink(model, {forward: keep}, sample=x_test[:32])  # checks == masked
    layer = small.get_layer("first")
    assert layer.forward_layer.units == layer.backward_layer.units == 8
    assert layer.backward_layer.go_backwards
    assert small.get_layer("second").forward_layer.cell.kernel.shape[0] == 16
    masked = structured.masked_copy(model, {forward: keep})
    km = _keras.keras_module(model)
    steps = np.asarray(km.Model(masked.inputs[0], masked.get_layer("first").output)(x_test[:32]))
    removed = ~np.tile(keep, 2)  # forward units, then backward units
    assert np.all(steps[..., removed] == 0)
    assert np.all(np.any(steps[..., ~removed] != 0, axis=(0, 1)))
    np.testing.assert_allclose(
        np.asarray(small(x_test[:64])), np.asarray(masked(x_test[:64])), atol=1e-5
    )


@pytest.mark.parametrize("flavor", ["keras3", "tf_keras"])
def test_summed_directions_lose_the_same_units(sequences, flavor):
    (x, y), test = sequences
    model = _fit(_bidirectional(flavor, "sum"), (x[:256], y[:256]), epochs=1)
    bi = model.get_layer("first")
    result = kf.prune(
        model,
        (x[:256], y[:256]),
        sparsity=0.25,
        granularity="unit",
        shrink=True,
        fine_tune=kf.FineTune(epochs=1),
        eval_data=test,
        verbose=False,
    )
    (key,) = [k for k in result.unit_masks if k.startswith("first/")]
    assert key == f"first/{bi.forward_layer.name}"  # one group: unit j of both directions
    kept = int(result.unit_masks[key].sum())
    assert kept == 9
    layer = result.model.get_layer("first")
    assert layer.forward_layer.units == layer.backward_layer.units == kept
    assert result.model.count_params() < model.count_params()
    # Without the shrink, the removed units' weights in both directions stay zero.
    masked = kf.prune(
        model, (x[:256], y[:256]), sparsity=0.25, granularity="unit",
        fine_tune=kf.FineTune(epochs=1), verbose=False,
    )  # fmt: skip
    gates = np.tile(~masked.unit_masks[key], 4)
    for side in (bi.forward_layer.name, bi.backward_layer.name):
        for weight in ("kernel", "recurrent_kernel", "bias"):
            mask = masked.masks[f"first/{side}/{weight}"]
            np.testing.assert_array_equal(np.all(~mask.reshape(-1, 48), axis=0), gates)
    assert_pruned_zero(masked.model, masked.masks)
