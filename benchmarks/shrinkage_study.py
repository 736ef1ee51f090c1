"""Should the tuning split choose an interaction shrinkage with alpha? Measured on the tuning split alone.

Run from the repository root::

    python benchmarks/shrinkage_study.py

LinUCB's ridge can hold the query-by-configuration interactions ``shrinkage`` times harder than the main
effects (``features.joint.interaction_ridge_scale``), so that with little evidence the policy stays near the
best configuration overall. Whether the bench should choose it from (1, 4, 16, 64) with alpha, or keep
plain ridge (1), is a question about the tuning procedure, answered here without the test split:

- in sample: every (alpha, shrinkage)'s mean reward on the tuning split, as ``bench.evaluate`` tunes it
  (cold UniScale; with the prior, the prior from one half and the replay on the other);
- out of sample: cold UniScale's settings chosen on one half of the tuning split (alpha alone, or alpha and
  shrinkage), then scored on the other half, both ways. A wider grid is worth having if what it chooses
  scores better on the half it did not see.

It replaces the "Interaction shrinkage" section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _results import out_of_sample_table, write_section

from uniscale_integrations.bench.evaluate import MODES, BenchSettings, tune_bandit, tune_prior_bandit, tuning_rewards
from uniscale_integrations.bench.replay import UNISCALE, BanditSettings, PolicySpec, uniscale
from uniscale_integrations.outcomes import default_table_path, load_table
from uniscale_integrations.reward.weights import RewardWeights

ROOT = Path(__file__).resolve().parent
WIDE = (1.0, 4.0, 16.0, 64.0)
PLAIN = (1.0,)


def main() -> None:
    table = load_table(default_table_path())
    tune, test = table.subset("tune"), table.subset("test")
    repeats = BenchSettings().length / test.n_questions
    halves = [tune.select(range(start, tune.n_questions, 2)) for start in (0, 1)]
    lines = [
        "Command: `python benchmarks/shrinkage_study.py` (table v2's tuning split only; 20 seeds per score, "
        f"streams bringing each question back {repeats:.2f} times, as the bench tunes).",
        "",
    ]
    nested_rows = []
    for mode in MODES:
        weights = RewardWeights.preset(mode)
        wide = BenchSettings(shrinkages=WIDE)
        best, cold = tune_bandit(tune, weights, wide, repeats=repeats)
        prior_best, prior = tune_prior_bandit(tune, weights, wide, repeats=repeats)
        lines += [
            f"### {mode}: in sample (mean reward on the tuning split)",
            "",
            "| alpha | " + " | ".join(f"cold, shrinkage {s:g}" for s in WIDE) + " | "
            + " | ".join(f"prior, shrinkage {s:g}" for s in WIDE) + " |",
            "|---|" + "---|" * (2 * len(WIDE)),
        ]  # fmt: skip
        for alpha in wide.alphas:
            cells = [cold[str(BanditSettings(alpha, s))] for s in WIDE] + [
                prior[str(BanditSettings(alpha, s))] for s in WIDE
            ]
            lines.append(f"| {alpha:g} | " + " | ".join(f"{c:.4f}" for c in cells) + " |")
        lines += ["", f"Chosen: cold {best}; with the prior {prior_best}.", ""]
        for grid in (PLAIN, WIDE):
            settings = BenchSettings(shrinkages=grid)
            outcomes: list[tuple[object, float]] = []
            for fit, held_out in (halves, halves[::-1]):
                chosen, _ = tune_bandit(fit, weights, settings, repeats=repeats)
                spec = PolicySpec(UNISCALE, uniscale(chosen))
                outcomes.append((chosen, float(np.mean(tuning_rewards(held_out, spec, weights, settings, repeats)))))
            nested_rows.append((mode, grid, outcomes))
    title = "Out of sample: chosen on one half of the tuning split, scored on the other (cold UniScale)"
    lines += out_of_sample_table(title, "shrinkages", nested_rows)
    write_section(ROOT / "RESULTS.md", "Interaction shrinkage", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
