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
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from uniscale_integrations.features.joint import FloatArray, ProductFeatures
from uniscale_integrations.features.space import Config, ConfigSpace
from uniscale_integrations.outcomes import OutcomeTable, default_table_path, load_table
from uniscale_integrations.reward.weights import RewardWeights

DEFAULT_PRIOR = "default"
"""The name of the shipped prior: the tuning split of the default outcome table."""


@dataclass(frozen=True)
class Prior:
    """Full-information evidence: ``rewards[q, k]`` is what ``configs[k]`` earned on question ``q``."""

    name: str
    contexts: FloatArray
    """``(n_questions, dc)`` context vectors, as the engine's encoder gives them (unit norm)."""
    configs: tuple[Config, ...]
    rewards: FloatArray
    """``(n_questions, len(configs))``."""

    def __post_init__(self) -> None:
        contexts, rewards = np.asarray(self.contexts, dtype=np.float64), np.asarray(self.rewards, dtype=np.float64)
        if contexts.ndim != 2 or rewards.shape != (contexts.shape[0], len(self.configs)):
            raise ValueError(
                f"prior {self.name!r}: need (n, dc) contexts and (n, {len(self.configs)}) rewards, "
                f"got {contexts.shape} and {rewards.shape}"
            )
        if not (np.isfinite(contexts).all() and np.isfinite(rewards).all()):
            raise ValueError(f"prior {self.name!r}: contexts and rewards must be finite")
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
    ) -> Prior:
        """The shipped prior: the default outcome table's tuning split (never its test split)."""
        tune = load_table(default_table_path()).subset("tune")
        return cls.of_table(
            tune, weights, encode=encode, normalise_cost=normalise_cost, name=f"{DEFAULT_PRIOR} (table tuning split)"
        )

    @property
    def digest(self) -> str:
        """What the prior is, as a hash: its configurations, contexts and rewards."""
        digest = hashlib.sha256(",".join(map(str, self.configs)).encode())
        for array in (self.contexts, self.rewards):
            digest.update(np.ascontiguousarray(array, dtype="<f8").tobytes())
        return digest.hexdigest()

    def evidence(self, space: ConfigSpace, actions: FloatArray) -> Iterator[tuple[ProductFeatures, int, float]]:
        """``(features, arm, reward)`` updates over ``space`` (``actions``: its configurations' features),
        question by question; configurations outside the space are skipped."""
        arms = [(k, space.index(config)) for k, config in enumerate(self.configs) if config in space]
        for context, rewards in zip(self.contexts, self.rewards, strict=True):
            features = ProductFeatures(context, actions)
            for k, arm in arms:
                yield features, arm, float(rewards[k])
