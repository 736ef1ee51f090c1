"""Test-time scaling: generator backends and the search that executes a configuration."""

from uniscale_integrations.backends.base import Generator, HFGenerator, SamplingParams
from uniscale_integrations.executor.search import (
    EarlyStopping,
    Execution,
    Executor,
    PathTrace,
    aggregate,
    vote_decided,
)
from uniscale_integrations.executor.styles import BRIEF, REASON_THEN_ANSWER, STEP_BY_STEP, STYLES, AnswerStyle

__all__ = [
    "BRIEF",
    "REASON_THEN_ANSWER",
    "STEP_BY_STEP",
    "STYLES",
    "AnswerStyle",
    "EarlyStopping",
    "Execution",
    "Executor",
    "Generator",
    "HFGenerator",
    "PathTrace",
    "SamplingParams",
    "aggregate",
    "vote_decided",
]
