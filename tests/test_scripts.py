"""The example and benchmark scripts run end to end on tiny settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(script: str, *args: str) -> None:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_cgan_example_draws_a_grid_and_exports(tmp_path):
    _run(
        "examples/cgan_digits.py",
        "--epochs",
        "2",
        "--per-class",
        "20",
        "--out",
        str(tmp_path),
        "--quiet",
    )
    assert os.path.getsize(tmp_path / "grid_3.png") > 1000
    assert os.path.getsize(tmp_path / "export_3" / "model.tflite") > 1000


@pytest.mark.slow
def test_obd_example_writes_curves(tmp_path):
    _run(
        "examples/obd_mnist.py", "--epochs", "2", "--step", "25", "--out", str(tmp_path), "--quiet"
    )
    curves = json.loads((tmp_path / "curves.json").read_text())["curves"]
    assert curves and os.path.getsize(tmp_path / "accuracy_vs_pruned.png") > 1000


@pytest.mark.slow
def test_forget_benchmark_writes_its_table(tmp_path):
    _run(
        "benchmarks/forget_digits.py",
        "--methods",
        "gradxweight",
        "--classes",
        "3",
        "--epochs",
        "3",
        "--out",
        str(tmp_path),
    )
    rows = json.loads((tmp_path / "forget_digits.json").read_text())["rows"]
    assert {r["method"] for r in rows} == {"gradxweight", "retrain"}
