"""LlamaIndex adapter: ``UniScaleLLM``, ``UniScaleEmbedding``, instrumentation events and feedback.

Importing this package imports ``llama_index.core``; the core never does.
"""

from uniscale_integrations.llama_index.embedding import UniScaleEmbedding
from uniscale_integrations.llama_index.events import (
    ConfigSelectedEvent,
    FeedbackAppliedEvent,
    PathPrunedEvent,
    StepScoredEvent,
)
from uniscale_integrations.llama_index.feedback import (
    CORRECTNESS_SCORE_RANGE,
    SIMILARITY_SCORE_RANGE,
    apply_evaluation,
    apply_feedback,
    decision_ids,
)
from uniscale_integrations.llama_index.llm import UniScaleLLM
from uniscale_integrations.llama_index.messages import CallOptions, to_chat
from uniscale_integrations.llama_index.recorder import DECISION_IDS_KEY, DecisionRecorder
from uniscale_integrations.llama_index.responses import DECISION_ID_KEY

__all__ = [
    "CORRECTNESS_SCORE_RANGE",
    "DECISION_IDS_KEY",
    "DECISION_ID_KEY",
    "SIMILARITY_SCORE_RANGE",
    "CallOptions",
    "ConfigSelectedEvent",
    "DecisionRecorder",
    "FeedbackAppliedEvent",
    "PathPrunedEvent",
    "StepScoredEvent",
    "UniScaleEmbedding",
    "UniScaleLLM",
    "apply_evaluation",
    "apply_feedback",
    "decision_ids",
    "to_chat",
]
