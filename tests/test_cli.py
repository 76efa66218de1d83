"""The main job from the command line writes its report, chart and TFLite file."""

from __future__ import annotations

import json
import os

from keras_forget import cli


def test_main_job_writes_report_chart_and_tflite(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["--out", str(out), "--epochs", "8", "--quiet", "--target-class", "4"]) == 0
    summary = json.loads((out / "report.json").read_text())
    report = summary["report"]
    assert report["target_classes"] == [4]
    assert report["after"]["forget_accuracy"] < report["before"]["forget_accuracy"]
    assert os.path.getsize(out / "per_class_accuracy.png") > 1000
    assert os.path.getsize(out / "export" / "model.tflite") > 1000
    assert (out / "digits_mlp.keras").exists()  # cached for the next run
    printed = capsys.readouterr().out
    assert "forget" in printed and "retain" in printed


def test_second_run_reuses_the_cached_classifier(tmp_path):
    out = tmp_path / "run"
    cli.main(["--out", str(out), "--epochs", "2", "--quiet"])
    stamp = os.path.getmtime(out / "digits_mlp.keras")
    cli.main(["--out", str(out), "--epochs", "2", "--quiet"])
    assert os.path.getmtime(out / "digits_mlp.keras") == stamp


def test_parser_defaults_are_the_verbs_defaults():
    args = cli.parser().parse_args([])
    assert (args.amount, args.scope, args.method, args.granularity) == (
        "auto",
        None,
        None,
        "weight",
    )
    assert cli.parser().parse_args(["--amount", "3"]).amount == 3
    assert cli.parser().parse_args(["--amount", "0.05"]).amount == 0.05
    assert "gradxweight" in cli.parser().format_help()
