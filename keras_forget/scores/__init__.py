"""Scores: model + data -> ScoreMap ``{weight key: array shaped like the weight}``.

Weight scores (:class:`Score`) rank single weights; unit scores
(:class:`UnitScore`) rank whole Dense units and Conv filters. Importing this
package registers every built-in score under its name, so
``scores.get("obd")`` and ``scores.units.get("exp_norm")`` resolve them.
"""

from keras_forget.scores import units
from keras_forget.scores.base import COMPRESS_ALIASES, Score, ScoreMap, get, names, serialize
from keras_forget.scores.class_moments import ExpNormBound, FisherBound
from keras_forget.scores.gradient import Fisher, FisherOBD, GradXWeight
from keras_forget.scores.l1 import L1Norm, RandomUnits
from keras_forget.scores.magnitude import Magnitude, Random
from keras_forget.scores.obd import OBD
from keras_forget.scores.objective import Objective
from keras_forget.scores.taylor import Taylor
from keras_forget.scores.units import UnitScore

__all__ = [
    "COMPRESS_ALIASES",
    "OBD",
    "ExpNormBound",
    "Fisher",
    "FisherBound",
    "FisherOBD",
    "GradXWeight",
    "L1Norm",
    "Magnitude",
    "Objective",
    "Random",
    "RandomUnits",
    "Score",
    "ScoreMap",
    "Taylor",
    "UnitScore",
    "get",
    "names",
    "serialize",
    "units",
]
