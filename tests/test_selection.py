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
