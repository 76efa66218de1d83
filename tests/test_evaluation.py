"""Unlearning evaluation: the attacks, evaluate_unlearning, the baselines and the report."""

from __future__ import annotations

import base64
import html.parser
import importlib
import io
import os

import keras
import matplotlib.image
import numpy as np
import pytest

import keras_forget as kf
from keras_forget.errors import InvalidArgumentError, KerasForgetError, NotAModelError
from keras_forget.evaluation import membership
from keras_forget.evaluation.forget_set import resolve
from keras_forget.evaluation.membership import Outputs
from tests.conftest import keras3_mlp

CLASSES = 10
#: The module (``keras_forget.evaluation.report`` the attribute is the function).
report_module = importlib.import_module("keras_forget.evaluation.report")


def _outputs(confidences: np.ndarray, labels: np.ndarray) -> Outputs:
    """Softmax rows with ``p_y = confidence`` and the rest spread evenly."""
    p = np.repeat(((1 - confidences) / (CLASSES - 1))[:, None], CLASSES, axis=1)
    p[np.arange(len(labels)), labels] = confidences
    return Outputs(p, labels)


@pytest.fixture(scope="module")
def attack_sets():
    """Members answered confidently, unseen examples less so."""
    rng = np.random.default_rng(0)

    def draw(n, low, high):
        return _outputs(rng.uniform(low, high, n), rng.integers(0, CLASSES, n))

    return {
        "retain": draw(300, 0.97, 1.0),
        "test": draw(200, 0.2, 0.9),
        "remembered": draw(100, 0.97, 1.0),
        "forgotten": draw(100, 0.2, 0.9),
    }


def test_each_attack_points_its_way_on_constructed_outputs(attack_sets):
    s = attack_sets
    remembered = (s["remembered"], s["retain"], s["test"])
    forgotten = (s["forgotten"], s["retain"], s["test"])
    # MIA-efficacy: fraction judged non-member, higher = forgotten.
    assert membership.mia_efficacy(*remembered) < 0.1 < 0.9 < membership.mia_efficacy(*forgotten)
    # SSD's entropy attack: fraction judged member, lower = forgotten.
    assert (
        membership.entropy_attack(*forgotten) < 0.1 < 0.9 < membership.entropy_attack(*remembered)
    )
    # SCRUB's loss attack: accuracy telling forget from test; ≈ 0.5 = forgotten.
    assert membership.loss_attack(s["remembered"], s["test"]) > 0.9
    assert abs(membership.loss_attack(s["forgotten"], s["test"]) - 0.5) < 0.15


def test_attacks_are_deterministic_for_a_seed(attack_sets):
    s = attack_sets
    args = (s["forgotten"], s["retain"], s["test"])
    assert membership.mia_efficacy(*args, seed=3) == membership.mia_efficacy(*args, seed=3)
    assert membership.loss_attack(*args[::2], seed=3) == membership.loss_attack(*args[::2], seed=3)


def test_loss_attack_compares_with_test_examples_of_the_forget_classes():
    rng = np.random.default_rng(1)
    forget = _outputs(np.full(40, 0.3), np.zeros(40, int))  # class 0, unconfident
    # Class-0 test examples look the same; every other class is confidently right.
    labels = np.r_[np.zeros(40, int), rng.integers(1, CLASSES, 200)]
    test = _outputs(np.r_[np.full(40, 0.3), np.full(200, 0.99)], labels)
    assert membership.loss_attack(forget, test) == pytest.approx(0.5, abs=0.15)


