"""Reading a candidate's text against what its call asked for: tool calls checked against their tools and
``tool_choice``, a JSON value checked against its schema. A reply that fails is refused with the reason
(it casts no vote); nothing here raises on what a model wrote.

>>> from uniscale_integrations.tools.specs import Tool
>>> add = Tool("add", parameters={"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]})
>>> asked = Asked(tools=(add,), tool_choice="auto")
>>> reply = read_reply('<tool_call>\\n{"name": "add", "arguments": {"a": "4"}}\\n</tool_call>', asked, HERMES)
>>> reply.tool_calls[0].arguments
{'a': 4}
>>> read_reply('{"name": "add", "arguments": {}}', asked, HERMES).problem
"add: 'a' is a required property"
>>> read_reply("It is 4.", asked, HERMES).content
'It is 4.'
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from uniscale_integrations.tools.calls import Reply, ToolCall
from uniscale_integrations.tools.formats import HERMES, MalformedCallError, ToolFormat
from uniscale_integrations.tools.specs import ResponseFormat, Tool

_FENCE = re.compile(r"^```[A-Za-z]*\s*\n?(.*?)\s*```", re.DOTALL)

__all__ = ["HERMES", "Asked", "read_reply", "schema_problem"]


@dataclass(frozen=True)
class Asked:
    """What a call asks a reply to be (see :class:`~uniscale_integrations.options.RunOptions`)."""

    tools: tuple[Tool, ...] = ()
    tool_choice: str | None = None
    parallel_tool_calls: bool = True
    response_format: ResponseFormat | None = None
    answered: Collection[str] = ()
    """Keys of the calls the conversation made and got results for: a reply's calls among them are dropped (they
    would only fetch the same results: small models loop so), and a reply that makes nothing else is refused."""

    @property
    def calls_tools(self) -> bool:
        """Whether the reply may (or must) call a tool."""
        return bool(self.tools) and self.tool_choice != "none"

    @property
    def structured(self) -> bool:
        """Whether the reply is read for more than text."""
        return self.calls_tools or self.response_format is not None

    def opening(self, fmt: ToolFormat | None) -> tuple[str, tuple[str, ...]]:
        """The start of the reply written for the model (a forced call's opening, or ``{"`` of a JSON object),
        and the texts one of which must follow it (:meth:`ToolFormat.opening`)."""
        if self.calls_tools and fmt is not None:
            return fmt.opening(self.tool_choice, self.tools)
        if self.response_format is not None and self.response_format.object_root and not self.calls_tools:
            return '{"', ()
        return "", ()


def read_reply(text: str, asked: Asked, fmt: ToolFormat | None) -> Reply:
    """``text`` (the opening written for the model and what it wrote after it) read as ``asked`` says."""
    if asked.calls_tools and fmt is not None:
        try:
            raw, content = fmt.calls(text, asked.tools)
        except MalformedCallError as exc:
            return Reply(content=text, problem=str(exc))
        if raw:
            return _calls_reply(raw, content, text, asked)
        if asked.tool_choice != "auto":
            return Reply(content=text, problem=f"no tool call, though tool_choice is {asked.tool_choice!r}")
        text = content
    if asked.response_format is not None:
        return _json_reply(text, asked.response_format)
    return Reply(content=text.strip())


def schema_problem(value: Any, schema: Any) -> str | None:
    """Why ``value`` breaks the JSON ``schema`` (its most relevant error), or ``None``."""
    from jsonschema import exceptions, validators

    validator = validators.validator_for(schema)(schema)
    error = exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message


def _calls_reply(raw: list[dict[str, Any]], content: str, text: str, asked: Asked) -> Reply:
    tools = {tool.name: tool for tool in asked.tools}
    calls = []
    for call in raw:
        name, arguments = call["name"], call["arguments"]
        if name not in tools:
            return Reply(content=text, problem=f"calls an unknown tool {name!r} (the tools are: {', '.join(tools)})")
        if asked.tool_choice not in ("auto", "required") and name != asked.tool_choice:
            return Reply(content=text, problem=f"calls {name!r}, though tool_choice is {asked.tool_choice!r}")
        if not isinstance(arguments, dict):
            return Reply(
                content=text, problem=f"{name}: the arguments are not an object: {json.dumps(arguments)[:200]}"
            )
        schema = tools[name].argument_schema()
        arguments = _declared(arguments, schema)
        problem = schema_problem(arguments, schema)
        if problem is not None:
            return Reply(content=text, problem=f"{name}: {problem}")
        calls.append(ToolCall(name, arguments))
    distinct = [call for call in {call.key: call for call in calls}.values() if call.key not in asked.answered]
    if not distinct:
        return Reply(content=text, problem="makes again only calls whose results the conversation already holds")
    if not asked.parallel_tool_calls:
        distinct = distinct[:1]
    return Reply(content=content, tool_calls=tuple(distinct))


def _declared(arguments: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The arguments the tool's schema declares, when it declares some and says nothing of others (small models
    add made-up ones; ``additionalProperties`` set keeps them, or refuses them when false).

    >>> _declared({"city": "Oslo", "unit": "C"}, {"properties": {"city": {}}})
    {'city': 'Oslo'}
    """
    declared = schema.get("properties")
    if not isinstance(declared, dict) or not declared or "additionalProperties" in schema:
        return arguments
    return {key: value for key, value in arguments.items() if key in declared}


def _json_reply(text: str, response_format: ResponseFormat) -> Reply:
    body = text.strip()
    fenced = _FENCE.match(body)
    body = fenced.group(1) if fenced else body
    try:
        value, _ = json.JSONDecoder().raw_decode(body)
    except json.JSONDecodeError as exc:
        return Reply(content=text, problem=f"the reply is not JSON: {exc}")
    if response_format.object_root and not isinstance(value, dict):
        return Reply(content=text, problem=f"the reply is a JSON {type(value).__name__}, not an object")
    schema = response_format.plain_schema()
    problem = None if schema is None else schema_problem(value, schema)
    if problem is not None:
        return Reply(content=text, problem=f"the reply breaks its schema: {problem}")
    return Reply(content=json.dumps(value, ensure_ascii=False), data=value)
