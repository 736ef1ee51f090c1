"""LangChain messages to the engine's chat format, and results back to message metadata."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ChatMessage, HumanMessage, SystemMessage
from langchain_core.messages.ai import UsageMetadata

from uniscale_integrations.engine import Result

_ROLES = {SystemMessage: "system", HumanMessage: "user", AIMessage: "assistant"}
METADATA_KEY = "uniscale"
"""Key of ``response_metadata`` under which the choice, its cost and its decision id live."""


def to_chat(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """The engine's chat (``role``/``content`` dicts) for LangChain messages.

    Raises ``ValueError`` on messages it cannot send to a local chat template: tool and
    function messages (ChatUniScale has no tool calling) and non-text content blocks.
    """
    chat = []
    for message in messages:
        role = _role(message)
        chat.append({"role": role, "content": _text(message)})
    if not any(m["role"] == "user" for m in chat):
        raise ValueError("ChatUniScale needs at least one human message to answer")
    return chat


def usage_metadata(result: Result) -> UsageMetadata:
    """Input, output and total tokens of every path and verifier call of ``result``."""
    usage = result.usage
    return UsageMetadata(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )


def response_metadata(result: Result) -> dict[str, Any]:
    """``model_name`` (the model that answered) and UniScale's record of the decision."""
    record = result.to_dict()
    return {"model_name": record["model"], "model_provider": "uniscale", "finish_reason": "stop", METADATA_KEY: record}


def decision_id_of(message: BaseMessage) -> str | None:
    """The decision id a ChatUniScale response carries, if any."""
    record = message.response_metadata.get(METADATA_KEY)
    return record.get("decision_id") if isinstance(record, dict) else None


def _role(message: BaseMessage) -> str:
    for cls, role in _ROLES.items():
        if isinstance(message, cls):
            return role
    if isinstance(message, ChatMessage) and message.role in ("system", "user", "assistant"):
        return message.role
    raise ValueError(
        f"ChatUniScale cannot send a {type(message).__name__} (role {message.type!r}) to a local chat template; "
        "it takes system, human and AI messages (it has no tool calling)"
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
        else:
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise ValueError(f"ChatUniScale takes text only; got a {kind!r} content block")
    return "".join(parts)
