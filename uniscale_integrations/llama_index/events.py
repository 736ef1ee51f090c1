"""The engine's events as LlamaIndex instrumentation events, fired through this module's dispatcher.

Events of one LLM call carry the span id of that call, the same as LlamaIndex's own
``LLMChatStartEvent`` / ``LLMChatEndEvent`` (or completion events) for it, and its decision id.
"""

from __future__ import annotations

from dataclasses import asdict

from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events import BaseEvent

from uniscale_integrations.engine import UniScale
from uniscale_integrations.events import ConfigSelected, Event, FeedbackApplied, PathPruned, StepScored

dispatcher = get_dispatcher(__name__)


class ConfigSelectedEvent(BaseEvent):
    """The policy chose (or was told) a configuration; ``mean``/``width``/``ucb`` are None when forced."""

    decision_id: str
    config: str
    mean: float | None
    width: float | None
    ucb: float | None
    forced: bool

    @classmethod
    def class_name(cls) -> str:
        return "UniScaleConfigSelectedEvent"


class StepScoredEvent(BaseEvent):
    """The verifier scored one step of one path."""

    decision_id: str | None
    path_id: int
    step: int
    score: float
    mean_score: float
    final: bool
    verifier: str

    @classmethod
    def class_name(cls) -> str:
        return "UniScaleStepScoredEvent"


class PathPrunedEvent(BaseEvent):
    """A path stopped before it finished, and why."""

    decision_id: str | None
    path_id: int
    step: int
    reason: str
    bound: float | None
    best_final: float | None

    @classmethod
    def class_name(cls) -> str:
        return "UniScalePathPrunedEvent"


class FeedbackAppliedEvent(BaseEvent):
    """A decision received its feedback and the policy learned from it."""

    decision_id: str
    reward: float
    correct: float | None

    @classmethod
    def class_name(cls) -> str:
        return "UniScaleFeedbackAppliedEvent"


class CallForwarder:
    """Listener for one ``engine.run``: fires its events under the span of the LLM call."""

    def __init__(self, span_id: str | None):
        self.span_id = span_id
        self.decision_id: str | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, ConfigSelected):
            self.decision_id = event.decision_id
            dispatcher.event(ConfigSelectedEvent(span_id=self.span_id, **asdict(event)))
        elif isinstance(event, StepScored):
            dispatcher.event(StepScoredEvent(span_id=self.span_id, decision_id=self.decision_id, **asdict(event)))
        elif isinstance(event, PathPruned):
            dispatcher.event(PathPrunedEvent(span_id=self.span_id, decision_id=self.decision_id, **asdict(event)))


class FeedbackForwarder:
    """Engine-wide listener: fires :class:`FeedbackAppliedEvent` under the span active when feedback arrives."""

    def __call__(self, event: Event) -> None:
        if isinstance(event, FeedbackApplied):
            dispatcher.event(FeedbackAppliedEvent(**asdict(event)))


def forward_feedback(engine: UniScale) -> None:
    """Make ``engine`` fire a :class:`FeedbackAppliedEvent` for every feedback (once per engine)."""
    if not any(isinstance(listener, FeedbackForwarder) for listener in engine.listeners):
        engine.listeners.append(FeedbackForwarder())
