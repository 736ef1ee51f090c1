"""Agents: a ReActAgent (tools through text) runs on UniScaleLLM; FunctionAgent needs native tool calling.

SmolLM2-135M (S) does not follow the ReAct format (it answers straight away), so the ReAct
test uses Qwen2.5-Coder-0.5B (M), which does.
"""

import pytest
from llama_index.core.agent.workflow import FunctionAgent, ReActAgent, ToolCallResult
from llama_index.core.tools import FunctionTool
from llama_index_support import AGENT_WARNINGS

from uniscale_integrations import UniScale
from uniscale_integrations.llama_index import UniScaleLLM

pytestmark = AGENT_WARNINGS


def add(a: int, b: int) -> int:
    """Add two integers a and b, e.g. {"a": 1, "b": 2}."""
    return a + b


@pytest.mark.slow
@pytest.mark.asyncio
async def test_react_agent_calls_the_tool_and_answers(qwen: UniScaleLLM) -> None:
    agent = ReActAgent(tools=[FunctionTool.from_defaults(add)], llm=qwen, streaming=False)
    handler = agent.run("Use the add tool to add 17 and 25.", max_iterations=4)
    calls = [event async for event in handler.stream_events() if isinstance(event, ToolCallResult)]
    answer = await handler
    assert [(c.tool_name, c.tool_kwargs, c.tool_output.raw_output) for c in calls] == [("add", {"a": 17, "b": 25}, 42)]
    assert "42" in str(answer)
    assert answer.raw["decision_id"]  # the last LLM call's decision, for feedback


@pytest.mark.asyncio
async def test_function_agent_is_refused_without_native_tool_calling(engine: UniScale) -> None:
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(add)], llm=UniScaleLLM(engine=engine))
    with pytest.raises(ValueError, match="FunctionCallingLLM"):
        await agent.run("Add 1 and 2.")
