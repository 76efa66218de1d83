"""keras_forget: make a trained Keras model forget a class, or prune itself.

Two verbs, each at the granularity of single weights or of whole units:
:func:`prune_for_class` (forget) and :func:`prune` (compress). They score the
model, select what to prune, hold the masks through fine-tuning (tfmot
wrappers for tf_keras models, mask constraints for Keras 3 models) and return
a :class:`Result`; :func:`export` ships a stripped, sparse SavedModel and
TFLite file.
"""

import importlib
import sys
import types
from typing import Any

from keras_forget.errors import (
    DatasetUnavailableError,
    ExportError,
    InvalidArgumentError,
    KerasForgetError,
    NonFiniteError,
    NotAModelError,
    NotPrunableError,
    PathExistsError,
    SurgeryError,
    UnsupportedLayerError,
)

#: Public name -> the module it lives in. Loaded on first use, so ``import keras_forget``
#: (and ``keras-forget --help``) does not import TensorFlow.
_LAZY = {
    "prune": "keras_forget.api",
    "prune_for_class": "keras_forget.api",
    "Data": "keras_forget.data",
    "ExportReport": "keras_forget.export",
    "UnlearningEvaluation": "keras_forget.evaluation",
    "evaluate_unlearning": "keras_forget.evaluation",
    "finetune_baseline": "keras_forget.evaluation",
    "gradient_ascent": "keras_forget.evaluation",
    "random_labels": "keras_forget.evaluation",
    "report": "keras_forget.evaluation.report",
    "retrain_baseline": "keras_forget.evaluation",
    "ssd": "keras_forget.evaluation",
    "export": "keras_forget.export",
    "ConditionalGenerator": "keras_forget.generative",
    "GenerationRates": "keras_forget.generative",
    "judge_rates": "keras_forget.generative",
    "rate_generator": "keras_forget.generative",
    "plot_generations": "keras_forget.generative_plots",
    "Evaluation": "keras_forget.metrics",
    "MixedLinear": "keras_forget.mixed_privacy",
    "evaluate": "keras_forget.metrics",
    "PruningStep": "keras_forget.results",
    "Report": "keras_forget.results",
    "Result": "keras_forget.results",
    "GradualSchedule": "keras_forget.selection",
    "OBS": "keras_forget.surgery.obs",
    "mask_model": "keras_forget.surgery.masking",
    "masks_of": "keras_forget.surgery.masking",
    "strip": "keras_forget.surgery.masking",
    "Curve": "keras_forget.sweep",
    "sweep": "keras_forget.sweep",
    "FineTune": "keras_forget.training",
}
_SUBMODULES = ("datasets", "scores", "selection")


def _load(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"keras_forget.{name}")
    return getattr(importlib.import_module(_LAZY[name]), name)


class _Package(types.ModuleType):
    """Resolves the public names lazily; ``export`` and ``sweep`` stay the functions even
    after their modules of the same name are imported (which sets the attribute)."""

    def __getattr__(self, name: str) -> Any:
        if name in _LAZY or name in _SUBMODULES:
            value = _load(name)
            setattr(self, name, value)
            return value
        raise AttributeError(f"module 'keras_forget' has no attribute {name!r}")

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        if name in ("export", "sweep") and isinstance(value, types.ModuleType):
            return getattr(value, name)
        return value

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(_LAZY) | set(_SUBMODULES))


sys.modules[__name__].__class__ = _Package

__version__ = "0.1.0"

__all__ = [
    "ConditionalGenerator",
    "Curve",
    "Data",
    "DatasetUnavailableError",
    "Evaluation",
    "ExportError",
    "ExportReport",
    "FineTune",
    "GenerationRates",
    "GradualSchedule",
    "InvalidArgumentError",
    "KerasForgetError",
    "MixedLinear",
    "NonFiniteError",
    "NotAModelError",
    "NotPrunableError",
    "OBS",
    "PathExistsError",
    "PruningStep",
    "Report",
    "Result",
    "SurgeryError",
    "UnlearningEvaluation",
    "UnsupportedLayerError",
    "__version__",
    "datasets",
    "evaluate",
    "evaluate_unlearning",
    "export",
    "finetune_baseline",
    "gradient_ascent",
    "judge_rates",
    "mask_model",
    "masks_of",
    "plot_generations",
    "prune",
    "prune_for_class",
    "random_labels",
    "rate_generator",
    "report",
    "retrain_baseline",
    "scores",
    "selection",
    "ssd",
    "strip",
    "sweep",
]
