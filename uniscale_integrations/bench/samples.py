"""Collect the samples that outcome table v2 is derived from: greedy plus 8 seeded samples.

For every question and model, one batched decode session runs ``variants`` question variants
(QP) with ``1 + samples`` paths each: path 0 of a variant is greedy, paths 1.. sample, each
from its own seeded stream (:class:`~uniscale_integrations.backends.hf.session.DecodeSession` gives a
row a stream that depends only on the seed, its variant and its copy index). Nothing is
pruned and no path pauses at step ends; each step end is recorded as it passes
(``Row.step_marks``: tokens and cumulative log-probability), and every path stops at its
end-of-sequence token, its final-answer line or the token cap.

So every BS = 1 configuration is derived from the record rather than run again:

- ``qp1/cp1`` is variant 0's greedy path, ``qp2/cp1`` both variants' greedy paths;
- ``qp/cpk`` is the first ``k`` samples of each of the first ``qp`` variants (with
  ``greedy_first``: the greedy path and the first ``k - 1`` samples), exactly what a live run
  with the same seed samples, because a row's draws depend on nothing but its stream;
- early stopping "on" replays the recorded step ends and scores through the stopping rule;
- eFLOPs follow from the recorded token counts and prompt lengths by the decode session's own
  accounting.

Each (question, model) record is one JSON line, appended when its session ends: a collection
resumes where it stopped, and the work files (one per ``chunk`` questions, gzipped once full)
are small enough to commit as they grow.
"""

from __future__ import annotations

import gzip
import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from uniscale_integrations.bench.data import Question, assign_splits, mixed_stream, question_seed
from uniscale_integrations.errors import UniScaleError
from uniscale_integrations.features.space import Config
from uniscale_integrations.reward.cost import NominalBudget

if TYPE_CHECKING:
    from uniscale_integrations.engine import UniScale

logger = logging.getLogger(__name__)

V2_TIERS: tuple[str, ...] = (
    "chain_sum_easy",
    "chain_sum_hard",
    "arithmetic",
    "legs",
    "gsm",
    "equations",
    "weekday",
    "syllogism",
    "family",
    "durations",
)
"""Candidate tiers of table v2 (ten, over nine reasoning-gym families); the table keeps those
whose per-config accuracies spread (chosen before any policy is replayed)."""


@dataclass(frozen=True)
class ModelSampling:
    """How one rung samples its candidates."""

    max_new_tokens: int = 384
    temperature: float = 0.6
    top_p: float = 0.9


