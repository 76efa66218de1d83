"""The example and benchmark scripts run end to end on tiny settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from keras_forget.selection.amount import GRID

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(script: str, *args: str) -> str:
    """Runs a script to completion; returns what it printed."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


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
def test_mixed_privacy_example_forgets_and_plots(tmp_path):
    _run(
        "examples/mixed_privacy_digits.py",
        "--epochs", "5",
        "--user-epochs", "1",
        "--out", str(tmp_path),
        "--quiet",
    )  # fmt: skip
    summary = json.loads((tmp_path / "mixed_privacy.json").read_text())
    accuracy = summary["per_class_accuracy"]
    assert summary["forget_all_max_abs_diff"] <= 1e-6
    assert accuracy["(c) forget_all"] == accuracy["core only"]
    assert accuracy["fitted (core + user)"][7] > 0.5 > accuracy["(b) -user class 7"][7]
    assert os.path.getsize(tmp_path / "per_class_accuracy.png") > 1000


@pytest.mark.slow
def test_forget_benchmark_writes_its_table(tmp_path):
    _run(
        "benchmarks/forget_digits.py",
        *("--seeds", "0", "--archs", "mlp", "--methods", "gradxweight", "--classes", "3"),
        *("--epochs", "3", "--retrain-classes", "1", "--quiet", "--out", str(tmp_path)),
    )
    out = json.loads((tmp_path / "forget_digits_test.json").read_text())
    assert {r["method"] for r in out["rows"]} == {"gradxweight", "retrain"}
    assert out["provenance"]["commit"] and out["split"] == "test"


@pytest.mark.slow
def test_discedit_example_forgets_shrinks_and_exports():
    out = _run("examples/discedit_cnn.py", "--epochs", "1", "--width", "4")
    assert out.count("forget [3] with exp_norm (global)") == 2
    assert out.count("compress with fisher_bound (layer)") == 2
    assert out.count("shrunk:") == 2 and out.count("model.tflite:") == 2


@pytest.mark.slow
def test_discedit_benchmark_writes_its_tables(tmp_path):
    out = _run(
        "benchmarks/discedit.py", "--seeds", "0", "--archs", "mlp", "--classes", "3",
        "--sparsities", "0.5", "--epochs", "2", "--runs", "3", "--quiet", "--out", str(tmp_path),
    )  # fmt: skip
    result = json.loads((tmp_path / "discedit_test.json").read_text())
    assert result["split"] == "test" and result["provenance"]["commit"] and "target [" in out
    rows = result["rows"]
    assert not any("error" in r for r in rows)
    unlearned = [r for r in rows if r["part"] == "unlearning"]
    assert len(unlearned) == 1 and {"forget_noft", "retain_ft", "amount"} <= set(unlearned[0])
    pruned = [r for r in rows if r["part"] == "structured"]
    assert {r["method"] for r in pruned} == {"discedit", "l1"}
    for r in pruned:
        assert r["units_pruned"] / r["units_total"] == pytest.approx(0.5, abs=0.05)
        assert r["params_kept"] < 0.6  # physically smaller: shrink=True
    shrunk = [r for r in pruned if r["method"] == "discedit"]
    assert shrunk[0]["tflite_max_abs_diff"] <= 1e-4 and shrunk[0]["latency_b64_ratio"] > 0


@pytest.mark.slow
def test_compression_benchmark_writes_its_tables(tmp_path):
    path = tmp_path / "compression.json"
    out = _run("benchmarks/compression.py", "--quick", "--parts", "grid", "budget", "tflite",
               "--sparsities", "0.9", "--out", str(path), "--quiet")  # fmt: skip
    result = json.loads(path.read_text())
    assert result["failed"] == 0 and result["provenance"]["commit"]
    grid = result["summary"]["grid"]["mlp"]
    assert set(grid) == {
        f"{m}/{s}"
        for m in ("magnitude", "obd", "fisher", "gradxweight", "obs")
        for s in ("global", "layer")
    }
    assert {r["reported_method"] for r in result["grid"] if r["method"] == "fisher"} == {
        "fisher_obd"
    }
    for r in result["grid"]:
        assert r["achieved"] == pytest.approx(r["sparsity"], abs=0.01)
        assert 0 <= r["noft"] <= 1 and 0 <= r["ft"] <= 1
    runs = result["summary"]["budget"]
    assert len(runs) == 10 and sum(name.startswith("tfmot") for name in runs) == 1
    for row in result["budget"]:
        if not row["run"].startswith("tfmot"):  # tfmot's ramp outlasts one tiny epoch
            assert row["sparsity"] == pytest.approx(0.9, abs=0.01), row["run"]
    assert set(result["tflite"]) == {"0.00", "0.90"}
    assert "OBD-global >= magnitude-global" in out


