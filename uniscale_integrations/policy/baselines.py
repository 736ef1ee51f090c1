"""Policies behind one contract: UniScale's LinUCB and the baselines it is compared with.

Every policy chooses a configuration index from the joint features of one query
(:meth:`Policy.select`) and learns from the reward of the configuration it chose
(:meth:`Policy.update`). Only :class:`Oracle` looks at the rewards of every
configuration (``hindsight``), which is why it is an upper bound, not a policy one
could deploy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from uniscale_integrations.features.joint import FloatArray, ProductFeatures
from uniscale_integrations.policy.linucb import LinUCB


class Policy(ABC):
    """Chooses a configuration per query and learns from the chosen one's reward."""

    name: str = "policy"

    @abstractmethod
    def select(self, features: ProductFeatures, hindsight: Sequence[float] | None = None) -> int:
        """Index of the configuration to run for this query."""

    def update(self, features: ProductFeatures, arm: int, reward: float) -> None:  # noqa: B027
        """Learn from ``reward`` of configuration ``arm``; stateless policies ignore it."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class LinUCBPolicy(Policy):
    """UniScale's choice: LinUCB over the joint features ``z_a ⊗ c_t``."""

    def __init__(self, bandit: LinUCB, name: str = "UniScale"):
        self.bandit = bandit
        self.name = name

    def select(self, features: ProductFeatures, hindsight: Sequence[float] | None = None) -> int:
        return self.bandit.select(features)

    def update(self, features: ProductFeatures, arm: int, reward: float) -> None:
        self.bandit.update(features.row(arm), reward)


class Greedy(LinUCBPolicy):
    """The same linear model without exploration (``alpha = 0``)."""

    def __init__(self, dim: int, l2_lambda: float = 1.0):
        super().__init__(LinUCB(dim, alpha=0.0, l2_lambda=l2_lambda), name="Greedy")


class RandomPolicy(Policy):
    """Uniformly random configuration, from its own seeded generator."""

    name = "Random"

    def __init__(self, seed: int = 0):
        self._rng = np.random.default_rng(seed)

    def select(self, features: ProductFeatures, hindsight: Sequence[float] | None = None) -> int:
        return int(self._rng.integers(features.n_configs))


@dataclass
class Fixed(Policy):
    """Always the same configuration (index into the space)."""

    arm: int
    name: str = "Fixed"

    def select(self, features: ProductFeatures, hindsight: Sequence[float] | None = None) -> int:
        if not 0 <= self.arm < features.n_configs:
            raise IndexError(f"fixed arm {self.arm} outside a space of {features.n_configs} configs")
        return self.arm


class Oracle(Policy):
    """The best configuration for each query, read from the rewards of all of them."""

    name = "Oracle"

    def select(self, features: ProductFeatures, hindsight: Sequence[float] | None = None) -> int:
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
        self.k = k
        self._contexts: list[list[FloatArray]] = [[] for _ in range(n_configs)]
        self._rewards: list[list[float]] = [[] for _ in range(n_configs)]

    def select(self, features: ProductFeatures, hindsight: Sequence[float] | None = None) -> int:
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

    def update(self, features: ProductFeatures, arm: int, reward: float) -> None:
        context = features.context / (np.linalg.norm(features.context) or 1.0)
        self._contexts[arm].append(context)
        self._rewards[arm].append(float(reward))
