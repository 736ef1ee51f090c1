"""UniScale for LangChain and LlamaIndex: per-query joint model routing and test-time scaling.

The engine and the parts it drives (``features``, ``policy``, ``executor``, ``backends``, ``reward``,
``store``) import neither framework; the adapters live in ``uniscale_integrations.langchain`` and
``uniscale_integrations.llama_index``, the server in ``uniscale_integrations.serve``.
"""

from uniscale_integrations.engine import Estimate, Explanation, Result, UniScale
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
from uniscale_integrations.features.space import Config, ConfigSpace
from uniscale_integrations.options import RunOptions
from uniscale_integrations.policy.linucb import LinUCB
from uniscale_integrations.reward.budget import Budget
from uniscale_integrations.reward.cost import CostModel, Usage
from uniscale_integrations.reward.weights import RewardWeights
from uniscale_integrations.store.sqlite import SQLiteStore

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
    "RunOptions",
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
