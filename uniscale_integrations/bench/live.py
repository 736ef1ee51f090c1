"""The real closed loop on a short stream, compared with the replay of the same questions.

:func:`live` builds the engine the table was collected with (same space, prompts, sampling,
token cap, stops and early stopping: :func:`table_engine`), runs it unforced on the first
``n`` test questions of the table (the engine chooses, generates with the question's
collection seed, and learns from the checked answer), then replays UniScale over the same
questions in the same order from the table. Where the live run chose the same config as the
replay, its outcome should equal the table's (same seed, same decoding); differences come
from floating-point non-determinism (e.g. another thread count) or a changed executor, and
can make the two loops diverge afterwards.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from uniscale_integrations.bench.collect import CollectPlan, build_engines
from uniscale_integrations.bench.data import Question, question_seed
from uniscale_integrations.bench.replay import UNISCALE, UNTUNED, BanditSettings, PolicySpec, fresh_like, run_policy
from uniscale_integrations.bench.samples import SamplePlan
from uniscale_integrations.engine import UniScale
from uniscale_integrations.outcomes import OutcomeTable, OutcomeTableError
from uniscale_integrations.reward.cost import NominalBudget
from uniscale_integrations.reward.weights import Mode, RewardWeights

logger = logging.getLogger(__name__)


@dataclass
class LiveStep:
    question: str
    tier: str
    config: str
    replay_config: str
    correct: bool
    table_correct: bool
    """What the table holds for the config the live loop chose."""
    eflops: float
    table_eflops: float
    reward: float
    replay_reward: float
    seconds: float


@dataclass
class LiveResult:
    steps: list[LiveStep]
    mode: str
    alpha: float
    context_gap: float
    """Largest absolute difference between the live and the cached context vectors."""

    def summary(self) -> dict[str, Any]:
        n = len(self.steps)
        same = [s for s in self.steps if s.config == s.replay_config]
        return {
            "questions": n,
            "mode": self.mode,
            "alpha": self.alpha,
            "same_config": len(same) / n,
            "correct_agrees_with_table": float(np.mean([s.correct == s.table_correct for s in self.steps])),
            "eflops_relative_gap": float(np.mean([abs(s.eflops / s.table_eflops - 1.0) for s in self.steps])),
            "live_reward": float(np.mean([s.reward for s in self.steps])),
            "replay_reward": float(np.mean([s.replay_reward for s in self.steps])),
            "live_accuracy": float(np.mean([s.correct for s in self.steps])),
            "replay_accuracy": float(np.mean([s.table_correct for s in same])) if same else float("nan"),
            "context_gap": self.context_gap,
            "seconds": float(sum(s.seconds for s in self.steps)),
        }

    def markdown(self) -> str:
        s = self.summary()
        lines = [
            f"## Live closed loop vs replay ({s['questions']} test questions, {self.mode}, alpha {self.alpha:g})",
            "",
            f"Same config chosen: {100 * s['same_config']:.0f}% of steps; correctness equal to the table's for the "
            f"chosen config: {100 * s['correct_agrees_with_table']:.0f}%; mean |eFLOPs live / table - 1|: "
            f"{100 * s['eflops_relative_gap']:.2f}%; mean reward live {s['live_reward']:.3f} vs replay "
            f"{s['replay_reward']:.3f}; largest context gap {s['context_gap']:.2g}; "
            f"{s['seconds']:.0f} s of generation.",
            "",
            "| # | question | tier | live config | replay config | live correct | table correct | live eFLOPs "
            "| table eFLOPs |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for i, step in enumerate(self.steps, start=1):
            lines.append(
                f"| {i} | {step.question} | {step.tier} | {step.config} | {step.replay_config} | {step.correct} "
                f"| {step.table_correct} | {step.eflops:.3g} | {step.table_eflops:.3g} |"
            )
        return "\n".join(lines) + "\n"


def table_engine(table: OutcomeTable, *, mode: Mode = "cost-sensitive", bandit: BanditSettings = UNTUNED) -> UniScale:
    """The engine that decodes as the table's collection did (early stopping on), from its settings."""
    settings = table.meta.settings
    plan = settings.get("plan")
    if not isinstance(plan, Mapping):
        raise OutcomeTableError("the table does not record its collection plan; pass an engine")
    if "sampling" not in plan:  # table v1: every outcome was run by an engine
        return build_engines(CollectPlan.from_dict(plan), bandit=bandit, mode=mode)[True]
    budget = settings.get("nominal_budget")
    return SamplePlan.from_dict(plan).engine(
        table.configs,
        greedy_first=settings.get("greedy_first", True),
        stop_on_loop=bool(settings.get("loop_stop", True)),
        max_new_tokens=settings.get("cap"),
        settle=settings.get("settle"),
        nominal_budget=NominalBudget(**budget) if isinstance(budget, Mapping) else None,
        mode=mode,
        alpha=bandit.alpha,
        shrinkage=bandit.shrinkage,
    )


def live(
    table: OutcomeTable,
    n: int,
    *,
    mode: Mode = "cost-sensitive",
    bandit: BanditSettings = UNTUNED,
    engine: UniScale | None = None,
    progress: bool = True,
) -> LiveResult:
    """Run the engine for real on the first ``n`` test questions and replay the same stream with the engine's
    own LinUCB settings (``bandit`` builds the engine when none is given)."""
    from tqdm.auto import tqdm

    test = table.subset("test")
    n = min(n, test.n_questions)
    if n < 1:
        raise OutcomeTableError("live needs at least one test question")
    if engine is None:
        engine = table_engine(table, mode=mode, bandit=bandit)
    if [str(c) for c in engine.space] != [str(c) for c in table.configs]:
        raise OutcomeTableError(f"the engine's space {list(engine.space)} differs from the table's")
    weights: RewardWeights = engine.weights
    questions = np.arange(n, dtype=np.int64)
    steps: list[LiveStep] = []
    gap = 0.0
    live_arms: list[int] = []
    for q in tqdm(questions.tolist(), desc="live", unit="q", disable=not progress):
        row = test.questions[q]
        question = Question(row.id, row.tier, row.text, row.answer)
        gap = max(gap, float(np.abs(engine.features(row.text).context - test.contexts[q]).max()))
        started = time.perf_counter()
        result = engine.run(row.text, seed=question_seed(row.id))
        correct = question.is_correct(result.answer)
        reward = engine.feedback(result.decision_id, correct=correct)
        arm = test.configs.index(result.config)
        live_arms.append(arm)
        steps.append(
            LiveStep(
                question=row.id,
                tier=row.tier,
                config=str(result.config),
                replay_config="",
                correct=correct,
                table_correct=bool(test.array("correct")[q, arm]),
                eflops=result.eflops,
                table_eflops=float(test.array("eflops")[q, arm]),
                reward=reward,
                replay_reward=0.0,
                seconds=time.perf_counter() - started,
            )
        )
    trace = run_policy(test, PolicySpec(UNISCALE, fresh_like(engine.bandit)), weights, questions, seed=0)
    for step, arm, reward in zip(steps, trace.arms.tolist(), trace.reward.tolist(), strict=True):
        step.replay_config = str(test.configs[arm])
        step.replay_reward = float(reward)
    return LiveResult(steps=steps, mode=mode, alpha=engine.bandit.alpha, context_gap=gap)
