"""Shared by the tuning studies (shrinkage, prior weight): the tuning split they read, their command line, and
the question they ask of a wider grid: are the settings chosen inside one half of the tuning split, as the
bench chooses them, better on the other half?"""

from __future__ import annotations

import numpy as np

from uniscale_integrations.bench.evaluate import (
    BenchSettings,
    tune_bandit,
    tune_prior_bandit,
    tuning_halves,
    tuning_rewards,
)
from uniscale_integrations.bench.replay import (
    UNISCALE,
    UNISCALE_PRIOR,
    BanditSettings,
    PolicySpec,
    uniscale,
    warmed_uniscale,
)
from uniscale_integrations.outcomes import OutcomeTable, default_table_path, load_table
from uniscale_integrations.policy.prior import Prior
from uniscale_integrations.reward.weights import RewardWeights


def chosen_out_of_sample(
    tune: OutcomeTable, weights: RewardWeights, settings: BenchSettings, repeats: float, *, prior: bool
) -> list[tuple[BanditSettings, float]]:
    """Per half of the tuning split: the settings the bench's tuner chooses on it (cold UniScale, or UniScale +
    prior cross-fitted inside the half), and their mean reward on the other half (the prior fitted on the whole
    first half). The wider grid pays if what it chooses scores better on the half it did not see."""
    outcomes = []
    halves = tuning_halves(tune)
    for fit, held_out in (halves, halves[::-1]):
        if prior:
            chosen, _ = tune_prior_bandit(fit, weights, settings, repeats=repeats)
            spec = PolicySpec(UNISCALE_PRIOR, warmed_uniscale(chosen, Prior.of_table(fit, weights), held_out))
        else:
            chosen, _ = tune_bandit(fit, weights, settings, repeats=repeats)
            spec = PolicySpec(UNISCALE, uniscale(chosen))
        outcomes.append((chosen, float(np.mean(tuning_rewards(held_out, spec, weights, settings, repeats)))))
    return outcomes


def tuning_split() -> tuple[OutcomeTable, float]:
    """The shipped table's tuning split, and how often the bench's test streams bring each question back (the
    tuning streams do the same: :func:`~uniscale_integrations.bench.evaluate.tuning_length`)."""
    table = load_table(default_table_path())
    return table.subset("tune"), BenchSettings().length / table.subset("test").n_questions


def command_line(script: str, tune: OutcomeTable, repeats: float) -> str:
    """The first line of a tuning study's RESULTS section."""
    return (
        f"Command: `python benchmarks/{script}` (table v2's {tune.n_questions} tuning questions only; 20 seeds per "
        f"score, streams bringing each question back {repeats:.2f} times, as the bench tunes)."
    )
