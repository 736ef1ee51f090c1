"""Collect the samples behind outcome table v2 (resumable; commit the work directory as it grows).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/collect_samples.py                 # everything left
    python benchmarks/collect_samples.py --limit 20                              # a bounded chunk

Run it from its own ``git worktree`` at a fixed commit, so later edits do not change the code
that produced the samples; ``--work`` points at the work directory in the main checkout.
See :mod:`uniscale_integrations.bench.samples` for what is recorded and what is derived from it.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from uniscale_integrations.bench.samples import SamplePlan, collect_samples

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=HERE / "results" / "samples_v2")
    parser.add_argument("--questions", type=int, default=SamplePlan.questions)
    parser.add_argument("--limit", type=int, default=None, help="stop after this many (question, model) records")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    collect_samples(SamplePlan(questions=args.questions), args.work, limit=args.limit)


if __name__ == "__main__":
    main()
