"""What a benchmark's numbers came from: the commit, a dirty flag and the library versions."""

from __future__ import annotations

import os
import platform
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def provenance() -> dict:
    """The git commit, whether the work tree differs from it (untracked files included) and
    the library versions. Call it before any work: it describes the code this run imported."""
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_forget as kf

    status = _git("status", "--porcelain")
    return {
        "commit": _git("rev-parse", "HEAD"),
        "dirty": None if status is None else bool(status),
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "keras_forget": kf.__version__,
        },
    }
