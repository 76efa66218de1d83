"""Charts are drawn off-screen without switching the user's matplotlib backend."""

from __future__ import annotations

import matplotlib
import pytest

import keras_forget as kf
from keras_forget import plots


def test_per_class_chart_leaves_the_backend_alone(trained_keras3, digits, tmp_path):
    matplotlib.use("svg")  # whatever the user chose
    result = kf.prune_for_class(trained_keras3, digits[0], 2, amount=0.01, verbose=False)
    path = plots.per_class_bars(result.report, str(tmp_path / "chart.png"))
    assert matplotlib.get_backend() == "svg"
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_report_without_evaluations_is_refused(tmp_path):
    from keras_forget.results import Report

    empty = Report("magnitude", 0.5, "global", (), 1, 2, None, None, None, {})
    with pytest.raises(kf.InvalidArgumentError, match="no evaluation"):
        plots.per_class_bars(empty, str(tmp_path / "chart.png"))
    assert not list(tmp_path.iterdir())
