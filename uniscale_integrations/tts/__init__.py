"""Test-time scaling: generator backends and the search that executes a configuration."""

from uniscale_integrations.tts.backends import Generator, HFGenerator, SamplingParams
from uniscale_integrations.tts.search import (
    BRIEF,
    STEP_BY_STEP,
    EarlyStopping,
    Execution,
    Executor,
    PathTrace,
    aggregate,
    vote_decided,
)

__all__ = [
    "BRIEF",
    "STEP_BY_STEP",
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
