"""keras_forget: make a trained Keras model forget a class, or prune itself.

Scores weights (grad×weight, Optimal Brain Damage, Fisher, magnitude), selects
what to prune, holds the masks through fine-tuning (tfmot wrappers for tf_keras
models, mask constraints for Keras 3 models) and exports a stripped, sparse
SavedModel and TFLite file.
"""

from keras_forget import components, datasets, generative, scores, selection
from keras_forget.api import Result, prune, prune_for_class
from keras_forget.components import forget_units, prune_units
from keras_forget.errors import (
    ExportError,
    InvalidArgumentError,
    KerasForgetError,
    NonFiniteError,
    NotPrunableError,
    UnsupportedLayerError,
)
from keras_forget.export import ExportReport, export
from keras_forget.generative import (
    ConditionalGenerator,
    GenerationRates,
    judge_rates,
    rate_generator,
)
from keras_forget.generative_plots import plot_generations
from keras_forget.gradual import GradualSchedule
from keras_forget.metrics import Evaluation, evaluate
from keras_forget.report import Report
from keras_forget.surgery.masking import mask_model, masks_of, strip
from keras_forget.surgery.structured import shrink
from keras_forget.sweep import Curve, sweep
from keras_forget.training import FineTune

__version__ = "0.1.0"

__all__ = [
    "ConditionalGenerator",
    "GenerationRates",
    "Curve",
    "GradualSchedule",
    "Evaluation",
    "ExportError",
    "ExportReport",
    "FineTune",
    "InvalidArgumentError",
    "KerasForgetError",
    "NonFiniteError",
    "NotPrunableError",
    "Report",
    "Result",
    "UnsupportedLayerError",
    "__version__",
    "components",
    "datasets",
    "evaluate",
    "generative",
    "judge_rates",
    "export",
    "forget_units",
    "mask_model",
    "masks_of",
    "plot_generations",
    "prune",
    "prune_for_class",
    "prune_units",
    "rate_generator",
    "scores",
    "selection",
    "shrink",
    "strip",
    "sweep",
]
