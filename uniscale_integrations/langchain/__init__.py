"""LangChain adapter: ``ChatUniScale`` and its feedback and cost callback handlers.

Importing this package imports ``langchain_core``; the core never does.
"""

from uniscale_integrations.langchain.callbacks import (
    ConfigCost,
    UniScaleCostHandler,
    UniScaleFeedbackHandler,
    correctness_of,
    get_uniscale_cost_callback,
)
from uniscale_integrations.langchain.chat_model import CUSTOM_EVENTS, ChatUniScale
from uniscale_integrations.langchain.embeddings import MiniLMEmbeddings
from uniscale_integrations.langchain.messages import METADATA_KEY, decision_id_of, to_chat

__all__ = [
    "CUSTOM_EVENTS",
    "METADATA_KEY",
    "ChatUniScale",
    "ConfigCost",
    "MiniLMEmbeddings",
    "UniScaleCostHandler",
    "UniScaleFeedbackHandler",
    "correctness_of",
    "decision_id_of",
    "get_uniscale_cost_callback",
    "to_chat",
]
