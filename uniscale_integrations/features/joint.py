"""Joint query-configuration features ``x_{t,a}``.

The joint feature of query ``t`` and configuration ``a`` is the Kronecker product
``x_{t,a} = z_a ⊗ c_t`` of the configuration's feature vector ``z_a`` (length ``dz``)
and the query's context vector ``c_t`` (length ``dc``). Both vectors start with a
constant 1, so ``x`` holds the configuration's main effects, the query's main effects
and every query-by-configuration interaction. Keeping the two factors apart lets the
bandit score all configurations in ``O(d^2 + n * dz^2)`` instead of ``O(n * d^2)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ProductFeatures:
    """The rows ``z_a ⊗ c`` for every configuration ``a``, stored as the two factors.

    ``actions`` is ``(n_configs, dz)`` and ``context`` is ``(dc,)``; row ``i`` of
    :meth:`dense` is ``np.kron(actions[i], context)``.
    """

    context: FloatArray
    actions: FloatArray

    def __post_init__(self) -> None:
        context = np.asarray(self.context, dtype=np.float64)
        actions = np.asarray(self.actions, dtype=np.float64)
        if context.ndim != 1 or context.size == 0:
            raise ValueError(f"context must be a non-empty 1-D array, got shape {context.shape}")
        if actions.ndim != 2 or actions.shape[0] == 0 or actions.shape[1] == 0:
            raise ValueError(f"actions must be a non-empty 2-D array, got shape {actions.shape}")
        if not (np.isfinite(context).all() and np.isfinite(actions).all()):
            raise ValueError("features must be finite (no NaN or inf)")
        object.__setattr__(self, "context", context)
        object.__setattr__(self, "actions", actions)

    @property
    def n_configs(self) -> int:
        return int(self.actions.shape[0])

    @property
    def dim(self) -> int:
        return int(self.actions.shape[1] * self.context.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_configs, self.dim)

    def row(self, index: int) -> FloatArray:
        """The joint feature vector of configuration ``index``."""
        return np.outer(self.actions[index], self.context).ravel()

    def dense(self) -> FloatArray:
        """All joint feature vectors as an ``(n_configs, dz * dc)`` array."""
        return np.einsum("ai,j->aij", self.actions, self.context).reshape(self.shape)


def interaction_ridge_scale(action_dim: int, context_dim: int, shrinkage: float) -> FloatArray:
    """Ridge multipliers over ``z ⊗ c`` that shrink the query-by-configuration interactions ``shrinkage`` times
    harder than the main effects.

    Coordinate ``(i, j)`` of the joint vector is ``z_i c_j``; the first entry of each factor is its bias, so the
    coordinates with ``i = 0`` or ``j = 0`` are main effects (multiplier 1) and the others interactions
    (multiplier ``shrinkage``). In a Gaussian-prior reading, each configuration's reward is expected to depend on
    the query ``shrinkage`` times less (in variance) than its level does, until the evidence says otherwise:
    a large value falls back towards the best configuration overall, ``1`` is plain ridge. On table v2 larger
    values won in sample but not out of sample, so the engine's default is 1 (docs/bench.md, "Interaction
    shrinkage").
    """
    if isinstance(shrinkage, bool) or not isinstance(shrinkage, (int, float)) or not math.isfinite(shrinkage):
        raise ValueError(f"shrinkage must be a finite number, got {shrinkage!r}")
    if shrinkage <= 0:
        raise ValueError(f"shrinkage must be > 0, got {shrinkage!r}")
    scale = np.full((action_dim, context_dim), float(shrinkage))
    scale[0, :] = 1.0
    scale[:, 0] = 1.0
    return scale.ravel()
