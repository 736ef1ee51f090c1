"""Collect an outcome table: every configuration of a space on every question, with real models.

The collection goes question by question in the stream's order (so an interrupted run leaves
whole questions behind, mixed over the tiers). Each question runs every configuration with
path-aware early stopping on (the engine's default); the first ``es_off_questions`` test
questions then run every configuration with more than one path again with early stopping
off (with one path early stopping cannot act and the decoding is identical, so those
outcomes are shared).

Each run is appended to a JSON-lines *work file* as soon as it finishes, so a collection
resumes where it stopped; :func:`build_table` turns the work file into the table
(:mod:`uniscale_integrations.outcomes`). Every run of a question uses the same seed,
``crc32(question id)``, which :mod:`uniscale_integrations.bench.live` reuses, so a live run
of the same question and configuration reproduces the collected outcome.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from uniscale_integrations.bench.data import Question, assign_splits, mixed_stream, question_seed
from uniscale_integrations.bench.replay import UNTUNED, BanditSettings
from uniscale_integrations.defaults import Defaults
from uniscale_integrations.engine import UniScale
from uniscale_integrations.errors import UniScaleError
from uniscale_integrations.executor.stopping import EarlyStopping
from uniscale_integrations.executor.styles import STYLES
from uniscale_integrations.features.space import Config
from uniscale_integrations.outcomes import OutcomeRow, QuestionRow, TableMeta, save_table
from uniscale_integrations.reward.weights import Mode

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CollectPlan:
    """What to collect: the space, the questions, and how answers are produced."""

    models: tuple[str, ...] = ("S", "M")
    qp: tuple[int, ...] = (1,)
    cp: tuple[int, ...] = (1, 4)
    bs: tuple[int, ...] = (1,)
    questions: int = 40
    """Questions in the stream, spread evenly over the tiers."""
    seed: int = 0
    tune_share: float = 0.25
    """Share of each tier's questions kept for tuning (never reported)."""
    style: str = "step-by-step"
    """The answer style whose instruction each question gets (``executor.styles.STYLES``)."""
    max_new_tokens: int = 128
    es_off_questions: int = 10
    """Test questions also collected with early stopping off (phase 2)."""
    h_max: int = 8
    v_sup: float | None = 1.0

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"style must be one of {tuple(STYLES)}, got {self.style!r}")
        if self.questions < 1 or self.max_new_tokens < 1 or self.es_off_questions < 0:
            raise ValueError("questions and max_new_tokens must be positive, es_off_questions >= 0")

    @property
    def instruction(self) -> str | None:
        return STYLES[self.style].instruction

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> CollectPlan:
        known = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in known}
        return cls(**kwargs)

    def stream(self) -> list[tuple[Question, str]]:
        """The questions in collection order, each with its split."""
        questions = mixed_stream(self.questions, seed=self.seed)
        splits = assign_splits(questions, self.tune_share, seed=self.seed)
        return [(q, splits[q.id]) for q in questions]


def build_engines(
    plan: CollectPlan, *, bandit: BanditSettings = UNTUNED, mode: Mode = "cost-sensitive"
) -> dict[bool, UniScale]:
    """Engines over the plan's space with early stopping on and off (they share the loaded models).

    Their paths decode in the plan's style (table v1: ``"step-by-step"``, votes on stated answers)
    with the plan's token cap.
    """

    def engine(enabled: bool) -> UniScale:
        stopping = EarlyStopping(enabled=enabled, h_max=plan.h_max, v_sup=plan.v_sup)
        stack = Defaults.of(plan, style=plan.style, early_stopping=stopping).build()
        return UniScale(**stack.engine_kwargs(mode), alpha=bandit.alpha, shrinkage=bandit.shrinkage, seed=plan.seed)

    return {True: engine(True), False: engine(False)}


@dataclass(frozen=True)
class _Task:
    question: Question
    split: str
    config: Config
    early_stopping: bool


def _tasks(plan: CollectPlan, configs: Sequence[Config]) -> Iterator[_Task]:
    """Question by question: every config with early stopping, then (first test questions) without."""
    stream = plan.stream()
    both_ways = {q.id for q, split in stream if split == "test"}
    both_ways = set([q.id for q, _ in stream if q.id in both_ways][: plan.es_off_questions])
    for question, split in stream:
        for config in configs:
            yield _Task(question, split, config, True)
        if question.id in both_ways:
            for config in configs:
                if config.paths > 1:
                    yield _Task(question, split, config, False)


