"""Feedback on responses: a user's rating or an evaluator's result, into ``engine.feedback``.

Each decision takes exactly one feedback: a second one raises the engine's
``DuplicateFeedbackError`` and leaves the policy unchanged. A query engine's response may
stand on several decisions (one per LLM call); the feedback goes to each of them, in order.
"""

from __future__ import annotations

import math

from llama_index.core.base.llms.types import ChatResponse, CompletionResponse
from llama_index.core.evaluation import EvaluationResult

from uniscale_integrations.engine import UniScale
from uniscale_integrations.llama_index.llm import UniScaleLLM
from uniscale_integrations.llama_index.recorder import DECISION_IDS_KEY, QueryResponse
from uniscale_integrations.llama_index.responses import DECISION_ID_KEY

Rated = ChatResponse | CompletionResponse | QueryResponse | str
"""An LLM response, a query engine response (with a :class:`~.DecisionRecorder` attached), or a decision id."""

UNIT_RANGE = (0.0, 1.0)
CORRECTNESS_SCORE_RANGE = (1.0, 5.0)
"""``CorrectnessEvaluator`` scores from 1 to 5."""
SIMILARITY_SCORE_RANGE = (-1.0, 1.0)
"""``SemanticSimilarityEvaluator`` scores are cosine similarities."""


def decision_ids(response: Rated) -> list[str]:
    """The decisions behind ``response``; a ``ValueError`` when it names none."""
    if isinstance(response, str):
        ids = [response]
    elif isinstance(response, ChatResponse | CompletionResponse):
        found = response.additional_kwargs.get(DECISION_ID_KEY)
        ids = [found] if found else []
    elif isinstance(response, QueryResponse):
        ids = list((response.metadata or {}).get(DECISION_IDS_KEY, []))
    else:
        raise TypeError(f"cannot find decisions in a {type(response).__name__}")
    if not ids:
        raise ValueError(
            f"this {type(response).__name__} names no UniScale decision: was it made by UniScaleLLM "
            "(for a query engine's response: with a DecisionRecorder attached)?"
        )
    return ids


def apply_feedback(
    engine: UniScale | UniScaleLLM,
    response: Rated,
    *,
    correct: bool | float | None = None,
    score: float | None = None,
) -> list[float]:
    """Give every decision behind ``response`` its feedback; the rewards, in order.

    ``correct`` (a bool or a value in [0, 1]) and ``score`` (a rating in [0, 1]) mean what they mean
    for :meth:`UniScale.feedback`.
    """
    target = engine.engine if isinstance(engine, UniScaleLLM) else engine
    return [target.feedback(d, correct=correct, score=score) for d in decision_ids(response)]


def apply_evaluation(
    engine: UniScale | UniScaleLLM,
    response: Rated,
    evaluation: EvaluationResult,
    *,
    score_range: tuple[float, float] = UNIT_RANGE,
) -> list[float]:
    """Feedback from an evaluator's result: ``passing`` as correctness, ``score`` rescaled from ``score_range``.

    Use :data:`CORRECTNESS_SCORE_RANGE` for ``CorrectnessEvaluator`` and :data:`SIMILARITY_SCORE_RANGE`
    for ``SemanticSimilarityEvaluator``. An invalid evaluation, or one with neither ``passing`` nor
    ``score``, raises a ``ValueError``.
    """
    if not isinstance(evaluation, EvaluationResult):
        raise TypeError(f"evaluation must be an EvaluationResult, got {type(evaluation).__name__}")
    if evaluation.invalid_result:
        raise ValueError(f"the evaluation is invalid: {evaluation.invalid_reason or 'no reason given'}")
    if evaluation.passing is None and evaluation.score is None:
        raise ValueError("the evaluation has neither `passing` nor `score`")
    score = None if evaluation.score is None else _rescale(evaluation.score, score_range)
    return apply_feedback(engine, response, correct=evaluation.passing, score=score)


def _rescale(score: float, score_range: tuple[float, float]) -> float:
    """``score`` mapped from ``score_range`` to [0, 1]; a score past an end by rounding alone (a cosine
    similarity of 1.0000000000000002) counts as that end."""
    low, high = score_range
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"score_range must be two finite numbers, low < high, got {score_range!r}")
    rounding = 1e-9 * (high - low)
    if not (math.isfinite(score) and low - rounding <= score <= high + rounding):
        raise ValueError(
            f"evaluation score {score!r} lies outside score_range {score_range!r} "
            "(CorrectnessEvaluator scores 1-5: pass score_range=CORRECTNESS_SCORE_RANGE)"
        )
    return min(1.0, max(0.0, (score - low) / (high - low)))
