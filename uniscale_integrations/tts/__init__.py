"""Test-time scaling: generator backends and the search that executes a configuration."""

from uniscale_integrations.tts.backends import Generator, HFGenerator, SamplingParams
from uniscale_integrations.tts.search import (
    EarlyStopping,
    Execution,
    Executor,
    PathTrace,
    aggregate,
    vote_decided,
)
from uniscale_integrations.tts.styles import BRIEF, REASON_THEN_ANSWER, STEP_BY_STEP, STYLES, AnswerStyle

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