def _read_work(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                # A run killed mid-write leaves a torn last line: drop it, the run is redone.
                logger.warning("%s:%d: ignoring a torn line", path, number)
    return records


def collect(
    plan: CollectPlan,
    work: Path,
    *,
    engines: Mapping[bool, UniScale] | None = None,
    progress: bool = True,
) -> Path:
    """Run every missing (question, config, early-stopping) of ``plan``, appending to ``work``.

    Resumable: runs already in ``work`` are skipped. ``engines`` (keyed by early stopping on/off)
    default to :func:`build_engines`; tests pass engines with a fake executor.
    """
    from tqdm.auto import tqdm

    records = _read_work(work)
    header = next((r for r in records if r.get("kind") == "plan"), None)
    if header is not None and CollectPlan.from_dict(header["plan"]) != plan:
        raise UniScaleError(
            f"{work} was collected with another plan ({header['plan']}); "
            "finish it with that plan or use a new work file"
        )
    done = {(r["question"], r["config"], r["early_stopping"]) for r in records if r.get("kind") == "outcome"}
    known_questions = {r["id"] for r in records if r.get("kind") == "question"}
    engines = engines if engines is not None else build_engines(plan)
    space = engines[True].space
    todo = [t for t in _tasks(plan, list(space)) if (t.question.id, str(t.config), t.early_stopping) not in done]
    logger.info("collect: %d runs done, %d to go -> %s", len(done), len(todo), work)
    work.parent.mkdir(parents=True, exist_ok=True)
    torn = work.exists() and work.stat().st_size > 0 and not work.read_bytes().endswith(b"\n")
    with work.open("a", encoding="utf-8") as out:
        if torn:
            out.write("\n")  # end the torn line, so the next record starts on its own
        if header is None:
            probe = engines[True].features("What is 1 + 1?")
            out.write(json.dumps({"kind": "plan", "plan": plan.as_dict(), "environment": _environment()}) + "\n")
            space_record = {
                "kind": "space",
                "configs": [str(c) for c in space],
                "action_features": probe.actions.tolist(),
            }
            out.write(json.dumps(space_record) + "\n")
            out.flush()
        bar = tqdm(todo, desc="collect", unit="run", disable=not progress)
        for task in bar:
            question = task.question
            bar.set_postfix_str(f"{question.tier} {task.config} es={'on' if task.early_stopping else 'off'}")
            if question.id not in known_questions:
                context = engines[True].features(question.text).context
                row = QuestionRow(
                    question.id, question.tier, task.split, question.text, question.answer, tuple(context)
                )
                out.write(json.dumps({"kind": "question", **asdict(row)}) + "\n")
                known_questions.add(question.id)
            result = engines[task.early_stopping].run(
                question.text, config=task.config, seed=question_seed(question.id)
            )
            outcome = OutcomeRow(
                question=question.id,
                config=str(task.config),
                early_stopping=task.early_stopping,
                answer=result.answer,
                correct=question.is_correct(result.answer),
                score=min(1.0, max(0.0, float(result.score))),
                eflops=float(result.eflops),
                cost=float(result.cost),
                prompt_tokens=result.usage.prompt_tokens,
                completion_tokens=result.usage.completion_tokens,
                seconds=round(float(result.seconds), 3),
                pruned=sum(p.status == "pruned" for p in result.paths),
            )
            out.write(json.dumps({"kind": "outcome", **asdict(outcome)}) + "\n")
            out.flush()
    return work


def build_table(work: Path, table: Path) -> Path:
    """Turn a work file into an outcome table, keeping only questions with complete outcomes."""
    from uniscale_integrations.outcomes import OutcomeTableError

    records = _read_work(work)
    header = next((r for r in records if r.get("kind") == "plan"), None)
    space = next((r for r in records if r.get("kind") == "space"), None)
    if header is None or space is None:
        raise OutcomeTableError(f"{work} is not a collection work file (no plan or space record)")
    configs = [Config.parse(c) for c in space["configs"]]
    questions = {r["id"]: r for r in records if r.get("kind") == "question"}
    rows: dict[tuple[str, str, bool], OutcomeRow] = {}
    for record in records:
        if record.get("kind") == "outcome":
            row = OutcomeRow(**{k: v for k, v in record.items() if k != "kind"})
            rows[(row.question, row.config, row.early_stopping)] = row
    kept: list[QuestionRow] = []
    outcomes: list[OutcomeRow] = []
    off_questions = 0
    for question_id, record in questions.items():
        on = [rows.get((question_id, str(c), True)) for c in configs]
        if any(r is None for r in on):
            logger.warning(
                "leaving out %s: %d of %d configs collected", question_id, sum(r is not None for r in on), len(on)
            )
            continue
        kept.append(
            QuestionRow(**{k: v for k, v in record.items() if k != "kind"} | {"context": tuple(record["context"])})
        )
        outcomes += [r for r in on if r is not None]
        off = [
            rows.get((question_id, str(c), False)) if c.paths > 1 else _shared(rows[(question_id, str(c), True)])
            for c in configs
        ]
        if all(r is not None for r in off):
            outcomes += [r for r in off if r is not None]
            off_questions += 1
    plan = header["plan"]
    seconds = sum(r.seconds for r in rows.values())
    meta = TableMeta(
        configs=tuple(str(c) for c in configs),
        action_features=tuple(tuple(float(v) for v in row) for row in space["action_features"]),
        early_stopping=(True, False) if off_questions else (True,),
        settings={
            "plan": plan,
            "environment": header.get("environment", {}),
            "questions": len(kept),
            "questions_without_early_stopping": off_questions,
            "generation_seconds": round(seconds, 1),
            "early_stopping_off_single_path": "shared with the early-stopping run: with one path early "
            "stopping cannot act and the decoding is the same",
            "seed": "every run of a question samples with seed crc32(question id)",
        },
    )
    save_table(table, meta, kept, outcomes)
    logger.info("wrote %s: %d questions (%d also without early stopping)", table, len(kept), off_questions)
    return table


def _shared(row: OutcomeRow) -> OutcomeRow:
    return OutcomeRow(**{**asdict(row), "early_stopping": False})


def _environment() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    try:
        import torch
        import transformers

        info.update(
            torch=torch.__version__,
            transformers=transformers.__version__,
            device="cuda" if torch.cuda.is_available() else "cpu",
            torch_threads=torch.get_num_threads(),
        )
    except ImportError:  # pragma: no cover - the hf extra is missing
        pass
    return info
