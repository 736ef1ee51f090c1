"""Should the tuning split choose an interaction shrinkage with alpha? Measured on the tuning split alone.

Run from the repository root::

    python benchmarks/shrinkage_study.py

LinUCB's ridge can hold the query-by-configuration interactions ``shrinkage`` times harder than the main
effects (``features.joint.interaction_ridge_scale``), so that with little evidence the policy stays near the
best configuration overall. Whether the bench should choose it from (1, 4, 16, 64) with alpha, or keep
plain ridge (1), is a question about the tuning procedure, answered here without the test split:

- in sample: every (alpha, shrinkage)'s mean reward on the tuning split, as ``bench.evaluate`` tunes it
  (cold UniScale; with the prior at the engine's default weight, the prior from one half and the replay on
  the other);
- out of sample: the settings chosen on one half of the tuning split (cold: alpha alone, or alpha and
  shrinkage; with the prior: alpha and prior weight, or those and shrinkage), then scored on the other half,
  both ways (``_tuning_study.chosen_out_of_sample``). A wider grid is worth having if what it chooses scores better
  on the half it did not see.

It replaces the "Interaction shrinkage" section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

from pathlib import Path

from _results import out_of_sample_table, write_section
from _tuning_study import chosen_out_of_sample, command_line, tuning_split

from uniscale_integrations.bench.evaluate import MODES, BenchSettings, tune_bandit, tune_prior_bandit
from uniscale_integrations.bench.replay import BanditSettings
from uniscale_integrations.policy.prior import DEFAULT_PRIOR_WEIGHT
from uniscale_integrations.reward.weights import RewardWeights

ROOT = Path(__file__).resolve().parent
WIDE = (1.0, 4.0, 16.0, 64.0)
PLAIN = (1.0,)


def main() -> None:
    tune, repeats = tuning_split()
    lines = [command_line("shrinkage_study.py", tune, repeats), ""]
    nested_rows = []
    for mode in MODES:
        weights = RewardWeights.preset(mode)
        best, cold = tune_bandit(tune, weights, BenchSettings(shrinkages=WIDE), repeats=repeats)
        at_default = BenchSettings(shrinkages=WIDE, prior_weights=(DEFAULT_PRIOR_WEIGHT,))
        prior_best, prior = tune_prior_bandit(tune, weights, at_default, repeats=repeats)
        lines += [
            f"### {mode}: in sample (mean reward on the tuning split)",
            "",
            "| alpha | " + " | ".join(f"cold, shrinkage {s:g}" for s in WIDE) + " | "
            + " | ".join(f"prior, shrinkage {s:g}" for s in WIDE) + " |",
            "|---|" + "---|" * (2 * len(WIDE)),
        ]  # fmt: skip
        for alpha in at_default.alphas:
            cells = [cold[str(BanditSettings(alpha, s))] for s in WIDE] + [
                prior[str(BanditSettings(alpha, s, DEFAULT_PRIOR_WEIGHT))] for s in WIDE
            ]
            lines.append(f"| {alpha:g} | " + " | ".join(f"{c:.4f}" for c in cells) + " |")
        lines += ["", f"Chosen: cold {best}; with the prior {prior_best}.", ""]
        for prior_too in (False, True):
            for grid in (PLAIN, WIDE):
                outcomes = chosen_out_of_sample(tune, weights, BenchSettings(shrinkages=grid), repeats, prior=prior_too)
                nested_rows.append((f"{mode}{', prior' if prior_too else ''}", grid, outcomes))
    title = "Out of sample: chosen on one half of the tuning split, scored on the other"
    lines += out_of_sample_table(title, "shrinkages", nested_rows)
    write_section(ROOT / "RESULTS.md", "Interaction shrinkage", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
