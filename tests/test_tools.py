"""Tool calls and structured replies: what the models write read back (Hermes, bare, fenced, cut short), replies
checked against their schemas, bad input refused before anything runs, and the capability rule on a real engine."""

from __future__ import annotations

import pytest

from uniscale_integrations import UniScale
from uniscale_integrations.errors import CapabilityError, InvalidOptionError
from uniscale_integrations.langchain import ChatUniScale
from uniscale_integrations.options import RunOptions
from uniscale_integrations.tools import HERMES, Asked, MalformedCallError, Tool, ToolCall, read_reply

ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}
NAME = {
    "type": "function",
    "function": {
        "name": "greet",
        "description": "Greet someone.",
        "parameters": {"type": "object", "properties": {"who": {"type": "string"}}, "required": ["who"]},
    },
}
TOOLS = (Tool.of(ADD), Tool.of(NAME))


def _asked(choice: str = "auto", parallel: bool = True) -> Asked:
    options = RunOptions(tools=[ADD, NAME], tool_choice=choice, parallel_tool_calls=parallel)
    return options.asked([])


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call>',
        '{"name": "add", "arguments": {"a": 2, "b": 3}}',
        'Let me add them.\n```json\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n```',
        # a small model repeating its call until the token limit: the whole calls are kept, the cut one dropped
        '{"name": "add", "arguments": {"a": 2, "b": 3}}\n{"name": "add", "arguments": {"a": 2, "b',
    ],
)
def test_calls_are_read_from_what_small_models_write(text: str) -> None:
    reply = read_reply(text, _asked(), HERMES)
    assert reply.problem is None
    assert [(call.name, call.arguments) for call in reply.tool_calls] == [("add", {"a": 2, "b": 3})]
    assert reply.tool_calls[0].id.startswith("call_")


def test_a_call_cut_before_its_end_is_malformed_and_comes_back_as_text() -> None:
    text = '{"name": "add", "arguments": {"a": 2, "b'
    with pytest.raises(MalformedCallError, match="cut short"):
        HERMES.calls(text, TOOLS)
    reply = read_reply(text, _asked(), HERMES)
    assert reply.problem is not None
    assert reply.content == text
    assert reply.key is None  # a refused reply casts no vote


@pytest.mark.parametrize(
    ("text", "choice", "problem"),
    [
        ('{"name": "add", "arguments": {"a": "two", "b": 3}}', "auto", "add: a: 'two' is not of type 'integer'"),
        ('{"name": "sub", "arguments": {"a": 2, "b": 3}}', "auto", "calls an unknown tool 'sub'"),
        ('{"name": "add", "arguments": {"a": 2, "b": 3}}', "greet", "calls 'add', though tool_choice is 'greet'"),
        ("Five.", "required", "no tool call, though tool_choice is 'required'"),
    ],
)
def test_replies_that_break_the_call_are_refused(text: str, choice: str, problem: str) -> None:
    reply = read_reply(text, _asked(choice), HERMES)
    assert reply.problem is not None
    assert problem in reply.problem


def test_equal_calls_vote_alike_and_parallel_calls_can_be_cut_to_one() -> None:
    text = '{"name": "add", "arguments": {"b": 3, "a": 2}}\n{"name": "greet", "arguments": {"who": "Ann"}}'
    both = read_reply(text, _asked(), HERMES)
    assert [call.name for call in both.tool_calls] == ["add", "greet"]
    swapped = read_reply('{"name": "greet", "arguments": {"who": "Ann"}}\n' + text.split("\n")[0], _asked(), HERMES)
    assert both.key == swapped.key
    one = read_reply(text, _asked(parallel=False), HERMES)
    assert [call.name for call in one.tool_calls] == ["add"]


def test_forced_calls_open_the_first_required_argument_and_a_string_value() -> None:
    prefill, choices = HERMES.opening("greet", TOOLS)
    assert prefill.endswith('{"name": "greet", "arguments": {"who": "')
    assert choices == ()
    head, names = HERMES.opening("required", TOOLS)
    assert head.endswith('{"name": "')
    assert names == ('add", "arguments": {"a": ', 'greet", "arguments": {"who": "')


def test_unknown_tool_choices_are_refused_before_anything_runs() -> None:
    with pytest.raises(InvalidOptionError, match=r"names no tool given: 'sub' \(the tools are: add, greet\)"):
        RunOptions(tools=[ADD, NAME], tool_choice="sub")
    with pytest.raises(InvalidOptionError, match="the call gives no tools"):
        RunOptions(tool_choice="required")
    llm = ChatUniScale(models=["M"])
    with pytest.raises(InvalidOptionError, match="names no tool given"):
        llm.bind_tools([ADD], tool_choice="sub")
    assert llm.engine is None  # refused before any engine (or model) was built


def test_only_capable_models_serve_tool_calls() -> None:
    with UniScale.from_defaults(models=("S",), qp=(1,), cp=(1,), max_new_tokens=8, seed=0) as engine:
        options = RunOptions(tools=[ADD])
        explanation = engine.explain("What is 2 + 3?", options)
        assert list(explanation) == []
        assert "SmolLM2" in explanation.excluded["S"]
        assert "tool calls" in explanation.excluded["S"]
        with pytest.raises(CapabilityError, match="no model can serve this call, which needs tool calls"):
            engine.run("What is 2 + 3?", options)
        schema = RunOptions(response_format={"type": "json_object"})
        with pytest.raises(CapabilityError, match="JSON output"):
            engine.run("Reply in JSON.", schema)
        assert engine.explain("What is 2 + 3?")  # plain calls still go to S


def test_calls_the_conversation_already_had_answered_are_dropped() -> None:
    answered = RunOptions(tools=[ADD, NAME]).asked([ToolCall("add", {"a": 2, "b": 3}).key])
    text = '{"name": "add", "arguments": {"a": 2, "b": 3}}\n{"name": "greet", "arguments": {"who": "Ann"}}'
    assert [call.name for call in read_reply(text, answered, HERMES).tool_calls] == ["greet"]
    again = read_reply('{"name": "add", "arguments": {"b": 3, "a": 2}}', answered, HERMES)
    assert again.problem == "makes again only calls whose results the conversation already holds"


def test_made_up_arguments_are_dropped_unless_the_schema_speaks_of_them() -> None:
    reply = read_reply('{"name": "greet", "arguments": {"who": "Ann", "mood": "happy"}}', _asked(), HERMES)
    assert reply.tool_calls[0].arguments == {"who": "Ann"}
    closed = {**NAME["function"], "parameters": {**NAME["function"]["parameters"], "additionalProperties": False}}
    strict = RunOptions(tools=[{"type": "function", "function": closed}]).asked()
    refused = read_reply('{"name": "greet", "arguments": {"who": "Ann", "mood": "happy"}}', strict, HERMES)
    assert refused.problem is not None
    assert "mood" in refused.problem
