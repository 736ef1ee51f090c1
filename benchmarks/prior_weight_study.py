"""Should the tuning split choose how much the prior weighs? Measured on the tuning split alone.

Run from the repository root::

    python benchmarks/prior_weight_study.py

UniScale + prior starts from one update per (tuning question, configuration): 2,912 of them on 182 tuning
questions, which outweigh the first few hundred live ones. ``Prior.weighted(w)`` makes each count as ``w``
observations. Whether the bench should choose ``w`` from (1, 0.5, 0.25, 0.1) with the prior's alpha, or keep 1,
is a question about the tuning procedure, answered here without the test split:

- in sample: every (alpha, weight)'s mean reward as ``bench.evaluate`` tunes it (the prior from one half of the
  tuning split, the replay on the other, both ways);
- out of sample: the settings chosen that way inside one half (alpha alone, or alpha and weight), then the prior
  from that whole half replayed on the other half, both ways. The wider grid is worth having if what it
  chooses scores better on the half it did not see.

It replaces the "Prior weight" section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

from pathlib import Path

from _results import out_of_sample_table, write_section
from _tuning_study import chosen_out_of_sample, command_line, tuning_split

from uniscale_integrations.bench.evaluate import MODES, BenchSettings, tune_prior_bandit
from uniscale_integrations.bench.replay import BanditSettings
from uniscale_integrations.reward.weights import RewardWeights

ROOT = Path(__file__).resolve().parent
WIDE = (1.0, 0.5, 0.25, 0.1)
PLAIN = (1.0,)


def main() -> None:
    tune, repeats = tuning_split()
    lines = [command_line("prior_weight_study.py", tune, repeats), ""]
    nested_rows = []
    for mode in MODES:
        weights = RewardWeights.preset(mode)
        wide = BenchSettings(prior_weights=WIDE, shrinkages=PLAIN)  # the weight alone, with plain ridge
        best, scores = tune_prior_bandit(tune, weights, wide, repeats=repeats)
        lines += [
            f"### {mode}: in sample (prior from one half, scored on the other)",
            "",
            "| alpha | " + " | ".join(f"weight {w:g}" for w in WIDE) + " |",
            "|---|" + "---|" * len(WIDE),
        ]
        for alpha in wide.prior_alphas:
            cells = [scores[str(BanditSettings(alpha, 1.0, w))] for w in WIDE]
            lines.append(f"| {alpha:g} | " + " | ".join(f"{c:.4f}" for c in cells) + " |")
        lines += ["", f"Chosen: {best}.", ""]
        for grid in (PLAIN, WIDE):
            settings = BenchSettings(prior_weights=grid, shrinkages=PLAIN)
            nested_rows.append((mode, grid, chosen_out_of_sample(tune, weights, settings, repeats, prior=True)))
    title = "Out of sample: chosen inside one half of the tuning split, its prior scored on the other"
    lines += out_of_sample_table(title, "prior weights", nested_rows)
    write_section(ROOT / "RESULTS.md", "Prior weight", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