@pytest.mark.slow
def test_obd_diagnosis_writes_its_tables(tmp_path):
    path = tmp_path / "obd.json"
    out = _run("benchmarks/obd_diagnosis.py", "--quick", "--no-cnn", "--out", str(path), "--quiet")
    result = json.loads(path.read_text())
    assert "layer conservation" in out and "OBD rounds" in out
    assert result["protocol"]["test_split"] == "never touched"
    assert {d["arch"] for d in result["diagnosis"]} == {"mlp", "mlp2"}
    assert result["recommendation"]["obd"]["rounds"] in (1, 4, 8, 16)


@pytest.mark.slow
def test_obd_estimator_benchmark_applies_its_rule(tmp_path):
    path = tmp_path / "estimator.json"
    out = _run("benchmarks/obd_estimator.py", "--quick", "--archs", "mlp", "--out", str(path),
               "--quiet")  # fmt: skip
    result = json.loads(path.read_text())
    order = ("ggn", "top3", "strat2", "sampled")
    assert {r["estimator"] for r in result["rows"]} == set(order)
    means = result["summary"]["means"]
    passing = [e for e in order if means["ggn"] - means[e] <= 0.005]
    assert result["summary"]["chosen"] == passing[-1]
    assert "rule: the cheapest within 0.5 pt of ggn" in out


@pytest.mark.slow
def test_cgan_benchmark_writes_its_rows(tmp_path):
    path = tmp_path / "cgan_forget.json"
    common = ["--epochs", "2", "--gan-seeds", "0", "--targets", "3", "--per-class", "10",
              "--checkpoints", str(tmp_path)]  # fmt: skip
    out = _run("benchmarks/cgan_forget.py", *common, "--out", str(path))
    result = json.loads(path.read_text())
    assert result["gans"][0]["config"]["epochs"] == 2 and result["provenance"]["commit"]
    (row,) = result["rows"]
    assert row["target"] == 3 and {"auto", "centered", "sum", "prior"} <= set(row)
    assert "noise seed 2" in row["auto"]["decided_on"] and "label-free" in out
    chosen = tmp_path / "choose.json"
    out = _run("benchmarks/cgan_forget.py", *common, "--choose", "--out", str(chosen))
    assert "chosen" in out and "labels+mean <= 0.05" in out
    assert len(json.loads(chosen.read_text())["rows"]) == 1


@pytest.mark.slow
def test_unit_scope_benchmark_writes_its_rows(tmp_path):
    path = tmp_path / "unit_scope.json"
    out = _run(
        "benchmarks/unit_scope.py",
        "--seeds", "0",
        "--epochs", "1",
        "--archs", "mlp", "vgg",
        "--sparsities", "0.5",
        "--quiet",
        "--out", str(path),
    )  # fmt: skip
    assert "test split never touched" in out and "recommended scope:" in out
    result = json.loads(path.read_text())
    rows = result["rows"]
    assert {(r["arch"], r["scope"]) for r in rows} == {
        (a, s) for a in ("mlp", "vgg") for s in ("layer", "global")
    }
    assert result["failed"] == 0 and all(0 <= r["ft_val_acc"] <= 1 for r in rows)
    assert all(r["params"] < r["dense_params"] for r in rows)  # shrink=True
    assert result["protocol"]["test_split"] == "never touched"
    assert result["recommendation"]["scope"] in ("layer", "global")
    assert set(result["provenance"]["versions"]) == {
        "python", "tensorflow", "keras", "numpy", "keras_forget"
    }  # fmt: skip
    assert len(result["summary"]) == 4 and all(c["n"] == 1 for c in result["summary"])


