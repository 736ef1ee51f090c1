"""LangChain's standard integration tests for chat models, on the real offline S and M models."""

from __future__ import annotations

from typing import Any

from langchain_tests.integration_tests import ChatModelIntegrationTests

from uniscale_integrations import UniScale
from uniscale_integrations.langchain import ChatUniScale

ENGINE = UniScale.from_defaults(models=("S", "M"), qp=(1,), cp=(1, 2), max_new_tokens=16, seed=0)
"""One engine (one load per model) shared by every test; each test builds its own ChatUniScale around it."""


class TestChatUniScaleStandard(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatUniScale]:
        return ChatUniScale

    @property
    def chat_model_params(self) -> dict[str, Any]:
        # pinned to S (fast); the model-override tests pin M per call
        return {"engine": ENGINE, "model": "SmolLM2-135M-Instruct", "max_tokens": 16}

    @property
    def model_override_value(self) -> str:
        return "Qwen2.5-Coder-0.5B-Instruct"
