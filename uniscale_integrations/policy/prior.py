"""A prior for the policy: every configuration's reward on a set of past questions, applied first.

A fresh LinUCB knows nothing (``A = lambda I``, ``b = 0``) and pays for its exploration on the
first queries. A :class:`Prior` starts it from full-information evidence instead: for each
question of an outcome table's tuning split, the reward *every* configuration earned, applied as
one update per (question, configuration) before any live feedback. The policy then keeps
learning online from the log as before; the prior is part of what the policy is a function of
(the replica keys its snapshots by :attr:`Prior.digest`).

Rewards are recomputed under the engine's own weights and cost normalisation
(:meth:`Prior.of_table`), and contexts by the engine's own encoder, so a prior always speaks
the engine's language; configurations the engine's space lacks are skipped.

Each of the prior's outcomes counts as :attr:`Prior.weight` live observations. At 1 the shipped
prior's 2,912 outcomes (182 questions x 16 configurations) outweigh the first several hundred live
ones; a lighter prior still sets the starting point but yields to live feedback sooner
(docs/bench.md, "182 tuning questions and the prior weight").
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from uniscale_integrations.features.joint import FloatArray, ProductFeatures
from uniscale_integrations.features.space import Config, ConfigSpace
from uniscale_integrations.outcomes import OutcomeTable, default_table_path, load_table
from uniscale_integrations.policy.linucb import LinUCB
from uniscale_integrations.reward.weights import RewardWeights

DEFAULT_PRIOR = "default"
"""The name of the shipped prior: the tuning split of the default outcome table."""
DEFAULT_PRIOR_WEIGHT = 0.25
"""How many live observations one outcome of the shipped prior counts as: within 0.0011 of the best weight of
(1, 0.5, 0.25, 0.1) in both modes on the tuning split, prior from one half and scored on the other
(benchmarks/prior_weight_study.py); weight 1 trailed it by 0.004 and 0.008."""


@dataclass(frozen=True)
class Prior:
    """Full-information evidence: ``rewards[q, k]`` is what ``configs[k]`` earned on question ``q``."""

    name: str
    contexts: FloatArray
    """``(n_questions, dc)`` context vectors, as the engine's encoder gives them (unit norm)."""
    configs: tuple[Config, ...]
    rewards: FloatArray
    """``(n_questions, len(configs))``."""
    weight: float = 1.0
    """How many live observations each outcome counts as (positive)."""

    def __post_init__(self) -> None:
        contexts, rewards = np.asarray(self.contexts, dtype=np.float64), np.asarray(self.rewards, dtype=np.float64)
        if contexts.ndim != 2 or rewards.shape != (contexts.shape[0], len(self.configs)):
            raise ValueError(
                f"prior {self.name!r}: need (n, dc) contexts and (n, {len(self.configs)}) rewards, "
                f"got {contexts.shape} and {rewards.shape}"
            )
        if not (np.isfinite(contexts).all() and np.isfinite(rewards).all()):
            raise ValueError(f"prior {self.name!r}: contexts and rewards must be finite")
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)):
            raise ValueError(f"prior {self.name!r}: weight must be a positive number, got {self.weight!r}")
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise ValueError(f"prior {self.name!r}: weight must be positive and finite, got {self.weight!r}")
        object.__setattr__(self, "contexts", contexts)
        object.__setattr__(self, "rewards", rewards)

    @classmethod
    def of_table(
        cls,
        table: OutcomeTable,
        weights: RewardWeights,
        *,
        encode: Callable[[Sequence[str]], FloatArray] | None = None,
        normalise_cost: Callable[[float], float] | None = None,
        name: str | None = None,
    ) -> Prior:
        """The table's outcomes as a prior: contexts by ``encode`` (default: the table's own), costs by
        ``normalise_cost`` applied to each outcome's eFLOPs (default: the table's own normalised cost)."""
        if encode is None:
            contexts = table.contexts
        else:
            encoded = np.asarray(encode([q.text for q in table.questions]), dtype=np.float64)
            contexts = encoded / np.linalg.norm(encoded, axis=1, keepdims=True)
        if normalise_cost is None:
            rewards = table.rewards(weights)
        else:
            cost = np.vectorize(normalise_cost, otypes=[np.float64])(table.array("eflops"))
            correct, score = table.array("correct"), table.array("score")
            rewards = np.vectorize(lambda c, s, k: weights.reward(correct=c, score=s, cost=k), otypes=[np.float64])(
                correct, score, cost
            )
        return cls(name or f"{table.n_questions} questions", contexts, table.configs, rewards)

    @classmethod
    def default(
        cls,
        weights: RewardWeights,
        *,
        encode: Callable[[Sequence[str]], FloatArray] | None = None,
        normalise_cost: Callable[[float], float] | None = None,
        weight: float = DEFAULT_PRIOR_WEIGHT,
    ) -> Prior:
        """The shipped prior: the default outcome table's tuning split (never its test split)."""
        tune = load_table(default_table_path()).subset("tune")
        prior = cls.of_table(
            tune, weights, encode=encode, normalise_cost=normalise_cost, name=f"{DEFAULT_PRIOR} (table tuning split)"
        )
        return prior.weighted(weight)

    def weighted(self, weight: float) -> Prior:
        """The same outcomes, each counting as ``weight`` live observations."""
        return replace(self, weight=weight)

    @property
    def digest(self) -> str:
        """What the prior is, as a hash: its configurations, contexts, rewards and weight."""
        digest = hashlib.sha256(",".join(map(str, self.configs)).encode())
        digest.update(f"weight {self.weight!r}".encode())
        for array in (self.contexts, self.rewards):
            digest.update(np.ascontiguousarray(array, dtype="<f8").tobytes())
        return digest.hexdigest()

    def apply(self, bandit: LinUCB, space: ConfigSpace, actions: FloatArray) -> int:
        """Update ``bandit`` with the prior's evidence over ``space`` (``actions``: its configurations' features),
        question by question, and return how many updates that was; configurations outside the space are skipped.

        Each outcome enters as the row ``sqrt(w) x`` with reward ``sqrt(w) r``: LinUCB then adds ``w x x^T`` to its
        design and ``w r x`` to its target, as ``w`` observations of ``(x, r)`` would."""
        arms = [(k, space.index(config)) for k, config in enumerate(self.configs) if config in space]
        scale = math.sqrt(self.weight)
        for context, rewards in zip(self.contexts, self.rewards, strict=True):
            features = ProductFeatures(scale * context, actions)
            for k, arm in arms:
                bandit.update(features.row(arm), scale * float(rewards[k]))
        return len(self.contexts) * len(arms)
