"""Early stopping on table v2's samples: eFLOPs saved and answers unchanged, per rule.

    python benchmarks/early_stopping_v2.py                 # tuning split chooses, test split reports

Every BS = 1 configuration with more than one path is replayed with early stopping off and on
(:func:`~uniscale_integrations.bench.derived_table.derivation`, which runs the executor's
unpaused rule: the vote checked every 8 tokens). The rules: ``exact`` (stop once the vote is
decided: the answer never moves) and ``settle C`` (also stop once the leader holds with
probability C, :func:`~uniscale_integrations.executor.search.leader_holds`). The tuning split picks the
C that saves most while leaving at least 98% of its answers unchanged; the test split reports it.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from _results import write_section
from _table_v2 import GREEDY_FIRST, WORKS

from uniscale_integrations.bench.derive import derived_usage, vote
from uniscale_integrations.bench.derived_table import derivation
from uniscale_integrations.bench.sample_set import load_sample_set
from uniscale_integrations.features.space import ConfigSpace
from uniscale_integrations.models import ModelRegistry
from uniscale_integrations.reward.cost import CostModel

HERE = Path(__file__).resolve().parent
RULES: dict[str, float | None] = {"exact": None, "settle 0.9": 0.9, "settle 0.95": 0.95, "settle 0.99": 0.99}
UNCHANGED_GOAL = 0.98


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cap", type=int, default=768)
    parser.add_argument("--work", type=Path, action="append", help="a work directory (repeatable; default: table v2's)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    samples = load_sample_set(args.work or WORKS, cap=args.cap)
    registry = ModelRegistry.default()
    shapes = {m: registry[m] for m in samples.plan.models}
    configs = [c for c in ConfigSpace.grid(samples.plan.models, (1, 2), (1, 2, 4, 8), (1,)) if c.paths > 1]
    cost = CostModel()
    greedy_first = GREEDY_FIRST  # candidate 0 as the table has it
    figures: dict[tuple[str, str], dict[str, tuple[float, float]]] = defaultdict(dict)
    for split in ("tune", "test"):
        records = [r for r in samples.records if r["split"] == split]
        for rule, settle in RULES.items():
            for config in configs:
                off_flops = on_flops = 0.0
                same = total = 0
                for record in (r for r in records if r["model"] == config.model):
                    first = greedy_first[config.model]
                    off = derivation(record, config, False, greedy_first=first)
                    on = derivation(record, config, True, greedy_first=first, settle=settle)
                    for derived, side in ((off, "off"), (on, "on")):
                        usage = derived_usage(
                            record["prompt_tokens"], [(p["variant"], p["tokens"]) for p in derived.rows]
                        )
                        flops = cost.eflops(shapes[config.model], usage)
                        if side == "off":
                            off_flops += flops
                        else:
                            on_flops += flops
                    voters = [p for p in on.rows if p["finish"] != "pruned"]
                    same += vote(voters).answer == vote(off.rows).answer
                    total += 1
                figures[(split, rule)][str(config)] = (1 - on_flops / off_flops, same / total)
    chosen = _choose(figures, configs)
    lines = [
        f"Command: `python benchmarks/early_stopping_v2.py`. Table v2's samples (cap {samples.cap}, loop stop, "
        f"candidate 0 as in the table: greedy on {', '.join(m for m, g in greedy_first.items() if g) or 'none'}), "
        "every multi-path BS = 1 configuration; eFLOPs saved by early stopping (on against "
        "off) and the share of questions whose answer is unchanged. The tuning split chose "
        f"**{chosen}** (the most saving with at least {UNCHANGED_GOAL:.0%} unchanged on every configuration).",
    ]
    for split in ("tune", "test"):
        lines += ["", f"**{split} split**", "", "| rule | " + " | ".join(str(c) for c in configs) + " |"]
        lines.append("|---|" + "---|" * len(configs))
        for rule in RULES:
            cells = [figures[(split, rule)][str(c)] for c in configs]
            lines.append(f"| {rule} | " + " | ".join(f"{s:.0%} / {u:.1%}" for s, u in cells) + " |")
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(HERE / "RESULTS.md", "Early stopping on table v2", text)


def _choose(figures: dict, configs: list) -> str:
    """The rule with the largest mean saving whose answers stay unchanged on every config (tuning split)."""
    fit = [rule for rule in RULES if all(figures[("tune", rule)][str(c)][1] >= UNCHANGED_GOAL for c in configs)]
    return max(fit, key=lambda rule: sum(figures[("tune", rule)][str(c)][0] for c in configs))


if __name__ == "__main__":
    main()
