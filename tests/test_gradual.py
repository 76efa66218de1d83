"""Score-driven gradual pruning: the schedule, shrinking masks, both backends, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

import keras_forget as kf
from keras_forget import gradual, selection
from keras_forget.introspect.registry import prunable_weights
from keras_forget.results import PruningStep
from keras_forget.selection import GradualSchedule
from keras_forget.surgery.masking import MaskConstraint

from .helpers import assert_pruned_zero


def test_ramp_starts_at_initial_ends_exactly_at_final_and_never_falls():
    schedule = GradualSchedule(begin_step=10, end_step=35, frequency=10, initial_sparsity=0.2)
    assert schedule.steps() == [10, 20, 30, 35]  # end_step is always a pruning step
    ramp = [schedule.sparsity_at(t, 0.9) for t in range(0, 50)]
    assert ramp[0] == ramp[10] == pytest.approx(0.2)
    assert ramp[35] == ramp[49] == 0.9
    assert np.all(np.diff(ramp) >= 0)
    assert GradualSchedule(5, 5, 3).steps() == [5]
    assert GradualSchedule.from_config(schedule.get_config()) == schedule


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"begin_step": 10, "end_step": 5}, "before `begin_step`"),
        ({"frequency": 0}, "frequency"),
        ({"begin_step": -1}, "begin_step"),
        ({"end_step": 2.5}, "end_step"),
        ({"initial_sparsity": 1.0}, "initial_sparsity"),
        ({"power": 0}, "power"),
    ],
)
def test_bad_schedules_are_refused(kwargs, message):
    with pytest.raises(kf.InvalidArgumentError, match=message):
        GradualSchedule(**kwargs)


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_masks_only_shrink_under_fresh_scores(scope, rng):
    shapes = {"a/kernel": (20, 30), "b/kernel": (30, 7)}
    masks = {k: np.ones(s, bool) for k, s in shapes.items()}
    for target in (0.1, 0.3, 0.3, 0.6, 0.9):
        scores = {k: rng.random(s) for k, s in shapes.items()}  # unrelated to the last ones
        new = selection.tighten(scores, masks, target, scope)
        for k in shapes:
            assert not np.any(new[k] & ~masks[k]), "a pruned weight came back"
        if scope == "global":
            assert sum((~m).sum() for m in new.values()) == round(target * 810)
        else:
            for k, s in shapes.items():
                assert (~new[k]).sum() == round(target * np.prod(s))
        masks = new


def _record(monkeypatch) -> tuple[list, list]:
    """Captures every Result of gradual pruning and every MaskMap assigned during training."""
    runs, assigned = [], []
    run, assign = gradual.prune_gradually, gradual.assign

    def recording_run(*args, **kwargs):
        runs.append(run(*args, **kwargs))
        return runs[-1]

    def recording_assign(model, masks):
        assigned.append({k: m.copy() for k, m in masks.items()})
        assign(model, masks)

    monkeypatch.setattr(gradual, "prune_gradually", recording_run)
    monkeypatch.setattr(gradual, "assign", recording_assign)
    return runs, assigned


@pytest.mark.parametrize("flavor", ["keras3", "tf_keras"])
def test_reaches_the_exact_sparsity_and_pruned_weights_stay_zero(
    flavor, digits, request, monkeypatch
):
    model = request.getfixturevalue(f"trained_{flavor}")
    original = [w.copy() for w in model.get_weights()]
    runs, assigned = _record(monkeypatch)
    (x, y), test = digits
    schedule = GradualSchedule(begin_step=0, end_step=45, frequency=10)
    result = kf.prune(
        model,
        (x[:200], y[:200]),
        sparsity=0.8,
        method="obd",
        schedule=schedule,
        fine_tune=kf.FineTune(epochs=2, data=(x, y)),
        eval_data=test,
        verbose=False,
    )
    total = sum(w.variable.numpy().size for w in prunable_weights(model).values())
    assert result.report.pruned == round(0.8 * total)
    assert result.report.fine_tuned.accuracy > 0.85
    assert len(runs) == 1 and runs[0] is result  # one gradual run, its Result returned
    history = result.history
    assert all(isinstance(h, PruningStep) for h in history)
    assert [h.step for h in history] == [0, 10, 20, 30, 40, 45]
    assert history[-1].target == 0.8 and history[-1].sparsity == result.report.sparsity
    assert all(h.leaked == 0 for h in history)  # zero between pruning steps
    for before, after in zip(assigned, assigned[1:]):
        assert all(not np.any(after[k] & ~before[k]) for k in before)
    assert_pruned_zero(result.model, result.masks)  # raw variables, not a stripped copy
    held = kf.masks_of(result.model)
    assert set(held) == set(result.masks)
    for key, mask in result.masks.items():
        np.testing.assert_array_equal(held[key], mask)
    for a, b in zip(original, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # the caller's model is untouched


def test_keras3_result_holds_plain_mask_constraints(trained_keras3, digits):
    (x, y), _ = digits
    result = kf.prune(
        trained_keras3,
        sparsity=0.5,
        schedule=GradualSchedule(0, 0, 1),
        fine_tune=kf.FineTune(epochs=1, data=(x[:64], y[:64])),
        verbose=False,
    )
    for weight in prunable_weights(result.model).values():
        assert type(weight.variable.constraint) is MaskConstraint
    assert result.report.after is None and result.report.fine_tuned is None


def test_training_shorter_than_the_schedule_is_refused_before_any_work(trained_keras3, digits):
    (x, y), _ = digits
    before = [w.copy() for w in trained_keras3.get_weights()]
    with pytest.raises(kf.InvalidArgumentError, match=r"end_step.*\(9: 1 epoch\(s\) x 10 batches"):
        kf.prune(
            trained_keras3,
            (x, y),
            sparsity=0.7,
            method="fisher",
            schedule=GradualSchedule(0, 10_000, 20),
            fine_tune=kf.FineTune(epochs=1, data=(x[:320], y[:320])),
            verbose=False,
        )
    for a, b in zip(before, trained_keras3.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_tfmot_schedule_reports_the_ramp_but_never_updates_masks():
    from keras_forget.integrations import tfmot

    schedule = GradualSchedule(begin_step=4, end_step=24, frequency=5, power=2)
    tfmot_schedule = tfmot.score_driven_schedule(schedule, 0.75)
    for step in (0, 4, 9, 14, 24, 30):
        update, sparsity = tfmot_schedule(np.int64(step))
        assert not bool(update)
        assert float(sparsity) == pytest.approx(schedule.sparsity_at(step, 0.75), abs=1e-6)
    assert tfmot_schedule.get_config()["config"]["final_sparsity"] == 0.75


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"schedule": GradualSchedule(0, 10, 5)}, "fine_tune"),
        ({"schedule": {"begin_step": 0}}, "GradualSchedule"),
        (
            {
                "schedule": GradualSchedule(0, 10, 5, initial_sparsity=0.6),
                "sparsity": 0.5,
                "fine_tune": kf.FineTune(),
            },
            "above the final",
        ),
        (
            {"schedule": GradualSchedule(0, 10, 5), "sparsity": 1.0, "fine_tune": kf.FineTune()},
            "sparsity",
        ),
        (
            {
                "eval_data": "x_only",
                "schedule": GradualSchedule(0, 10, 5),
                "fine_tune": kf.FineTune(),
            },
            r"`eval_data` must be a pair \(x, y\)",  # x alone: no labels
        ),
    ],
)
def test_bad_gradual_arguments_fail_before_work(kwargs, message, trained_keras3, digits):
    (x, y), (xt, _) = digits
    if kwargs.get("eval_data") == "x_only":
        kwargs = kwargs | {"eval_data": xt}
    with pytest.raises(kf.InvalidArgumentError, match=message):
        kf.prune(trained_keras3, (x, y), method="obd", verbose=False, **kwargs)


def test_an_unset_end_step_is_fitted_to_the_fine_tuning(trained_keras3, digits):
    (x, y), _ = digits
    schedule = GradualSchedule()
    assert not schedule.is_fitted
    with pytest.raises(kf.InvalidArgumentError, match="fitted"):
        schedule.steps()
    fitted = schedule.fitted(last_step=39)
    assert fitted.end_step == int(selection.schedule.END_FRACTION * 39)
    assert fitted.frequency == max(1, fitted.end_step // selection.schedule.PRUNING_STEPS)
    assert GradualSchedule(end_step=12, frequency=5).fitted(39) == GradualSchedule(0, 12, 5)
    result = kf.prune(
        trained_keras3,
        (x[:128], y[:128]),
        sparsity=0.6,
        schedule=schedule,
        fine_tune=kf.FineTune(epochs=2, data=(x[:640], y[:640])),  # 2 x 20 steps: last is 39
        verbose=False,
    )
    assert result.history[-1].step == fitted.end_step < 39  # trained at the final sparsity after
    assert [h.step for h in result.history] == fitted.steps()
    assert result.report.sparsity == pytest.approx(0.6, abs=1e-3)


def test_a_begin_step_past_the_fine_tuning_is_refused(trained_keras3, digits):
    (x, y), _ = digits
    with pytest.raises(kf.InvalidArgumentError, match=r"begin_step.*\(9: 1 epoch"):
        kf.prune(
            trained_keras3,
            (x, y),
            sparsity=0.5,
            schedule=GradualSchedule(begin_step=50),
            fine_tune=kf.FineTune(epochs=1, data=(x[:320], y[:320])),
            verbose=False,
        )
