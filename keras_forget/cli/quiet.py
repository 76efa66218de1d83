"""Keeping TensorFlow's start-up and converter logs off the terminal unless asked for."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

_NOISE = re.compile(
    r"^(?:[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions: "
    r"|INFO: )"
)


def quiet_tensorflow(verbose: bool) -> bool:
    """Keeps TensorFlow's logs off the terminal, unless ``verbose``; call before importing it.

    Sets ``TF_CPP_MIN_LOG_LEVEL=3`` unless the user set it (this drops the C++
    logs, the ``cuInit`` error on a machine without a GPU among them), imports
    TensorFlow under :func:`filtered_stderr` (the oneDNN / ``cudart_stub`` lines
    ignore the level), and sets Python's ``tensorflow`` and ``absl`` loggers to
    errors. Nothing else changes: a GPU stays visible.

    Returns:
        Whether to filter stderr further (False with ``verbose`` or with
        ``TF_CPP_MIN_LOG_LEVEL=0`` set by the user).
    """
    if verbose:
        return False
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0":
        return False
    if "tensorflow" not in sys.modules:
        with filtered_stderr():
            import tensorflow  # noqa: F401
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # pragma: no cover - absl comes with TensorFlow
        pass
    return True


@contextlib.contextmanager
def filtered_stderr(active: bool = True) -> Iterator[None]:
    """Captures file descriptor 2 in the block; then writes back every line but the noise.

    If the block raises an error (not an interrupt), everything captured is written back.
    """
    if not active:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no usable stderr: nothing to keep clean
        yield
        return
    failed = False
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 2)
            yield
        except Exception:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines = sink.read().decode(errors="replace").splitlines(keepends=True)
            kept = lines if failed else [line for line in lines if not _NOISE.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


# -- the run ---------------------------------------------------------------------------------
