"""Mixed-privacy forgetting (Golatkar et al., CVPR 2021).

A core network trained on core data is kept fixed; user data is learned by its
first-order expansion around the core weights, ``f(x; w_c) + J·Δ``, with a
quadratic loss in Δ. Forgetting part of the user data is one exact Newton step
(conjugate gradient on Jacobian-vector products), forgetting all of it is Δ = 0.

- ``linearize``: layer selection, JVP/VJP, and the Keras model computing ``f + J·Δ``.
- ``solve``: conjugate gradient and its report.
- ``membership``: content hashes of the fitted examples.
- ``model``: :class:`MixedLinear`, the public entry point.
"""

from __future__ import annotations

from keras_forget.mixed_privacy.linearize import LinearizedModel
from keras_forget.mixed_privacy.model import MixedLinear
from keras_forget.mixed_privacy.solve import SolveReport

__all__ = ["LinearizedModel", "MixedLinear", "SolveReport"]