def _noise_task(seed: int = 0):
    """Random inputs with random labels: only memorisation fits them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(500, 8, 8, 1)).astype("float32")
    y = rng.integers(0, CLASSES, 500)
    return (x[:60], y[:60]), (x[60:300], y[60:300]), (x[300:], y[300:])


def _fit(data, seed=0, epochs=60):
    model = keras3_mlp(hidden=256, seed=seed)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(*data, epochs=epochs, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def memorized():
    """A model that memorized the forget set, and one retrained without it."""
    forget, retain, test = _noise_task()
    both = tuple(np.concatenate(p) for p in zip(forget, retain))
    return _fit(both), _fit(retain), forget, retain, test


def test_a_model_that_memorized_the_forget_set_is_caught_and_the_retrained_one_is_not(memorized):
    remembers, retrained, forget, retain, test = memorized
    sets = dict(forget=forget, retain=retain, test=test)
    seen = kf.evaluate_unlearning(remembers, retrained=retrained, **sets)
    unseen = kf.evaluate_unlearning(retrained, retrained=retrained, seconds=2.0,
                                    retrain_seconds=4.0, **sets)  # fmt: skip
    assert seen.forget_accuracy > 0.9 and unseen.forget_accuracy < 0.4
    assert seen.mia_efficacy < unseen.mia_efficacy
    assert seen.mia_entropy > unseen.mia_entropy
    assert seen.mia_loss > 0.8 and abs(unseen.mia_loss - 0.5) < 0.2
    assert unseen.retrain_agreement == 1.0 and unseen.retrain_kl == pytest.approx(0.0, abs=1e-9)
    assert seen.retrain_kl > 0.1 and seen.retrain_forget_agreement < 0.5
    assert unseen.time_ratio == 0.5 and seen.time_ratio is None
    assert unseen.sizes == {"forget": 60, "retain": 240, "test": 200}
    assert unseen.to_dict()["time_ratio"] == 0.5


def _ssd_case():
    """A softmax layer on 2 inputs: class 0 examples use input 0 only, class 1 input 1 only."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    model.set_weights([np.array([[0.3, -0.2], [0.1, 0.4]], "float32"), np.array([0.05, -0.1])])
    x = np.r_[np.tile([[1.0, 0.0]], (2, 1)), np.tile([[0.0, 1.0]], (38, 1))].astype("float32")
    y = np.r_[np.zeros(2, int), np.ones(38, int)]
    return model, x, y


def _expected_ssd(model, x, y, kind, alpha, lam):
    """SSD by hand: gradients of log p_y of a softmax layer are x ⊗ (e_y − p) and e_y − p."""
    kernel, bias = model.get_weights()
    z = x @ kernel + bias
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    delta = np.eye(2)[y] - p
    grads = {"kernel": x[:, :, None] * delta[:, None, :], "bias": delta}
    forget = y == 0

    def importance(g, rows):
        if kind == "per_example":
            return (g[rows] ** 2).mean(0)
        return g[rows].mean(0) ** 2  # one minibatch holding every example

    out = {}
    for name, w in (("kernel", kernel), ("bias", bias)):
        f = importance(grads[name], forget)
        d = importance(grads[name], np.ones_like(forget))
        chosen = f > alpha * d
        out[name] = np.where(chosen, w * np.minimum(lam * d / np.where(chosen, f, 1), 1), w)
    return out


@pytest.mark.parametrize("kind", ["per_example", "batch"])
@pytest.mark.parametrize("alpha, lam", [(10.0, 1.0), (2.0, 0.5), (10.0, 100.0)])
def test_ssd_dampens_exactly_the_weights_the_rule_names(kind, alpha, lam):
    model, x, y = _ssd_case()
    before = [w.copy() for w in model.get_weights()]
    result = kf.ssd(model, (x, y), target_class=0, alpha=alpha, lam=lam, importance=kind,
                    batch_size=64, verbose=False)  # fmt: skip
    expected = _expected_ssd(model, x, y, kind, alpha, lam)
    kernel, bias = result.model.get_weights()
    np.testing.assert_allclose(kernel, expected["kernel"], rtol=1e-5)
    np.testing.assert_allclose(bias, expected["bias"], rtol=1e-5)
    changed = int((kernel != before[0]).sum() + (bias != before[1]).sum())
    assert result.report.pruned >= changed  # selected, though lam may leave some unchanged
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    if (kind, alpha, lam) == ("per_example", 10.0, 1.0):
        # Input 0 serves class 0 only: its kernel row is selected and scaled by I_D / I_f =
        # 2 / 40; input 1's row never serves class 0 and is untouched.
        np.testing.assert_allclose(kernel[0], before[0][0] * 2 / 40, rtol=1e-5)
        np.testing.assert_array_equal(kernel[1], before[0][1])
    if (kind, lam) == ("per_example", 100.0):
        assert changed == 0  # I_D >= (2 / 40)·I_f, so min(λ·I_D / I_f, 1) = 1


BASELINES = {
    "ssd": lambda m, d, **k: kf.ssd(m, d, **k),
    "finetune": lambda m, d, **k: kf.finetune_baseline(m, d, epochs=1, **k),
    "gradient_ascent": lambda m, d, **k: kf.gradient_ascent(m, d, learning_rate=0.05, **k),
    "random_labels": lambda m, d, **k: kf.random_labels(m, d, epochs=1, **k),
}


