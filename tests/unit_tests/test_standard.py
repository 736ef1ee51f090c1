"""LangChain's standard unit tests for chat models, run on ChatUniScale."""

from __future__ import annotations

from typing import Any

from langchain_tests.unit_tests import ChatModelUnitTests

from uniscale_integrations.langchain import ChatUniScale


class TestChatUniScaleStandard(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatUniScale]:
        return ChatUniScale

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"models": ["S"], "qp": [1], "cp": [1, 2]}
