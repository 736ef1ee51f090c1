"""Collect the samples behind outcome table v2 (resumable; commit the work directory as it grows).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/collect_samples.py                 # everything left
    python benchmarks/collect_samples.py --limit 20                              # a bounded chunk
    python benchmarks/collect_samples.py --extend 768                            # raise the cap after
    python benchmarks/collect_samples.py --work W --tiers sorting --questions 40 --seed 3   # another tier
    python benchmarks/collect_samples.py --work W --split tune --temperature 1.0 --top-p 0.95 \
        --max-new-tokens 768 --samples 4                                        # another sampling setting

``--extend CAP`` continues the rows that reached the cap to ``CAP`` new tokens
(:mod:`uniscale_integrations.bench.extend`), once the collection is complete.

Run it from its own ``git worktree`` at a fixed commit, so later edits do not change the code
that produced the samples; ``--work`` points at the work directory in the main checkout.
See :mod:`uniscale_integrations.bench.samples` for what is recorded and what is derived from it.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from uniscale_integrations.bench.extend import extend_capped
from uniscale_integrations.bench.samples import V2_TIERS, ModelSampling, SamplePlan, collect_samples

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=HERE / "results" / "samples_v2")
    parser.add_argument("--questions", type=int, default=SamplePlan.questions)
    parser.add_argument("--tiers", help="comma-separated tiers (default: table v2's ten)")
    parser.add_argument("--seed", type=int, default=SamplePlan.seed, help="seed of the question stream")
    parser.add_argument("--limit", type=int, default=None, help="stop after this many (question, model) records")
    parser.add_argument("--extend", type=int, default=None, metavar="CAP", help="continue capped rows to CAP tokens")
    study = parser.add_argument_group("another sampling setting (a study on one split)")
    study.add_argument("--split", choices=("tune", "test"), help="collect the questions of this split only")
    study.add_argument("--temperature", type=float, default=ModelSampling.temperature)
    study.add_argument("--top-p", type=float, default=ModelSampling.top_p)
    study.add_argument("--max-new-tokens", type=int, default=ModelSampling.max_new_tokens)
    study.add_argument("--samples", type=int, default=SamplePlan.samples, help="samples per variant after the greedy")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    tiers = tuple(args.tiers.split(",")) if args.tiers else V2_TIERS
    sampling = ModelSampling(args.max_new_tokens, args.temperature, args.top_p)
    plan = SamplePlan(
        questions=args.questions,
        tiers=tiers,
        seed=args.seed,
        samples=args.samples,
        sampling=dict.fromkeys(SamplePlan.models, sampling),
    )
    if args.extend is not None:
        extend_capped(plan, args.work, args.extend)
    else:
        collect_samples(plan, args.work, limit=args.limit, split=args.split)


if __name__ == "__main__":
    main()
