"""What the samples behind table v2 show so far: accuracy per tier and configuration, pass@k, paths at the cap.

    python benchmarks/samples_report.py                  # every split, printed and written to RESULTS.md
    python benchmarks/samples_report.py --split tune     # the tuning split alone (choices are made there)

Every BS = 1 configuration is derived from the collected greedy path and 8 samples per variant
(:mod:`uniscale_integrations.bench.derive`); nothing is generated here.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from statistics import mean

from _results import write_section
from _table_v2 import WORKS

from uniscale_integrations.bench.derive import Vote, derived_usage, pass_at, rows_of, vote
from uniscale_integrations.bench.sample_set import SampleSet, load_sample_set
from uniscale_integrations.models import ModelRegistry
from uniscale_integrations.reward.cost import CostModel, Shaped

HERE = Path(__file__).resolve().parent
CONFIGS = [(qp, cp) for qp in (1, 2) for cp in (1, 2, 4, 8)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, action="append", help="a work directory (repeatable; default: table v2's)")
    parser.add_argument("--split", choices=("tune", "test", "all"), default="all")
    parser.add_argument("--cap", type=int, default=768, help="the cap capped rows were continued to")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    collected = load_sample_set(args.work or WORKS, split=args.split, loop_stop=False)
    looped = load_sample_set(args.work or WORKS, split=args.split)
    samples = load_sample_set(args.work or WORKS, split=args.split, cap=args.cap)
    records = samples.records
    registry = ModelRegistry.default()
    shapes = {m: registry[m] for m in samples.plan.models}
    tiers = sorted({r["tier"] for r in records})
    lines = [
        f"Command: `python benchmarks/samples_report.py --split {args.split} --cap {args.cap}`. "
        f"{len({r['question'] for r in records})} questions ({len(records)} question x model records); "
        "configurations derived from the greedy path and 8 seeded samples per variant (T 0.6, top-p 0.9, stop at "
        f"the answer line; collected with at most {collected.cap} new tokens, and the {samples.extended} rows that "
        f"reached that cap continued to {samples.cap}; a row that loops ends there, replayed from the texts). A path "
        "cut at the cap or at a loop without an answer line casts no vote. Correctness: reasoning-gym's "
        "`score_answer` of the stated answer (1.0), scored again from the stored texts.",
        "",
    ]
    lines += _cap_table({"384": collected, "384, loop stop": looped, f"{samples.cap}, loop stop": samples}, tiers)
    lines += ["", f"**Rows at the {samples.cap}-token cap per configuration and tier** (early stopping off)", ""]
    lines += _config_cap_table(records, tiers)
    for greedy_first in (False, True):
        lines += ["", f"**Accuracy, weighted vote{' (candidate 0 greedy)' if greedy_first else ''}**", ""]
        lines += _accuracy_table(records, tiers, greedy_first, shapes)
    lines += ["", "**Majority vote against weighted vote and pass@k, all tiers (candidates sampled)**", ""]
    lines += _vote_table(records)
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(HERE / "RESULTS.md", f"Samples for table v2 ({args.split})", text)


def _cap_table(sets: dict[str, SampleSet], tiers: list[str]) -> list[str]:
    names = [f"{model}, cap {name}" for model in ("S", "M") for name in sets]
    lines = [
        "**Greedy paths that reached the token cap** (sampled paths in brackets)",
        "",
        f"| tier | {' | '.join(names)} |",
        "|---|" + "---|" * len(names),
    ]
    for tier in tiers:
        cells = []
        for model in ("S", "M"):
            for samples in sets.values():
                paths = [p for r in samples.records if r["tier"] == tier and r["model"] == model for p in r["paths"]]
                greedy = [p["finish"] == "length" for p in paths if p["sample"] == -1]
                sampled = [p["finish"] == "length" for p in paths if p["sample"] >= 0]
                cells.append(f"{mean(greedy):.0%} ({mean(sampled):.0%})" if greedy else "-")
        lines.append(f"| {tier} | {' | '.join(cells)} |")
    return lines


def _config_cap_table(records: list[dict], tiers: list[str]) -> list[str]:
    names = [f"{m}/qp{qp}/cp{cp}" for m in ("S", "M") for qp, cp in CONFIGS]
    lines = [f"| tier | {' | '.join(names)} |", "|---|" + "---|" * len(names)]
    for tier in [*tiers, "all"]:
        cells = []
        for name in names:
            model, qp, cp = name.split("/")[0], int(name.split("/")[1][2:]), int(name.split("/")[2][2:])
            rows = [
                p["finish"] == "length"
                for r in records
                if tier in ("all", r["tier"]) and r["model"] == model
                for p in rows_of(r, qp, cp, greedy_first=True)
            ]
            cells.append(f"{mean(rows):.0%}" if rows else "-")
        lines.append(f"| {tier} | {' | '.join(cells)} |")
    return lines


def _accuracy_table(
    records: list[dict], tiers: list[str], greedy_first: bool, shapes: Mapping[str, Shaped]
) -> list[str]:
    names = [f"{m}/qp{qp}/cp{cp}" for m in ("S", "M") for qp, cp in CONFIGS]
    lines = [f"| tier | n | {' | '.join(names)} |", "|---|---|" + "---|" * len(names)]
    cost = CostModel()
    flops: dict[str, list[float]] = defaultdict(list)
    totals: dict[str, list[bool]] = defaultdict(list)
    for tier in [*tiers, "all"]:
        chosen = [r for r in records if tier in ("all", r["tier"])]
        cells = []
        count = len({r["question"] for r in chosen})
        for name in names:
            model, qp, cp = name.split("/")[0], int(name.split("/")[1][2:]), int(name.split("/")[2][2:])
            outcomes: list[Vote] = []
            for record in (r for r in chosen if r["model"] == model):
                rows = rows_of(record, qp, cp, greedy_first=greedy_first)
                outcomes.append(vote(rows))
                if tier == "all":
                    usage = derived_usage(record["prompt_tokens"], [(p["variant"], p["tokens"]) for p in rows])
                    flops[name].append(cost.eflops(shapes[model], usage))
            cells.append(f"{mean(o.correct for o in outcomes):.3f}" if outcomes else "-")
            if tier == "all":
                totals[name] = [o.correct for o in outcomes]
        lines.append(f"| {tier} | {count} | {' | '.join(cells)} |")
    lines.append(f"| mean eFLOPs | | {' | '.join(f'{mean(flops[n]):.2e}' if flops[n] else '-' for n in names)} |")
    return lines


def _vote_table(records: list[dict]) -> list[str]:
    lines = ["| config | weighted | majority | pass@k |", "|---|---|---|---|"]
    for model in ("S", "M"):
        for qp, cp in CONFIGS:
            if cp == 1:
                continue
            rows = [rows_of(r, qp, cp) for r in records if r["model"] == model]
            if not rows:
                continue
            weighted = mean(vote(p).correct for p in rows)
            majority = mean(vote(p, "majority").correct for p in rows)
            lines.append(
                f"| {model}/qp{qp}/cp{cp} | {weighted:.3f} | {majority:.3f} | {mean(map(pass_at, rows)):.3f} |"
            )
    return lines


if __name__ == "__main__":
    main()
