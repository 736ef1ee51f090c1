"""Build outcome table v2 from the collected samples, nothing generated.

    python benchmarks/build_table_v2.py                       # -> uniscale_integrations/tables/v2.jsonl.gz
    python benchmarks/build_table_v2.py --out /tmp/v2.jsonl.gz --min-best 0.1 --candidate-zero sampled --cap 384
    python benchmarks/build_table_v2.py --work benchmarks/results/samples_v2 \
        --work benchmarks/results/samples_v2_sorting --out /tmp/v2_62.jsonl.gz   # before session 9's tuning questions

The space is S and M x QP {1, 2} x CP {1, 2, 4, 8} x BS 1, with early stopping off (every row
runs to its end) and on (the executor's unpaused rule replayed: see
:mod:`uniscale_integrations.bench.derived_table`; it also stops once the leader settles with
probability ``--settle``, 0.9, chosen on the tuning split by ``benchmarks/early_stopping_v2.py``).
Tiers are chosen from the configurations' accuracies alone, before any policy is replayed: a tier
stays when some configuration is right on more than ``--min-best`` of its questions (default 0: on
any); a tier no configuration ever gets right teaches nothing but "spend least", which the others
teach too. Candidate 0 of a CP group is the greedy path on M and a sample on S: what the first 62 tuning
questions preferred (session 5), kept so that the test split's outcomes stay those of table v2 as issue 15
measured them (on session 9's 122 tuning questions M's sampled candidate 0 scores 0.289 against 0.280 greedy,
within noise; ``--candidate-zero tuned`` chooses again). The work directories are the two collections of
sessions 5-7 and session 9's 60 further tuning questions (``samples_tune4``: stream seed 4, the ten kept
tiers, ``collect_samples.py --split tune``), which leave the test split as it was. A row that falls into a
loop ends there, as ``SamplingParams(stop_on_loop=True)`` ends it (``--no-loop-stop`` to let it run to the cap). Rows
that reached the collection's 384-token cap are continued to ``--cap`` (default 768,
:mod:`uniscale_integrations.bench.extend`), so the table is what a 768-token cap decodes.
"""

from __future__ import annotations

import argparse
import logging
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from _table_v2 import CANDIDATE_ZERO, WORKS

from uniscale_integrations.bench.derive import pass_at, rows_of, vote
from uniscale_integrations.bench.derived_table import derivation, derived_table, tuned_candidate_zero
from uniscale_integrations.bench.sample_set import load_sample_set
from uniscale_integrations.executor.styles import REASON_THEN_ANSWER
from uniscale_integrations.features.space import ConfigSpace
from uniscale_integrations.outcomes import default_table_path, save_table
from uniscale_integrations.reward.cost import NominalBudget

