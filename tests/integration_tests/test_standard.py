"""LangChain's standard integration tests for chat models, tool calling and structured output on, on the real
offline S and M models.

The model routes over S and M: calls with tools, a schema or tool messages go to M (S declares neither tool
calls nor JSON output, so the engine leaves it out of those), plain calls to whichever the policy picks.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests

from uniscale_integrations import UniScale
from uniscale_integrations.langchain import ChatUniScale

ENGINE = UniScale.from_defaults(models=("S", "M"), qp=(1,), cp=(1, 2), max_new_tokens=48, seed=0)
"""One engine (one load per model) shared by every test; each test builds its own ChatUniScale around it."""


class TestChatUniScaleStandard(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatUniScale]:
        return ChatUniScale

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"engine": ENGINE, "max_tokens": 48}

    @property
    def model_override_value(self) -> str:
        return "Qwen2.5-Coder-0.5B-Instruct"

    @property
    def supports_json_mode(self) -> bool:
        return True

    @pytest.mark.xfail(
        reason="model limit: Qwen2.5-Coder-0.5B (M) loops in the joke's setup until the 48-token cap, so the JSON "
        "it writes lacks the punchline the test's schema requires (not given to the model: JSON mode has no schema)",
        strict=False,
    )
    def test_json_mode(self, model: BaseChatModel) -> None:
        super().test_json_mode(model)

    @pytest.mark.xfail(
        reason="model limit: M sometimes breaks the JSON of a call's free-text argument (a quote left unescaped in "
        "the Japanese company's description), and the call is returned as text with a warning",
        strict=False,
    )
    def test_unicode_tool_call_integration(self, model: BaseChatModel) -> None:  # type: ignore[override]
        super().test_unicode_tool_call_integration(model)
