"""``keras-forget``: make a trained classifier forget a class, from the command line.

Without ``--model`` it trains (or reuses, from a cache in ``--out`` keyed by every
setting that shapes it) a small MLP on ``--dataset`` (the embedded digits by
default) or on ``--data`` (an ``.npz``); with ``--model`` it edits that model. It
makes the model forget ``--target-class``, prints per-class accuracy before and
after, and writes one set of outputs into ``--out``: ``report.json``,
``per_class_accuracy.png`` and ``export/`` (SavedModel and sparse TFLite).

Every argument is checked before anything is loaded or trained, and TensorFlow is
imported only after that: ``--help`` and argument errors never import it, and
TensorFlow's start-up logs are kept off the terminal unless ``--verbose``.

Exit codes: 0 done; 2 a bad argument or a keras_forget error (one line on stderr;
``--debug`` shows the traceback); 3 retain accuracy fell by more than
``--max-retain-drop`` points (the outputs are still written); 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from keras_forget.cli.arguments import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RETAIN_DROP,
    UNIT_METHODS,
    WEIGHT_METHODS,
    check,
    parser,
)
from keras_forget.cli.job import run
from keras_forget.errors import KerasForgetError

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_RETAIN_DROP",
    "UNIT_METHODS",
    "WEIGHT_METHODS",
    "check",
    "main",
    "parser",
    "run",
]


def _error(message: str) -> None:
    print(f"keras-forget: error: {' '.join(message.split())}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``keras-forget`` command; returns its exit code."""
    args = parser().parse_args(argv)
    try:
        check(args)
        summary = run(args)
    except KerasForgetError as err:
        if args.debug:
            raise
        _error(str(err))
        return EXIT_ERROR
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("keras-forget: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    retain = summary["retain"]
    if retain is not None and not retain["passed"]:
        print(
            f"keras-forget: retain accuracy fell by {retain['drop_points']:.1f} points "
            f"({retain['before']:.3f} -> {retain['after']:.3f}), more than --max-retain-drop "
            f"{args.max_retain_drop:g}; the outputs in {args.out} are written for inspection.",
            file=sys.stderr,
        )
        return EXIT_RETAIN_DROP
    return EXIT_OK