@dataclass(frozen=True)
class SamplePlan:
    """What to collect: questions, models, variants, samples per variant, and how."""

    models: tuple[str, ...] = ("S", "M")
    sampling: Mapping[str, ModelSampling] = field(default_factory=lambda: {"S": ModelSampling(), "M": ModelSampling()})
    tiers: tuple[str, ...] = V2_TIERS
    questions: int = 300
    """Questions in the stream, spread evenly over the tiers, in a seeded order."""
    variants: int = 2
    samples: int = 8
    seed: int = 2
    tune_share: float = 0.2
    step_delimiter: str = "\n\n"
    chunk: int = 25
    """Questions per work file."""

    def __post_init__(self) -> None:
        if set(self.sampling) != set(self.models):
            raise ValueError(f"sampling settings for {sorted(self.sampling)}, models {sorted(self.models)}")
        if self.questions < 1 or self.variants < 1 or self.samples < 1 or self.chunk < 1:
            raise ValueError("questions, variants, samples and chunk must be positive")

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["sampling"] = {m: asdict(s) for m, s in self.sampling.items()}
        return json.loads(json.dumps(values))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SamplePlan:
        """The plan :meth:`as_dict` wrote (a table's ``settings["plan"]``)."""
        try:
            sampling = {m: ModelSampling(**s) for m, s in values["sampling"].items()}
            kwargs: dict[str, Any] = {
                k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k != "sampling"
            }
            return cls(sampling=sampling, **kwargs)
        except (KeyError, TypeError, AttributeError) as exc:
            raise UniScaleError(f"not a sample plan: {exc}") from exc

    def stream(self) -> list[tuple[Question, str]]:
        questions = mixed_stream(self.questions, seed=self.seed, tiers=self.tiers)
        splits = assign_splits(questions, self.tune_share, seed=self.seed)
        return [(q, splits[q.id]) for q in questions]

    def engine(
        self,
        configs: Sequence[Config],
        *,
        early_stopping: bool = True,
        greedy_first: bool | Mapping[str, bool] = True,
        stop_on_loop: bool = True,
        max_new_tokens: int | None = None,
        nominal_budget: NominalBudget | None = None,
        settle: float | None = None,
        **kwargs: Any,
    ) -> UniScale:
        """The engine whose live runs decode the rows a table derived from this plan replays.

        Same prompts (the ``"reasoned"`` style: :data:`~uniscale_integrations.executor.styles.REASON_THEN_ANSWER`,
        stop at the answer line, votes on stated answers), sampling,
        token cap and stops; with the question's :func:`question_seed` a live CP = k run samples
        the record's greedy path and first ``k - 1`` samples (or its first ``k`` samples without
        ``greedy_first``). Early stopping is the vote-decided rule checked without pauses, as
        :mod:`~uniscale_integrations.bench.derived_table` replays it. ``max_new_tokens`` is the
        cap the table was raised to (:mod:`~uniscale_integrations.bench.extend`), if it was;
        ``settle`` the early-stopping rule's (:class:`~uniscale_integrations.executor.search.EarlyStopping`).
        ``configs`` must form a grid over these models; ``kwargs`` go to
        :meth:`UniScale.from_defaults` (mode, alpha, ...).
        """
        from uniscale_integrations.engine import UniScale
        from uniscale_integrations.executor.stopping import EarlyStopping

        settings = {self.sampling[m] for m in self.models}
        if len(settings) != 1:
            raise UniScaleError(f"the executor samples every model alike; this plan does not: {self.sampling}")
        (sampling,) = settings
        cap = max_new_tokens if max_new_tokens is not None else sampling.max_new_tokens
        engine = UniScale.from_defaults(
            models=self.models,
            qp=sorted({c.qp for c in configs}),
            cp=sorted({c.cp for c in configs}),
            bs=sorted({c.bs for c in configs}),
            style="reasoned",
            max_new_tokens=cap,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            greedy_first=greedy_first,
            stop_on_loop=stop_on_loop,
            early_stopping=EarlyStopping(enabled=early_stopping, v_sup=1.0, pause_at_steps=False, settle=settle),
            nominal_budget=nominal_budget or NominalBudget(new_tokens=cap),
            **kwargs,
        )
        if [str(c) for c in engine.space] != [str(c) for c in configs]:
            raise UniScaleError(f"the configurations {[str(c) for c in configs]} are not a grid over {self.models}")
        return engine


def work_files(work: Path) -> list[Path]:
    """The work directory's files in chunk order (full chunks gzipped, the open one plain)."""
    return sorted(work.glob("chunk-*.jsonl*"))


def read_records(work: Path) -> Iterator[dict[str, Any]]:
    """Every record of a work directory; a torn last line (a killed run) is skipped."""
    for path in work_files(work):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    logger.warning("%s:%d: ignoring a torn line", path, number)


