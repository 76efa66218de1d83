"""The command line: one set of outputs, a cache keyed by its settings, clean errors and exit codes.

Errors and exit codes are checked through subprocesses. Most run the CLI through
``LAZY``, a launcher that registers the ``keras_forget`` package without running its
``__init__`` (which imports TensorFlow): it shows what the ``cli`` package itself imports, so
that argument errors and ``--help`` are seen to come before TensorFlow is imported.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from keras_forget import cli, datasets, run_outputs
from keras_forget.cli import arguments, job, quiet
from keras_forget.errors import DatasetUnavailableError, InvalidArgumentError

from .conftest import keras3_mlp, tf_keras_mlp, train

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAZY = (
    "import atexit, sys, types\n"
    "package = types.ModuleType('keras_forget')\n"
    f"package.__path__ = [{str(ROOT / 'keras_forget')!r}]\n"
    "sys.modules['keras_forget'] = package\n"
    "atexit.register(lambda: print('tensorflow imported:', 'tensorflow' in sys.modules))\n"
    "from keras_forget import cli\n"
    "sys.exit(cli.main(sys.argv[1:]))\n"
)


def _cli(args, cwd, *, lazy=True, timeout=300):
    """Runs keras-forget in a fresh interpreter with the user's default environment."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(ROOT)
    launcher = ["-c", LAZY] if lazy else ["-m", "keras_forget.cli"]
    return subprocess.run(
        [sys.executable, *launcher, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


def _files(directory):
    """``{relative path: bytes}`` of the run's set in ``directory``."""
    out = {}
    for name in arguments.OUTPUTS:
        path = directory / name
        paths = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        out.update({str(p.relative_to(directory)): p.read_bytes() for p in paths})
    return out


def _leftovers(directory):
    return [p.name for p in directory.iterdir() if p.name.startswith(".kf-")]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    code = cli.main(["--out", str(out), "--epochs", "2", "--quiet", "--target-class", "4"])
    return code, out


# -- one run, in-process ---------------------------------------------------------------------


def test_main_job_writes_one_set_of_outputs_and_caches_the_classifier(first_run):
    code, out = first_run
    assert code == cli.EXIT_OK
    summary = json.loads((out / "report.json").read_text())
    report = summary["report"]
    assert report["target_classes"] == [4]
    assert report["after"]["forget_accuracy"] < report["before"]["forget_accuracy"]
    assert summary["retain"]["passed"] and summary["retain"]["max_drop_points"] == 5
    assert os.path.getsize(out / "per_class_accuracy.png") > 1000
    assert os.path.getsize(out / "export" / "model.tflite") > 1000
    # Paths in the report are where the files ended up, not the staging directory.
    assert summary["export"]["tflite_path"] == str(out / "export" / "model.tflite")
    assert summary["chart"] == str(out / "per_class_accuracy.png")
    (cache,) = out.glob("digits_mlp-*.keras")
    assert json.loads(pathlib.Path(f"{cache}.json").read_text())["epochs"] == 2
    assert _leftovers(out) == []


def test_an_interrupted_run_leaves_the_previous_set_whole(first_run, tmp_path, monkeypatch):
    out = tmp_path / "run"
    shutil.copytree(first_run[1], out)
    before = _files(out)
    from keras_forget import plots

    def interrupt(report, path):
        staged = pathlib.Path(path).parent
        assert (staged / "export" / "model.tflite").exists()  # the new export is written
        raise KeyboardInterrupt

    monkeypatch.setattr(plots, "per_class_bars", interrupt)
    code = cli.main(["--out", str(out), "--epochs", "2", "--quiet", "--target-class", "7"])
    assert code == cli.EXIT_INTERRUPTED
    assert _files(out) == before
    assert json.loads((out / "report.json").read_text())["report"]["target_classes"] == [4]
    assert _leftovers(out) == []


def test_cache_is_keyed_by_everything_that_shapes_the_classifier(tmp_path, digits):
    def args(epochs):
        return argparse.Namespace(
            out=str(tmp_path), epochs=epochs, seed=0, retrain=False, quiet=True
        )

    job.classifier(args(1), digits[0], "digits", 10)
    (first,) = tmp_path.glob("digits_mlp-*.keras")
    stamp = first.stat().st_mtime_ns
    job.classifier(args(1), digits[0], "digits", 10)  # same settings: reused
    assert list(tmp_path.glob("digits_mlp-*.keras")) == [first]
    assert first.stat().st_mtime_ns == stamp
    job.classifier(args(2), digits[0], "digits", 10)  # other epochs: trained anew
    assert len(list(tmp_path.glob("digits_mlp-*.keras"))) == 2

    from keras_forget import models

    base = {"epochs": 2, "seed": 0, "hidden": [128, 64], "data": "abc"}
    paths = {
        models.cache_path("d", "digits", {**base, **change})
        for change in ({}, {"seed": 1}, {"hidden": [32]}, {"data": "abd"}, {"epochs": 3})
    }
    assert len(paths) == 5


def test_own_keras_model_and_npz_data(tmp_path, digits):
    (x_train, y_train), (x_test, y_test) = digits
    model = train(keras3_mlp(hidden=32), digits, epochs=5)
    model_path, data_path = tmp_path / "mine.keras", tmp_path / "mine.npz"
    model.save(model_path)
    np.savez(data_path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    out = tmp_path / "out"
    args = ["--model", model_path, "--data", data_path, "--out", out, "--quiet"]
    code = cli.main([*map(str, args), "--target-class", "1", "--max-retain-drop", "100"])
    assert code == cli.EXIT_OK
    assert json.loads((out / "report.json").read_text())["report"]["target_classes"] == [1]
    assert (out / "export" / "model.tflite").exists()
    assert not list(out.glob("*.keras"))  # nothing trained, nothing cached


def test_tf_keras_saved_model_directory_loads_as_tf_keras(tmp_path):
    model = tf_keras_mlp()
    model.save(tmp_path / "saved")
    assert (tmp_path / "saved" / "saved_model.pb").exists()
    arguments._check_model_path(str(tmp_path / "saved"))
    from keras_forget import _keras

    assert _keras.flavor(job.load_model(str(tmp_path / "saved"))) == "tf_keras"


def test_debug_shows_the_exception(tmp_path):
    with pytest.raises(InvalidArgumentError, match="no such file"):
        cli.main(["--model", str(tmp_path / "none.keras"), "--debug"])


def test_retain_drop_is_measured_after_fine_tuning_when_it_ran():
    from types import SimpleNamespace as Eval

    before, after, tuned = (
        Eval(retain_accuracy=0.9),
        Eval(retain_accuracy=0.5),
        Eval(retain_accuracy=0.88),
    )
    ran = job.retain_check(Eval(before=before, after=after, fine_tuned=tuned), 5.0)
    assert ran["stage"] == "fine_tuned" and ran["passed"]
    assert abs(ran["drop_points"] - 2.0) < 1e-9
    skipped = job.retain_check(Eval(before=before, after=after, fine_tuned=None), 5.0)
    assert skipped["stage"] == "after" and not skipped["passed"]
    assert job.retain_check(Eval(before=before, after=after, fine_tuned=None), 40.0)["passed"]


# -- tfds messages ---------------------------------------------------------------------------


def test_mnist_with_a_missing_module_names_it(tmp_path, monkeypatch, capsys):
    tfds = pytest.importorskip("tensorflow_datasets")

    def load(*args, **kwargs):
        raise ModuleNotFoundError(
            "No module named 'importlib_resources'", name="importlib_resources"
        )

    monkeypatch.setattr(tfds, "load", load)
    out = str(tmp_path / "out")
    assert cli.main(["--dataset", "mnist", "--data-dir", str(tmp_path), "--out", out]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("keras-forget: error: ")
    assert "'importlib_resources'" in line and "pip install importlib_resources" in line
    assert (
        "not missing data" in line
        and "--data-dir" in line
        and "could not be downloaded" not in line
    )


def test_missing_tfds_itself_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(DatasetUnavailableError, match="'tensorflow_datasets'.*pip install"):
        datasets.load("mnist")


def test_mnist_not_prepared_says_so_and_names_data_dir(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")

    def load(*args, **kwargs):
        raise AssertionError("Dataset mnist: could not find data")

    monkeypatch.setattr(tfds, "load", load)
    with pytest.raises(DatasetUnavailableError) as info:
        datasets.load("mnist", data_dir=str(tmp_path))
    message = str(info.value)
    assert "not prepared" in message and str(tmp_path) in message and "--data-dir" in message
    assert "could not find data" in message  # what tfds said


# -- quiet by default ------------------------------------------------------------------------


def test_quiet_sets_the_log_level_only_if_unset_and_not_verbose(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    devices = os.environ.get("CUDA_VISIBLE_DEVICES")
    assert quiet.quiet_tensorflow(verbose=True) is False
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    assert quiet.quiet_tensorflow(verbose=False) is True
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    assert quiet.quiet_tensorflow(verbose=False) is False
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    assert os.environ.get("CUDA_VISIBLE_DEVICES") == devices  # GPUs stay visible


def test_filtered_stderr_drops_tensorflow_start_up_lines_only(capfd):
    noise = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1795258836.618706   26380 cudart_stub.cc:31] Could not find cuda drivers\n"
        "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
    )
    with quiet.filtered_stderr():
        os.write(2, (noise + "a real problem\n").encode())
    assert capfd.readouterr().err == "a real problem\n"
    with pytest.raises(RuntimeError), quiet.filtered_stderr():
        os.write(2, noise.encode())
        raise RuntimeError
    assert capfd.readouterr().err == noise  # a failure shows everything


# -- the set of outputs ----------------------------------------------------------------------


def test_a_failed_swap_puts_the_previous_set_back(tmp_path, monkeypatch):
    (tmp_path / "a").write_text("old a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "f").write_text("old f")
    renames = []
    real = os.rename

    def rename(src, dst):
        renames.append(src)
        if len(renames) == 4:  # the second entry of the new set
            raise OSError("disk full")
        real(src, dst)

    monkeypatch.setattr(run_outputs.os, "rename", rename)
    with (
        pytest.raises(OSError, match="disk full"),
        run_outputs.staged(tmp_path, ("a", "b")) as stage,
    ):
        pathlib.Path(stage, "a").write_text("new a")
        os.mkdir(os.path.join(stage, "b"))
    assert (tmp_path / "a").read_text() == "old a" and (tmp_path / "b" / "f").read_text() == "old f"
    assert _leftovers(tmp_path) == []


def test_a_swap_replaces_the_whole_set(tmp_path):
    (tmp_path / "a").write_text("old a")
    (tmp_path / "b").write_text("old b")
    (tmp_path / "keep").write_text("not in the set")
    with run_outputs.staged(tmp_path, ("a", "b")) as stage:
        pathlib.Path(stage, "a").write_text("new a")
    assert (tmp_path / "a").read_text() == "new a"
    assert not (tmp_path / "b").exists()  # no member of the old set beside the new one
    assert (tmp_path / "keep").exists() and _leftovers(tmp_path) == []
    with pytest.raises(ValueError, match="not part"), run_outputs.staged(tmp_path, ("a",)) as stage:
        pathlib.Path(stage, "z").write_text("stray")
    assert (tmp_path / "a").read_text() == "new a" and _leftovers(tmp_path) == []


# -- parser ----------------------------------------------------------------------------------


def test_parser_defaults_are_the_verbs_defaults():
    from keras_forget import api, scores

    args = cli.parser().parse_args([])
    assert (args.amount, args.scope, args.method, args.granularity) == (
        "auto",
        None,
        None,
        "weight",
    )
    assert (args.max_retain_drop, args.fine_tune_epochs, args.target_class) == (5.0, 0, [3])
    assert cli.parser().parse_args(["--amount", "3"]).amount == 3
    assert cli.parser().parse_args(["--amount", "0.05"]).amount == 0.05
    assert "gradxweight" in cli.parser().format_help()
    assert set(cli.WEIGHT_METHODS) == set(scores.names())
    assert set(cli.UNIT_METHODS) == {*scores.units.names(), "discedit"}
    assert arguments.DEFAULT_METHOD == {
        g: api.DEFAULT_METHOD["forget", g] for g in ("weight", "unit")
    }


# -- subprocesses: exit codes and clean errors -----------------------------------------------


def test_help_imports_no_tensorflow(tmp_path):
    done = _cli(["--help"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "--max-retain-drop" in done.stdout and "exit codes" in done.stdout
    assert "tensorflow imported: False" in done.stdout


def test_help_through_python_m_imports_no_tensorflow(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "keras_forget.cli", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert "tensorflow" not in imported


def _npz(tmp_path, **change):
    """An .npz of 4 tiny examples of classes 0 and 1, with ``change`` applied (None drops)."""
    arrays = {"x_train": np.zeros((4, 3)), "y_train": np.array([0, 1, 0, 1])}
    arrays.update(x_test=arrays["x_train"], y_test=arrays["y_train"])
    arrays.update(change)
    np.savez(tmp_path / "d.npz", **{k: v for k, v in arrays.items() if v is not None})
    return ["--data", "d.npz"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--epochs", "0"], "--epochs: must be at least 1"),
        (["--epochs", "-2"], "--epochs: must be at least 1"),
        (["--out", "a_file"], "--out a_file: a file"),
        (["--target-class", "12"], "--target-class 12"),
        (["--target-class", *map(str, range(10))], "every class"),
        (["--model", "nowhere/m.keras"], "--model nowhere/m.keras: no such file"),
        (["--data", "nowhere.npz"], "--data nowhere.npz: no such file"),
        ({"y_test": None}, "--data d.npz: no array named 'y_test'"),
        ({"y_train": np.array([0, 0.5, 0, 1])}, "y_train must hold integer class ids"),
        ({"x_train": np.full((4, 3), np.nan)}, "x_train must hold finite numbers"),
        ({"target": "5"}, "--target-class 5: not a class here (the training labels hold 0, 1)"),
        (["--amount", "1.5"], "--amount 1.5"),
        (["--amount", "lots"], "--amount: expected 'auto'"),
        (["--method", "l1"], "--method l1 does not score weights"),
        (["--model", "a_file.keras", "--epochs", "3"], "--epochs"),
        (["--data-dir", "."], "--data-dir"),
        (["--max-retain-drop", "-1"], "--max-retain-drop"),
    ],
)
def test_bad_arguments_fail_in_one_line_before_tensorflow(tmp_path, args, expected):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_file.keras").write_text("x")
    if isinstance(args, dict):  # an .npz with these arrays changed
        change = dict(args)
        target = change.pop("target", "1")
        args = [*_npz(tmp_path, **change), "--target-class", target]
    done = _cli(args, tmp_path)
    assert done.returncode == cli.EXIT_ERROR
    (line,) = done.stderr.splitlines()
    assert line.startswith("keras-forget: error: ") and expected in line, line
    assert "tensorflow imported: False" in done.stdout  # checked before anything heavy
    assert not (tmp_path / "keras_forget_out").exists()


def test_library_error_after_tensorflow_is_one_line_through_python_m(tmp_path):
    (tmp_path / "broken.keras").write_bytes(b"not a zip file")
    done = _cli(["--model", "broken.keras", "--out", "out"], tmp_path, lazy=False)
    assert done.returncode == cli.EXIT_ERROR, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("keras-forget")]
    assert line.startswith("keras-forget: error: --model broken.keras: could not load")


def test_forgetting_that_ruins_the_rest_exits_3_quietly_with_outputs(tmp_path):
    done = _cli(["--epochs", "2", "--method", "magnitude", "--out", "out"], tmp_path)
    assert done.returncode == cli.EXIT_RETAIN_DROP, done.stderr[-2000:]
    (line,) = done.stderr.splitlines()  # no TensorFlow logs, no cuInit, no XNNPACK line
    assert "retain accuracy fell by" in line and "--max-retain-drop 5" in line
    summary = json.loads((tmp_path / "out" / "report.json").read_text())
    assert summary["retain"]["passed"] is False and summary["retain"]["drop_points"] > 5
    assert summary["export"]["tflite_path"] == os.path.join("out", "export", "model.tflite")
    assert (tmp_path / "out" / "export" / "model.tflite").exists()
    assert "Epoch 1/2" in done.stdout  # progress is on without --quiet