@pytest.mark.slow
def test_unlearning_suite_writes_tables_and_reports(tmp_path):
    path = tmp_path / "unlearning_suite.json"
    out = _run("benchmarks/unlearning_suite.py", "--quick", "--archs", "mlp", "--no-random",
               "--quiet", "--out", str(path), "--report-dir", str(tmp_path))  # fmt: skip
    result = json.loads(path.read_text())
    assert result["failed"] == 0 and result["provenance"]["commit"]
    methods = {row["method"] for row in result["rows"]}
    assert {"ours", "retrain", "original"} <= methods and any(m.startswith("ssd") for m in methods)
    for row in result["rows"]:
        for key in ("forget_accuracy", "retain_accuracy", "test_accuracy", "mia_efficacy"):
            assert 0 <= row[key] <= 1, (row["method"], key)
    ours = [row for row in result["rows"] if row["method"] == "ours"]
    assert ours and all(row["forget_accuracy"] <= 0.1 for row in ours)
    assert (tmp_path / "unlearning_suite_mlp_class.html").is_file()
    assert "targets:" in out


@pytest.mark.slow
def test_scoring_speed_benchmark_writes_its_rows(tmp_path):
    path = tmp_path / "scoring_speed.json"
    out = _run("benchmarks/scoring_speed.py", "--archs", "mlp", "--flavors", "keras3",
               "--devices", "1", "--scores", "obd", "--examples", "64",
               "--exact-examples", "32", "--memory-examples", "100", "--quiet",
               "--out", str(path))  # fmt: skip
    result = json.loads(path.read_text())
    assert not result["failures"] and result["provenance"]["commit"]
    paths = {(row["score"], row["factored"]) for row in result["rows"]}
    assert paths == {("obd", True), ("obd", False)}
    for row in result["rows"]:
        assert row["epoch_seconds"] > 0 and row["epochs"] > 0
    assert [m["examples"] for m in result["memory"]] == [100, 1000]
    assert all(m["peak_rss_mib"] > 0 for m in result["memory"])
    (forget,) = result["forget"]
    assert forget["seconds"] > 0
    assert "epochs" in out


@pytest.mark.slow
def test_unit_forget_benchmark_runs_both_halves(tmp_path):
    for split in ("validation", "test"):
        out = _run(
            "benchmarks/unit_forget.py", "--split", split, "--seeds", "0", "--archs", "mlp",
            "--classes", "3", "--epochs", "5", "--quiet", "--out", str(tmp_path),
        )  # fmt: skip
        result = json.loads((tmp_path / f"unit_forget_{split}.json").read_text())
        assert result["provenance"]["commit"] and "forgot" in out
    assert result["split"] == "test"
    assert {r["granularity"] for r in result["rows"]} == {"unit", "weight"}
    chosen = json.loads((tmp_path / "unit_forget_validation.json").read_text())
    assert chosen["recommendation"]["scope/method"] in ("global/default", "layer/default")


@pytest.mark.slow
def test_fine_tune_benchmark_recommends_a_rate(tmp_path):
    out = _run(
        "benchmarks/fine_tune.py", "--split", "validation", "--seeds", "0", "--archs", "mlp",
        "--rates", "1e-4", "1e-3", "--classes", "3", "--epochs", "5", "--quiet",
        "--out", str(tmp_path),
    )  # fmt: skip
    result = json.loads((tmp_path / "fine_tune_validation.json").read_text())
    chosen = result["recommendation"]["by_task"]
    assert set(chosen) == {"weight 90%", "unit 50%", "forget"} and "unit 50%" in out
    assert all(c["learning_rate"] in (1e-4, 1e-3) for c in chosen.values())
    assert {r["task"] for r in result["rows"]} == {"weight 90%", "unit 50%", "forget"}


@pytest.mark.slow
def test_forget_diagnosis_sweeps_the_amount_grid(tmp_path):
    path = tmp_path / "diagnosis.json"
    out = _run(
        "benchmarks/forget_diagnosis.py", "--model", "MobileNetV3Small", "--epochs", "1",
        "--floors", "0.1", "--grid-points", "2", "--limit", "300", "--out", str(path),
    )  # fmt: skip
    result = json.loads(path.read_text())
    assert result["split"] == "validation" and result["provenance"]["commit"]
    assert [r["amount"] for r in result["rows"]] == list(GRID[:2])
    assert all(0 <= r["forget"] <= 1 and len(r["most_cut"]) <= 4 for r in result["rows"])
    assert "most cut" in out
