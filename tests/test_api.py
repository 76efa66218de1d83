"""Behaviour of the verbs on both Keras flavours."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import keras_forget as kf
from keras_forget import api, selection
from keras_forget.introspect.registry import prunable_weights

from .helpers import assert_pruned_zero


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
    kept, edited = prunable_weights(model), prunable_weights(result.model)
    for key, mask in result.masks.items():  # the original's weights, only the chosen ones zeroed
        want = kept[key].variable.numpy() * mask
        np.testing.assert_array_equal(edited[key].variable.numpy(), want)


@pytest.mark.parametrize("flavor", ["keras3", "tf_keras"])
def test_pruned_weights_stay_exactly_zero_after_fine_tuning(flavor, digits, request):
    model = request.getfixturevalue(f"trained_{flavor}")
    train, _ = digits
    result = kf.prune_for_class(
        model, train, 5, amount=0.05, fine_tune=kf.FineTune(epochs=1), verbose=False
    )
    before = {k: w.variable.numpy() for k, w in prunable_weights(model).items()}
    assert result.report.fine_tuned is not None
    assert_pruned_zero(result.model, result.masks)  # raw variables, inside tfmot's wrappers too
    weights = prunable_weights(result.model)
    trained = sum(
        int(np.count_nonzero(weights[k].variable.numpy()[m] != before[k][m]))
        for k, m in result.masks.items()
    )
    assert trained > 0  # fine-tuning did move the kept weights
    held = kf.masks_of(result.model)
    for key, mask in result.masks.items():
        np.testing.assert_array_equal(held[key], mask)


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
    assert small.unit_masks is not None and small.report.granularity == "unit"


def test_granularity_and_shrink_are_checked(trained_keras3, digits):
    with pytest.raises(kf.InvalidArgumentError, match="granularity"):
        kf.prune_for_class(trained_keras3, digits[0], 3, granularity="neuron", verbose=False)
    with pytest.raises(kf.InvalidArgumentError, match="shrink"):
        kf.prune(trained_keras3, digits[0], sparsity=0.5, shrink=True, verbose=False)


def test_auto_amount_is_the_smallest_grid_fraction_that_forgets_held_out_examples(
    trained_keras3, digits
):
    train, _ = digits
    scored, held = kf.Data.of(train, trained_keras3).split(api.SEARCH_HOLDOUT, seed=0)
    for granularity, grid in (("weight", selection.GRID), ("unit", selection.UNIT_GRID)):
        auto = kf.prune_for_class(trained_keras3, train, 6, granularity=granularity, verbose=False)
        assert auto.report.amount in grid and auto.report.auto_reached
        assert "held out of scoring" in auto.report.search_split
        assert "amount decided on" in str(auto.report)
        index = grid.index(auto.report.amount)
        assert index > 0  # this model needs more than the smallest amount

        def forget_accuracies(amount, granularity=granularity):
            result = kf.prune_for_class(
                trained_keras3,
                scored,
                6,
                amount=amount,
                granularity=granularity,
                eval_data=held,
                verbose=False,
            )
            return result.report.after.forget_accuracy, kf.evaluate(
                result.model, scored, 6
            ).forget_accuracy

        # The same ranking (scored on the same examples), judged on the held-out examples
        # and on the scored ones: the chosen amount forgets both, the step below does not.
        assert forget_accuracies(grid[index]) == (0.0, 0.0)
        assert max(forget_accuracies(grid[index - 1])) > 0.0


def test_auto_amount_needs_examples_to_hold_out(trained_keras3, digits):
    x, y = digits[0]
    keep = (y != 6) | (np.cumsum(y == 6) <= 1)  # a single example of class 6
    with pytest.raises(kf.InvalidArgumentError, match="too few examples to hold any out"):
        kf.prune_for_class(trained_keras3, (x[keep], y[keep]), 6, verbose=False)


def test_verbs_share_defaults_whatever_the_granularity():
    import inspect

    for verb in (kf.prune_for_class, kf.prune):
        params = inspect.signature(verb).parameters
        assert params["granularity"].default == "weight"
        assert params["method"].default is None  # resolved per granularity, documented
    forget = inspect.signature(kf.prune_for_class).parameters
    prune = inspect.signature(kf.prune).parameters
    assert forget["amount"].default == "auto" and prune["shrink"].default is False
    assert forget["scope"].default is None and prune["scope"].default is None
    from keras_forget.api import DEFAULT_SCOPE

    assert {DEFAULT_SCOPE["forget", g] for g in ("weight", "unit")} == {"global"}


def test_unit_compression_ranks_layer_by_layer_by_default(trained_keras3, digits):
    result = kf.prune(trained_keras3, digits[0], sparsity=0.25, granularity="unit", verbose=False)
    assert result.report.scope == "layer"
    for keep in result.unit_masks.values():
        assert abs((1 - keep.mean()) - 0.25) <= 1.0 / keep.size


def test_report_says_which_split_it_measured(trained_keras3, digits):
    train, test = digits
    on_train = kf.prune_for_class(trained_keras3, train, 4, amount=0.01, verbose=False)
    on_test = kf.prune_for_class(
        trained_keras3, train, 4, amount=0.01, eval_data=test, verbose=False
    )
    assert on_train.report.eval_split == "data" and on_test.report.eval_split == "eval_data"
    assert "accuracy on eval_data" in str(on_test.report)
    assert on_test.report.before.per_class != on_train.report.before.per_class


def test_unit_forgetting_honours_forget_accuracy(trained_keras3, digits):
    train, _ = digits
    strict = kf.prune_for_class(trained_keras3, train, 6, granularity="unit", verbose=False)
    loose = kf.prune_for_class(
        trained_keras3, train, 6, granularity="unit", forget_accuracy=0.6, verbose=False
    )
    assert loose.report.amount <= strict.report.amount
    assert loose.report.after.forget_accuracy <= 0.6


def test_unit_forgetting_that_cannot_forget_says_so_and_names_the_weight_call(digits):
    import keras

    keras.utils.set_random_seed(0)
    biased = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(8, activation="relu"),
         keras.layers.Dense(10, kernel_initializer="zeros",
                            bias_initializer=keras.initializers.Constant(np.eye(10)[3] * 5))]
    )  # fmt: skip  # the bias alone answers 3: no unit serves class 3
    train, _ = digits
    with pytest.warns(UserWarning, match=r"kf.prune_for_class\(model, data, 3\)"):
        result = kf.prune_for_class(biased, train, 3, granularity="unit", verbose=False)
    assert result.report.auto_reached is False
    assert any("granularity='weight'" in note for note in result.report.notes)
    assert "note: amount='auto' did not reach" in str(result.report)


def test_the_report_notes_retain_harm_of_forgetting():
    from keras_forget import pipeline
    from keras_forget.metrics import Evaluation

    job = pipeline.Job("unit", None, 0.1, "global", (3,), None, 10)
    before = Evaluation(0.9, {}, forget_accuracy=0.9, retain_accuracy=0.9)
    hurt = Evaluation(0.5, {}, forget_accuracy=0.0, retain_accuracy=0.5)
    kept = Evaluation(0.85, {}, forget_accuracy=0.0, retain_accuracy=0.88)
    (note,) = pipeline._notes(job, True, before, hurt)
    assert "retain accuracy fell 0.400" in note and "kf.prune_for_class(model, data, 3)" in note
    assert pipeline._notes(job, True, before, kept) == ()
    weights = pipeline.Job("weight", None, 0.1, "global", (3,), None, 10)
    (note,) = pipeline._notes(weights, True, before, hurt)  # weights: fine-tuning is the advice
    assert "weights removed" in note and "FineTune" in note
    assert pipeline._notes(weights, True, before, kept) == ()


def test_gradual_pruning_keeps_its_history(trained_keras3, digits):
    train, _ = digits
    result = kf.prune(
        trained_keras3,
        train,
        sparsity=0.5,
        schedule=kf.GradualSchedule(0, 20, 10),
        fine_tune=kf.FineTune(epochs=1),
        verbose=False,
    )
    assert [h.step for h in result.history] == [0, 10, 20]
    assert result.history[-1].sparsity == pytest.approx(0.5, abs=1e-3)
    assert_pruned_zero(result.model, result.masks)


def test_a_model_with_ops_nodes_forgets_and_prunes_at_both_granularities():
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.Conv2D(8, 3)(x)
    x = keras.ops.relu(x + 3.0) * x / 6.0  # hard-swish built from keras.ops nodes
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    rng = np.random.default_rng(0)
    data = rng.random((120, 8, 8, 1)).astype("float32"), np.arange(120) % 10
    for granularity in ("weight", "unit"):
        forgot = kf.prune_for_class(
            model, data, 3, amount=0.1, granularity=granularity, verbose=False
        )
        assert forgot.report.pruned > 0
    small = kf.prune(model, data, sparsity=0.25, granularity="unit", shrink=True, verbose=False)
    assert small.model.count_params() < model.count_params()


def test_forgetting_the_examples_of_a_class_forgets_that_class(trained_keras3, digits):
    (x, y), test = digits
    target = y == 2
    result = kf.prune_for_class(
        trained_keras3, (x, y), forget=(x[target], y[target]), amount=0.01, verbose=False
    )
    report = result.report
    assert report.forgotten_examples == int(target.sum()) and report.target_classes == ()
    assert report.before.forget_accuracy > 0.9 and report.after.forget_accuracy <= 0.1
    assert report.after.retain_accuracy >= report.before.retain_accuracy - 0.05
    assert f"forget {int(target.sum())} examples" in str(report)
    by_class = kf.prune_for_class(trained_keras3, (x, y), 2, amount=0.01, verbose=False)
    for key, mask in by_class.masks.items():  # the same scores, so the same masks
        np.testing.assert_array_equal(mask, result.masks[key])


def test_auto_forgets_examples_until_unseen_ones_look_the_same(trained_keras3, digits):
    from keras_forget.pipeline import _losses, chance_auc, membership_auc

    (x, y), (xt, yt) = digits
    chosen = np.random.default_rng(0).choice(len(y), 60, replace=False)
    fx, fy = x[chosen], y[chosen]
    result = kf.prune_for_class(
        trained_keras3, (x, y), forget=(fx, fy), eval_data=(xt, yt), verbose=False
    )
    assert result.report.auto_reached and "eval_data" in result.report.search_split

    def auc(model):
        members = _losses(np.asarray(model(fx)), fy, from_logits=False)
        return membership_auc(members, _losses(np.asarray(model(xt)), yt, from_logits=False))

    assert auc(result.model) <= chance_auc(len(fy), len(yt))
    assert result.report.after.accuracy >= result.report.before.accuracy - 0.05


def test_membership_auc_reads_lower_member_losses_as_recognisable():
    from keras_forget.pipeline import chance_auc, membership_auc

    rng = np.random.default_rng(0)
    members, unseen = rng.exponential(0.1, 200), rng.exponential(1.0, 200)
    assert membership_auc(members, unseen) > 0.8
    assert membership_auc(unseen, members) < 0.2
    assert 0.5 < chance_auc(200, 200) < 0.56 and chance_auc(20, 20) > chance_auc(200, 200)


@pytest.mark.parametrize(
    "case, message",
    [
        ("both", "not both"),
        ("neither", "not neither"),
        ("absent", "not in `data`"),
        ("all", "all of `data`"),
        ("units", "single weights"),
        ("auto_without_unseen", "eval_data"),
        ("empty", "empty"),
    ],
)
def test_forget_examples_are_checked_before_any_work(trained_keras3, digits, case, message):
    (x, y), _ = digits
    kwargs = {"forget": (x[:10], y[:10]), "amount": 0.01}
    target = None
    if case == "both":
        target = 3
    elif case == "neither":
        kwargs.pop("forget")
    elif case == "absent":
        kwargs["forget"] = (x[:10] + 0.5, y[:10])
    elif case == "all":
        kwargs["forget"] = (x, y)
    elif case == "units":
        kwargs["granularity"] = "unit"
    elif case == "auto_without_unseen":
        kwargs["amount"] = "auto"
    elif case == "empty":
        kwargs["forget"] = (x[:0], y[:0])
    with pytest.raises(kf.InvalidArgumentError, match=message):
        kf.prune_for_class(trained_keras3, (x, y), target, verbose=False, **kwargs)


def test_fine_tuning_takes_the_learning_rate_chosen_for_the_job(
    trained_keras3, digits, monkeypatch
):
    from keras_forget import training

    seen = []
    original = training.fine_tune

    def spy(model, config, data, **kwargs):
        seen.append(config.learning_rate)
        return original(model, config, data, **kwargs)

    monkeypatch.setattr(kf.pipeline, "fine_tune", spy)
    train, _ = digits
    small = (train[0][:256], train[1][:256])
    tune = kf.FineTune(epochs=1)
    kf.prune_for_class(trained_keras3, small, 3, amount=0.01, fine_tune=tune, verbose=False)
    kf.prune(trained_keras3, small, sparsity=0.5, fine_tune=tune, verbose=False)
    kf.prune(
        trained_keras3, small, sparsity=0.25, granularity="unit", fine_tune=tune, verbose=False
    )
    mine = kf.FineTune(epochs=1, learning_rate=5e-3)
    kf.prune(trained_keras3, small, sparsity=0.5, fine_tune=mine, verbose=False)
    rates = training.DEFAULT_LEARNING_RATE
    assert seen == [rates["forget", "weight"], rates["compress", "weight"],
                    rates["compress", "unit"], 5e-3]  # fmt: skip
    assert tune.learning_rate is None  # the caller's FineTune is not changed