@pytest.mark.parametrize("name", list(BASELINES))
def test_baselines_leave_the_model_alone_and_report_like_the_verbs(name, trained_keras3, digits):
    train, test = digits
    before = [w.copy() for w in trained_keras3.get_weights()]
    result = BASELINES[name](trained_keras3, train, target_class=3, eval_data=test, verbose=False)
    for a, b in zip(trained_keras3.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert isinstance(result, kf.Result) and result.model is not trained_keras3
    r = result.report
    assert r.method == name and r.target_classes == (3,) and r.eval_split == "eval_data"
    assert r.before.forget_accuracy > 0.9 and r.after is not None and r.seconds["total"] > 0
    assert r.total == trained_keras3.count_params()
    if name != "finetune":  # one epoch on the retain set need not forget yet
        assert r.after.forget_accuracy < r.before.forget_accuracy


def test_random_labels_and_ascent_forget_a_class(trained_keras3, digits):
    train, _ = digits
    relabelled = kf.random_labels(trained_keras3, train, target_class=3, epochs=2, verbose=False)
    assert relabelled.report.after.forget_accuracy < 0.2
    assert relabelled.report.after.retain_accuracy > 0.9


def test_retrain_forgets_given_examples_and_trains_on_the_rest(digits):
    (x, y), test = digits
    forget = (x[:40], y[:40])
    result = kf.retrain_baseline(lambda: keras3_mlp(hidden=32), (x, y), forget=forget,
                                 epochs=3, eval_data=test, verbose=False)  # fmt: skip
    r = result.report
    assert r.method == "retrain" and r.before is None and r.forgotten_examples == 40
    assert r.target_classes == () and r.after.accuracy > 0.5
    model = result.model
    split = resolve(model, (x, y), target_class=None, forget=forget)
    assert split.forget.size == 40 and split.retain.size == len(y) - 40
    np.testing.assert_array_equal(split.retain.labels, y[40:])


def test_forget_matching_counts_duplicates(digits):
    (x, y), _ = digits
    data = (np.concatenate([x[:5], x[:5]]), np.concatenate([y[:5], y[:5]]))
    split = resolve(keras3_mlp(), data, target_class=None, forget=(x[:1], y[:1]))
    assert split.forget.size == 1 and split.retain.size == 9
    with pytest.raises(InvalidArgumentError, match="not in `data`"):
        resolve(keras3_mlp(), data, target_class=None, forget=(x[[0, 0, 0]], y[[0, 0, 0]]))


def test_ssd_and_fine_tuning_work_on_tf_keras(trained_tf_keras, digits):
    train, test = digits
    before = [w.copy() for w in trained_tf_keras.get_weights()]
    for result in (
        kf.ssd(trained_tf_keras, train, target_class=3, verbose=False),
        kf.finetune_baseline(trained_tf_keras, train, target_class=3, epochs=1, verbose=False),
    ):
        assert type(result.model).__module__.startswith("tf_keras")
    for a, b in zip(trained_tf_keras.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    keep = train[1] != 3
    e = kf.evaluate_unlearning(result.model, forget=(train[0][~keep], train[1][~keep]),
                               retain=(train[0][keep], train[1][keep]), test=test)  # fmt: skip
    assert 0 <= e.mia_efficacy <= 1 and e.forgotten_classes == (3,)


def _digits_sets(digits):
    (x, y), test = digits
    keep = y != 3
    return dict(forget=(x[~keep], y[~keep]), retain=(x[keep], y[keep]), test=test)


def test_bad_input_to_evaluate_unlearning_is_named(trained_keras3, digits):
    sets = _digits_sets(digits)
    fx, fy = sets["forget"]
    bad = {
        "`forget` is empty": dict(sets, forget=(fx[:0], fy[:0])),
        "input": dict(sets, test=(np.zeros((5, 5)), np.zeros(5, int))),
        "labels must be in": dict(sets, retain=(fx[:20], np.full(20, 12))),
        "at least 10 forget": dict(sets, forget=(fx[:5], fy[:5])),
        "`seconds`": dict(sets, seconds=-1.0),
        "`retrained` has 3 outputs": dict(
            sets, retrained=keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                                              keras.layers.Dense(3, activation="softmax")])
        ),
    }  # fmt: skip
    for message, kwargs in bad.items():
        with pytest.raises(InvalidArgumentError, match=message):
            kf.evaluate_unlearning(trained_keras3, **kwargs)
    with pytest.raises(NotAModelError):
        kf.evaluate_unlearning("model", **sets)
    with pytest.raises(NotAModelError, match="`retrained`"):
        kf.evaluate_unlearning(trained_keras3, retrained=object(), **sets)


