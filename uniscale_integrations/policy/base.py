"""The Policy contract: how the engine and the benchmark's replay drive every policy.

A policy chooses a configuration from the joint features of one query (:meth:`Policy.select`)
and learns from the reward of the configuration it chose (:meth:`Policy.update`, which returns
the policy). The base class owns both verbs and what surrounds them (checking the arm and the
reward, counting each arm's updates and rewards, a readable ``repr``); a policy writes only its
decision (:meth:`Policy._select`) and, if it learns, its learning step (:meth:`Policy._learn`).
Only :class:`~uniscale_integrations.policy.baselines.Oracle` reads ``hindsight`` (the rewards of
every configuration), which is why it is an upper bound, not a policy one could deploy.

Each policy names the parameters the generic contract test builds it with
(:meth:`Policy._unit_test_params`), so a new policy is tested the moment it exists.

>>> import numpy as np
>>> from uniscale_integrations.features.joint import ProductFeatures
>>> from uniscale_integrations.policy.baselines import RandomPolicy
>>> policy = RandomPolicy(seed=0)
>>> features = ProductFeatures(context=np.ones(2), actions=np.eye(3))
>>> for reward in (0.5, 1.0, 0.0):
...     policy = policy.update(features, policy.select(features), reward)
>>> print(policy)
RandomPolicy 'Random': 3 updates
arm  pulls  mean reward
  1      2        0.500
  2      1        0.500
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Self

from uniscale_integrations.features.joint import ProductFeatures


@dataclass(frozen=True)
class PolicyContext:
    """What a policy is built for: the seed of the run and the size of its space."""

    seed: int
    dim: int
    """Length of the joint feature vectors (``dz * dc``)."""
    n_arms: int
    """Configurations it chooses from."""
    context_dim: int
    """Length of the query's context vector ``c`` (``dc``)."""


class Policy(ABC):
    """Chooses a configuration per query and learns from the chosen one's reward.

    Subclasses must write :meth:`_select`; a learning policy also writes :meth:`_learn`.
    :attr:`pulls` and :meth:`mean_reward` count the updates this object has seen.
    """

    name: str = "policy"

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            self.name = name
        self.pulls: dict[int, int] = {}
        """Updates per arm."""
        self._reward_sums: dict[int, float] = {}

    # ------------------------------------------------------------------ the verbs
    def select(self, features: ProductFeatures, hindsight: Sequence[float] | None = None) -> int:
        """Index of the configuration to run for this query (``hindsight``: every configuration's
        reward, read by the Oracle only)."""
        return self._select(features, hindsight)

    def update(self, features: ProductFeatures, arm: int, reward: float) -> Self:
        """Learn from ``reward`` of configuration ``arm``; returns the policy."""
        if isinstance(arm, bool) or not 0 <= arm < features.n_configs:
            raise IndexError(f"arm {arm!r} outside a space of {features.n_configs} configs")
        value = float(reward)
        if not math.isfinite(value):
            raise ValueError(f"reward must be finite, got {reward!r}")
        self._learn(features, arm, value)
        self.pulls[arm] = self.pulls.get(arm, 0) + 1
        self._reward_sums[arm] = self._reward_sums.get(arm, 0.0) + value
        return self

    @abstractmethod
    def _select(self, features: ProductFeatures, hindsight: Sequence[float] | None) -> int:
        """The decision: an index into ``features``' configurations."""

    def _learn(self, features: ProductFeatures, arm: int, reward: float) -> None:  # noqa: B027 - optional
        """The learning step; a policy that does not learn leaves it out."""

    # ------------------------------------------------------------------ bookkeeping
    @property
    def n_updates(self) -> int:
        return sum(self.pulls.values())

    def mean_reward(self, arm: int) -> float | None:
        """The mean reward ``arm`` earned so far (``None`` before its first update)."""
        pulls = self.pulls.get(arm)
        return self._reward_sums[arm] / pulls if pulls else None

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} {self.name!r}: {self.n_updates} updates"]
        if self.pulls:
            lines.append(f"{'arm':>3}  {'pulls':>5}  {'mean reward':>11}")
            lines += [f"{arm:>3}  {self.pulls[arm]:>5}  {self.mean_reward(arm):>11.3f}" for arm in sorted(self.pulls)]
        return "\n".join(lines)

    # ------------------------------------------------------------------ testing
    @classmethod
    def _unit_test_params(cls, context: PolicyContext) -> Iterator[dict[str, Any]]:
        """Keyword arguments the generic contract test builds this policy with, for ``context``."""
        yield {}
