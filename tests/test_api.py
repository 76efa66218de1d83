"""Behaviour of the verbs on both Keras flavours."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import keras_forget as kf
from keras_forget.introspect.registry import prunable_weights


def _weights(model):
    return [w.copy() for w in model.get_weights()]


@pytest.mark.parametrize("flavor", ["keras3", "tf_keras"])
def test_forgotten_class_accuracy_falls_others_hold(flavor, digits, request):
    model = request.getfixturevalue(f"trained_{flavor}")
    original = _weights(model)
    train, test = digits
    result = kf.prune_for_class(model, train, target_class=3, eval_data=test, verbose=False)
    before, after = result.report.before, result.report.after
    assert before.forget_accuracy > 0.9
    assert after.forget_accuracy <= 0.05
    assert after.retain_accuracy >= before.retain_accuracy - 0.02
    for a, b in zip(original, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # the caller's model is untouched
    assert result.model is not model


@pytest.mark.parametrize("flavor", ["keras3", "tf_keras"])
def test_pruned_weights_stay_exactly_zero_after_fine_tuning(flavor, digits, request):
    model = request.getfixturevalue(f"trained_{flavor}")
    train, _ = digits
    result = kf.prune_for_class(
        model, train, 5, amount=0.05, fine_tune=kf.FineTune(epochs=1), verbose=False
    )
    stripped = kf.strip(result.model)
    weights = prunable_weights(stripped)
    assert result.report.fine_tuned is not None
    changed = 0
    for key, mask in result.masks.items():
        value = weights[key].variable.numpy()
        assert np.all(value[~mask] == 0.0), key
        changed += int(np.count_nonzero(value[mask]))
    assert changed > 0
    assert set(kf.masks_of(result.model)) >= {k for k, m in result.masks.items() if not m.all()}


def test_masks_have_weight_shapes_and_exact_amount(trained_keras3, digits):
    result = kf.prune_for_class(trained_keras3, digits[0], [1, 7], amount=0.03, verbose=False)
    weights = prunable_weights(trained_keras3)
    total = sum(w.variable.numpy().size for w in weights.values())
    assert set(result.masks) == set(weights)
    for key, mask in result.masks.items():
        assert mask.shape == tuple(weights[key].variable.shape) and mask.dtype == bool
    assert result.report.pruned == round(0.03 * total)
    assert result.report.target_classes == (1, 7)


def test_accepts_a_dataset_and_one_hot_labels(trained_keras3, digits):
    (x, y), _ = digits
    ds = tf.data.Dataset.from_tensor_slices((x, np.eye(10)[y])).batch(50)
    result = kf.prune_for_class(trained_keras3, ds, 2, verbose=False)
    assert result.report.after.forget_accuracy < result.report.before.forget_accuracy


def test_layer_scope_prunes_the_amount_in_every_layer(trained_keras3, digits):
    result = kf.prune_for_class(
        trained_keras3, digits[0], 0, amount=0.1, scope="layer", verbose=False
    )
    for mask in result.masks.values():
        assert abs((1 - mask.mean()) - 0.1) < 1.0 / mask.size + 1e-9


def test_prune_compresses_to_the_exact_sparsity(trained_keras3, digits):
    result = kf.prune(
        trained_keras3, sparsity=0.5, method="magnitude", eval_data=digits[1], verbose=False
    )
    assert abs(result.report.sparsity - 0.5) < 1e-3
    assert result.report.after.accuracy > 0.5


def test_unit_granularity_forgets_and_shrinks_through_the_verbs(trained_keras3, digits):
    train, test = digits
    forgot = kf.prune_for_class(
        trained_keras3, train, 3, granularity="unit", amount=0.2, eval_data=test, verbose=False
    )
    before, after = forgot.report.before, forgot.report.after
    forget_drop = before.forget_accuracy - after.forget_accuracy
    retain_drop = before.retain_accuracy - after.retain_accuracy
    assert forget_drop > 0.5 and forget_drop > 3 * retain_drop  # class-specific
    small = kf.prune(
        trained_keras3, train, sparsity=0.5, granularity="unit", shrink=True, verbose=False
    )
    assert small.model.count_params() < trained_keras3.count_params()


def test_granularity_and_shrink_are_checked(trained_keras3, digits):
    with pytest.raises(kf.InvalidArgumentError, match="granularity"):
        kf.prune_for_class(trained_keras3, digits[0], 3, granularity="neuron", verbose=False)
    with pytest.raises(kf.InvalidArgumentError, match="shrink"):
        kf.prune(trained_keras3, digits[0], sparsity=0.5, shrink=True, verbose=False)


def test_auto_amount_is_the_smallest_grid_fraction_that_forgets(trained_keras3, digits):
    from keras_forget import amount, components

    train, _ = digits
    weights = kf.prune_for_class(trained_keras3, train, 6, eval_data=train, verbose=False)
    units = kf.prune_for_class(
        trained_keras3, train, 6, granularity="unit", amount="auto", eval_data=train, verbose=False
    )
    for result, grid in ((weights, amount.GRID), (units, components.UNIT_GRID)):
        assert result.report.amount in grid
        assert result.report.after.forget_accuracy == 0.0
    index = amount.GRID.index(weights.report.amount)
    assert index > 0  # this model needs more than the smallest amount
    less = kf.prune_for_class(
        trained_keras3, train, 6, amount=amount.GRID[index - 1], eval_data=train, verbose=False
    )
    assert less.report.after.forget_accuracy > 0.0
