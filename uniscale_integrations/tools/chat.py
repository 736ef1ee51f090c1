"""Tool turns in a chat: an assistant's ``tool_calls`` and the ``tool`` messages that answer them, checked on
the way in, and what a conversation needs of the model that continues it.

>>> chat = [{"role": "user", "content": "2 + 3?"},
...         {"role": "assistant", "content": "", **tool_fields({"role": "assistant", "tool_calls": [
...             {"id": "c1", "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}]}, 1)},
...         {"role": "tool", "content": "5", **tool_fields({"role": "tool", "tool_call_id": "c1"}, 2)}]
>>> chat[1]["tool_calls"][0]["function"]
{'name': 'add', 'arguments': {'a': 2, 'b': 3}}
>>> sorted(answered_calls(chat)), sorted(needs(chat, Asked()))
(['["add",{"a":2,"b":3}]'], ['tool calls'])
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from uniscale_integrations.errors import InvalidQueryError
from uniscale_integrations.tools.calls import ToolCall
from uniscale_integrations.tools.reading import Asked
from uniscale_integrations.tools.specs import JSON_OUTPUT, TOOL_CALLS


def tool_fields(message: Mapping[str, Any], index: int) -> dict[str, Any]:
    """The tool fields of ``messages[index]``, checked: an assistant's ``tool_calls`` (arguments as objects; a
    JSON string is decoded), a ``tool`` message's ``tool_call_id`` and ``name``. :class:`InvalidQueryError` names
    what is wrong."""
    fields: dict[str, Any] = {}
    calls = message.get("tool_calls")
    if calls:
        if message.get("role") != "assistant":
            raise InvalidQueryError(f"messages[{index}]: only assistant messages make tool calls")
        if not isinstance(calls, Sequence) or isinstance(calls, str):
            raise InvalidQueryError(f"messages[{index}]: tool_calls must be a list")
        fields["tool_calls"] = [_call(call, f"messages[{index}].tool_calls[{j}]") for j, call in enumerate(calls)]
    for key in ("tool_call_id", "name"):
        value = message.get(key)
        if value is not None and message.get("role") == "tool":
            if not isinstance(value, str):
                raise InvalidQueryError(f"messages[{index}]: {key} must be a string, got {value!r}")
            fields[key] = value
    return fields


def answered_calls(messages: Sequence[Mapping[str, Any]]) -> frozenset[str]:
    """Keys of the calls the conversation has made and had answered (a ``tool`` message follows them): making one
    again would only fetch the same result, the loop small models fall into."""
    keys: set[str] = set()
    for i, message in enumerate(messages):
        answered = i + 1 < len(messages) and messages[i + 1].get("role") == "tool"
        if message.get("role") == "assistant" and message.get("tool_calls") and answered:
            keys.update(ToolCall(c["function"]["name"], c["function"]["arguments"]).key for c in message["tool_calls"])
    return frozenset(keys)


def needs(messages: Sequence[Mapping[str, Any]], asked: Asked) -> frozenset[str]:
    """What a model must declare to serve the call: tool calls (tools to call, or tool turns to render) and
    JSON output."""
    tool_turns = any(m.get("role") == "tool" or m.get("tool_calls") for m in messages)
    return frozenset(
        ({TOOL_CALLS} if asked.calls_tools or tool_turns else set())
        | ({JSON_OUTPUT} if asked.response_format is not None else set())
    )


def _call(call: object, where: str) -> dict[str, Any]:
    function = call.get("function", call) if isinstance(call, Mapping) else None
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(function, Mapping) or not isinstance(name, str) or not name:
        raise InvalidQueryError(f"{where}: a tool call needs a function name, got {call!r}")
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            raise InvalidQueryError(f"{where}: the arguments are not JSON ({exc})") from None
    if not isinstance(arguments, dict):
        raise InvalidQueryError(f"{where}: the arguments must be a JSON object, got {arguments!r}")
    call_id = call.get("id") if isinstance(call, Mapping) else None
    return {"id": str(call_id or ""), "type": "function", "function": {"name": name, "arguments": arguments}}
