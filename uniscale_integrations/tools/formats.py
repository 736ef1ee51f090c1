"""How a model family writes tool calls: the response template transformers' ``parse_response`` reads them
with, the text that opens a call (to force one, or to keep a reply from starting one), and leniency for
what small models write instead.

Only the Hermes format is known so far (:data:`HERMES`): Qwen2.5's chat template asks for
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``. Qwen2.5-Coder-0.5B often writes the
call object bare or in a ```json fence instead; :meth:`ToolFormat.calls` reads those too, for the
tools it was given.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from uniscale_integrations.tools.specs import Tool

_FENCE = re.compile(r"^```[A-Za-z]*\s*\n?(.*?)\s*```\s*$", re.DOTALL)
_FENCES = re.compile(r"```[A-Za-z]*\s*\n?(.*?)\s*```", re.DOTALL)
_CALL_START = re.compile(r'^\[?\s*\{\s*"name"\s*:')


class MalformedCallError(ValueError):
    """A reply that opens a tool call but whose call cannot be read."""


@dataclass(frozen=True)
class ToolFormat:
    """One family's tool-call syntax: a call is ``open`` + ``{"name": ..., "arguments": {...}}`` + ``close``."""

    name: str
    open: str
    close: str
    response_template: Mapping[str, Any]
    """transformers' response template (``tokenizer.parse_response(..., schema=...)``) for the family."""
    openings: tuple[str, ...]
    """What a reply that starts a call begins with: a reply that must be text may not start so."""

    def opening(self, choice: str | None, tools: Sequence[Tool]) -> tuple[str, tuple[str, ...]]:
        """The start of the reply written for the model, and the texts one of which the model must write next:
        when ``choice`` requires a call (``"required"`` or a tool's name) the call's opening up to its arguments,
        with the tool's name written for the model (one tool) or chosen among the tools' names (several);
        else nothing."""
        if choice is None or choice in ("auto", "none"):
            return "", ()
        head = f'{self.open}\n{{"name": '
        if choice == "required" and len(tools) > 1:
            return head + '"', tuple(f'{tool.name}", "arguments": {_arguments_opening(tool)}' for tool in tools)
        tool = tools[0] if choice == "required" else next(t for t in tools if t.name == choice)
        return f'{head}{json.dumps(tool.name)}, "arguments": {_arguments_opening(tool)}', ()

    def calls(self, text: str, tools: Sequence[Tool]) -> tuple[list[dict[str, Any]], str]:
        """The calls ``text`` makes (``{"name", "arguments"}``, arguments cast by their tool's schema) and its
        other text; :class:`MalformedCallError` when a call cannot be read."""
        from transformers.utils.chat_parsing import parse_response

        if self.open not in text:
            bare, rest = _bare_calls(text, {tool.name for tool in tools})
            if not bare:
                return [], rest
            tagged = (f"{self.open}\n{json.dumps(call, ensure_ascii=False)}\n{self.close}" for call in bare)
            text = rest + "".join(tagged)
        try:
            message = parse_response(text, dict(self.response_template), prefix="", tools=[t.openai() for t in tools])
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedCallError(f"the tool call cannot be read: {str(exc).splitlines()[0]}") from None
        calls = []
        for raw in message.get("tool_calls", []):
            function = raw.get("function") if isinstance(raw, Mapping) else None
            if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
                raise MalformedCallError(f"a tool call without a name: {json.dumps(raw, ensure_ascii=False)[:200]}")
            calls.append({"name": function["name"], "arguments": function.get("arguments", {})})
        return calls, str(message.get("content") or "").strip()


def _arguments_opening(tool: Tool) -> str:
    """How a forced call's arguments start: with the first required argument's key, and a string's opening quote
    (the model writes its value and the rest: small models otherwise leave strings unquoted), ``{`` when none is
    required, ``{}}`` for a tool that takes no arguments."""
    required = tool.parameters.get("required") or ()
    if required:
        kind = (tool.parameters.get("properties") or {}).get(required[0], {}).get("type")
        return f"{{{json.dumps(required[0])}: " + ('"' if kind == "string" else "")
    return "{" if tool.parameters.get("properties") else "{}}"


def _bare_calls(text: str, names: set[str]) -> tuple[list[dict[str, Any]], str]:
    """The call objects written without the format's tags, and the text around them: either all of ``text``
    (bare, or in one code fence) is call objects (``{"name": ..., "arguments": ...}``, or objects whose
    ``name`` is a tool's), or one code fence amid prose holds calls of known tools. :class:`MalformedCallError`
    when the whole text opens like a call but cannot be read (cut at the token limit)."""
    body = text.strip()
    fenced = _FENCE.match(body)
    whole = fenced.group(1) if fenced else body
    if _CALL_START.match(whole):
        calls = _call_objects(whole, names)
        if calls is None:
            raise MalformedCallError("the tool call cannot be read (cut short, or not JSON)")
        return calls, ""
    for block in _FENCES.finditer(body):
        calls = _call_objects(block.group(1), names) if _CALL_START.match(block.group(1)) else None
        if calls and all(call["name"] in names for call in calls):
            return calls, (body[: block.start()] + body[block.end() :]).strip()
    return [], body


def _call_objects(body: str, names: set[str]) -> list[dict[str, Any]] | None:
    """The call objects ``body`` is made of (JSON objects or lists of them, one after another); ``[]`` when one
    is not call-shaped, ``None`` when the JSON cannot be read. A body cut short after whole calls (a small model
    repeating its call until the token limit) keeps those calls."""
    decoder = json.JSONDecoder()
    calls: list[dict[str, Any]] = []
    position = 0
    while position < len(body):
        try:
            value, position = decoder.raw_decode(body, position)
        except json.JSONDecodeError:
            return calls or None
        values = value if isinstance(value, list) else [value]
        if not all(_call_shaped(v, names) for v in values):
            return []
        calls.extend(values)
        while position < len(body) and body[position] in " \t\r\n,":
            position += 1
    return calls


def _call_shaped(value: object, names: set[str]) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("name"), str)
        and (set(value) <= {"name", "arguments"} or value["name"] in names)
    )


HERMES = ToolFormat(
    name="hermes",
    open="<tool_call>",
    close="</tool_call>",
    response_template={
        "defaults": {"role": "assistant"},
        "start_anchor": "<|im_start|>assistant\n",
        "fields": {
            "tool_calls": {
                "open": "<tool_call>",
                "close": "</tool_call>",
                "repeats": True,
                "content": "json",
                "transform": {"type": "function", "function": "{content}"},
            },
            "content": {"close": "<|im_end|>", "content": "text"},
        },
    },
    openings=("<tool_call>", "{", "[", "```"),
)
"""Qwen2.5's (and NousResearch Hermes') format: ``<tool_call>\\n{"name": ..., "arguments": ...}\\n</tool_call>``."""


FORMATS: Mapping[str, ToolFormat] = {HERMES.name: HERMES}
"""The tool-call formats a :class:`~uniscale_integrations.models.ModelSpec` may name."""
