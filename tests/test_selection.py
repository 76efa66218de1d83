"""ScoreMap -> MaskMap: exact counts, scopes and the forget-vs-retain contrast."""

from __future__ import annotations

import numpy as np
import pytest

from keras_forget import selection
from keras_forget.errors import InvalidArgumentError, NonFiniteError


def _scores():
    rng = np.random.default_rng(0)
    return {"a/kernel": rng.random((10, 20)), "b/kernel": rng.random((20, 5)) * 10}


@pytest.mark.parametrize("amount", [0.0, 0.013, 0.25, 0.5, 0.999])
@pytest.mark.parametrize("highest", [False, True])
def test_global_select_prunes_exactly_the_amount(amount, highest):
    scores = _scores()
    masks = selection.select(scores, amount, highest=highest)
    total = sum(v.size for v in scores.values())
    pruned = sum(int((~m).sum()) for m in masks.values())
    assert pruned == round(amount * total)
    kept = np.concatenate([scores[k][masks[k]] for k in scores])
    gone = np.concatenate([scores[k][~masks[k]] for k in scores])
    if gone.size and kept.size:
        assert (gone.min() >= kept.max()) if highest else (gone.max() <= kept.min())


def test_global_scope_follows_scale_while_layer_scope_does_not():
    scores = _scores()
    globally = selection.select(scores, 0.5, scope="global")
    per_layer = selection.select(scores, 0.5, scope="layer")
    # layer a's scores are ten times smaller: global ranking prunes it far more
    assert (~globally["a/kernel"]).mean() > 0.6 > 0.2 > (~globally["b/kernel"]).mean()
    for key in scores:
        assert (~per_layer[key]).mean() == pytest.approx(0.5)


def test_contrast_prefers_weights_specific_to_the_forget_data():
    forget = {"w": np.array([4.0, 4.0, 0.1, 1.0])}
    retain = {"w": np.array([4.0, 0.1, 0.1, 1.0])}
    ranked = selection.contrast(forget, retain, floor=0.1)
    assert int(np.argmax(ranked["w"])) == 1  # matters to the forget data only


def test_contrast_normalises_each_side_so_scale_does_not_matter():
    forget = {"w": np.array([1.0, 2.0, 3.0])}
    retain = {"w": np.array([3.0, 2.0, 1.0])}
    a = selection.contrast(forget, retain)
    b = selection.contrast({"w": forget["w"] * 1e-6}, {"w": retain["w"] * 1e3})
    np.testing.assert_allclose(a["w"], b["w"])


def test_contrast_ignores_weights_that_work_against_the_forget_data():
    forget = {"w": np.array([-5.0, 1.0])}
    retain = {"w": np.array([0.01, 1.0])}
    ranked = selection.contrast(forget, retain)
    assert ranked["w"][0] == 0.0 and ranked["w"][1] > 0


def test_bad_arguments_are_named():
    with pytest.raises(InvalidArgumentError, match="amount"):
        selection.select(_scores(), 1.0)
    with pytest.raises(InvalidArgumentError, match="scope"):
        selection.select(_scores(), 0.1, scope="row")
    with pytest.raises(NonFiniteError, match="a/kernel"):
        selection.select({"a/kernel": np.array([np.nan, 1.0])}, 0.5)
    with pytest.raises(InvalidArgumentError, match="keys"):
        selection.contrast({"a": np.ones(2)}, {"b": np.ones(2)})
    with pytest.raises(InvalidArgumentError, match="floor"):
        selection.contrast({"a": np.ones(2)}, {"a": np.ones(2)}, floor=0)


def test_contrast_default_floor_is_the_shared_floor():
    forget = {"w": np.array([4.0, 4.0, 0.1, 1.0])}
    retain = {"w": np.array([4.0, 0.1, 0.1, 1.0])}
    assert selection.FLOOR == 0.1
    default = selection.contrast(forget, retain)
    np.testing.assert_array_equal(default["w"], selection.contrast(forget, retain, floor=0.1)["w"])
    assert not np.allclose(default["w"], selection.contrast(forget, retain, floor=1.0)["w"])


def test_normalize_gives_mean_one_over_all_weights():
    scores = {"a": np.array([1.0, 3.0]), "b": np.array([[2.0, 6.0]])}
    out = selection.normalize(scores)
    np.testing.assert_allclose(out["a"], [1 / 3, 1.0])
    np.testing.assert_allclose(out["b"], [[2 / 3, 2.0]])
    assert np.mean(np.concatenate([v.ravel() for v in out.values()])) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "values", [[0.0, 0.0, 0.0], [-1.0, -2.0, 0.0], [-3.0, 1.0, 1.0]], ids=["zero", "neg", "mean<0"]
)
def test_normalize_raises_when_scores_have_no_positive_scale(values):
    with pytest.raises(NonFiniteError, match="retain scores"):
        selection.normalize({"w": np.array(values)}, "retain scores")


def test_contrast_raises_when_no_forget_score_is_positive():
    retain = {"a": np.array([1.0, 2.0]), "b": np.array([3.0])}
    for forget in (
        {"a": np.zeros(2), "b": np.zeros(1)},
        {"a": np.array([-1.0, 0.0]), "b": np.array([-5.0])},
    ):
        with pytest.raises(NonFiniteError, match="forget scores"):
            selection.contrast(forget, retain)
    # one positive forget score is enough
    ranked = selection.contrast({"a": np.array([-1.0, 0.0]), "b": np.array([2.0])}, retain)
    assert ranked["b"][0] > 0 and not ranked["a"].any()


