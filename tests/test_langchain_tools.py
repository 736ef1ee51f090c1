"""ChatUniScale's tools on the real offline M model: a LangChain ``create_agent`` agent completes a two-step tool
task (locate a landmark, then ask for its city's weather, then answer from what only the tools know) and feedback
on its run reaches every decision in it; a structured reply that breaks its schema raises LangChain's parser
error."""

from __future__ import annotations

import uuid

import pytest
from langchain_core.exceptions import OutputParserException
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from uniscale_integrations import DuplicateFeedbackError, UniScale
from uniscale_integrations.langchain import ChatUniScale, UniScaleFeedbackHandler

create_agent = pytest.importorskip("langchain.agents", reason="create_agent needs langchain (dev extra)").create_agent

TASK = "What is the weather today in the city where the Zorblat Tower is?"


@tool
def weather(city: str) -> str:
    """Today's weather in a city."""
    return {"Quenvi": "Sunny, 21 degrees"}.get(city, f"unknown city {city!r}: locate gives the city of a landmark")


@tool
def locate(landmark: str) -> str:
    """The city a landmark is in."""
    return {"Zorblat Tower": "Quenvi"}.get(landmark, f"no landmark known as {landmark!r}")


@pytest.fixture(scope="module")
def engine() -> UniScale:
    return UniScale.from_defaults(models=("M",), qp=(1,), cp=(1,), max_new_tokens=64, seed=0)


def test_create_agent_completes_a_two_step_tool_task_and_feedback_reaches_every_decision(engine: UniScale) -> None:
    llm = ChatUniScale(engine=engine, parallel_tool_calls=False)
    agent = create_agent(llm, tools=[locate, weather])
    feedback = UniScaleFeedbackHandler(llm)
    run_id = uuid.uuid4()
    state = agent.invoke(
        {"messages": [("human", TASK)]}, config={"callbacks": [feedback], "run_id": run_id, "recursion_limit": 12}
    )
    messages = state["messages"]
    calls = [(c["name"], c["args"]) for m in messages if isinstance(m, AIMessage) for c in m.tool_calls]
    located = calls.index(("locate", {"landmark": "Zorblat Tower"}))  # M may first try the weather of the tower
    assert ("weather", {"city": "Quenvi"}) in calls[located + 1 :]
    assert "Sunny, 21 degrees" in [m.content for m in messages if isinstance(m, ToolMessage)]
    final = messages[-1]
    assert isinstance(final, AIMessage)
    assert not final.tool_calls
    assert "21" in final.text  # only the tool knows it

    answers = [m for m in messages if isinstance(m, AIMessage)]
    decisions = feedback.decisions(run_id)  # the agent's run id leads to each model call's decision
    assert len(decisions) == len(answers) >= 3
    assert set(decisions) == {m.response_metadata["uniscale"]["decision_id"] for m in answers}
    rewards = feedback.record(run_id, correct=True)
    assert len(rewards) == len(decisions)
    for decision in decisions:
        with pytest.raises(DuplicateFeedbackError):
            engine.feedback(decision, correct=False)


class Code(BaseModel):
    code: str = Field(pattern=r"^zq[0-9]{12}x$")  # no reply of M's fits it


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_a_reply_that_breaks_the_schema_raises_the_parser_error(engine: UniScale, method: str) -> None:
    structured = ChatUniScale(engine=engine, max_tokens=24).with_structured_output(Code, method=method)  # type: ignore[arg-type]
    with pytest.raises(OutputParserException):
        structured.invoke("Give me a code.")
    raw = ChatUniScale(engine=engine, max_tokens=24).with_structured_output(Code, method=method, include_raw=True)  # type: ignore[arg-type]
    result = raw.invoke("Give me a code.")
    assert result["parsed"] is None
    assert isinstance(result["parsing_error"], OutputParserException)
    assert isinstance(result["raw"], AIMessage)
    assert not result["raw"].tool_calls  # the refused call came back as text, with a warning
