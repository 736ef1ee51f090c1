"""LangChain messages to the engine's chat format, and results back to messages and their metadata."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call, tool_call_chunk

from uniscale_integrations.engine import Result
from uniscale_integrations.tools import canonical_json

_ROLES = {SystemMessage: "system", HumanMessage: "user", AIMessage: "assistant", ToolMessage: "tool"}
_CALL_BLOCKS = ("tool_use", "tool_call", "function_call")
"""Content blocks of an AI message that repeat its ``tool_calls`` (Anthropic's ``tool_use``, v1's ``tool_call``)."""
METADATA_KEY = "uniscale"
"""Key of ``response_metadata`` under which the choice, its cost and its decision id live."""


def to_chat(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """The engine's chat (``role``/``content`` dicts, with an AI message's ``tool_calls`` and a tool message's
    ``tool_call_id``) for LangChain messages; the model's chat template renders them.

    Raises ``ValueError`` on messages it cannot send to a local chat template (function messages, non-text
    content blocks).
    """
    chat = []
    for message in messages:
        entry: dict[str, Any] = {"role": _role(message), "content": _text(message)}
        if isinstance(message, AIMessage) and message.tool_calls:
            entry["tool_calls"] = [
                {
                    "id": call.get("id") or "",
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["args"]},
                }
                for call in message.tool_calls
            ]
        if isinstance(message, ToolMessage):
            entry["tool_call_id"] = message.tool_call_id
            if message.name:
                entry["name"] = message.name
        chat.append(entry)
    if not any(m["role"] == "user" for m in chat):
        raise ValueError("ChatUniScale needs at least one human message to answer")
    return chat


def ai_message(result: Result) -> AIMessage:
    """The response of ``result``: its text, its tool calls (each with its id), usage and metadata."""
    calls = result.reply.tool_calls if result.reply is not None else ()
    return AIMessage(
        content=result.text,
        tool_calls=[tool_call(name=c.name, args=c.arguments, id=c.id) for c in calls],
        usage_metadata=usage_metadata(result),
        response_metadata=response_metadata(result),
    )


def ai_chunks(result: Result) -> list[AIMessageChunk]:
    """The response of ``result`` as stream chunks: the text piece by piece, one chunk per tool call (its
    arguments as JSON text, which LangChain parses back when the chunks are added), and a last chunk with
    usage and metadata."""
    chunks = [AIMessageChunk(content=piece) for piece in result.pieces()]
    calls = result.reply.tool_calls if result.reply is not None else ()
    chunks += [
        AIMessageChunk(
            content="",
            tool_call_chunks=[tool_call_chunk(name=c.name, args=canonical_json(c.arguments), id=c.id, index=i)],
        )
        for i, c in enumerate(calls)
    ]
    last = AIMessageChunk(
        content="",
        usage_metadata=usage_metadata(result),
        response_metadata=response_metadata(result),
        chunk_position="last",
    )
    return [*chunks, last]


def usage_metadata(result: Result) -> UsageMetadata:
    """Input, output and total tokens of every path and verifier call of ``result``."""
    usage = result.usage
    return UsageMetadata(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )


def response_metadata(result: Result) -> dict[str, Any]:
    """``model_name`` (the model that answered), the finish reason and UniScale's record of the decision."""
    record = result.to_dict()
    calls = result.reply is not None and result.reply.tool_calls
    return {
        "model_name": record["model"],
        "model_provider": "uniscale",
        "finish_reason": "tool_calls" if calls else "stop",
        METADATA_KEY: record,
    }


def decision_id_of(message: BaseMessage) -> str | None:
    """The decision id a ChatUniScale response carries, if any."""
    record = message.response_metadata.get(METADATA_KEY)
    return record.get("decision_id") if isinstance(record, dict) else None


def _role(message: BaseMessage) -> str:
    for cls, role in _ROLES.items():
        if isinstance(message, cls):
            return role
    if isinstance(message, ChatMessage) and message.role in ("system", "user", "assistant", "tool"):
        return message.role
    raise ValueError(
        f"ChatUniScale cannot send a {type(message).__name__} (role {message.type!r}) to a local chat template; "
        "it takes system, human, AI and tool messages"
    )


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif not (isinstance(message, AIMessage) and isinstance(block, dict) and block.get("type") in _CALL_BLOCKS):
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise ValueError(f"ChatUniScale takes text only; got a {kind!r} content block")
    return "".join(parts)
