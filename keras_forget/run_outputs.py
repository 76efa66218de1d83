"""A run's outputs written as one set: built in a staging directory, then swapped in.

A run of the command line writes several files (a report, a chart, an export
directory). They are built in a hidden staging directory inside the output
directory and moved into place only once all of them exist, with renames on the
same filesystem; Ctrl-C is held back for the few renames of the swap, and a
failed rename puts back what was there. An interrupted or failed run therefore
leaves the previous run's set whole, never a mix of two runs, and no staging
directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator, Sequence

STAGING_PREFIX = ".kf-staging-"
_OLD_PREFIX = ".kf-old-"


@contextlib.contextmanager
def staged(directory: str, names: Sequence[str]) -> Iterator[str]:
    """Yields an empty staging directory; on success swaps its entries into ``directory``.

    Args:
        directory: the output directory, created if missing.
        names: every entry that makes up one set. Each is replaced by the
            staged entry of that name, or removed if none was staged, so no
            member of an older set survives beside a newer one.

    Yields:
        The staging directory (inside ``directory``, an absolute path) to write the set into.

    Raises:
        ValueError: something other than ``names`` was staged.
    """
    os.makedirs(directory, exist_ok=True)
    stage = os.path.abspath(tempfile.mkdtemp(dir=directory, prefix=STAGING_PREFIX))
    try:
        yield stage
        extra = sorted(set(os.listdir(stage)) - set(names))
        if extra:
            raise ValueError(f"staged entries {extra} are not part of the set {list(names)}")
        swap(stage, directory, names)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def swap(stage: str, directory: str, names: Sequence[str]) -> None:
    """Moves ``names`` from ``stage`` into ``directory``, replacing the old set as a whole."""
    old = tempfile.mkdtemp(dir=directory, prefix=_OLD_PREFIX)
    try:
        with _interrupts_held():
            moved_out: list[str] = []
            moved_in: list[str] = []
            try:
                for name in names:
                    if os.path.lexists(os.path.join(directory, name)):
                        os.rename(os.path.join(directory, name), os.path.join(old, name))
                        moved_out.append(name)
                for name in names:
                    if os.path.lexists(os.path.join(stage, name)):
                        os.rename(os.path.join(stage, name), os.path.join(directory, name))
                        moved_in.append(name)
            except BaseException:
                for name in reversed(moved_in):
                    os.rename(os.path.join(directory, name), os.path.join(stage, name))
                for name in reversed(moved_out):
                    os.rename(os.path.join(old, name), os.path.join(directory, name))
                raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Holds SIGINT back until the block ends, then raises KeyboardInterrupt if one came."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[object] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
    if received and callable(previous):
        previous(signal.SIGINT, received[0])  # the default handler raises KeyboardInterrupt
