"""How much does the choice of tuning questions move the test figures, and do the gaps between UniScale + prior
and what a practitioner would fit instead survive it?

Run from the repository root::

    python benchmarks/tuning_draws.py

Sessions 9 and 10 measured UniScale + prior with 122 and then 182 tuning questions and got 0.570 and 0.557 in
cost-sensitive mode with the same settings. Here every policy that learns from the tuning split is fitted on
random subsets of 122 of the 182 tuning questions and replayed on the test split's streams, as ``uniscale
bench`` does:

- UniScale + prior, with settings held fixed (alpha 0.5, shrinkage 1; prior weight 1 and the engine's default);
- the best fixed config and the best config per tier chosen on the draw (the per-tier one is told the tier);
- the offline router fitted on the draw, BEST-Route and the cascade with their knobs chosen on the draw
  (``bench.evaluate.tune_rivals``).

It measures each one's spread over draws, and the paired difference between UniScale + prior (the engine's
default weight) and each rival on the same draw: its mean, sd, and in how many draws UniScale + prior is ahead.
It chooses nothing. It replaces the "Tuning-split draws" section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _results import write_section
from tqdm import tqdm

from uniscale_integrations.bench.evaluate import MODES, BenchSettings, tune_rivals
from uniscale_integrations.bench.practitioners import (
    BEST_ROUTE,
    CASCADE,
    OFFLINE_ROUTER,
    BestRoute,
    OfflineRouter,
    cascade_trace,
)
from uniscale_integrations.bench.replay import (
    TUNED_FIXED,
    TUNED_PER_TIER,
    UNISCALE_PRIOR,
    BanditSettings,
    PolicySpec,
    replay,
    tuned_traces,
    warmed_uniscale,
)
from uniscale_integrations.outcomes import OutcomeTable, default_table_path, load_table
from uniscale_integrations.policy.linucb import DEFAULT_ALPHA, DEFAULT_SHRINKAGE
from uniscale_integrations.policy.prior import DEFAULT_PRIOR_WEIGHT, Prior
from uniscale_integrations.reward.weights import RewardWeights

ROOT = Path(__file__).resolve().parent
DRAWS = 20
SUBSET = 122
HEAVY = f"{UNISCALE_PRIOR} (weight 1)"
POLICIES = (UNISCALE_PRIOR, HEAVY, TUNED_FIXED, TUNED_PER_TIER, OFFLINE_ROUTER, BEST_ROUTE, CASCADE)


def fitted_on(tune: OutcomeTable, test: OutcomeTable, weights: RewardWeights) -> dict[str, float]:
    """Each policy fitted on ``tune``: its mean reward on the bench's test streams."""
    settings = BenchSettings()
    rivals = tune_rivals(tune, weights)
    prior = Prior.of_table(tune, weights)
    specs = [
        PolicySpec(name, warmed_uniscale(BanditSettings(DEFAULT_ALPHA, DEFAULT_SHRINKAGE, w), prior, test))
        for name, w in ((UNISCALE_PRIOR, DEFAULT_PRIOR_WEIGHT), (HEAVY, 1.0))
    ]
    specs += [
        PolicySpec(OFFLINE_ROUTER, lambda context: OfflineRouter.from_table(tune, weights)),
        PolicySpec(BEST_ROUTE, lambda context: BestRoute.from_table(tune, rivals["tolerance"])),
    ]
    result = replay(test, specs, weights, seeds=list(settings.seeds), length=settings.length, hindsight=False)
    cascade = {k: rivals[k] for k in ("small", "strong", "threshold")}
    for seed in result.seeds:
        questions = result.streams[seed]
        result.add(cascade_trace(test, weights, questions, seed, **cascade))
        for trace in tuned_traces(tune, test, weights, questions, seed):
            result.add(trace)
    return {name: float(np.mean([t.reward.mean() for t in result.traces[name].values()])) for name in POLICIES}


def main() -> None:
    table = load_table(default_table_path())
    tune, test = table.subset("tune"), table.subset("test")
    rng = np.random.default_rng(0)
    subsets = [np.sort(rng.choice(tune.n_questions, SUBSET, replace=False)) for _ in range(DRAWS)]
    lines = [
        f"Command: `python benchmarks/tuning_draws.py` (table v2's test split, 5 seeds x 1,000 queries; each policy "
        f"fitted on {DRAWS} random subsets of {SUBSET} of the {tune.n_questions} tuning questions; UniScale + prior "
        f"at alpha {DEFAULT_ALPHA:g}, shrinkage 1, prior weight {DEFAULT_PRIOR_WEIGHT:g} (the engine's default) "
        "and 1, settings held fixed; the rivals' knobs chosen on each draw).",
    ]
    with tqdm(total=len(MODES) * (DRAWS + 1), desc="draws") as bar:
        for mode in MODES:
            weights = RewardWeights.preset(mode)
            full = fitted_on(tune, test, weights)
            bar.update(1)
            draws = []
            for keep in subsets:
                draws.append(fitted_on(tune.select(keep.tolist()), test, weights))
                bar.update(1)
            lines += [
                "",
                f"### {mode}",
                "",
                f"| policy | all {tune.n_questions} | draws of {SUBSET}: mean | sd | min | max "
                f"| {UNISCALE_PRIOR} minus it: mean | sd | draws {UNISCALE_PRIOR} is ahead |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
            for name in POLICIES:
                values = np.asarray([d[name] for d in draws])
                spread = f"{values.mean():.4f} | {values.std(ddof=1):.4f} | {values.min():.4f} | {values.max():.4f}"
                if name == UNISCALE_PRIOR:
                    paired = " | | "
                else:
                    gaps = np.asarray([d[UNISCALE_PRIOR] - d[name] for d in draws])
                    paired = f"{gaps.mean():+.4f} | {gaps.std(ddof=1):.4f} | {int((gaps > 0).sum())} of {DRAWS}"
                lines.append(f"| {name} | {full[name]:.4f} | {spread} | {paired} |")
    write_section(ROOT / "RESULTS.md", "Tuning-split draws", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
