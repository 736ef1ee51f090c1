"""How long the benchmark's replay takes: 1,000 queries x 10 policies x 5 seeds (goal: under 60 s).

The ten policies are those of ``uniscale bench``: UniScale, its TTS-only and routing-only
restrictions, Random, Greedy, kNN, the two reward ablations (w2 = 0, w3 = 0), one Fixed
config and the Oracle, each the real policy class of ``uniscale_integrations.policy``, over the
shipped outcome table's test split (cost-sensitive weights).

    python benchmarks/replay_speed.py [--table PATH] [--queries 1000] [--seeds 5]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from _results import write_section

from uniscale_integrations.bench.replay import UNTUNED, PolicySpec, _fixed, ablation_specs, replay, standard_specs
from uniscale_integrations.outcomes import default_table_path, load_table
from uniscale_integrations.reward.weights import RewardWeights

HERE = Path(__file__).resolve().parent
GOAL_SECONDS = 60.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", type=Path, default=None, help="outcome table (default: the shipped one)")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md", help="markdown file to update")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    table_path = args.table or default_table_path()
    test = load_table(table_path).subset("test")
    weights = RewardWeights.preset("cost-sensitive")
    tts_model = test.configs[-1].model
    specs = list(standard_specs(test, bandit=UNTUNED, tts_model=tts_model, fixed=False))
    specs[-1:-1] = [*ablation_specs(weights, bandit=UNTUNED), PolicySpec(f"Fixed {test.configs[0]}", _fixed(0))]
    assert len(specs) == 10, [s.name for s in specs]
    seeds = tuple(range(args.seeds))
    started = time.perf_counter()
    result = replay(test, specs, weights, seeds=seeds, length=args.queries)
    seconds = time.perf_counter() - started
    steps = len(specs) * len(seeds) * args.queries
    per_policy = sorted(
        ((name, sum(t.seconds for t in traces.values())) for name, traces in result.traces.items()),
        key=lambda kv: -kv[1],
    )
    rows = "\n".join(
        f"| {name} | {total:.2f} | {1e6 * total / (len(seeds) * args.queries):.0f} |" for name, total in per_policy
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    met = "met" if seconds < GOAL_SECONDS else "NOT met"
    command = f"python benchmarks/replay_speed.py --queries {args.queries} --seeds {args.seeds}"
    body = f"""Command: `{command}` (written by that script).

Environment: Python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs \
({platform.machine()}), OMP_NUM_THREADS={os.environ.get("OMP_NUM_THREADS", "unset")}, \
1-min load average {load:.1f} at the end of the run.
Table: `{table_path.name}`, test split of {test.n_questions} questions x {test.n_configs} configs \
(context {test.contexts.shape[1]}-d, config features {test.action_features.shape[1]}-d, \
joint d = {test.contexts.shape[1] * test.action_features.shape[1]}).

{len(specs)} policies x {len(seeds)} seeds x {args.queries} queries = {steps:,} select + update steps, \
plus the hindsight references: **{seconds:.1f} s** in all ({1e6 * seconds / steps:.0f} us per step). \
Goal: under {GOAL_SECONDS:.0f} s: {met}.

| policy | seconds (all seeds) | us per step |
|---|---|---|
{rows}
"""
    print(body)
    write_section(args.results, "Replay speed", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
