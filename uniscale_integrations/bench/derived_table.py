"""Outcome table v2: every configuration's outcome derived from the collected samples.

:mod:`~uniscale_integrations.bench.samples` holds, per (question, model), the greedy path and 8
seeded samples of each question variant; :mod:`~uniscale_integrations.bench.derive` turns them
into the rows, the vote and the usage of any BS = 1 configuration. This module writes them as an
:class:`~uniscale_integrations.outcomes.OutcomeTable`, for early stopping off and on:

- **off**: every row of the configuration runs to its end (end of sequence, answer line or cap);
- **on**: the vote-decided rule of :func:`~uniscale_integrations.executor.search.vote_decided`,
  replayed exactly as the executor runs it without pauses at step ends (it checks every
  :data:`~uniscale_integrations.executor.search.CHECK_TOKENS` tokens). The rows decode in lockstep,
  so after ``t`` steps the finished rows are those of at most ``t`` tokens; the session stops at
  the first check ``t`` where the open rows, each worth at most ``v_sup`` (a confidence is at
  most 1), could not overtake the leader; the open rows are cut at ``t`` tokens and the answer
  cannot differ from the "off" answer. With ``settle``, the session also stops once the leader
  holds with that probability (:func:`~uniscale_integrations.executor.search.leader_holds`); then the
  answer can differ, and the table says how often it did.

Seconds are the record's measured seconds shared out by the share of the session's processed
tokens the configuration's rows account for (derived, not timed).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from uniscale_integrations.backends.hf.stops import ends_in_loop
from uniscale_integrations.bench.data import Question
from uniscale_integrations.bench.derive import Path, Record, derived_usage, rows_of, tally, vote
from uniscale_integrations.executor.stopping import CHECK_TOKENS, leader_holds
from uniscale_integrations.features.space import Config
from uniscale_integrations.outcomes import OutcomeRow, QuestionRow, TableMeta
from uniscale_integrations.reward.cost import CostModel, Shaped, SpacePricing

logger = logging.getLogger(__name__)

V_SUP = 1.0
"""The most a path still open can add to a vote: its confidence, a probability."""


@dataclass(frozen=True)
class Derivation:
    """What a configuration decodes on one question, with early stopping off or on."""

    rows: list[Path]
    """The rows, each with the tokens it ran (cut short where early stopping stopped it)."""
    pruned: int


def decided_step(
    rows: Sequence[Path], v_sup: float = V_SUP, every: int = CHECK_TOKENS, settle: float | None = None
) -> int | None:
    """The first check, every ``every`` lockstep steps, after which the weighted vote of the
    finished rows cannot change, or (with ``settle``) its leader holds with at least that
    probability (:func:`~uniscale_integrations.executor.search.leader_holds`), as
    :class:`~uniscale_integrations.executor.search.Executor` checks it with
    ``EarlyStopping(pause_at_steps=False, settle=settle)``."""
    longest = max(p["tokens"] for p in rows)
    for step in range(every, longest, every):
        finished = [p for p in rows if p["tokens"] <= step]
        votes = tally(finished)
        if not votes:
            continue
        leader, *others = sorted(votes.values(), reverse=True)
        open_rows = sum(p["tokens"] > step for p in rows)
        if leader > (others[0] if others else 0.0) + open_rows * v_sup:
            return step
        if settle is not None:
            counts = sorted(tally(finished, "majority").values(), reverse=True)
            if leader_holds(int(counts[0]), int(sum(counts[1:])), open_rows) >= settle:
                return step
    return None


def tuned_candidate_zero(tune: Sequence[Record], configs: Sequence[Config]) -> dict[str, bool]:
    """Per model, whether greedy-first candidates are at least as accurate as all-sampled ones, in the
    mean over the model's multi-candidate configs on the tuning split (early stopping off)."""
    choice = {}
    for model in sorted({c.model for c in configs}):
        held = [r for r in tune if r["model"] == model]
        mean_accuracy = {}
        for first in (True, False):
            scores = [
                sum(vote(rows_of(r, c.qp, c.cp, greedy_first=first)).correct for r in held) / len(held)
                for c in configs
                if c.model == model and c.cp > 1
            ]
            mean_accuracy[first] = sum(scores) / len(scores)
        choice[model] = mean_accuracy[True] >= mean_accuracy[False]
        logger.info(
            "%s: candidate 0 greedy %.3f, sampled %.3f (tuning split) -> %s",
            model,
            mean_accuracy[True],
            mean_accuracy[False],
            "greedy" if choice[model] else "sampled",
        )
    return choice


def loop_stop(token_ids: Sequence[int], tokenizer: Any) -> int | None:
    """The token count at which ``SamplingParams(stop_on_loop=True)`` would have ended this row."""
    for end in range(1, len(token_ids) + 1):
        if ends_in_loop(token_ids[:end], tokenizer):
            return end
    return None


