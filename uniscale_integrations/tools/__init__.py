"""Tool calling and structured output: tools and schemas a call asks for, the formats models write calls in,
and each candidate's reply read, checked and keyed for the vote. Framework-free, like the engine."""

from uniscale_integrations.tools.calls import Reply, ToolCall, canonical_json, new_call_id
from uniscale_integrations.tools.chat import answered_calls, needs, tool_fields
from uniscale_integrations.tools.formats import FORMATS, HERMES, MalformedCallError, ToolFormat
from uniscale_integrations.tools.reading import Asked, read_reply, schema_problem
from uniscale_integrations.tools.specs import (
    JSON_OUTPUT,
    TOOL_CALLS,
    TOOL_CHOICES,
    ResponseFormat,
    Tool,
    checked_tool_choice,
    checked_tools,
)

__all__ = [
    "FORMATS",
    "HERMES",
    "JSON_OUTPUT",
    "TOOL_CALLS",
    "TOOL_CHOICES",
    "Asked",
    "MalformedCallError",
    "Reply",
    "ResponseFormat",
    "Tool",
    "ToolCall",
    "ToolFormat",
    "answered_calls",
    "canonical_json",
    "checked_tool_choice",
    "checked_tools",
    "needs",
    "new_call_id",
    "read_reply",
    "schema_problem",
    "tool_fields",
]
