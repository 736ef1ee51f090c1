"""Stand-ins for the real models, for tests and timing: a synthetic table and a fake engine.

:func:`synthetic_table`: questions fall into tiers; each tier has its own cluster in context
space and its own accuracy per configuration, so different configurations win on different
tiers. Costs grow with the model and the number of paths; early stopping off costs
``es_overhead`` times more and changes no answer.

:func:`fake_engines`: real :class:`~uniscale_integrations.engine.UniScale` engines whose
executor answers from a seeded hash instead of a model (:class:`FakeExecutor`) and whose
encoder hashes character trigrams (:class:`TrigramEmbedder`), so collection, replay and the
live loop can be exercised end to end in a second.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from uniscale_integrations.engine import UniScale
from uniscale_integrations.features.encoder import QueryEncoder
from uniscale_integrations.features.joint import FloatArray
from uniscale_integrations.features.space import Config, ConfigSpace
from uniscale_integrations.options import RunOptions
from uniscale_integrations.outcomes import OutcomeRow, OutcomeTable, QuestionRow, TableMeta, save_table
from uniscale_integrations.reward.cost import ModelShape, Usage

DEFAULT_ACCURACY: Mapping[str, Sequence[float]] = {
    # configs: S/qp1/cp1, S/qp1/cp4, M/qp1/cp1, M/qp1/cp4
    "easy": (0.55, 0.60, 0.95, 0.97),
    "medium": (0.10, 0.15, 0.50, 0.85),
    "hard": (0.02, 0.03, 0.05, 0.08),
}
DEFAULT_CONFIGS = ("S/qp1/cp1/bs1", "S/qp1/cp4/bs1", "M/qp1/cp1/bs1", "M/qp1/cp4/bs1")
DEFAULT_EFLOPS = (1.0e11, 3.0e11, 4.0e11, 1.2e12)


def synthetic_rows(
    per_tier: int = 20,
    *,
    seed: int = 0,
    accuracy: Mapping[str, Sequence[float]] = DEFAULT_ACCURACY,
    configs: Sequence[str] = DEFAULT_CONFIGS,
    eflops: Sequence[float] = DEFAULT_EFLOPS,
    context_dim: int = 13,
    tune_share: float = 0.25,
    es_overhead: float = 1.25,
) -> tuple[TableMeta, list[QuestionRow], list[OutcomeRow]]:
    """Meta, questions and outcomes of a synthetic table (early stopping on and off, complete)."""
    rng = np.random.default_rng(seed)
    parsed = [Config.parse(c) for c in configs]
    dearest = max(eflops)
    space = ConfigSpace(parsed).with_costs({c: e / dearest for c, e in zip(parsed, eflops, strict=True)})
    z = space.features()
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    centres = rng.normal(size=(len(accuracy), context_dim - 1))
    questions: list[QuestionRow] = []
    outcomes: list[OutcomeRow] = []
    for t, (tier, probabilities) in enumerate(accuracy.items()):
        if len(probabilities) != len(parsed):
            raise ValueError(f"tier {tier}: {len(probabilities)} accuracies for {len(parsed)} configs")
        n_tune = round(tune_share * per_tier)
        for i in range(per_tier):
            context = np.concatenate(([1.0], centres[t] + 0.3 * rng.normal(size=context_dim - 1)))
            context /= np.linalg.norm(context)
            question_id = f"{tier}-{i}"
            split = "tune" if i < n_tune else "test"
            questions.append(QuestionRow(question_id, tier, split, f"{tier} question {i}", "1", tuple(context)))
            for a, config in enumerate(parsed):
                correct = bool(rng.random() < probabilities[a])
                score = float(np.clip(0.5 + (0.3 if correct else -0.1) + 0.1 * rng.normal(), 0.0, 1.0))
                run = float(eflops[a] * rng.uniform(0.8, 1.2))
                for early_stopping, factor in ((True, 1.0), (False, es_overhead if config.paths > 1 else 1.0)):
                    outcomes.append(
                        OutcomeRow(
                            question=question_id,
                            config=str(config),
                            early_stopping=early_stopping,
                            answer="1" if correct else "0",
                            correct=correct,
                            score=score,
                            eflops=run * factor,
                            cost=min(1.0, run * factor / dearest),
                            prompt_tokens=50 * config.paths,
                            completion_tokens=int(60 * config.paths * factor),
                            seconds=run * factor / 1e11,
                            pruned=0,
                        )
                    )
    meta = TableMeta(
        configs=tuple(str(c) for c in parsed),
        action_features=tuple(tuple(float(v) for v in row) for row in z),
        early_stopping=(True, False),
        settings={"synthetic": True, "seed": seed, "per_tier": per_tier},
    )
    return meta, questions, outcomes


def synthetic_table(per_tier: int = 20, *, seed: int = 0, **kwargs: object) -> OutcomeTable:
    """A synthetic :class:`OutcomeTable` in memory."""
    meta, questions, outcomes = synthetic_rows(per_tier, seed=seed, **kwargs)  # type: ignore[arg-type]
    return OutcomeTable(meta, questions, outcomes)


def write_synthetic_table(path: Path, per_tier: int = 20, *, seed: int = 0) -> OutcomeTable:
    """Write a synthetic table to ``path`` (gzip JSON lines) and return it."""
    meta, questions, outcomes = synthetic_rows(per_tier, seed=seed)
    return save_table(path, meta, questions, outcomes)


# ---------------------------------------------------------------------- a fake engine
FAKE_SHAPES = {"S": ModelShape(134_515_008, 30, 192), "M": ModelShape(494_032_768, 24, 128)}
"""The shapes of the offline ladder's S and M rungs (what the cost model needs)."""


