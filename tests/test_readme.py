"""Every Python block of the README runs as written, top to bottom, in a fresh interpreter."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
#: A block right after this comment is skipped: it needs data tfds must download.
SKIP = "<!-- needs: tfds data -->"


def blocks() -> list[str]:
    text = README.read_text()
    found = []
    for match in re.finditer(r"(?P<before>[^\n]*)\n```python\n(?P<code>.*?)\n```", text, re.S):
        if match.group("before").strip() != SKIP:
            found.append(match.group("code"))
    return found


def test_the_readme_has_python_blocks():
    assert len(blocks()) >= 4


@pytest.mark.slow
def test_readme_python_blocks_run_in_order(tmp_path):
    script = "\n\n".join(
        f"print('--- block {i}', flush=True)\n{code}" for i, code in enumerate(blocks())
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "MPLBACKEND": "agg"},
    )
    last = [line for line in done.stdout.splitlines() if line.startswith("--- block")]
    assert done.returncode == 0, f"failed after {last[-1:]}:\n{done.stderr[-3000:]}"
    assert (tmp_path / "out" / "model.tflite").is_file()
    assert (tmp_path / "accuracy_vs_pruned.png").is_file()
    assert (tmp_path / "out" / "unlearning.html").is_file()
    assert (tmp_path / "out" / "unlearning.md").is_file()
