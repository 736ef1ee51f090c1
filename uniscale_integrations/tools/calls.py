"""A model's structured reply: the tool calls it made or the JSON value it wrote, and what it votes for.

>>> call = ToolCall("add", {"b": 2, "a": 1})
>>> call.key, call.key == ToolCall("add", {"a": 1, "b": 2}).key
('["add",{"a":1,"b":2}]', True)
>>> two = Reply(tool_calls=(call, ToolCall("sub", {})))
>>> two.key == Reply(tool_calls=(ToolCall("sub", {}), call)).key
True
>>> Reply(data={"x": 1}).key, Reply(content="oops", problem="not JSON").key
('{"x":1}', None)
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any


def canonical_json(value: Any) -> str:
    """One spelling of a JSON value: keys sorted, no spaces, Unicode kept (what equal values vote as)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def new_call_id() -> str:
    """A fresh tool-call id in OpenAI's shape (``call_`` and 24 hex digits)."""
    return f"call_{uuid.uuid4().hex[:24]}"


@dataclass(frozen=True)
class ToolCall:
    """One call of a tool: its name and its arguments (cast by the tool's schema); ``id`` pairs it with its result."""

    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=new_call_id, compare=False)

    @property
    def key(self) -> str:
        """What the call votes as: the tool's name and its canonical arguments."""
        return canonical_json([self.name, self.arguments])

    def message_form(self) -> dict[str, Any]:
        """The call as an assistant message holds it for a chat template (arguments as an object)."""
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True)
class Reply:
    """A reply read against what the call asked for: tool calls, a JSON value, or text.

    ``problem`` says why it was refused (a malformed call, an unknown tool, a schema violation);
    a refused reply casts no vote and is returned, as text, only when no candidate did better.
    """

    content: str = ""
    """The text besides the calls (usually empty), or the JSON value's text."""
    tool_calls: tuple[ToolCall, ...] = ()
    data: Any = None
    """The JSON value of a reply that had to be one (``None`` otherwise)."""
    problem: str | None = None

    @property
    def key(self) -> str | None:
        """What the reply votes for: its calls (in any order), else its JSON value; ``None`` for refused or text."""
        if self.problem is not None:
            return None
        if self.tool_calls:
            return canonical_json(sorted(call.key for call in self.tool_calls))
        return canonical_json(self.data) if self.data is not None else None
