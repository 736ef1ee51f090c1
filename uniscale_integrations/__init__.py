"""UniScale for LangChain and LlamaIndex: per-query joint model routing and test-time scaling.

The core (``uniscale_integrations.core``) imports neither framework; the adapters live in
``uniscale_integrations.langchain`` and ``uniscale_integrations.llama_index``.
"""

from uniscale_integrations.core.bandit import LinUCB
from uniscale_integrations.core.budget import Budget
from uniscale_integrations.core.cost import CostModel, Usage
from uniscale_integrations.core.engine import Estimate, Explanation, Result, UniScale
from uniscale_integrations.core.reward import RewardWeights
from uniscale_integrations.core.space import Config, ConfigSpace
from uniscale_integrations.core.store import SQLiteStore
from uniscale_integrations.errors import (
    BudgetError,
    ConfigSpaceError,
    DuplicateFeedbackError,
    InvalidQueryError,
    MissingModelError,
    ModelUnavailableError,
    StoreCorruptError,
    StoreError,
    StoreVersionError,
    UniScaleError,
    UnknownDecisionError,
    UnknownModelError,
)

__all__ = [
    "Budget",
    "BudgetError",
    "Config",
    "ConfigSpace",
    "ConfigSpaceError",
    "CostModel",
    "DuplicateFeedbackError",
    "Estimate",
    "Explanation",
    "InvalidQueryError",
    "LinUCB",
    "MissingModelError",
    "ModelUnavailableError",
    "Result",
    "RewardWeights",
    "SQLiteStore",
    "StoreCorruptError",
    "StoreError",
    "StoreVersionError",
    "UniScale",
    "UniScaleError",
    "UnknownDecisionError",
    "UnknownModelError",
    "Usage",
]
