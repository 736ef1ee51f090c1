"""The policies UniScale is compared with: Greedy, Random, Fixed, kNN and the Oracle (see
:mod:`~uniscale_integrations.policy.base` for the contract they share)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from uniscale_integrations.features.joint import FloatArray, ProductFeatures
from uniscale_integrations.policy.base import Policy, PolicyContext
from uniscale_integrations.policy.linucb import LinUCB, LinUCBPolicy


class Greedy(LinUCBPolicy):
    """The same linear model without exploration (``alpha = 0``)."""

    def __init__(self, dim: int, l2_lambda: float = 1.0):
        super().__init__(LinUCB(dim, alpha=0.0, l2_lambda=l2_lambda), name="Greedy")

    @classmethod
    def _unit_test_params(cls, context: PolicyContext) -> Iterator[dict[str, Any]]:
        yield {"dim": context.dim}
        yield {"dim": context.dim, "l2_lambda": 0.1}


class RandomPolicy(Policy):
    """Uniformly random configuration, from its own seeded generator."""

    name = "Random"

    def __init__(self, seed: int = 0):
        super().__init__()
        self._rng = np.random.default_rng(seed)

    def _select(self, features: ProductFeatures, hindsight: Sequence[float] | None) -> int:
        return int(self._rng.integers(features.n_configs))

    @classmethod
    def _unit_test_params(cls, context: PolicyContext) -> Iterator[dict[str, Any]]:
        yield {"seed": context.seed}


class Fixed(Policy):
    """Always the same configuration (index into the space)."""

    def __init__(self, arm: int, name: str = "Fixed"):
        super().__init__(name)
        self.arm = arm

    def _select(self, features: ProductFeatures, hindsight: Sequence[float] | None) -> int:
        if not 0 <= self.arm < features.n_configs:
            raise IndexError(f"fixed arm {self.arm} outside a space of {features.n_configs} configs")
        return self.arm

    @classmethod
    def _unit_test_params(cls, context: PolicyContext) -> Iterator[dict[str, Any]]:
        yield {"arm": 0}
        yield {"arm": context.n_arms - 1}


class Oracle(Policy):
    """The best configuration for each query, read from the rewards of all of them."""

    name = "Oracle"

    def _select(self, features: ProductFeatures, hindsight: Sequence[float] | None) -> int:
        if hindsight is None:
            raise ValueError("Oracle needs the rewards of every configuration (hindsight)")
        return int(np.argmax(np.asarray(hindsight, dtype=np.float64)))


class KNN(Policy):
    """k-nearest-neighbour routing on the query context.

    For each configuration, the mean reward it earned on the ``k`` past queries most
    similar (cosine) to this one; configurations never tried are tried first, in order.
    """

    name = "kNN"

    def __init__(self, n_configs: int, k: int = 10):
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        super().__init__()
        self.k = k
        self._contexts: list[list[FloatArray]] = [[] for _ in range(n_configs)]
        self._rewards: list[list[float]] = [[] for _ in range(n_configs)]

    def _select(self, features: ProductFeatures, hindsight: Sequence[float] | None) -> int:
        if features.n_configs != len(self._rewards):
            raise ValueError(f"kNN was built for {len(self._rewards)} configs, got {features.n_configs}")
        query = features.context / (np.linalg.norm(features.context) or 1.0)
        estimates = np.empty(features.n_configs)
        for arm, (contexts, rewards) in enumerate(zip(self._contexts, self._rewards, strict=True)):
            if not rewards:
                return arm
            past = np.asarray(contexts)
            similarity = past @ query
            nearest = np.argsort(-similarity, kind="stable")[: self.k]
            estimates[arm] = float(np.mean(np.asarray(rewards)[nearest]))
        return int(np.argmax(estimates))

    def _learn(self, features: ProductFeatures, arm: int, reward: float) -> None:
        context = features.context / (np.linalg.norm(features.context) or 1.0)
        self._contexts[arm].append(context)
        self._rewards[arm].append(reward)

    @classmethod
    def _unit_test_params(cls, context: PolicyContext) -> Iterator[dict[str, Any]]:
        yield {"n_configs": context.n_arms}
        yield {"n_configs": context.n_arms, "k": 1}