def with_loop_stops(records: Sequence[Record], tokenizers: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The records as a collection with ``stop_on_loop`` would have left them.

    A row that fell into a loop ends there (``"loop"``; it casts no vote unless it stated an answer
    first); nothing before the stop changes, since a row's draws depend on its stream alone. The
    stop is found on the stored text tokenised again (equal to the sampled ids but for a rare
    re-merge at the stripped ends); the log-probability at the stop is the last step mark's rate.
    """
    out = []
    for record in records:
        tokenizer = tokenizers[record["model"]]
        paths = []
        for path in record["paths"]:
            ids = tokenizer(path["text"], add_special_tokens=False)["input_ids"]
            end = loop_stop(ids[: path["tokens"]], tokenizer)
            if end is None or end >= path["tokens"]:
                paths.append(path)
                continue
            marks = [(t, lp) for t, lp in path.get("steps", []) if t <= end]
            rate = marks[-1][1] / marks[-1][0] if marks else path["logprob"] / path["tokens"]
            text = tokenizer.decode(ids[:end], skip_special_tokens=True).strip()
            paths.append({**path, "tokens": end, "finish": "loop", "logprob": rate * end, "text": text})
        out.append({**record, "paths": paths})
    return out


def derivation(
    record: Record, config: Config, early_stopping: bool, *, greedy_first: bool, settle: float | None = None
) -> Derivation:
    """The rows ``config`` decodes on ``record``'s question (see the module docstring)."""
    rows = rows_of(record, config.qp, config.cp, greedy_first=greedy_first)
    if not early_stopping or len(rows) == 1:
        return Derivation(rows, 0)
    step = decided_step(rows, settle=settle)
    if step is None:
        return Derivation(rows, 0)
    cut = [p if p["tokens"] <= step else {**p, "tokens": step, "finish": "pruned"} for p in rows]
    return Derivation(cut, sum(p["tokens"] > step for p in rows))


def outcome_row(
    record: Record,
    config: Config,
    early_stopping: bool,
    *,
    shape: Shaped,
    cost_model: CostModel,
    pricing: SpacePricing,
    greedy_first: bool | Mapping[str, bool],
    settle: float | None = None,
) -> OutcomeRow:
    """One (question, config, early stopping) outcome of the table."""
    first = greedy_first.get(config.model, False) if isinstance(greedy_first, Mapping) else greedy_first
    derived = derivation(record, config, early_stopping, greedy_first=first, settle=settle)
    voters = [p for p in derived.rows if p["finish"] != "pruned"]
    pooled = vote(voters)
    usage = derived_usage(record["prompt_tokens"], [(p["variant"], p["tokens"]) for p in derived.rows])
    eflops = cost_model.eflops(shape, usage)
    session_tokens = max(1, int(record["usage"]["tokens_processed"]))
    return OutcomeRow(
        question=record["question"],
        config=str(config),
        early_stopping=early_stopping,
        answer=pooled.answer or "",
        correct=pooled.correct,
        score=min(1.0, max(0.0, pooled.score)),
        eflops=eflops,
        cost=pricing.normalise(eflops),
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        seconds=round(float(record["seconds"]) * min(1.0, usage.tokens_processed / session_tokens), 3),
        pruned=derived.pruned,
    )


def derived_table(
    records: Sequence[Record],
    questions: Mapping[str, Question],
    configs: Sequence[Config],
    *,
    shapes: Mapping[str, Shaped],
    cost_model: CostModel,
    pricing: SpacePricing,
    contexts: Mapping[str, Sequence[float]],
    action_features: Sequence[Sequence[float]],
    greedy_first: bool | Mapping[str, bool],
    settings: Mapping[str, Any],
    settle: float | None = None,
) -> tuple[TableMeta, list[QuestionRow], list[OutcomeRow]]:
    """The table's meta, questions and outcomes from ``records`` (one per question and model).

    A question enters the table only when every model of ``configs`` has a record for it.
    """
    by_question: dict[str, dict[str, Record]] = {}
    for record in records:
        by_question.setdefault(record["question"], {})[record["model"]] = record
    models = {c.model for c in configs}
    kept: list[QuestionRow] = []
    outcomes: list[OutcomeRow] = []
    for question_id, per_model in by_question.items():
        if not models <= set(per_model):
            logger.info("leaving out %s: no record for %s", question_id, sorted(models - set(per_model)))
            continue
        first = per_model[next(iter(models))]
        question = questions[question_id]
        kept.append(
            QuestionRow(
                question_id, question.tier, first["split"], question.text, question.answer, tuple(contexts[question_id])
            )
        )
        for early_stopping in (True, False):
            for config in configs:
                outcomes.append(
                    outcome_row(
                        per_model[config.model],
                        config,
                        early_stopping,
                        shape=shapes[config.model],
                        cost_model=cost_model,
                        pricing=pricing,
                        greedy_first=greedy_first,
                        settle=settle,
                    )
                )
    meta = TableMeta(
        configs=tuple(str(c) for c in configs),
        action_features=tuple(tuple(float(v) for v in row) for row in action_features),
        early_stopping=(True, False),
        settings={**settings, "questions": len(kept), "settle": settle},
    )
    return meta, kept, outcomes
