"""What table v2 is made of, for the scripts that build or study it (one place for the list)."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
FIRST_WORKS = (RESULTS / "samples_v2", RESULTS / "samples_v2_sorting")
"""Sessions 5-7's collections: every test question and the first 62 tuning questions."""
WORKS = (*FIRST_WORKS, RESULTS / "samples_tune4", RESULTS / "samples_tune5")
"""All of table v2's samples, with sessions 9 and 10's 60 further tuning questions each (stream seeds 4 and 5,
``--split tune``)."""
GREEDY_FIRST = {"M": True, "S": False}
"""Candidate 0 of a CP group per model, greedy on M and sampled on S: what the first 62 tuning questions chose."""
CANDIDATE_ZERO = ",".join(f"{model}={'greedy' if greedy else 'sampled'}" for model, greedy in GREEDY_FIRST.items())
"""The same, as ``build_table_v2.py --candidate-zero`` takes it."""