def test_contrast_raises_when_every_retain_score_is_zero():
    with pytest.raises(NonFiniteError, match="retain scores"):
        selection.contrast({"a": np.ones(3)}, {"a": np.zeros(3)})


def test_search_keeps_the_smallest_amount_that_forgets():
    tried = []

    def masks_for(amount):
        tried.append(amount)
        return selection.select(_scores(), amount, highest=True)

    def forgets(masks):
        return selection.sparsity(masks) >= 0.1

    total = sum(v.size for v in _scores().values())
    amount, masks, reached = selection.search(masks_for, forgets, selection.GRID)
    passing = [a for a in selection.GRID if round(a * total) / total >= 0.1]
    assert reached and amount == passing[0]
    assert tried == [a for a in selection.GRID if a <= amount]  # stops at the first pass
    assert selection.sparsity(masks) == round(amount * total) / total


def test_search_warns_and_returns_the_largest_amount_when_nothing_forgets():
    grid = (0.1, 0.2, 0.3)
    with pytest.warns(UserWarning, match="did not reach"):
        amount, masks, reached = selection.search(
            lambda a: selection.select(_scores(), a), lambda m: False, grid
        )
    assert (amount, reached) == (0.3, False)
    assert selection.sparsity(masks) == pytest.approx(0.3)


def test_tighten_keeps_what_is_pruned_and_reaches_the_sparsity():
    scores = _scores()
    first = selection.select(scores, 0.3)
    # new scores rank other weights lowest; the pruned ones stay pruned
    again = {k: 1.0 / (v + 1e-3) for k, v in scores.items()}
    tighter = selection.tighten(again, first, 0.6)
    assert selection.sparsity(tighter) == pytest.approx(0.6)
    for key in scores:
        assert not (tighter[key] & ~first[key]).any()


def test_lamp_ranks_within_each_layer_and_tops_every_layer_at_one():
    scores = {"a": np.array([1.0, 2.0, 3.0, 4.0]), "b": np.array([[100.0, 0.0], [300.0, 200.0]])}
    out = selection.lamp(scores)
    np.testing.assert_allclose(out["a"], [1 / 10, 2 / 9, 3 / 7, 1.0])
    np.testing.assert_allclose(out["b"], [[100 / 600, 0.0], [1.0, 200 / 500]])
    for key in scores:  # the order within a layer is unchanged
        np.testing.assert_array_equal(np.argsort(out[key], None), np.argsort(scores[key], None))


def test_lamp_keeps_a_layer_of_small_scores_that_plain_ranking_empties():
    rng = np.random.default_rng(0)
    scores = {"small": rng.random(100) * 1e-3, "large": rng.random(100)}
    assert not selection.select(scores, 0.5)["small"].any()
    masks = selection.select(scores, 0.5, normalize="lamp")
    assert masks["small"].sum() >= 10 and selection.sparsity(masks) == 0.5


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_min_density_keeps_the_best_of_every_layer(scope):
    rng = np.random.default_rng(1)
    scores = {"small": rng.random((10, 10)) * 1e-3, "large": rng.random(300)}
    masks = selection.select(scores, 0.7, scope=scope, min_density=0.2)
    assert masks["small"].sum() >= 20 and selection.sparsity(masks) == pytest.approx(0.7)
    best = np.argsort(scores["small"], None)[-20:]
    assert masks["small"].ravel()[best].all()
    with pytest.raises(InvalidArgumentError, match="min_density"):
        selection.select(scores, 0.9, min_density=0.2)
    with pytest.raises(InvalidArgumentError, match="normalize"):
        selection.select(scores, 0.5, normalize="l2")


def test_rounds_follow_a_geometric_ramp_and_rescore_the_pruned_network():
    assert selection.ramp(0.75, 2) == pytest.approx([0.5, 0.75])
    assert selection.ramp(0.9, 1) == [0.9]
    seen = []
    base = _scores()

    def rescore(masks):
        seen.append(None if masks is None else selection.sparsity(masks))
        if masks is None:
            return base
        # once half a layer is pruned, the weights it keeps matter far more
        return {k: v * (1 + 1000 * (masks[k].mean() < 0.5)) for k, v in base.items()}

    masks = selection.prune_in_rounds(rescore, 0.9, rounds=3)
    total = sum(v.size for v in base.values())  # whole weights: within one of the ramp
    assert seen[0] is None and seen[1:] == pytest.approx(selection.ramp(0.9, 3)[:2], abs=1 / total)
    assert selection.sparsity(masks) == pytest.approx(0.9)
    one_shot = selection.select(base, 0.9)
    assert not one_shot["a/kernel"].any() and masks["a/kernel"].any()  # the re-scores mattered
    single = selection.prune_in_rounds(lambda m: base, 0.9, rounds=1)
    assert all((single[k] == one_shot[k]).all() for k in base)
    with pytest.raises(InvalidArgumentError, match="rounds"):
        selection.prune_in_rounds(rescore, 0.5, rounds=0)


def test_tighten_with_lamp_normalizes_over_the_weights_still_kept():
    scores = {"a": np.arange(1.0, 11.0), "b": np.arange(1.0, 11.0) * 1e-4}
    first = selection.select(scores, 0.4, normalize="lamp")
    tighter = selection.tighten(scores, first, 0.8, normalize="lamp", min_density=0.1)
    assert selection.sparsity(tighter) == pytest.approx(0.8)
    assert tighter["a"].sum() >= 1 and tighter["b"].sum() >= 1
    assert all(not (tighter[k] & ~first[k]).any() for k in scores)
