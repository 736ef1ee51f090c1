"""UniScale's margin over what a newcomer would run instead, on the shipped table: what ``make demo`` shows.

The live closed loop of ``uniscale learn`` shows a learning curve, but not what the alternatives would
have earned on the same questions (running all of them live would multiply the demo's compute by the
size of the space). The shipped outcome table holds every configuration's outcome on every question,
so the same stream of its test questions is replayed for UniScale (cold, and started from the
tuning split's prior), the best single config and the cascade. Both rivals are chosen on the tuning
split, as a practitioner would choose them before deploying; the hindsight best fixed config is shown
for scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uniscale_integrations.bench.evaluate import BenchSettings, tune_bandit, tune_prior_bandit, tune_rivals
from uniscale_integrations.bench.plots import plot_margin
from uniscale_integrations.bench.practitioners import CASCADE, cascade_trace
from uniscale_integrations.bench.replay import (
    BEST_FIXED,
    UNISCALE,
    UNISCALE_PRIOR,
    PolicySpec,
    Trace,
    replay,
    uniscale,
    warmed_uniscale,
)
from uniscale_integrations.outcomes import default_table_path, load_table
from uniscale_integrations.policy.baselines import Fixed
from uniscale_integrations.policy.linucb import DEFAULT_SHRINKAGE
from uniscale_integrations.policy.prior import Prior
from uniscale_integrations.reward.weights import Mode, RewardWeights

BEST_SINGLE = "best single config (tuning split)"


@dataclass(frozen=True)
class Margin:
    """Each policy's trace on one stream of the table's test questions."""

    mode: Mode
    traces: dict[str, Trace]
    best_single: str
    """The configuration the tuning split found best."""

    def __str__(self) -> str:
        lines = [
            f"On {next(iter(self.traces.values())).steps} queries drawn from the shipped table's test questions "
            f"({self.mode}; the same stream for every policy):",
            f"{'policy':<52} {'reward':>7} {'accuracy':>9} {'mean eFLOPs':>12}",
        ]
        for name, trace in self.traces.items():
            label = f"{name}: {self.best_single}" if name == BEST_SINGLE else name
            lines.append(
                f"{label:<52} {trace.reward.mean():>7.3f} {trace.correct.mean():>9.3f} {trace.eflops.mean():>12.3g}"
            )
        reward = {name: float(t.reward.mean()) for name, t in self.traces.items()}
        best = max((UNISCALE, UNISCALE_PRIOR), key=reward.__getitem__)
        lines.append(
            f"margin of {best}: {reward[best] - reward[BEST_SINGLE]:+.3f} reward per query over the best single "
            f"config, {reward[best] - reward[CASCADE]:+.3f} over the cascade"
        )
        return "\n".join(lines)


def margin(mode: Mode = "cost-sensitive", *, seed: int = 0, length: int = 1000, table: Path | None = None) -> Margin:
    """Replay UniScale, the best single config and the cascade on one stream of the table's test split."""
    full = load_table(table or default_table_path())
    tune, test = full.subset("tune"), full.subset("test")
    weights = RewardWeights.preset(mode)
    # The engine's own shrinkage: tuning the bench's whole grid would make the demo four times slower.
    settings = BenchSettings(seeds=(seed,), length=length, shrinkages=(DEFAULT_SHRINKAGE,))
    repeats = length / test.n_questions
    bandit, _ = tune_bandit(tune, weights, settings, repeats=repeats)
    prior_bandit, _ = tune_prior_bandit(tune, weights, settings, repeats=repeats)
    best_single = int(np.argmax(tune.rewards(weights).mean(axis=0)))
    specs = [
        PolicySpec(UNISCALE, uniscale(bandit)),
        PolicySpec(UNISCALE_PRIOR, warmed_uniscale(prior_bandit, Prior.of_table(tune, weights), test)),
        PolicySpec(BEST_SINGLE, lambda c: Fixed(best_single)),
    ]
    result = replay(test, specs, weights, seeds=[seed], length=length)
    rivals = tune_rivals(tune, weights)
    cascade = cascade_trace(
        test,
        weights,
        result.streams[seed],
        seed,
        small=rivals["small"],
        strong=rivals["strong"],
        threshold=rivals["threshold"],
    )
    traces = {name: result.traces[name][seed] for name in (UNISCALE, UNISCALE_PRIOR, BEST_SINGLE)}
    traces[CASCADE] = cascade
    traces[BEST_FIXED] = result.traces[BEST_FIXED][seed]
    return Margin(mode, traces, str(test.configs[best_single]))


def write_margin(result: Margin, path: Path) -> Path:
    """The running mean reward of every policy, as a PNG at ``path``."""
    return plot_margin({name: trace.reward for name, trace in result.traces.items()}, result.mode, path)
