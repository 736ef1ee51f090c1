"""Structured replies in the search: how a call that asks for tool calls or JSON is put to the model, and what
is left of its budget for one retry.

- **Tool calls**: the tools go to the chat template (``tools=``); ``tool_choice="required"`` or a tool's name
  writes the opening of a call for the model (the Hermes ``<tool_call>`` and, for a named tool, its name), so
  the call is made; ``"none"`` shows no tools and keeps the reply's first token from opening a call.
- **JSON**: the question gets an instruction that lists the schema's keys (small models copy a raw JSON
  schema instead of filling it in) and the reply starts with ``{"`` written for the model.

Each candidate's reply is then read (:func:`~uniscale_integrations.tools.read_reply`): one that fails its
tool's or its reply's schema casts no vote. When every reply was refused, the retry for a text reply asks for
one in words (:func:`text_request`): small models otherwise write a call again, as text.

>>> from uniscale_integrations.tools import Asked, ResponseFormat
>>> schema = {"type": "object", "properties": {"city": {"type": "string", "description": "where"},
...           "sunny": {"type": "boolean"}}, "required": ["city"]}
>>> print(reply_instruction(Asked(response_format=ResponseFormat(schema)), None))
Reply with only a JSON object with these keys:
- city (string): where
- sunny (boolean, optional)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from uniscale_integrations.reward.budget import Budget
from uniscale_integrations.tools import Asked, ResponseFormat

ONLY_JSON = "Reply with only a JSON object"
TEXT_REPLY = "Answer the user's question in plain text, without calling a tool."
TEXT_REPLY_FROM_RESULTS = (
    "Answer the user's question in plain text from the tool results above, without calling a tool."
)


def text_request(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` with a last system message that asks for a plain-text answer (from the tool results, when the
    chat holds some): what the retry for a text reply sends.

    >>> text_request([{"role": "user", "content": "2 + 3?"}])[-1]["content"]
    "Answer the user's question in plain text, without calling a tool."
    """
    results = any(message.get("role") == "tool" for message in messages)
    return [*map(dict, messages), {"role": "system", "content": TEXT_REPLY_FROM_RESULTS if results else TEXT_REPLY}]


def reply_instruction(asked: Asked, style: str | None) -> str | None:
    """What the question is followed by: the answer ``style``'s instruction for a text reply, the JSON reply's
    keys for a JSON one, nothing for tool calls (the template shows the tools)."""
    if asked.response_format is None:
        return None if asked.calls_tools else style
    instruction = _json_instruction(asked.response_format)
    if asked.calls_tools:
        return f"When you answer without calling a tool, {instruction[0].lower()}{instruction[1:]}"
    return instruction


def remaining(budget: Budget | None, *, eflops: float, tokens: int, seconds: float) -> Budget | None:
    """What ``budget`` leaves after what was spent (itself when ``None``); :class:`ValueError` when a cap is reached."""
    if budget is None:
        return None
    left: dict[str, Any] = {}
    for cap, spent in (("eflops", eflops), ("tokens", tokens), ("seconds", seconds)):
        limit = getattr(budget, cap)
        if limit is not None:
            left[cap] = limit - spent if cap != "tokens" else int(limit - spent)
    return Budget(**left)


def _json_instruction(response_format: ResponseFormat) -> str:
    schema = response_format.plain_schema()
    if schema is None:
        return f"{ONLY_JSON}."
    if not response_format.object_root:
        return f"Reply with only a JSON value that follows this JSON schema:\n{json.dumps(schema)}"
    properties = schema.get("properties")
    if not isinstance(properties, Mapping) or not properties:
        return f"{ONLY_JSON} that follows this JSON schema:\n{json.dumps(schema)}"
    required = set(schema.get("required", ()))
    lines = [f"{ONLY_JSON} with these keys:"]
    for key, spec in properties.items():
        kind = _kind(spec) + ("" if key in required else ", optional")
        description = spec.get("description") if isinstance(spec, Mapping) else None
        lines.append(f"- {key} ({kind})" + (f": {description}" if description else ""))
    return "\n".join(lines)


def _kind(spec: object) -> str:
    """A property's type in words: ``string``, ``integer or null``, ``object`` for a reference."""
    if not isinstance(spec, Mapping):
        return "any"
    kind = spec.get("type")
    if isinstance(kind, str):
        return kind
    if isinstance(kind, list):
        return " or ".join(map(str, kind))
    options = spec.get("anyOf") or spec.get("oneOf")
    if isinstance(options, list):
        return " or ".join(_kind(option) for option in options)
    if "$ref" in spec:
        return "object"
    if "enum" in spec:
        return "one of " + ", ".join(json.dumps(v) for v in spec["enum"])
    return "any"
