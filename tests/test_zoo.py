"""The model-zoo harness on tiny stand-ins of each kind of model users bring.

Runs ``benchmarks/model_zoo.py``'s own per-model job in-process on the small custom
models (RNNs, a Transformer block, a Python-lambda Lambda layer, a subclassed model
with auto-named layers): every verb works or is refused with a KerasForgetError.
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _zoo():
    spec = importlib.util.spec_from_file_location("model_zoo", ROOT / "benchmarks/model_zoo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ZOO = _zoo()
SETTINGS = argparse.Namespace(
    size=32,
    max_params=30e6,
    train=200,
    test=100,
    epochs=3,
    custom_epochs=3,
    verbs=ZOO.VERBS,
)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, flavor",
    [("LSTM", "keras3"), ("Transformer", "keras3"), ("Lambda", "keras3"),
     ("Subclassed", "keras3"), ("Lambda", "tf_keras")],
)  # fmt: skip
def test_every_verb_works_or_says_why(name, flavor):
    row = ZOO.run_one(name, flavor, SETTINGS)
    statuses = {verb: row[verb]["status"] for verb in ZOO.VERBS}
    raw = {verb: row[verb] for verb in ZOO.VERBS if statuses[verb].startswith("RAW")}
    assert not raw, raw
    weight_verbs = ("forget", "obd", "export")
    assert all(statuses[v].startswith("ok") for v in weight_verbs), statuses
    if name in ("Lambda", "Transformer", "LSTM"):  # a probed Lambda; attention heads; RNN units
        assert statuses["shrink"].startswith("ok"), statuses


def test_the_zoo_lists_every_keras_application():
    import keras

    shipped = {n for n in dir(keras.applications) if n[0].isupper()}
    assert shipped == set(ZOO.APPLICATIONS)


def test_memory_held_after_a_verb_is_measured_three_ways():
    held = ZOO._held_mb()
    assert set(held) >= {"rss_mb_after", "rss_mb_after_gc"}
    assert all(isinstance(v, int) and v > 0 for v in held.values())
    assert held["rss_mb_after"] <= ZOO._peak_mb() + 2  # both rounded to MiB; a unit error is 1000x