class TrigramEmbedder:
    """Unit vectors from hashed character trigrams: similar texts get similar vectors."""

    def __init__(self, dim: int = 32):
        self.dim = dim

    def embed(self, texts: Sequence[str]) -> FloatArray:
        out = np.zeros((len(texts), self.dim))
        for i, text in enumerate(texts):
            for j in range(max(1, len(text) - 2)):
                out[i, zlib.crc32(text[j : j + 3].encode()) % self.dim] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


class FakeExecutor:
    """Answers right with a probability per model that grows with the number of paths.

    Deterministic in (question, config, seed, early stopping): the same call gives the same
    answer, score and eFLOPs, as a real executor does with a fixed seed. ``calls`` records
    every ``(question, config, seed)``.
    """

    def __init__(
        self, answers: Mapping[str, str], skill: Mapping[str, float] | None = None, early_stopping: bool = True
    ):
        self.answers = dict(answers)
        self.skill = dict(skill) if skill is not None else {"S": 0.2, "M": 0.6}
        self.early_stopping = early_stopping
        self.calls: list[tuple[str, str, int | None]] = []

    def execute(
        self, messages: Sequence[Mapping[str, str]], config: Config, options: RunOptions, listeners: Any = ()
    ) -> Any:
        from uniscale_integrations.executor.search import Execution

        question = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        seed = options.seed
        self.calls.append((question, str(config), seed))
        draw = zlib.crc32(f"{question}/{config}/{seed}".encode()) / 2**32
        p = 1.0 - (1.0 - self.skill.get(config.model, 0.3)) ** (1.0 + 0.5 * np.log2(config.paths))
        right = self.answers.get(question, "0")
        answer = right if draw < p else f"{right}1"
        scale = 1.0 if self.early_stopping or config.paths == 1 else 1.2
        tokens = int(60 * config.paths * scale)
        params = FAKE_SHAPES.get(config.model, FAKE_SHAPES["M"]).params
        return Execution(
            config=config,
            answer=answer,
            text=f"Answer: {answer}",
            score=0.8 if answer == right else 0.4,
            eflops=2.0 * params * (tokens + 50 * config.paths),
            usage=Usage(prompt_tokens=50 * config.paths, completion_tokens=tokens),
            seconds=0.001,
        )


def fake_engines(
    answers: Mapping[str, str],
    *,
    space: ConfigSpace | None = None,
    skill: Mapping[str, float] | None = None,
    **engine_kwargs: Any,
) -> dict[bool, UniScale]:
    """Engines with early stopping on (``True``) and off, over ``space`` (default S, M x CP 1, 4)."""
    space = space if space is not None else ConfigSpace.grid(("S", "M"), (1,), (1, 4))
    return {
        enabled: UniScale(
            space,
            FakeExecutor(answers, skill, early_stopping=enabled),
            FAKE_SHAPES,
            encoder=QueryEncoder(TrigramEmbedder(), dim=8),
            **engine_kwargs,
        )
        for enabled in (True, False)
    }
