"""Forgetting in conditional generators: the adapter, the judge's rates, the grid."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_forget as kf
from keras_forget import generative
from keras_forget.errors import InvalidArgumentError
from keras_forget.generative import ConditionalGenerator, judge_rates, rate_generator
from keras_forget.generative_plots import plot_generations
from keras_forget.selection import amount as amount_search


def tiny_generator(noise_dim: int = 8, classes: int = 10, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    noise = keras.Input((noise_dim,), name="noise")
    label = keras.Input((1,), dtype="int32", name="label")
    embedded = keras.layers.Flatten()(keras.layers.Embedding(classes, 4, name="embed")(label))
    h = keras.layers.Concatenate()([noise, embedded])
    h = keras.layers.Dense(32, activation="relu", name="hidden")(h)
    pixels = keras.layers.Dense(64, activation="sigmoid", name="pixels")(h)
    return keras.Model([noise, label], keras.layers.Reshape((8, 8, 1))(pixels))


def tiny_discriminator(classes: int = 10) -> keras.Model:
    image = keras.Input((8, 8, 1))
    label = keras.Input((1,), dtype="int32")
    embedded = keras.layers.Flatten()(keras.layers.Embedding(classes, 4)(label))
    h = keras.layers.Concatenate()([keras.layers.Flatten()(image), embedded])
    h = keras.layers.Dense(32, activation="relu")(h)
    return keras.Model([image, label], keras.layers.Dense(1)(h))


@pytest.fixture(scope="module")
def tiny_cgan(digits):
    """A tiny conditional GAN trained for 200 seeded steps on the digits."""
    (x, y), _ = digits
    generator, discriminator = tiny_generator(), tiny_discriminator()
    g_opt, d_opt = keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3)
    bce = keras.losses.BinaryCrossentropy(from_logits=True)

    @tf.function
    def step(images, labels, z):
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = generator([z, labels], training=True)
            real_logit = discriminator([images, labels], training=True)
            fake_logit = discriminator([fake, labels], training=True)
            d_loss = bce(tf.ones_like(real_logit), real_logit)
            d_loss += bce(tf.zeros_like(fake_logit), fake_logit)
            g_loss = bce(tf.ones_like(fake_logit), fake_logit)
        d_vars, g_vars = discriminator.trainable_variables, generator.trainable_variables
        d_opt.apply_gradients(zip(d_tape.gradient(d_loss, d_vars), d_vars))
        g_opt.apply_gradients(zip(g_tape.gradient(g_loss, g_vars), g_vars))

    rng = np.random.default_rng(0)
    for _ in range(200):
        batch = rng.choice(len(x), 64, replace=False)
        z = rng.standard_normal((64, 8)).astype("float32")
        step(x[batch], y[batch, None].astype("int32"), z)
    return generator


def fixed_image_generator(image: np.ndarray) -> keras.Model:
    """(noise, label) -> always ``image``: a zero kernel whose bias is the image."""
    noise = keras.Input((4,), name="noise")
    label = keras.Input((1,), dtype="int32", name="label")
    embedded = keras.layers.Flatten()(keras.layers.Embedding(10, 2)(label))
    h = keras.layers.Concatenate()([noise, embedded])
    flat = keras.layers.Dense(
        64, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(image.ravel())
    )(h)
    return keras.Model([noise, label], keras.layers.Reshape((8, 8, 1))(flat))


def mean_image_generator(digits) -> keras.Model:
    """(noise, label) -> its label's mean digit plus a little noise: each label distinct."""
    (x, y), _ = digits
    means = np.stack([x[y == c].mean(0).ravel() for c in range(10)])
    keras.utils.set_random_seed(0)
    noise = keras.Input((4,), name="noise")
    label = keras.Input((1,), dtype="int32", name="label")
    rows = keras.layers.Embedding(
        10, 64, embeddings_initializer=keras.initializers.Constant(means), name="embed"
    )(label)
    jitter = keras.layers.Dense(
        64, kernel_initializer=keras.initializers.RandomNormal(stddev=0.05), name="jitter"
    )(noise)
    image = keras.layers.Add()([keras.layers.Flatten()(rows), jitter])
    return keras.Model([noise, label], keras.layers.Reshape((8, 8, 1))(image))


def constant_logits_judge(logits: np.ndarray) -> keras.Model:
    """A judge whose logits are ``logits`` whatever the image."""
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(
                len(logits),
                kernel_initializer="zeros",
                bias_initializer=keras.initializers.Constant(logits),
            ),
        ]
    )


