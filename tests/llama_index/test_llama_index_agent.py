"""Agents: a ReActAgent (tools through text) runs on UniScaleLLM; FunctionAgent needs native tool calling.

SmolLM2-135M (S) does not follow the ReAct format (it answers straight away), so the ReAct
test uses Qwen2.5-Coder-0.5B (M), which does.
"""

from collections.abc import Iterator

import pytest
from llama_index.core.agent.workflow import FunctionAgent, ReActAgent, ToolCallResult
from llama_index.core.tools import FunctionTool

from uniscale_integrations import UniScale
from uniscale_integrations.llama_index import UniScaleLLM

# Deprecations inside llama-index's agents and workflow runtime (raised with any LLM).
pytestmark = [
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20"),
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211"),
    pytest.mark.filterwarnings("ignore:is_running called from within a step:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def qwen() -> Iterator[UniScaleLLM]:
    with UniScale.from_defaults(models=("M",), qp=(1,), cp=(1,), bs=(1,), max_new_tokens=64, seed=0) as engine:
        yield UniScaleLLM(engine=engine)


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
