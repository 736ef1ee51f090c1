"""What a call may ask for beyond text: tools to call (:class:`Tool`), which of them (``tool_choice``), and a
JSON reply that follows a schema (:class:`ResponseFormat`); each checked once, where it is built.

>>> add = Tool.of({"type": "function", "function": {"name": "add", "parameters": {
...     "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}})
>>> add.name, checked_tool_choice("add", (add,)), checked_tool_choice(None, (add,))
('add', 'add', 'auto')
>>> checked_tool_choice("sub", (add,))
Traceback (most recent call last):
...
uniscale_integrations.errors.InvalidOptionError: tool_choice names no tool given: 'sub' (the tools are: add)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from uniscale_integrations.errors import InvalidOptionError

TOOL_CALLS = "tool calls"
"""The capability of calling tools (a :class:`~uniscale_integrations.models.ModelSpec` declares its format)."""
JSON_OUTPUT = "JSON output"
"""The capability of writing a JSON value that follows a schema given in the prompt."""

TOOL_CHOICES = ("auto", "required", "none")
"""``tool_choice`` keywords: the model may call a tool, must call one, or must not; any other value names a tool."""

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""A tool's name, as OpenAI's API takes it."""


def _checked_schema(option: str, schema: object, what: str | None = None) -> Mapping[str, Any]:
    """``schema`` when it is a valid JSON schema (any draft ``jsonschema`` knows), else :class:`InvalidOptionError`
    for ``option``, its message naming ``what`` (default: the option)."""
    from jsonschema import exceptions, validators

    what = what or option
    if not isinstance(schema, Mapping):
        raise InvalidOptionError(option, f"{what} must be a JSON schema (a mapping), got {type(schema).__name__}")
    try:
        validators.validator_for(schema).check_schema(schema)
        json.dumps(schema)
    except (exceptions.SchemaError, TypeError, ValueError) as exc:
        reason = exc.message if isinstance(exc, exceptions.SchemaError) else str(exc)
        raise InvalidOptionError(option, f"{what} is not a valid JSON schema: {reason}") from None
    return MappingProxyType(dict(schema))


@dataclass(frozen=True)
class Tool:
    """A function the model may call: its name, what it does, and its arguments' JSON schema."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: MappingProxyType({"type": "object", "properties": {}})
    )
    """A JSON schema of the arguments object."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise InvalidOptionError(
                "tools", f"a tool's name must be 1-64 letters, digits, '_' or '-', got {self.name!r}"
            )
        if not isinstance(self.description, str):
            raise InvalidOptionError("tools", f"tool {self.name!r}: the description must be a string")
        parameters = _checked_schema("tools", self.parameters, f"tool {self.name!r}'s parameters")
        object.__setattr__(self, "parameters", parameters)

    @classmethod
    def of(cls, spec: Tool | Mapping[str, Any]) -> Tool:
        """A tool from OpenAI's form (``{"type": "function", "function": {...}}``) or its inner function."""
        if isinstance(spec, Tool):
            return spec
        if not isinstance(spec, Mapping):
            raise InvalidOptionError("tools", f"a tool must be a mapping in OpenAI's form, got {type(spec).__name__}")
        function = spec.get("function", spec) if spec.get("type", "function") == "function" else None
        if not isinstance(function, Mapping) or "name" not in function:
            raise InvalidOptionError("tools", f"only function tools are supported, got {json.dumps(spec)[:200]}")
        parameters = function.get("parameters")
        if parameters is None:
            parameters = {"type": "object", "properties": {}}
        return cls(function["name"], function.get("description") or "", parameters)

    def argument_schema(self) -> dict[str, Any]:
        """:attr:`parameters` as plain (mutable, JSON-ready) data."""
        return _plain(self.parameters)

    def openai(self) -> dict[str, Any]:
        """The tool in OpenAI's form: what chat templates take as ``tools=``."""
        function = {"name": self.name, "description": self.description, "parameters": self.argument_schema()}
        return {"type": "function", "function": function}


