"""UniScaleLLM as a LlamaIndex ``FunctionCallingLLM`` on the real offline M model: a ``FunctionAgent`` completes a
two-step tool task (locate a landmark, then ask for its city's weather), forced calls, partial calls while
streaming, structured prediction, and tool turns in a history."""

import pytest
from llama_index.core.agent.workflow import FunctionAgent, ToolCallResult
from llama_index.core.base.llms.types import ChatMessage, TextBlock, ToolCallBlock
from llama_index.core.tools import FunctionTool
from llama_index_support import AGENT_WARNINGS
from pydantic import BaseModel

from uniscale_integrations.llama_index import UniScaleLLM
from uniscale_integrations.llama_index.messages import to_chat

pytestmark = AGENT_WARNINGS


def weather(city: str) -> str:
    """Today's weather in a city."""
    return {"Quenvi": "Sunny, 21 degrees"}.get(city, f"unknown city {city!r}: locate gives the city of a landmark")


def locate(landmark: str) -> str:
    """The city a landmark is in."""
    return {"Zorblat Tower": "Quenvi"}.get(landmark, f"no landmark known as {landmark!r}")


def add(a: int, b: int) -> int:
    """Add two integers a and b."""
    return a + b


class Place(BaseModel):
    city: str
    country: str


@pytest.mark.asyncio
async def test_function_agent_completes_a_two_step_tool_task(qwen: UniScaleLLM) -> None:
    assert qwen.metadata.is_function_calling_model
    tools = [FunctionTool.from_defaults(locate), FunctionTool.from_defaults(weather)]
    agent = FunctionAgent(tools=tools, llm=qwen, allow_parallel_tool_calls=False)
    handler = agent.run("What is the weather today in the city where the Zorblat Tower is?", max_iterations=6)
    results = [event async for event in handler.stream_events() if isinstance(event, ToolCallResult)]
    answer = await handler
    calls = [(c.tool_name, c.tool_kwargs, c.tool_output.raw_output) for c in results]
    located = calls.index(("locate", {"landmark": "Zorblat Tower"}, "Quenvi"))  # M may first try the tower's weather
    assert ("weather", {"city": "Quenvi"}, "Sunny, 21 degrees") in calls[located + 1 :]
    assert "21" in str(answer)  # only the tools know it
    assert answer.raw["decision_id"]  # the last LLM call's decision, for feedback


def test_a_required_call_is_made_and_streams_in_parts(qwen: UniScaleLLM) -> None:
    tools = [FunctionTool.from_defaults(add), FunctionTool.from_defaults(weather)]
    response = qwen.chat_with_tools(tools, user_msg="What is 17 + 25?", tool_required=True)
    (call,) = qwen.get_tool_calls_from_response(response)
    assert (call.tool_name, call.tool_kwargs) == ("add", {"a": 17, "b": 25})
    assert call.tool_id.startswith("call_")

    chunks = list(qwen.stream_chat_with_tools(tools, user_msg="What is 17 + 25?", tool_required=True))
    seen = [qwen.get_tool_calls_from_response(c, error_on_no_tool_call=False) for c in chunks]
    partial = next(calls for calls in seen if calls)
    assert partial[0].tool_name == "add"
    assert partial[0].tool_kwargs != {"a": 17, "b": 25}  # half-written arguments, read as far as they go
    assert [(c.tool_name, c.tool_kwargs) for c in seen[-1]] == [("add", {"a": 17, "b": 25})]
    with pytest.raises(ValueError, match="expected at least one tool call"):
        qwen.get_tool_calls_from_response(chunks[0])


def test_structured_predict_and_structured_llm_fill_the_model(qwen: UniScaleLLM) -> None:
    from llama_index.core.prompts import PromptTemplate

    place = qwen.structured_predict(
        Place, PromptTemplate("Name the capital of {country} and its country."), country="France"
    )
    assert isinstance(place, Place)
    assert place.city
    structured = qwen.as_structured_llm(Place)
    response = structured.chat([ChatMessage(role="user", content="Name the capital of Italy and its country.")])
    assert isinstance(response.raw, Place)


def test_tool_turns_reach_the_engine_with_their_calls_and_ids() -> None:
    history = [
        ChatMessage(role="user", content="What is 2 + 3?"),
        ChatMessage(
            role="assistant",
            blocks=[
                TextBlock(text=""),
                ToolCallBlock(tool_call_id="c1", tool_name="add", tool_kwargs={"a": 2, "b": 3}),
            ],
        ),
        ChatMessage(role="tool", content="5", additional_kwargs={"tool_call_id": "c1"}),
    ]
    assert to_chat(history)[1:] == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "c1", "function": {"name": "add", "arguments": {"a": 2, "b": 3}}}],
        },
        {"role": "tool", "content": "5", "tool_call_id": "c1"},
    ]
