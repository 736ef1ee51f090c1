"""UniScale's instrumentation events: fired through LlamaIndex's dispatchers, in the span of the LLM call."""

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatInProgressEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
    LLMCompletionStartEvent,
)
from llama_index_support import EventLog

from uniscale_integrations import UniScale
from uniscale_integrations.events import PathPruned
from uniscale_integrations.llama_index import (
    ConfigSelectedEvent,
    FeedbackAppliedEvent,
    PathPrunedEvent,
    StepScoredEvent,
    UniScaleLLM,
    apply_feedback,
)
from uniscale_integrations.llama_index.events import CallForwarder, FeedbackForwarder

QUESTION = [ChatMessage(role="user", content="What is 4 + 4?")]


@pytest.fixture(scope="module")
def llm(engine: UniScale) -> UniScaleLLM:
    return UniScaleLLM(engine=engine)


def _one_span(log: EventLog) -> str:
    """The span shared by LlamaIndex's events and ours for a single call (asserted to be one)."""
    spans = {e.span_id for e in log.events}
    assert len(spans) == 1, spans
    (span,) = spans
    assert span is not None
    return span


def test_chat_events_share_the_llm_span(llm: UniScaleLLM, event_log: EventLog) -> None:
    response = llm.chat(QUESTION)
    span = _one_span(event_log)
    assert span.startswith("UniScaleLLM.chat-")
    kinds = [type(e) for e in event_log.events]
    assert kinds[0] is LLMChatStartEvent
    assert kinds[1] is ConfigSelectedEvent
    assert kinds[-1] is LLMChatEndEvent
    assert StepScoredEvent in kinds
    (selected,) = event_log.of(ConfigSelectedEvent)
    decision = response.additional_kwargs["decision_id"]
    assert selected.decision_id == decision
    assert selected.config == response.additional_kwargs["config"]
    assert selected.ucb == pytest.approx(response.additional_kwargs["estimate"]["ucb"])
    assert not selected.forced
    assert all(e.decision_id == decision for e in event_log.of(StepScoredEvent))
    assert any(e.final for e in event_log.of(StepScoredEvent))
    assert event_log.of(LLMChatEndEvent)[0].response.additional_kwargs["decision_id"] == decision


def test_completion_events_share_the_llm_span(llm: UniScaleLLM, event_log: EventLog) -> None:
    llm.complete("What is 4 + 4?", config="S/qp1/cp2/bs1")
    _one_span(event_log)
    kinds = [type(e) for e in event_log.events]
    assert kinds[0] is LLMCompletionStartEvent
    assert kinds[-1] is LLMCompletionEndEvent
    (selected,) = event_log.of(ConfigSelectedEvent)
    assert selected.forced
    assert selected.mean is None
    assert {e.path_id for e in event_log.of(StepScoredEvent)} == {0, 1}


@pytest.mark.asyncio
async def test_async_stream_events_share_the_llm_span(llm: UniScaleLLM, event_log: EventLog) -> None:
    chunks = [c async for c in await llm.astream_chat(QUESTION)]
    span = _one_span(event_log)
    assert span.startswith("UniScaleLLM.astream_chat-")
    assert len(event_log.of(LLMChatInProgressEvent)) == len(chunks)
    (selected,) = event_log.of(ConfigSelectedEvent)
    assert selected.decision_id == chunks[-1].additional_kwargs["decision_id"]
    assert event_log.of(LLMChatEndEvent)


def test_pruned_paths_are_forwarded_with_their_decision(event_log: EventLog) -> None:
    forwarder = CallForwarder("span-1")
    forwarder(PathPruned(path_id=3, step=2, reason="bound 0.4 < best finished 0.6", bound=0.4, best_final=0.6))
    (event,) = event_log.of(PathPrunedEvent)
    assert (event.span_id, event.decision_id, event.path_id, event.step, event.bound) == ("span-1", None, 3, 2, 0.4)


def test_feedback_fires_one_event(llm: UniScaleLLM, engine: UniScale, event_log: EventLog) -> None:
    response = llm.complete("What is 4 + 4?")
    UniScaleLLM(engine=engine)  # a second adapter on the same engine adds no second forwarder
    assert sum(isinstance(listener, FeedbackForwarder) for listener in engine.listeners) == 1
    (reward,) = apply_feedback(llm, response, correct=True)
    (event,) = event_log.of(FeedbackAppliedEvent)
    assert event.decision_id == response.additional_kwargs["decision_id"]
    assert event.reward == pytest.approx(reward)
    assert event.correct == 1.0
