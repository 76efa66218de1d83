"""Membership-inference attacks in the three conventions the unlearning literature reports.

Each attack reads a classifier's softmax outputs on three sets: *retain*
(training examples the model keeps), *test* (examples it never saw) and
*forget* (training examples it should have forgotten), and measures how much
the forget set still looks like training data. The conventions differ in the
feature, the attack model, the sets that train the attack and what is
reported, so their numbers are not comparable with one another. Each function
names its convention, the value a model retrained without the forget set
(the gold standard) gets, and which way is better.

- :func:`mia_efficacy` (SalUn, ℓ1-sparse): confidence ``p_y``, RBF SVC; the
  fraction of forget examples judged non-member (retrained, a class: ≈ 1).
- :func:`entropy_attack` (SSD): entropy of the softmax, logistic regression;
  the fraction judged member (retrained, a class: ≈ 0; lower is better).
- :func:`loss_attack` (SCRUB): loss ``−log p_y``, cross-validated logistic
  regression, forget vs test; its accuracy (ideal ≈ 0.5).

Pure array code: the attack models are scikit-learn's, and every random draw
comes from the ``seed`` given, so equal inputs give equal numbers.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedShuffleSplit, cross_val_score
from sklearn.svm import SVC

from keras_forget.errors import InvalidArgumentError

#: Fewest forget examples, and test examples of their classes, the loss attack needs:
#: its 10 stratified splits each hold out 10 % of the pairs, at least one per side.
MIN_LOSS_ATTACK = 10
#: Splits of the loss attack's cross-validation.
LOSS_ATTACK_SPLITS = 10
_TINY = 1e-12


class Outputs(NamedTuple):
    """A classifier's outputs on a set of examples.

    Attributes:
        probabilities: softmax outputs, ``[examples, classes]``.
        labels: integer labels, ``[examples]``.
    """

    probabilities: np.ndarray
    labels: np.ndarray


def check_outputs(outputs: Outputs, name: str) -> Outputs:
    """Validates one set's outputs; returns them as float64 and int64 arrays.

    Raises:
        InvalidArgumentError: naming ``name``: not ``[n, classes]`` probabilities,
            labels of another length or out of range, or no example.
    """
    p = np.asarray(outputs.probabilities, np.float64)
    y = np.asarray(outputs.labels)
    if p.ndim != 2 or p.shape[1] < 2:
        raise InvalidArgumentError(
            f"`{name}`: probabilities must have shape (examples, classes >= 2); got {p.shape}."
        )
    if y.shape != (p.shape[0],) or y.dtype.kind not in "iu":
        raise InvalidArgumentError(
            f"`{name}`: labels must be {p.shape[0]} integers (one per row of probabilities); "
            f"got shape {y.shape} of dtype {y.dtype}."
        )
    if p.shape[0] == 0:
        raise InvalidArgumentError(f"`{name}` is empty: an attack needs examples.")
    if not np.all(np.isfinite(p)) or p.min() < 0 or not np.allclose(p.sum(1), 1.0, atol=1e-3):
        raise InvalidArgumentError(f"`{name}`: rows must be probabilities summing to 1.")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise InvalidArgumentError(f"`{name}`: labels must be in 0..{p.shape[1] - 1}.")
    return Outputs(p, y.astype(np.int64))


def confidence(outputs: Outputs) -> np.ndarray:
    """The probability of each example's label, ``p_y``."""
    return outputs.probabilities[np.arange(len(outputs.labels)), outputs.labels]


def entropy(outputs: Outputs) -> np.ndarray:
    """The entropy of each softmax row, ``−Σ p log p`` (in nats, ``0 log 0 = 0``)."""
    p = outputs.probabilities
    return -np.sum(np.where(p > 0, p * np.log(np.maximum(p, _TINY)), 0.0), axis=1)


def loss(outputs: Outputs) -> np.ndarray:
    """The cross-entropy loss of each example, ``−log p_y``."""
    return -np.log(np.maximum(confidence(outputs), _TINY))


def _column(*parts: np.ndarray) -> np.ndarray:
    return np.concatenate(parts).reshape(-1, 1)


def mia_efficacy(forget: Outputs, retain: Outputs, test: Outputs, *, seed: int = 0) -> float:
    """MIA-efficacy, as the SalUn and ℓ1-sparse unlearning code computes it.

    An RBF support-vector classifier (``SVC(C=3, gamma="auto",
    kernel="rbf")``) learns member (1) from non-member (0) on one feature, the
    confidence ``p_y``: as many retain examples as there are test examples
    (drawn at random with ``seed``; the reference code takes the first ones)
    are members, the test examples non-members. It is then applied to the
    forget examples.

    Direction: the fraction of forget examples predicted **non-member**;
    higher means the forget set looks less like training data. A model
    retrained without a forgotten class scores ≈ 1 (100 %); for a random
    subset of examples the retrained model's value is the reference, and a
    model that still remembers them scores lower.

    Args:
        forget: outputs on the forget set.
        retain: outputs on the retain set (members).
        test: outputs on unseen examples (non-members).
        seed: the draw of the retain examples.

    Returns:
        A fraction in [0, 1].
    """
    forget, retain, test = _checked(forget=forget, retain=retain, test=test)
    rng = np.random.default_rng(seed)
    members = rng.permutation(len(retain.labels))[: len(test.labels)]
    members = Outputs(retain.probabilities[members], retain.labels[members])
    x = _column(confidence(members), confidence(test))
    y = np.r_[np.ones(len(members.labels)), np.zeros(len(test.labels))]
    attack = SVC(C=3, gamma="auto", kernel="rbf").fit(x, y)
    return float(1.0 - attack.predict(_column(confidence(forget))).mean())