def test_forgetting_a_label_of_a_tiny_cgan_end_to_end(tiny_cgan, tmp_path):
    original = [w.copy() for w in tiny_cgan.get_weights()]
    gen = ConditionalGenerator(tiny_cgan)
    assert (gen.num_classes, gen.noise_shape, gen.label_index) == (10, (8,), 1)
    data = gen.conditioning_data(per_class=20, seed=0)

    result = kf.prune_for_class(
        tiny_cgan, data, target_class=3, amount=0.01, verbose=False, **gen.prune_kwargs()
    )

    total = sum(m.size for m in result.masks.values())
    assert result.report.pruned == round(0.01 * total)
    assert result.report.before is result.report.after is None  # no accuracy for a generator
    assert result.report.auto_reached is None and result.unit_masks is None
    embed = result.masks["embed/embeddings"]
    assert not embed[3].all() and embed[np.arange(10) != 3].all()  # only the target's row
    for a, b in zip(original, tiny_cgan.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # the caller's generator is untouched
    before, after = gen.samples(16, seed=1), gen.samples(16, seed=1, model=result.model)
    change = np.abs(after - before).mean(axis=(1, 2, 3, 4))
    assert change[3] > 2 * np.delete(change, 3).max()  # the target's draws change most
    x = gen.inputs(gen.labels(32), seed=1)
    drop = gen.output_fn(tiny_cgan, x, None) - gen.output_fn(result.model, x, None)
    assert np.argmax(np.asarray(drop).reshape(10, 32).mean(1)) == 3  # 3 loses what sets it apart

    sample = gen.inputs(np.arange(10), seed=2)
    report = kf.export(result.model, tmp_path / "gen", sparse=True, sample=sample, verbose=False)
    assert os.path.isfile(report.tflite_path) and report.max_abs_diff["model.tflite"] <= 1e-4
    assert report.sparsity == pytest.approx(0.01, abs=0.002)
    with pytest.raises(InvalidArgumentError, match="sample"):
        kf.export(result.model, tmp_path / "bad", sample=sample[:1], verbose=False)


def test_auto_amount_stops_once_the_target_is_no_longer_drawn(digits):
    generator = mean_image_generator(digits)
    gen = ConditionalGenerator(generator)
    data = gen.conditioning_data(per_class=20, seed=0)
    before = gen.template_rates(seed=1)
    assert min(before.values()) >= 0.9  # every label is drawn as itself

    result = kf.prune_for_class(generator, data, 3, verbose=False, **gen.prune_kwargs())

    report = result.report
    assert report.auto_reached and "noise seed 2" in report.search_split
    decided = gen.template_rates([3], model=result.model)  # the draws the search judged
    assert decided[3] <= generative.FORGET_GOAL
    grid = list(amount_search.GRID)
    if report.amount != grid[0]:  # the amount one step smaller did not forget
        smaller = kf.prune_for_class(
            generator, data, 3, amount=grid[grid.index(report.amount) - 1], verbose=False,
            **gen.prune_kwargs(),
        )  # fmt: skip
        assert gen.template_rates([3], model=smaller.model)[3] > generative.FORGET_GOAL
    after = gen.template_rates(seed=1, model=result.model)  # fresh draws, never searched on
    assert after[3] <= before[3] - 0.5
    others = [c for c in range(10) if c != 3]
    assert np.mean([after[c] for c in others]) >= np.mean([before[c] for c in others]) - 0.1


def test_auto_amount_with_a_judge_stops_on_the_judges_reading(tiny_cgan):
    gen = ConditionalGenerator(tiny_cgan)
    data = gen.conditioning_data(per_class=10, seed=0)
    reads_zero = constant_logits_judge(np.eye(10)[0] * 5.0)
    done = kf.prune_for_class(
        tiny_cgan, data, 3, verbose=False, **gen.prune_kwargs(reads_zero)
    )  # no draw of 3 is read as 3: the smallest amount already passes
    assert done.report.amount == amount_search.GRID[0] and "the judge" in done.report.search_split
    reads_three = constant_logits_judge(np.eye(10)[3] * 5.0)
    with pytest.warns(UserWarning, match="did not reach"):
        never = kf.prune_for_class(
            tiny_cgan, data, 3, verbose=False, **gen.prune_kwargs(reads_three, goal=0.5)
        )
    assert never.report.auto_reached is False and never.report.amount == amount_search.GRID[-1]


def test_auto_amount_for_a_non_classifier_needs_a_forgotten_test(tiny_cgan, monkeypatch):
    gen = ConditionalGenerator(tiny_cgan)
    data = gen.conditioning_data(per_class=2, seed=0)
    monkeypatch.setattr(kf.pipeline, "run", _no_work)
    with pytest.raises(InvalidArgumentError, match="needs `forgotten`"):
        kf.prune_for_class(
            tiny_cgan, data, 3, output_fn=gen.output_fn, num_classes=10, verbose=False
        )
    with pytest.raises(InvalidArgumentError, match="`forgotten` must be a callable"):
        kf.prune_for_class(tiny_cgan, data, 3, verbose=False, **gen.prune_kwargs() | {
            "forgotten": 0.05})  # fmt: skip
    with pytest.raises(InvalidArgumentError, match="give it with `output_fn`"):
        kf.prune_for_class(tiny_cgan, data, 3, forgotten=gen.forgotten(), verbose=False)
    with pytest.raises(InvalidArgumentError, match="`goal`"):
        gen.forgotten(goal=1.0)


def test_sum_output_scores_the_image_sum(tiny_cgan):
    gen = ConditionalGenerator(tiny_cgan, output="sum")
    x = gen.inputs(np.array([0, 5, 9]), seed=0)
    expected = np.asarray(tiny_cgan(list(x))).reshape(3, -1).sum(-1)
    np.testing.assert_allclose(gen.output_fn(tiny_cgan, x, None), expected, rtol=1e-5)


def test_a_generator_that_always_draws_one_digit_is_rated_as_that_digit(trained_keras3, digits):
    _, (x_test, y_test) = digits
    judge = trained_keras3
    sevens = x_test[(y_test == 7) & (np.asarray(judge(x_test)).argmax(-1) == 7)]
    gen = ConditionalGenerator(fixed_image_generator(sevens[0]))

    rates = rate_generator(gen, judge, per_class=5, seed=0)

    assert rates.accuracy == {c: float(c == 7) for c in range(10)}
    probs = np.asarray(judge(sevens[:1]))[0]
    np.testing.assert_allclose([rates.confidence[c] for c in range(10)], probs, rtol=1e-5)
    assert rates.count == dict.fromkeys(range(10), 5)
    assert rates.mean_accuracy() == pytest.approx(0.1)


def test_judge_rates_reads_logits_and_probabilities_alike():
    logits = np.log(np.array([0.1, 0.6, 0.3]))
    images, labels = np.zeros((6, 8, 8, 1), "float32"), np.array([0, 1, 1, 2, 2, 2])
    rates = judge_rates(constant_logits_judge(logits + 5.0), images, labels)
    assert rates.accuracy == {0: 0.0, 1: 1.0, 2: 0.0}
    assert rates.confidence == pytest.approx({0: 0.1, 1: 0.6, 2: 0.3})
    assert rates.to_dict()["count"] == {"0": 1, "1": 2, "2": 3}
    with pytest.raises(InvalidArgumentError, match="labels"):
        judge_rates(constant_logits_judge(logits), images, labels + 1)


def test_grid_png_is_written_atomically(tmp_path):
    rng = np.random.default_rng(0)
    panels = {"before": rng.random((10, 4, 8, 8, 1)), "after": rng.random((10, 4, 8, 8, 1))}
    path = plot_generations(panels, tmp_path / "grid.png", marked=[3], title="forget 3")
    assert path == str(tmp_path / "grid.png")
    with open(path, "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["grid.png"]  # no temporary file left
    with pytest.raises(InvalidArgumentError, match="same shape"):
        plot_generations({"a": panels["before"], "b": panels["after"][:5]}, tmp_path / "x.png")


def _no_work(*args, **kwargs):
    raise AssertionError("work started before the arguments were checked")


def test_labels_outside_the_generators_range_are_refused(tiny_cgan, monkeypatch):
    gen = ConditionalGenerator(tiny_cgan)
    with pytest.raises(InvalidArgumentError, match="outside the generator's range"):
        gen.inputs([2, 10])
    with pytest.raises(InvalidArgumentError, match="target_class"):
        kf.prune_for_class(
            tiny_cgan,
            gen.conditioning_data(2),
            10,
            amount=0.01,
            verbose=False,
            **gen.prune_kwargs(),
        )
    with pytest.raises(InvalidArgumentError, match="fewer than"):
        rate_generator(gen, constant_logits_judge(np.zeros(3)))
    monkeypatch.setattr(ConditionalGenerator, "_centered_templates", _no_work)
    with pytest.raises(InvalidArgumentError, match="input_dim=10"):
        ConditionalGenerator(tiny_cgan, num_classes=12)


def test_a_model_without_a_label_input_is_refused(trained_keras3, monkeypatch):
    monkeypatch.setattr(ConditionalGenerator, "_centered_templates", _no_work)
    with pytest.raises(InvalidArgumentError, match="label input"):
        ConditionalGenerator(trained_keras3, num_classes=10)
    a, b = keras.Input((4,)), keras.Input((4,))
    two_floats = keras.Model([a, b], keras.layers.Dense(3)(keras.layers.Concatenate()([a, b])))
    with pytest.raises(InvalidArgumentError, match="label_input"):
        ConditionalGenerator(two_floats, num_classes=10)
    with pytest.raises(InvalidArgumentError, match="output"):
        ConditionalGenerator(tiny_generator(), output="mean")
    assert issubclass(InvalidArgumentError, ValueError) and generative.OUTPUTS[0] == "centered"
