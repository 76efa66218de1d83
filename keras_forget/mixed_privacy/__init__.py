"""Mixed-privacy forgetting (Golatkar et al., CVPR 2021).

A core network trained on core data is kept fixed; user data is learned by its
first-order expansion around the core weights, ``f(x; w_c) + J·Δ``, with a
quadratic loss in Δ. Forgetting part of the user data is one exact Newton step
(conjugate gradient on Jacobian-vector products), forgetting all of it is Δ = 0.

- ``linearize``: layer selection, JVP/VJP, and the Keras layer and model
  computing ``f + J·Δ`` (Keras 3 and tf_keras).
- ``objective``: the quadratic objective, its gradient, Hessian-vector products
  and Newton step.
- ``solve``: conjugate gradient and its report.
- ``noise``: optional Gaussian noise and the information bound it gives.
- ``membership``: content hashes of the fitted examples.
- ``options``: checks of numeric options.
- ``model``: :class:`MixedLinear`, the public entry point.
"""

from __future__ import annotations

from keras_forget.mixed_privacy.linearize import LinearizedLayer, linearized_model
from keras_forget.mixed_privacy.model import MixedLinear
from keras_forget.mixed_privacy.solve import SolveReport

__all__ = ["LinearizedLayer", "MixedLinear", "SolveReport", "linearized_model"]
