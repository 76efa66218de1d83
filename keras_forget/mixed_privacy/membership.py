"""Which examples the user part was fit on, by content hash.

Examples are fingerprinted by :mod:`keras_forget.fingerprints`; a multiset
(``Counter``) of hashes is kept, so a duplicated example can be forgotten once
per copy.
"""

from __future__ import annotations

from collections import Counter

from keras_forget.errors import InvalidArgumentError
from keras_forget.fingerprints import counts, example_hashes

__all__ = ["check_forget", "counts", "example_hashes"]


def check_forget(fitted: Counter[str], forget: Counter[str]) -> None:
    """Raises unless ``forget`` is part of, and not all of, the ``fitted`` examples.

    Raises:
        InvalidArgumentError: an example of ``forget`` was never fitted (or
            more copies of it are asked than were fitted), or ``forget`` is all
            of the fitted data (that is ``forget_all``).
    """
    unknown = forget - fitted
    if unknown:
        raise InvalidArgumentError(
            f"`forget_data`: {sum(unknown.values())} of its {sum(forget.values())} examples are "
            "not part of the user data the model was fit on (compared by content: inputs "
            "and labels)."
        )
    if forget == fitted:
        raise InvalidArgumentError(
            "`forget_data` is all of the user data: call forget_all() (sets Δ = 0 exactly)."
        )


def check_remaining(fitted: Counter[str], forget: Counter[str], rest: Counter[str]) -> None:
    """Raises unless ``rest`` is exactly ``fitted`` without ``forget``.

    Raises:
        InvalidArgumentError: saying how many examples ``rest`` lacks and has extra.
    """
    expected = fitted - forget
    if rest != expected:
        missing = sum((expected - rest).values())
        extra = sum((rest - expected).values())
        raise InvalidArgumentError(
            f"`remaining` must be exactly the fitted user data without `forget_data` "
            f"({sum(expected.values())} examples); it lacks {missing} of them and "
            f"has {extra} others."
        )
