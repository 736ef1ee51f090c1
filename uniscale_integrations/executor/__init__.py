"""The executor: runs one configuration on one chat (search, stopping, aggregation), scored by verifiers."""

from uniscale_integrations.executor.paths import PathTrace, aggregate
from uniscale_integrations.executor.search import Execution, Executor
from uniscale_integrations.executor.stopping import EarlyStopping, vote_decided
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
    "PathTrace",
    "aggregate",
    "vote_decided",
]