@dataclass(frozen=True)
class ResponseFormat:
    """A reply that is one JSON value: one that follows :attr:`schema`, or any JSON object without one."""

    schema: Mapping[str, Any] | None = None
    name: str = "response"

    def __post_init__(self) -> None:
        if self.schema is not None:
            object.__setattr__(self, "schema", _checked_schema("response_format", self.schema))
        if not isinstance(self.name, str) or not self.name:
            raise InvalidOptionError("response_format", "response_format's name must be a non-empty string")

    @classmethod
    def of(cls, value: ResponseFormat | Mapping[str, Any] | None) -> ResponseFormat | None:
        """A response format from OpenAI's form: ``{"type": "json_schema", "json_schema": {"name", "schema"}}``,
        ``{"type": "json_object"}`` or ``{"type": "text"}`` (no format: ``None``)."""
        if value is None or isinstance(value, ResponseFormat):
            return value
        kind = value.get("type") if isinstance(value, Mapping) else None
        if kind == "text":
            return None
        if kind == "json_object":
            return cls()
        spec = value.get("json_schema") if isinstance(value, Mapping) else None
        if kind == "json_schema" and isinstance(spec, Mapping) and "schema" in spec:
            return cls(spec["schema"], spec.get("name") or "response")
        raise InvalidOptionError(
            "response_format",
            "response_format must be {'type': 'json_schema', 'json_schema': {'name': ..., 'schema': {...}}}, "
            f"{{'type': 'json_object'}} or {{'type': 'text'}}, got {value!r}",
        )

    @property
    def object_root(self) -> bool:
        """Whether the reply is a JSON object (what OpenAI requires of a schema's root, and JSON mode gives)."""
        return self.schema is None or self.schema.get("type", "object") == "object"

    def plain_schema(self) -> dict[str, Any] | None:
        """The schema as plain (mutable, JSON-ready) data."""
        return None if self.schema is None else _plain(self.schema)


def checked_tools(tools: Sequence[Tool | Mapping[str, Any]] | None) -> tuple[Tool, ...]:
    """The tools of a call, each checked; a tool given twice (a pydantic class and its JSON schema: equal but
    for titles) is kept once, two different tools of one name are refused."""
    if tools is None:
        return ()
    if isinstance(tools, str | Mapping) or not isinstance(tools, Sequence):
        raise InvalidOptionError("tools", f"tools must be a sequence of tools, got {type(tools).__name__}")
    by_name: dict[str, Tool] = {}
    for tool in map(Tool.of, tools):
        first = by_name.setdefault(tool.name, tool)
        if _untitled(first.openai()) != _untitled(tool.openai()):
            raise InvalidOptionError("tools", f"two different tools are named {tool.name!r}")
    return tuple(by_name.values())


def checked_tool_choice(choice: object, tools: Sequence[Tool]) -> str | None:
    """``choice`` as a keyword of :data:`TOOL_CHOICES` or a tool's name, checked against the tools (default
    ``"auto"`` with tools; ``None`` without, where only a choice that needs a tool is an error).

    Besides those it takes what the frameworks pass: ``"any"`` and ``True`` (``"required"``), and
    ``{"type": "function", "function": {"name": ...}}`` or ``{"name": ...}`` (that tool).
    """
    if choice is None:
        return "auto" if tools else None
    if choice is True or choice == "any":
        choice = "required"
    elif isinstance(choice, Mapping):
        function = choice.get("function", choice)
        name = function.get("name") if isinstance(function, Mapping) else None
        choice = name if name is not None else choice.get("type")
    if not isinstance(choice, str):
        raise InvalidOptionError(
            "tool_choice", f"tool_choice must be {', '.join(TOOL_CHOICES)} or a tool's name, got {choice!r}"
        )
    if not tools:
        if choice in ("auto", "none"):
            return None
        raise InvalidOptionError("tool_choice", f"tool_choice is {choice!r} but the call gives no tools")
    if choice in TOOL_CHOICES or choice in (tool.name for tool in tools):
        return choice
    names = ", ".join(tool.name for tool in tools)
    raise InvalidOptionError("tool_choice", f"tool_choice names no tool given: {choice!r} (the tools are: {names})")


def _untitled(value: Any) -> Any:
    """JSON-like data without its ``title`` keys (which name a schema, and change nothing it accepts)."""
    if isinstance(value, Mapping):
        return {key: _untitled(item) for key, item in value.items() if not (key == "title" and isinstance(item, str))}
    if isinstance(value, list):
        return [_untitled(item) for item in value]
    return value


def _plain(value: Any) -> Any:
    """A copy of JSON-like data with plain dicts and lists (read-only mappings undone)."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
