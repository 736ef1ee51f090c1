"""Which context features drove a choice: a LinUCB estimate split over the query's context features.

With joint features ``x = z_a ⊗ c`` and ``Theta = theta.reshape(dz, dc)``, configuration ``a``'s
estimated reward is ``z_a^T Theta c = sum_j c_j (z_a · Theta[:, j])``: feature ``j`` contributes
``c_j (z_a · Theta[:, j])``, and the contributions add up to the estimate exactly. Against a
runner-up ``b`` they add up to the gap of the estimates, ``mean_a - mean_b``; the rest of the gap
in UCB is exploration, ``alpha (width_a - width_b)``, which no feature owns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from uniscale_integrations.features.joint import FloatArray, ProductFeatures
from uniscale_integrations.features.space import Config
from uniscale_integrations.policy.linucb import LinUCB

SHOWN = 5
"""Features :meth:`Attribution.__str__` lists, the largest first."""


@dataclass(frozen=True)
class Contribution:
    """One context feature's share of an estimate, and of its lead over the runner-up."""

    feature: str
    value: float
    """The feature's value ``c_j`` in the (unit-norm) context the policy saw."""
    contribution: float
    """``c_j (z_a · Theta[:, j])``: its share of the chosen configuration's estimate."""
    lead: float | None
    """``c_j ((z_a - z_b) · Theta[:, j])``: its share of the lead over the runner-up (``None`` without one)."""


@dataclass(frozen=True)
class Attribution:
    """The chosen configuration's estimate, split over the context features (see the module docstring)."""

    config: Config
    mean: float
    ucb: float
    runner_up: Config | None
    runner_up_mean: float | None
    runner_up_ucb: float | None
    contributions: tuple[Contribution, ...]
    """Every context feature, largest effect first (by lead over the runner-up, else by contribution)."""

    @property
    def exploration_lead(self) -> float | None:
        """The part of the UCB lead over the runner-up that is exploration, not estimate."""
        if self.runner_up_ucb is None or self.runner_up_mean is None:
            return None
        return (self.ucb - self.runner_up_ucb) - (self.mean - self.runner_up_mean)

    def top(self, k: int = SHOWN) -> tuple[Contribution, ...]:
        """The ``k`` features with the largest effect."""
        return self.contributions[:k]

    @property
    def learned(self) -> bool:
        """Whether any context feature has a share (not so before the first feedback: ``theta = 0``)."""
        return any(c.contribution or c.lead for c in self.contributions)

    def __str__(self) -> str:
        if not self.learned:
            tie = self.runner_up_ucb is not None and math.isclose(self.ucb, self.runner_up_ucb, rel_tol=1e-9)
            return (
                f"why {self.config}: nothing learned yet (every estimate is 0, no context feature has a share); "
                f"the choice is exploration alone (UCB {self.ucb:.3f}"
                + (f", tied with {self.runner_up}: ties go to the first configuration of the space)" if tie else ")")
            )
        lines = [f"why {self.config}: estimated reward {self.mean:.3f} = sum of the context features' shares"]
        if self.runner_up is not None and self.runner_up_mean is not None:
            lines[0] = (
                f"why {self.config} rather than {self.runner_up}: estimate {self.mean:.3f} vs "
                f"{self.runner_up_mean:.3f} (lead {self.mean - self.runner_up_mean:+.3f}), "
                f"exploration lead {self.exploration_lead:+.3f}"
            )
        lines.append(f"  {'feature':<14} {'value':>7} {'share':>8} {'lead':>8}")
        for c in self.top():
            lead = f"{c.lead:>+8.3f}" if c.lead is not None else f"{'-':>8}"
            lines.append(f"  {c.feature:<14} {c.value:>7.3f} {c.contribution:>+8.3f} {lead}")
        rest = len(self.contributions) - SHOWN
        if rest > 0:
            lines.append(f"  ({rest} smaller features not shown)")
        return "\n".join(lines)


def feature_weights(bandit: LinUCB, features: ProductFeatures) -> FloatArray:
    """``W[a, j] = z_a · Theta[:, j]``: each configuration's weight on each context feature."""
    dz, dc = features.actions.shape[1], features.context.shape[0]
    if dz * dc != bandit.dim:
        raise ValueError(f"ProductFeatures of dim {dz} x {dc} do not match bandit dim {bandit.dim}")
    weights: FloatArray = features.actions @ bandit.theta.reshape(dz, dc)
    return weights


def attribute(
    bandit: LinUCB,
    features: ProductFeatures,
    names: Sequence[str],
    configs: Sequence[Config],
    chosen: int,
    runner_up: int | None = None,
) -> Attribution:
    """Split configuration ``chosen``'s estimate over the context features ``names`` (and its lead over
    ``runner_up``, when given); ``configs`` names the rows of ``features.actions``."""
    if len(names) != features.context.shape[0]:
        raise ValueError(f"{len(names)} feature names for a context of {features.context.shape[0]} numbers")
    weights = feature_weights(bandit, features)
    mean, width = bandit.scores(features)
    ucb = mean + bandit.alpha * width
    context = features.context
    shares = context * weights[chosen]
    leads = context * (weights[chosen] - weights[runner_up]) if runner_up is not None else None
    order = np.argsort(-np.abs(leads if leads is not None else shares), kind="stable")
    contributions = tuple(
        Contribution(names[j], float(context[j]), float(shares[j]), float(leads[j]) if leads is not None else None)
        for j in order
    )
    return Attribution(
        config=configs[chosen],
        mean=float(mean[chosen]),
        ucb=float(ucb[chosen]),
        runner_up=configs[runner_up] if runner_up is not None else None,
        runner_up_mean=float(mean[runner_up]) if runner_up is not None else None,
        runner_up_ucb=float(ucb[runner_up]) if runner_up is not None else None,
        contributions=contributions,
    )
