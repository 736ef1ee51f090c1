"""The dense reward ``r = w1 * Correct + w2 * Score + w3 * (1 - C)``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from uniscale_integrations.checks import unit_interval

Mode = Literal["cost-sensitive", "quality-first"]


@dataclass(frozen=True)
class RewardWeights:
    """Weights of correctness, verifier score and saved cost.

    >>> round(RewardWeights.preset("cost-sensitive").reward(correct=1.0, score=0.5, cost=0.2), 6)
    0.89
    """

    correct: float
    score: float
    cost: float

    def __post_init__(self) -> None:
        values = (self.correct, self.score, self.cost)
        if not all(isinstance(w, int | float) and math.isfinite(w) and w >= 0 for w in values):
            raise ValueError(f"reward weights must be finite and non-negative, got {values}")
        if sum(values) <= 0:
            raise ValueError("at least one reward weight must be positive")

    @classmethod
    def preset(cls, mode: Mode) -> RewardWeights:
        """``cost-sensitive`` (w3 = 0.3) or ``quality-first`` (w3 = 0.05)."""
        try:
            return _PRESETS[mode]
        except KeyError:
            raise ValueError(f"unknown mode {mode!r}; choose one of {sorted(_PRESETS)}") from None

    def reward(self, *, correct: float, score: float, cost: float) -> float:
        """The dense reward; every input lies in [0, 1] (``cost`` is normalised)."""
        c = unit_interval("correct", correct, booleans=True)
        s = unit_interval("score", score, booleans=True)
        k = unit_interval("cost", cost, booleans=True)
        return self.correct * c + self.score * s + self.cost * (1.0 - k)


_PRESETS: dict[str, RewardWeights] = {
    "cost-sensitive": RewardWeights(correct=0.6, score=0.1, cost=0.3),
    "quality-first": RewardWeights(correct=0.8, score=0.15, cost=0.05),
}
