"""Feedback from users and evaluators reaches the policy exactly once per decision."""

import numpy as np
import pytest
from llama_index.core.base.llms.types import CompletionResponse
from llama_index.core.evaluation import EvaluationResult, SemanticSimilarityEvaluator

from uniscale_integrations import DuplicateFeedbackError, UniScale, UnknownDecisionError
from uniscale_integrations.llama_index import (
    CORRECTNESS_SCORE_RANGE,
    SIMILARITY_SCORE_RANGE,
    UniScaleEmbedding,
    UniScaleLLM,
    apply_evaluation,
    apply_feedback,
    decision_ids,
)


@pytest.fixture(scope="module")
def llm(engine: UniScale) -> UniScaleLLM:
    return UniScaleLLM(engine=engine)


def _state(engine: UniScale) -> dict[str, np.ndarray]:
    return {k: np.array(v, copy=True) for k, v in engine.bandit.state_dict().items()}


def _changed(engine: UniScale, before: dict[str, np.ndarray]) -> set[str]:
    after = engine.bandit.state_dict()
    return {k for k, v in before.items() if not np.array_equal(np.asarray(after[k]), v)}


def test_a_users_rating_updates_the_policy_exactly_once(llm: UniScaleLLM, engine: UniScale) -> None:
    response = llm.complete("What is 6 + 1?")
    before, updates = _state(engine), engine.bandit.n_updates

    (reward,) = apply_feedback(llm, response, correct=True, score=0.9)
    cost = response.additional_kwargs["cost"]
    assert reward == pytest.approx(engine.weights.reward(correct=1.0, score=0.9, cost=cost))
    assert engine.bandit.n_updates == updates + 1
    assert _changed(engine, before)  # the policy's matrices moved

    settled = _state(engine)
    with pytest.raises(DuplicateFeedbackError):
        apply_feedback(engine, response, correct=False)
    assert not _changed(engine, settled)


def test_an_evaluators_result_becomes_feedback(llm: UniScaleLLM, engine: UniScale) -> None:
    evaluator = SemanticSimilarityEvaluator(embed_model=UniScaleEmbedding())
    response = llm.complete("What is 2 + 3?")
    evaluation = evaluator.evaluate(response=response.text, reference="2 + 3 = 5")
    assert evaluation.passing is not None
    assert evaluation.score is not None
    updates = engine.bandit.n_updates

    (reward,) = apply_evaluation(engine, response, evaluation, score_range=SIMILARITY_SCORE_RANGE)
    expected = engine.weights.reward(
        correct=float(evaluation.passing),
        score=(evaluation.score + 1) / 2,
        cost=response.additional_kwargs["cost"],
    )
    assert reward == pytest.approx(expected)
    assert engine.bandit.n_updates == updates + 1
    with pytest.raises(DuplicateFeedbackError):
        apply_evaluation(engine, response, evaluation, score_range=SIMILARITY_SCORE_RANGE)


def test_correctness_scores_are_rescaled_and_bad_evaluations_refused(llm: UniScaleLLM, engine: UniScale) -> None:
    response = llm.complete("What is 3 + 3?")
    state = _state(engine)
    graded = EvaluationResult(passing=True, score=4.0)  # CorrectnessEvaluator's 1-5 scale
    with pytest.raises(ValueError, match="CORRECTNESS_SCORE_RANGE"):
        apply_evaluation(engine, response, graded)
    with pytest.raises(ValueError, match="invalid: judge failed"):
        apply_evaluation(engine, response, EvaluationResult(invalid_result=True, invalid_reason="judge failed"))
    with pytest.raises(ValueError, match="neither"):
        apply_evaluation(engine, response, EvaluationResult())
    with pytest.raises(ValueError, match="score_range"):
        apply_evaluation(engine, response, graded, score_range=(5.0, 1.0))
    assert not _changed(engine, state)

    (reward,) = apply_evaluation(engine, response, graded, score_range=CORRECTNESS_SCORE_RANGE)
    cost = response.additional_kwargs["cost"]
    assert reward == pytest.approx(engine.weights.reward(correct=1.0, score=0.75, cost=cost))


def test_a_similarity_past_its_end_by_rounding_counts_as_the_end(llm: UniScaleLLM, engine: UniScale) -> None:
    """Identical texts can have a cosine similarity of 1.0000000000000002; 1.01 is still refused."""
    response = llm.complete("What is 4 + 4?")
    with pytest.raises(ValueError, match="outside score_range"):
        apply_evaluation(engine, response, EvaluationResult(score=1.01), score_range=SIMILARITY_SCORE_RANGE)
    (reward,) = apply_evaluation(
        engine, response, EvaluationResult(score=1.0000000000000002), score_range=SIMILARITY_SCORE_RANGE
    )
    cost = response.additional_kwargs["cost"]
    assert reward == pytest.approx(engine.weights.reward(correct=1.0, score=1.0, cost=cost))


def test_responses_without_a_decision_are_refused(engine: UniScale) -> None:
    with pytest.raises(ValueError, match="names no UniScale decision"):
        decision_ids(CompletionResponse(text="from another LLM"))
    with pytest.raises(TypeError, match="int"):
        decision_ids(42)  # type: ignore[arg-type]
    with pytest.raises(UnknownDecisionError):
        apply_feedback(engine, "0" * 32, correct=True)