def entropy_attack(forget: Outputs, retain: Outputs, test: Outputs) -> float:
    """The entropy attack of the Selective Synaptic Dampening (SSD) code.

    A logistic regression (``class_weight="balanced"``, lbfgs) learns member
    (1) from non-member (0) on one feature, the entropy of the softmax output:
    all retain examples are members, all test examples non-members. It is then
    applied to the forget examples. (The convention comes from the code of
    Chundawat et al.'s "bad teacher" unlearning, which SSD reuses.)

    Direction: the fraction of forget examples predicted **member**; lower
    is better (the forget set looks like unseen data). A model retrained
    without a forgotten class scores close to 0; for a random subset of examples the
    retrained model's value is the reference.

    Args:
        forget: outputs on the forget set.
        retain: outputs on the retain set (members).
        test: outputs on unseen examples (non-members).

    Returns:
        A fraction in [0, 1].
    """
    forget, retain, test = _checked(forget=forget, retain=retain, test=test)
    x = _column(entropy(retain), entropy(test))
    y = np.r_[np.ones(len(retain.labels)), np.zeros(len(test.labels))]
    attack = LogisticRegression(class_weight="balanced", solver="lbfgs").fit(x, y)
    return float(attack.predict(_column(entropy(forget))).mean())


def loss_attack(forget: Outputs, test: Outputs, *, seed: int = 0) -> float:
    """The cross-validated loss attack of the SCRUB code.

    Forget examples (members, 1) and test examples of the same classes
    (non-members, 0), drawn at random with ``seed`` to equal numbers, are
    told apart by a logistic regression on one feature, the loss ``−log p_y``.
    The attack's accuracy is cross-validated over :data:`LOSS_ATTACK_SPLITS`
    stratified shuffle splits (10 % held out each) and averaged. Test
    examples of the forget set's classes only, so that for a forgotten class
    both sides are examples of that class.

    Direction: **≈ 0.5 is ideal** (the attack cannot tell the forget set
    from unseen data, as for a retrained model); higher means the forget
    examples are still recognisable. Values below 0.5 are chance.

    Args:
        forget: outputs on the forget set.
        test: outputs on unseen examples.
        seed: the draws of equal numbers and the splits.

    Returns:
        The mean cross-validated accuracy, in [0, 1].

    Raises:
        InvalidArgumentError: fewer than :data:`MIN_LOSS_ATTACK` forget
            examples, or test examples of their classes.
    """
    forget, test = _checked(forget=forget, test=test)
    same = np.isin(test.labels, np.unique(forget.labels))
    count = check_loss_attack_sizes(len(forget.labels), int(same.sum()))
    rng = np.random.default_rng(seed)
    members = loss(forget)[rng.permutation(len(forget.labels))[:count]]
    unseen = loss(test)[same][rng.permutation(int(same.sum()))[:count]]
    x = _column(unseen, members)
    y = np.r_[np.zeros(count), np.ones(count)]
    splits = StratifiedShuffleSplit(n_splits=LOSS_ATTACK_SPLITS, test_size=0.1, random_state=seed)
    return float(cross_val_score(LogisticRegression(), x, y, cv=splits).mean())


def check_loss_attack_sizes(forget: int, test_same_classes: int) -> int:
    """The number of pairs the loss attack uses; raises if there are too few.

    Args:
        forget: number of forget examples.
        test_same_classes: number of test examples of the forget set's classes.

    Raises:
        InvalidArgumentError: either is below :data:`MIN_LOSS_ATTACK`.
    """
    if min(forget, test_same_classes) < MIN_LOSS_ATTACK:
        raise InvalidArgumentError(
            f"The loss attack needs at least {MIN_LOSS_ATTACK} forget examples and "
            f"{MIN_LOSS_ATTACK} test examples of their classes; got {forget} forget and "
            f"{test_same_classes} test examples."
        )
    return min(forget, test_same_classes)


def _checked(**sets: Outputs) -> list[Outputs]:
    checked = [check_outputs(Outputs(*value), name) for name, value in sets.items()]
    widths = {o.probabilities.shape[1] for o in checked}
    if len(widths) > 1:
        raise InvalidArgumentError(
            f"{', '.join(f'`{n}`' for n in sets)} must have as many classes; got {sorted(widths)}."
        )
    return checked
