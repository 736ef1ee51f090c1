"""Events the engine emits while it decides and searches, for adapters and observers.

A listener is any callable taking one event. The LangChain adapter forwards them as
custom events, the LlamaIndex adapter as instrumentation events.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConfigSelected:
    """The policy chose (or was told) a configuration for a query."""

    decision_id: str
    config: str
    mean: float | None
    width: float | None
    ucb: float | None
    forced: bool


@dataclass(frozen=True)
class StepScored:
    """The verifier scored one step of one path (partial, or the complete solution)."""

    path_id: int
    step: int
    score: float
    mean_score: float
    final: bool
    verifier: str


@dataclass(frozen=True)
class PathPruned:
    """A path stopped before it finished, and why."""

    path_id: int
    step: int
    reason: str
    bound: float | None
    best_final: float | None


@dataclass(frozen=True)
class FeedbackApplied:
    """A decision received its feedback and the policy learned from it."""

    decision_id: str
    reward: float
    correct: float | None


Event = ConfigSelected | StepScored | PathPruned | FeedbackApplied
Listener = Callable[[Event], None]


def emit(listeners: Iterable[Listener], event: Event) -> None:
    """Send ``event`` to every listener; a listener that raises is logged, never fatal."""
    for listener in listeners:
        try:
            listener(event)
        except Exception:
            logger.exception("event listener %r failed on %s", listener, type(event).__name__)
