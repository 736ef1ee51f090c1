"""How much does the choice of tuning questions move UniScale + prior's test figures?

Run from the repository root::

    python benchmarks/tuning_draws.py

Sessions 9 and 10 measured UniScale + prior with 122 and then 182 tuning questions and got 0.570 and 0.557 in
cost-sensitive mode with the same settings. This asks how much of such a gap the draw of tuning questions
alone explains: the prior is built from random subsets of 122 of the 182 tuning questions (settings held
fixed: alpha 0.5, shrinkage 1, prior weight 1 and the engine's default 0.25; nothing is chosen), and each
is replayed on the test split's streams, as ``uniscale bench`` does. It measures a spread and chooses
nothing.

It replaces the "Tuning-split draws" section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _results import write_section
from tqdm import tqdm

from uniscale_integrations.bench.evaluate import MODES, BenchSettings
from uniscale_integrations.bench.replay import UNISCALE_PRIOR, BanditSettings, PolicySpec, replay, warmed_uniscale
from uniscale_integrations.outcomes import OutcomeTable, default_table_path, load_table
from uniscale_integrations.policy.linucb import DEFAULT_ALPHA
from uniscale_integrations.policy.prior import DEFAULT_PRIOR_WEIGHT, Prior
from uniscale_integrations.reward.weights import RewardWeights

ROOT = Path(__file__).resolve().parent
DRAWS = 20
SUBSET = 122
WEIGHTS = (1.0, DEFAULT_PRIOR_WEIGHT)


def reward_on_test(tune: OutcomeTable, test: OutcomeTable, bandit: BanditSettings, weights: RewardWeights) -> float:
    """UniScale + prior's mean reward on the bench's test streams, the prior from ``tune``."""
    settings = BenchSettings()
    spec = PolicySpec(UNISCALE_PRIOR, warmed_uniscale(bandit, Prior.of_table(tune, weights), test))
    result = replay(test, [spec], weights, seeds=list(settings.seeds), length=settings.length, hindsight=False)
    return float(np.mean([t.reward.mean() for t in result.traces[UNISCALE_PRIOR].values()]))


def main() -> None:
    table = load_table(default_table_path())
    tune, test = table.subset("tune"), table.subset("test")
    rng = np.random.default_rng(0)
    subsets = [np.sort(rng.choice(tune.n_questions, SUBSET, replace=False)) for _ in range(DRAWS)]
    lines = [
        f"Command: `python benchmarks/tuning_draws.py` (UniScale + prior on table v2's test split, 5 seeds x 1,000 "
        f"queries, the prior from {DRAWS} random subsets of {SUBSET} of the {tune.n_questions} tuning questions; "
        f"alpha {DEFAULT_ALPHA:g}, shrinkage 1, settings held fixed).",
        "",
        f"| mode | prior weight | all {tune.n_questions} | draws of {SUBSET}: mean | sd | min | max |",
        "|---|---|---|---|---|---|---|",
    ]
    with tqdm(total=len(MODES) * len(WEIGHTS) * (DRAWS + 1), desc="draws") as bar:
        for mode in MODES:
            weights = RewardWeights.preset(mode)
            for weight in WEIGHTS:
                bandit = BanditSettings(DEFAULT_ALPHA, 1.0, weight)
                full = reward_on_test(tune, test, bandit, weights)
                bar.update(1)
                draws = []
                for keep in subsets:
                    draws.append(reward_on_test(tune.select(keep.tolist()), test, bandit, weights))
                    bar.update(1)
                lines.append(
                    f"| {mode} | {weight:g} | {full:.4f} | {np.mean(draws):.4f} | {np.std(draws, ddof=1):.4f} | "
                    f"{min(draws):.4f} | {max(draws):.4f} |"
                )
    write_section(ROOT / "RESULTS.md", "Tuning-split draws", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
