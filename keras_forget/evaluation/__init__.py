"""Judging unlearning: metrics users trust, baselines to compare with, one report.

- :func:`evaluate_unlearning`: forget / retain / test accuracy, three
  membership-inference attacks (:mod:`~keras_forget.evaluation.membership`),
  the distance to a retrained model and the time ratio.
- Baselines returning the :class:`~keras_forget.results.Result` of
  :func:`keras_forget.prune_for_class`: :func:`retrain_baseline` (the gold
  standard), :func:`ssd`, :func:`finetune_baseline`, :func:`gradient_ascent`
  and :func:`random_labels`.
- :func:`report`: a self-contained HTML page and a Markdown file.
"""

from keras_forget.evaluation.baselines import (
    finetune_baseline,
    gradient_ascent,
    random_labels,
    retrain_baseline,
    ssd,
)
from keras_forget.evaluation.membership import entropy_attack, loss_attack, mia_efficacy
from keras_forget.evaluation.report import report
from keras_forget.evaluation.unlearning import UnlearningEvaluation, evaluate_unlearning

__all__ = [
    "UnlearningEvaluation",
    "entropy_attack",
    "evaluate_unlearning",
    "finetune_baseline",
    "gradient_ascent",
    "loss_attack",
    "mia_efficacy",
    "random_labels",
    "report",
    "retrain_baseline",
    "ssd",
]