def test_bad_input_to_the_baselines_is_named(trained_keras3, digits):
    (x, y), _ = digits
    m, data = trained_keras3, (x, y)
    other = (np.clip(x[:3] + 0.01, 0, 1), y[:3])
    cases = {
        "not both": lambda: kf.ssd(m, data, target_class=3, forget=(x[:3], y[:3])),
        "not neither": lambda: kf.finetune_baseline(m, data),
        "not in `data`": lambda: kf.gradient_ascent(m, data, forget=other),
        "`forget` is empty": lambda: kf.random_labels(m, data, forget=(x[:0], y[:0])),
        "all of `data`": lambda: kf.ssd(m, data, forget=data),
        "`alpha`": lambda: kf.ssd(m, data, target_class=3, alpha=0),
        "`importance`": lambda: kf.ssd(m, data, target_class=3, importance="hessian"),
        "`epochs`": lambda: kf.finetune_baseline(m, data, target_class=3, epochs=0),
        "`learning_rate`": lambda: kf.gradient_ascent(m, data, target_class=3, learning_rate=-1),
        "`target_class` 12": lambda: kf.ssd(m, data, target_class=12),
        "`build_fn` must be callable": lambda: kf.retrain_baseline(m, data, target_class=3),
    }
    before = [w.copy() for w in m.get_weights()]
    for message, call in cases.items():
        with pytest.raises(KerasForgetError, match=message):
            call()
    with pytest.raises(NotAModelError, match="`build_fn` must return"):
        kf.retrain_baseline(lambda: "model", data, target_class=3)
    for a, b in zip(m.get_weights(), before):
        np.testing.assert_array_equal(a, b)


class _Page(html.parser.HTMLParser):
    """Collects the metric table's rows and the images of a report."""

    def __init__(self):
        super().__init__()
        self.rows, self.images, self._table = [], [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = attrs.get("class")
        elif tag == "tr" and self._table == "metrics":
            self.rows.append([])
        elif tag == "img":
            self.images.append(attrs)

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._table == "metrics" and self.rows and data.strip():
            self.rows[-1].append(data.strip())


@pytest.fixture(scope="module")
def evaluations(memorized):
    remembers, retrained, forget, retain, test = memorized
    sets = dict(forget=forget, retain=retain, test=test, retrained=retrained)
    return {
        "original": kf.evaluate_unlearning(remembers, **sets),
        "retrain": [kf.evaluate_unlearning(retrained, seconds=1.0, retrain_seconds=1.0, **sets)],
    }


def test_report_is_one_offline_html_page_with_decodable_images_and_markdown(evaluations, tmp_path):
    path = tmp_path / "out" / "report.html"
    curves = {"forget acc": ([0.01, 0.1], [0.9, 0.1])}
    html_path, md_path = kf.report(evaluations, path, curves=curves, meta={"commit": "abc"})
    assert html_path == str(path) and md_path == str(tmp_path / "out" / "report.md")
    page = _Page()
    page.feed(path.read_text())
    header, *methods = page.rows
    assert header[:2] == ["method", "runs"] and [r[0] for r in methods] == ["original", "retrain"]
    assert len(page.images) == 4  # per class, membership, time, curve
    for image in page.images:
        prefix, data = image["src"].split(",", 1)
        assert prefix == "data:image/png;base64" and image["alt"]
        pixels = matplotlib.image.imread(io.BytesIO(base64.b64decode(data)), format="png")
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert "http" not in path.read_text().replace("http-equiv", "")
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| method | runs |" in markdown and "| retrain | 1 |" in markdown
    assert sorted(os.listdir(tmp_path / "out")) == ["report.html", "report.md"]


def test_report_leaves_no_half_written_file(evaluations, tmp_path, monkeypatch):
    path = tmp_path / "report.html"
    kf.report(evaluations, path)
    old = path.read_text()
    monkeypatch.setattr(report_module, "_markdown", lambda *args: None)  # fails mid-write
    with pytest.raises(TypeError):
        kf.report(evaluations, path)
    assert path.read_text() == old
    assert sorted(os.listdir(tmp_path)) == ["report.html", "report.md"]


def test_bad_input_to_report_is_named(evaluations, tmp_path):
    cases = {
        "non-empty mapping": ({}, "r.html", {}),
        "results\\['x'\\]": ({"x": [1]}, "r.html", {}),
        "`path`": (evaluations, "r.pdf", {}),
        "curves\\['c'\\]": (evaluations, "r.html", {"curves": {"c": ([1, 2], [1])}}),
    }
    for message, (results, name, kwargs) in cases.items():
        with pytest.raises(InvalidArgumentError, match=message):
            kf.report(results, tmp_path / name, **kwargs)
    assert os.listdir(tmp_path) == []


def test_public_names_resolve_lazily():
    from keras_forget import evaluation

    for name in ("evaluate_unlearning", "retrain_baseline", "ssd", "finetune_baseline",
                 "gradient_ascent", "random_labels", "report"):  # fmt: skip
        assert getattr(kf, name) is getattr(evaluation, name) and name in kf.__all__