def collect_samples(
    plan: SamplePlan, work: Path, *, limit: int | None = None, split: str | None = None, progress: bool = True
) -> Path:
    """Run every missing (question, model) of ``plan`` into ``work``; resumable.

    ``limit`` stops after that many new records (for a bounded chunk of work); ``split`` runs
    only the questions of that split (``"tune"`` or ``"test"``).
    """
    from tqdm.auto import tqdm

    from uniscale_integrations.backends.base import SamplingParams
    from uniscale_integrations.backends.hf.generator import HFGenerator
    from uniscale_integrations.backends.hf.session import DecodeSession
    from uniscale_integrations.executor.prompts import question_variants
    from uniscale_integrations.executor.styles import STYLES
    from uniscale_integrations.models import ModelRegistry, load_model

    reasoned = STYLES["reasoned"]
    work.mkdir(parents=True, exist_ok=True)
    header = work / "plan.json"
    if header.exists():
        stored = json.loads(header.read_text())
        if stored["plan"] != plan.as_dict():
            raise UniScaleError(f"{work} holds another plan ({stored['plan']}); use a new work directory")
    else:
        header.write_text(json.dumps({"plan": plan.as_dict(), "instruction": reasoned.instruction}, indent=1) + "\n")
    done = {(r["question"], r["model"]) for r in read_records(work)}
    stream = plan.stream()
    for plain in work.glob("chunk-*.jsonl"):  # a chunk finished by a run that stopped before packing it
        chunk = int(plain.stem.removeprefix("chunk-"))
        members = stream[chunk * plan.chunk : (chunk + 1) * plan.chunk]
        if all((q.id, m) in done for q, _ in members for m in plan.models):
            _pack(plain)
    todo = [
        (i, q, s, m)
        for i, (q, s) in enumerate(stream)
        for m in plan.models
        if (q.id, m) not in done and split in (None, s)
    ]
    if limit is not None:
        todo = todo[:limit]
    logger.info("collect_samples: %d records done, %d to go -> %s", len(done), len(todo), work)
    registry = ModelRegistry.default()
    generators: dict[str, HFGenerator] = {}
    bar = tqdm(todo, desc="samples", unit="record", disable=not progress)
    for index, question, split, model in bar:
        bar.set_postfix_str(f"{question.tier} {model}")
        if model not in generators:
            generators[model] = HFGenerator(load_model(registry[model]))
        generator = generators[model]
        sampling = plan.sampling[model]
        chats = question_variants([{"role": "user", "content": question.text}], plan.variants, reasoned.instruction)
        prompts = [generator.render(chat) for chat in chats]
        params = SamplingParams(
            max_new_tokens=sampling.max_new_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=question_seed(question.id),
            greedy_first=True,
            stop_at_answer=reasoned.stop_at_answer,
            step_delimiter=plan.step_delimiter,
        )
        started = time.perf_counter()
        session = DecodeSession(generator.loaded, prompts, 1 + plan.samples, params, mark_steps=True)
        session.advance()
        seconds = time.perf_counter() - started
        tokenizer = generator.tokenizer
        paths = []
        for row_index, row in enumerate(session.rows):
            text = row.text(tokenizer).strip()
            paths.append(
                {
                    "variant": row.prompt_index,
                    "sample": row_index % (1 + plan.samples) - 1,
                    "tokens": len(row.token_ids),
                    "finish": row.finish_reason,
                    "logprob": round(row.logprob_sum, 4),
                    "steps": [[t, round(lp, 4)] for t, lp in row.step_marks],
                    "text": text,
                    "correct": question.score(text),
                }
            )
        record = {
            "question": question.id,
            "index": index,
            "tier": question.tier,
            "split": split,
            "text": question.text,
            "answer": question.answer,
            "model": model,
            "prompt_tokens": [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts],
            "usage": asdict(session.usage),
            "seconds": round(seconds, 2),
            "paths": paths,
        }
        _append(work, index // plan.chunk, record, full=_chunk_complete(plan, stream, index, done, record))
    return work


def _chunk_complete(
    plan: SamplePlan, stream: Sequence[tuple[Question, str]], index: int, done: set[tuple[str, str]], record: Mapping
) -> bool:
    done.add((record["question"], record["model"]))
    chunk = index // plan.chunk
    members = stream[chunk * plan.chunk : (chunk + 1) * plan.chunk]
    return all((q.id, m) in done for q, _ in members for m in plan.models)


def _append(work: Path, chunk: int, record: Mapping[str, Any], *, full: bool) -> None:
    plain = work / f"chunk-{chunk:03d}.jsonl"
    torn = plain.exists() and plain.stat().st_size > 0 and not plain.read_bytes().endswith(b"\n")
    with plain.open("a", encoding="utf-8") as out:
        if torn:
            out.write("\n")
        out.write(json.dumps(record) + "\n")
    if full:
        _pack(plain)


def _pack(plain: Path) -> None:
    """Gzip a finished chunk once (about a quarter of the size); it is never written again."""
    with gzip.GzipFile(plain.with_name(plain.name + ".gz"), "wb", compresslevel=9, mtime=0) as packed:
        packed.write(plain.read_bytes())
    plain.unlink()
