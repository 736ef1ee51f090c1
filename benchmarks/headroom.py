"""How much of the per-tier headroom is real? Hindsight references against choices made in advance.

Run from the repository root::

    python benchmarks/headroom.py

The bench's references, "best fixed config" and "best config per tier", are chosen in hindsight on the
very test questions they are scored on. With 16 configurations and 24 questions per tier, the best of 16
noisy means is biased up: part of the headroom from the best fixed config to the best per tier is luck
that no policy choosing in advance can earn. This script measures it on table v2's test split, per mode:

- hindsight: both references chosen and scored on all 248 test questions (what the bench reports);
- chosen on the tuning split: each reference chosen on the 62 tuning questions, scored on the test split;
- split half (200 random halvings of the test split): chosen on one half, scored on the other (the same
  number of questions per tier as a 1,000-query stream's learner sees, 4-5 times each, at best).

Even the per-tier reference is told each question's tier, which no policy is. It replaces the
"Headroom" section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _results import write_section

from uniscale_integrations.outcomes import OutcomeTable, default_table_path, load_table
from uniscale_integrations.reward.weights import RewardWeights

ROOT = Path(__file__).resolve().parent
HALVINGS = 200


def references(chooser: OutcomeTable, rewards_choose: np.ndarray, scored: np.ndarray, tiers: np.ndarray) -> tuple:
    """(best fixed, best per tier) chosen on ``rewards_choose`` (tiers of ``chooser``), scored on ``scored``."""
    fixed = int(np.argmax(rewards_choose.mean(axis=0)))
    per_tier = {
        k: int(np.argmax(rewards_choose[chooser == k].mean(axis=0))) if (chooser == k).any() else fixed
        for k in np.unique(tiers)
    }
    return float(scored[:, fixed].mean()), float(np.mean([scored[i, per_tier[t]] for i, t in enumerate(tiers)]))


def main() -> None:
    table = load_table(default_table_path())
    tune, test = table.subset("tune"), table.subset("test")
    tune_tiers = np.asarray([test.tiers.index(t) for t in np.asarray(tune.tiers)[tune.tier_index]])
    rng = np.random.default_rng(0)
    lines = [
        f"Command: `python benchmarks/headroom.py` (table v2: {tune.n_questions} tuning and {test.n_questions} test "
        f"questions, {len(test.tiers)} tiers, {test.n_configs} configs; split half: {HALVINGS} random halvings).",
        "",
        "| mode | references | best fixed | best config per tier | headroom (per tier - fixed) |",
        "|---|---|---|---|---|",
    ]
    for mode in ("cost-sensitive", "quality-first"):
        weights = RewardWeights.preset(mode)
        r_tune, r_test = tune.rewards(weights), test.rewards(weights)
        rows = {
            "hindsight (the bench's)": references(test.tier_index, r_test, r_test, test.tier_index),
            "chosen on the tuning split": references(tune_tiers, r_tune, r_test, test.tier_index),
        }
        halves = []
        for _ in range(HALVINGS):
            order = rng.permutation(test.n_questions)
            a, b = order[: test.n_questions // 2], order[test.n_questions // 2 :]
            halves.append(references(test.tier_index[a], r_test[a], r_test[b], test.tier_index[b]))
        rows["split half (chosen on one half, scored on the other)"] = tuple(np.mean(halves, axis=0))
        lines += [f"| {mode} | {name} | {f:.3f} | {t:.3f} | {t - f:+.3f} |" for name, (f, t) in rows.items()]
    body = "\n".join(lines)
    print(body)
    write_section(ROOT / "RESULTS.md", "Headroom: hindsight against choices made in advance", body)


if __name__ == "__main__":
    main()
