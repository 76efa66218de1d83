"""keras_forget: make a trained Keras model forget a class, or prune itself.

Two verbs, each at the granularity of single weights or of whole units:
:func:`prune_for_class` (forget) and :func:`prune` (compress). They score the
model, select what to prune, hold the masks through fine-tuning (tfmot
wrappers for tf_keras models, mask constraints for Keras 3 models) and return
a :class:`Result`; :func:`export` ships a stripped, sparse SavedModel and
TFLite file.
"""

from keras_forget import datasets, scores, selection
from keras_forget.api import prune, prune_for_class
from keras_forget.data import Data
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
from keras_forget.export import ExportReport, export
from keras_forget.generative import (
    ConditionalGenerator,
    GenerationRates,
    judge_rates,
    rate_generator,
)
from keras_forget.generative_plots import plot_generations
from keras_forget.metrics import Evaluation, evaluate
from keras_forget.report import PruningStep, Report, Result
from keras_forget.selection import GradualSchedule
from keras_forget.surgery.masking import mask_model, masks_of, strip
from keras_forget.sweep import Curve, sweep
from keras_forget.training import FineTune

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
    "NonFiniteError",
    "NotAModelError",
    "NotPrunableError",
    "PathExistsError",
    "PruningStep",
    "Report",
    "Result",
    "SurgeryError",
    "UnsupportedLayerError",
    "__version__",
    "datasets",
    "evaluate",
    "export",
    "judge_rates",
    "mask_model",
    "masks_of",
    "plot_generations",
    "prune",
    "prune_for_class",
    "rate_generator",
    "scores",
    "selection",
    "strip",
    "sweep",
]
