"""Where do the practitioners' rivals beat UniScale? Mean reward per tier on table v2's test split.

Run from the repository root::

    python benchmarks/rivals_by_tier.py

UniScale started from the tuning split's prior, the offline router, kNN and BEST-Route, replayed on the
bench's streams (5 seeds x 1,000 queries) in both modes, with the bench's tuned settings (alpha and
BEST-Route's tolerance chosen on the tuning split); each trace's rewards are split by the tier of their
question. It replaces the "Rivals by tier" section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _results import write_section

from uniscale_integrations.bench.evaluate import BenchSettings, tune_prior_bandit, tune_rivals
from uniscale_integrations.bench.practitioners import BEST_ROUTE, OFFLINE_ROUTER, BestRoute, OfflineRouter
from uniscale_integrations.bench.replay import UNISCALE_PRIOR, PolicySpec, replay, warmed_uniscale
from uniscale_integrations.outcomes import default_table_path, load_table
from uniscale_integrations.policy.baselines import KNN
from uniscale_integrations.policy.prior import Prior
from uniscale_integrations.reward.weights import RewardWeights

ROOT = Path(__file__).resolve().parent


def main() -> None:
    table = load_table(default_table_path())
    tune, test = table.subset("tune"), table.subset("test")
    settings = BenchSettings()
    lines = [
        "Command: `python benchmarks/rivals_by_tier.py` (table v2's test split, 5 seeds x 1,000 queries; mean reward "
        "per tier over the streams; the best policy of each tier in bold).",
        "",
    ]
    for mode in ("cost-sensitive", "quality-first"):
        weights = RewardWeights.preset(mode)
        bandit, _ = tune_prior_bandit(tune, weights, settings, repeats=settings.length / test.n_questions)
        tolerance = tune_rivals(tune, weights)["tolerance"]
        specs = [
            PolicySpec(UNISCALE_PRIOR, warmed_uniscale(bandit, Prior.of_table(tune, weights), test)),
            PolicySpec(OFFLINE_ROUTER, lambda c, w=weights: OfflineRouter.from_table(tune, w)),
            PolicySpec("kNN", lambda c: KNN(c.n_arms, k=settings.knn_k)),
            PolicySpec(BEST_ROUTE, lambda c, t=tolerance: BestRoute.from_table(tune, t)),
        ]
        result = replay(test, specs, weights, seeds=settings.seeds, length=settings.length, hindsight=False)
        by_tier = {
            name: [
                float(np.mean([t.reward[test.tier_index[t.questions] == k].mean() for t in traces.values()]))
                for k in range(len(test.tiers))
            ]
            for name, traces in result.traces.items()
        }
        best = np.argmax(np.asarray(list(by_tier.values())), axis=0)
        lines += [f"**{mode}**", "", "| policy | " + " | ".join(test.tiers) + " |", "|---|" + "---|" * len(test.tiers)]
        for row, (name, values) in enumerate(by_tier.items()):
            cells = [f"**{v:.3f}**" if best[k] == row else f"{v:.3f}" for k, v in enumerate(values)]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    body = "\n".join(lines)
    print(body)
    write_section(ROOT / "RESULTS.md", "Rivals by tier", body)


if __name__ == "__main__":
    main()
