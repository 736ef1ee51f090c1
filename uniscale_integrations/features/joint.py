"""Joint query-configuration features ``x_{t,a}``.

The joint feature of query ``t`` and configuration ``a`` is the Kronecker product
``x_{t,a} = z_a ⊗ c_t`` of the configuration's feature vector ``z_a`` (length ``dz``)
and the query's context vector ``c_t`` (length ``dc``). Both vectors start with a
constant 1, so ``x`` holds the configuration's main effects, the query's main effects
and every query-by-configuration interaction. Keeping the two factors apart lets the
bandit score all configurations in ``O(d^2 + n * dz^2)`` instead of ``O(n * d^2)``.
"""

from __future__ import annotations

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
