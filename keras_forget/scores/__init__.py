"""Scores: model + data -> ScoreMap ``{weight key: array shaped like the weight}``."""

from keras_forget.scores import units
from keras_forget.scores.base import Score, ScoreMap, get, names, serialize
from keras_forget.scores.class_moments import ExpNormBound, FisherBound
from keras_forget.scores.gradient import Fisher, GradXWeight
from keras_forget.scores.l1 import L1Norm, RandomUnits
from keras_forget.scores.magnitude import Magnitude, Random
from keras_forget.scores.obd import OBD
from keras_forget.scores.objective import Objective

__all__ = [
    "OBD",
    "ExpNormBound",
    "FisherBound",
    "L1Norm",
    "RandomUnits",
    "Fisher",
    "GradXWeight",
    "Magnitude",
    "Objective",
    "Random",
    "Score",
    "ScoreMap",
    "get",
    "names",
    "serialize",
    "units",
]