DEFAULT_OUT = default_table_path("v2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--work", type=Path, action="append", help="a work directory (repeatable; default: table v2's three)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--min-best", type=float, default=0.0)
    parser.add_argument(
        "--candidate-zero",
        type=_candidate_zero,
        default=CANDIDATE_ZERO,
        help="candidate 0 of a CP group: per model as given (default M=greedy,S=sampled: table v2's), greedy or "
        "sampled on every model, or per model as the tuning split prefers (tuned)",
    )
    parser.add_argument("--no-loop-stop", action="store_true", help="let rows that loop run to the cap")
    parser.add_argument("--cap", type=int, default=768, help="the token cap capped rows were continued to")
    parser.add_argument(
        "--settle", type=float, default=0.9, help="early stopping's settle bar (0 for the exact rule alone)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settle = args.settle or None
    samples = load_sample_set(args.work or WORKS, cap=args.cap, loop_stop=not args.no_loop_stop)
    plan, questions, records = samples.plan, samples.questions, samples.records
    configs = list(ConfigSpace.grid(plan.models, (1, 2), (1, 2, 4, 8), (1,)))
    if args.candidate_zero == "tuned":
        greedy_first = tuned_candidate_zero([r for r in records if r["split"] == "tune"], configs)
    elif isinstance(args.candidate_zero, dict):
        missing = set(plan.models) - set(args.candidate_zero)
        if missing:
            parser.error(f"--candidate-zero names no choice for {sorted(missing)}")
        greedy_first = args.candidate_zero
    else:
        greedy_first = dict.fromkeys(plan.models, args.candidate_zero == "greedy")
    best = _best_accuracy(records, configs, greedy_first)
    tiers = sorted(t for t, accuracy in best.items() if accuracy > args.min_best)
    for tier, accuracy in sorted(best.items()):
        logging.info("%-16s best config accuracy %.3f -> %s", tier, accuracy, "kept" if tier in tiers else "left out")
    records = [r for r in records if r["tier"] in tiers]
    # Costs are shares of the dearest configuration run to the cap on the longest prompt, so no
    # outcome clips at 1; the live engine prices with the same budget (bench.live).
    budget = NominalBudget(prompt_tokens=max(n for r in records for n in r["prompt_tokens"]), new_tokens=samples.cap)
    engine = plan.engine(
        configs,
        greedy_first=greedy_first,
        stop_on_loop=samples.loop_stop,
        max_new_tokens=samples.cap,
        nominal_budget=budget,
        settle=settle,
    )
    texts = {r["question"]: r["text"] for r in records}
    contexts = {q: engine.features(text).context.tolist() for q, text in texts.items()}
    probe = engine.features("What is 1 + 1?")
    shapes = dict(engine.specs)
    meta, rows, outcomes = derived_table(
        records,
        questions,
        configs,
        shapes=shapes,
        cost_model=engine.cost_model,
        pricing=engine.pricing,
        contexts=contexts,
        action_features=probe.actions.tolist(),
        greedy_first=greedy_first,
        settle=settle,
        settings={
            "plan": plan.as_dict(),
            "plans": [p.as_dict() for p in samples.plans],
            "instruction": REASON_THEN_ANSWER,
            "tiers": tiers,
            "tier_rule": f"kept when some configuration is right on more than {args.min_best:.0%} of the tier",
            "greedy_first": greedy_first,
            "loop_stop": samples.loop_stop,
            "cap": samples.cap,
            "extended_rows": samples.extended,
            "nominal_budget": {"prompt_tokens": budget.prompt_tokens, "new_tokens": budget.new_tokens},
            "derived": "every outcome is derived from the greedy path and 8 seeded samples per variant and "
            "model (none was run config by config); early stopping on is the executor's unpaused rule replayed "
            "on the rows' lengths (every 8 tokens: stop once the vote is decided"
            + (f", or once its leader holds with probability {settle:g}" if settle else "")
            + "); seconds are the session's, shared out by processed tokens; rows that reached the "
            f"collection's 384-token cap were continued to {samples.cap} tokens ({samples.extended} rows); "
            "BS = 2 is not in the table (benchmarks/beam_study.py runs it beside)",
            "seed": "every question samples with seed crc32(question id)",
        },
    )
    settings = dict(meta.settings)
    settings["pass_at_k"] = _pass_at_k([r for r in records if r["split"] == "test"], configs, greedy_first)
    meta = replace(meta, settings=settings)
    save_table(args.out, meta, rows, outcomes)
    logging.info("wrote %s: %d questions in %d tiers", args.out, len(rows), len(tiers))


def _candidate_zero(text: str) -> str | dict[str, bool]:
    """``tuned``, ``greedy``, ``sampled``, or per model ``M=greedy,S=sampled`` (model -> greedy first)."""
    if text in ("tuned", "greedy", "sampled"):
        return text
    choices = {}
    for item in text.split(","):
        model, _, choice = item.partition("=")
        if choice not in ("greedy", "sampled") or not model:
            raise argparse.ArgumentTypeError(
                f"expected tuned, greedy, sampled or MODEL=greedy|sampled,..., got {text!r}"
            )
        choices[model] = choice == "greedy"
    return choices


def _pass_at_k(records: list[dict], configs: list, greedy_first: dict[str, bool]) -> dict[str, dict[str, float]]:
    """Per tier (and over all), the share of questions on which some row of each configuration is right."""
    tiers = sorted({r["tier"] for r in records})
    out: dict[str, dict[str, float]] = {}
    for tier in [*tiers, "all"]:
        chosen = [r for r in records if tier in ("all", r["tier"])]
        out[tier] = {}
        for config in configs:
            held = [r for r in chosen if r["model"] == config.model]
            first = greedy_first[config.model]
            hits = [pass_at(rows_of(r, config.qp, config.cp, greedy_first=first)) for r in held]
            out[tier][str(config)] = round(sum(hits) / len(hits), 4) if hits else 0.0
    return out


def _best_accuracy(records: list[dict], configs: list, greedy_first: dict[str, bool]) -> dict[str, float]:
    """Per tier, the accuracy of its most accurate configuration (early stopping off)."""
    by_model = {(r["question"], r["model"]): r for r in records}
    tiers: dict[str, set[str]] = defaultdict(set)
    for r in records:
        tiers[r["tier"]].add(r["question"])
    best = {}
    for tier, ids in tiers.items():
        scores = []
        for config in configs:
            held = [by_model[(q, config.model)] for q in ids if (q, config.model) in by_model]
            first = greedy_first[config.model]
            right = [vote(derivation(r, config, False, greedy_first=first).rows).correct for r in held]
            scores.append(sum(right) / len(right) if right else 0.0)
        best[tier] = max(scores)
    return best


if __name__ == "__main__":
    main()
