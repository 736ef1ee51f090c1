"""The collected samples, prepared the way table v2 reads them.

One place for the steps between the work files and the derived table, so the table, the samples
report and any study of the samples see the same paths:

1. the paths' correctness is scored again from their stored texts (today's checker);
2. with ``cap``, the rows that reached the collection's cap are replaced by their continuations
   to ``cap`` (:mod:`~uniscale_integrations.bench.extend`); every such row must have one;
3. with ``loop_stop``, a row that fell into a loop ends there, as ``stop_on_loop`` ends it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uniscale_integrations.bench.data import Question
from uniscale_integrations.bench.derive import rescored
from uniscale_integrations.bench.derived_table import with_loop_stops
from uniscale_integrations.bench.extend import capped_rows, read_extensions, with_extensions
from uniscale_integrations.bench.samples import SamplePlan, read_records
from uniscale_integrations.errors import UniScaleError


@dataclass(frozen=True)
class SampleSet:
    """Prepared records (one per question and model) and the questions they answer."""

    plans: tuple[SamplePlan, ...]
    """The plans of the work directories (one stream of questions each); they decode alike."""
    questions: Mapping[str, Question]
    records: list[dict[str, Any]]
    cap: int
    """The token cap every row ran under (the collection's, or the one it was raised to)."""
    extended: int
    """Rows continued past the collection's cap."""
    loop_stop: bool

    @property
    def plan(self) -> SamplePlan:
        """The first plan (models, sampling and variants are those of every plan)."""
        return self.plans[0]


def read_plan(work: Path) -> SamplePlan:
    """The plan a work directory was collected under."""
    return SamplePlan.from_dict(json.loads((work / "plan.json").read_text(encoding="utf-8"))["plan"])


def load_sample_set(
    works: Path | Sequence[Path],
    *,
    cap: int | None = None,
    loop_stop: bool = True,
    split: str = "all",
) -> SampleSet:
    """The samples of one or more work directories, prepared (see the module docstring).

    The directories' plans must decode alike (models, sampling, variants, samples, step
    delimiter); their questions are pooled. ``split`` keeps ``"tune"`` or ``"test"`` questions
    only. A cap whose continuations are missing for some capped row is refused (run
    ``collect_samples.py --extend CAP`` to finish them).
    """
    from uniscale_integrations.models import ModelRegistry, load_tokenizer

    works = [works] if isinstance(works, Path) else list(works)
    plans = tuple(read_plan(work) for work in works)
    decoding = {(p.models, tuple(sorted(p.sampling.items())), p.variants, p.samples, p.step_delimiter) for p in plans}
    if len(decoding) != 1:
        raise UniScaleError(f"the work directories {works} were collected with different decoding: {decoding}")
    plan = plans[0]
    questions = {q.id: q for p in plans for q, _ in p.stream()}
    records = [r for work in works for r in read_records(work) if split in ("all", r["split"])]
    registry = ModelRegistry.default()
    tokenizers = {m: load_tokenizer(registry[m]) for m in plan.models}
    collected_cap = max(s.max_new_tokens for s in plan.sampling.values())
    extended = 0
    if cap is not None and cap != collected_cap:
        if not loop_stop:
            raise UniScaleError("a raised cap needs the loop stop (rows looping before the old cap are not continued)")
        extensions = {k: v for work in works for k, v in read_extensions(work, cap).items()}
        missing = [
            (r["question"], r["model"], p["variant"], p["sample"])
            for r, p in capped_rows(records, tokenizers)
            if (r["question"], r["model"], p["variant"], p["sample"]) not in extensions
        ]
        if missing:
            raise UniScaleError(f"{len(missing)} capped rows have no continuation to {cap} tokens, e.g. {missing[0]}")
        records = with_extensions(records, extensions)
        extended = sum(bool(p.get("extended")) for r in records for p in r["paths"])
    records = rescored(records, questions)
    if loop_stop:
        records = with_loop_stops(records, tokenizers)
    return SampleSet(plans, questions, records, cap if cap is not None else collected_cap, extended, loop_stop)
