"""LlamaIndex chat messages and call options, as the engine takes them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from llama_index.core.base.llms.types import ChatMessage, MessageRole, TextBlock, ToolCallBlock

from uniscale_integrations.errors import InvalidOptionError
from uniscale_integrations.features.query import Message
from uniscale_integrations.features.space import Config
from uniscale_integrations.options import RunOptions

_ROLES = {
    MessageRole.SYSTEM: "system",
    MessageRole.DEVELOPER: "system",
    MessageRole.USER: "user",
    MessageRole.ASSISTANT: "assistant",
    MessageRole.CHATBOT: "assistant",
    MessageRole.MODEL: "assistant",
    MessageRole.TOOL: "tool",
    MessageRole.FUNCTION: "tool",
}


def to_chat(messages: Sequence[ChatMessage]) -> list[Message]:
    """``[{"role", "content"}]`` for the engine; text only (other blocks raise a ``ValueError``), with an assistant's
    tool calls (its ``ToolCallBlock``s) and a tool message's ``tool_call_id``, for the model's chat template."""
    if isinstance(messages, str | ChatMessage) or not isinstance(messages, Sequence):
        raise TypeError(f"messages must be a sequence of ChatMessage, got {type(messages).__name__}")
    chat = []
    for message in messages:
        if not isinstance(message, ChatMessage):
            raise TypeError(f"messages must be ChatMessage objects, got {type(message).__name__}")
        other = [type(block).__name__ for block in message.blocks if not isinstance(block, TextBlock | ToolCallBlock)]
        if other:
            raise ValueError(f"UniScaleLLM takes text only; a {message.role.value} message holds {', '.join(other)}")
        entry: dict[str, Any] = {"role": _ROLES[message.role], "content": message.content or ""}
        calls = [block for block in message.blocks if isinstance(block, ToolCallBlock)]
        if calls:
            entry["tool_calls"] = [
                {"id": call.tool_call_id or "", "function": {"name": call.tool_name, "arguments": call.tool_kwargs}}
                for call in calls
            ]
        call_id = message.additional_kwargs.get("tool_call_id")
        if entry["role"] == "tool" and call_id is not None:
            entry["tool_call_id"] = str(call_id)
        chat.append(entry)
    return chat


class CallOptions(TypedDict, total=False):
    """The per-call options of :class:`~uniscale_integrations.llama_index.UniScaleLLM`; anything else is refused."""

    max_tokens: int
    """New tokens per path (default: the LLM's ``max_tokens``, else the engine's)."""
    temperature: float
    """Temperature of sampled paths (default: the LLM's ``temperature``, else the engine's)."""
    stop: str | Sequence[str]
    seed: int
    config: Config | str
    """Force this configuration (a ``Config`` or its ``"S/qp1/cp1/bs1"`` form) instead of the policy's choice."""
    tools: Sequence[Mapping[str, Any]]
    """OpenAI tool dicts (what ``chat_with_tools`` passes); only models that declare tool calls are chosen."""
    tool_choice: str | Mapping[str, Any]
    """``"auto"``, ``"required"``, ``"none"`` or a tool's name (or OpenAI's ``{"type": "function", ...}``)."""
    parallel_tool_calls: bool
    response_format: Mapping[str, Any]
    """OpenAI's ``response_format`` (``json_schema`` or ``json_object``)."""


def run_options(
    options: Mapping[str, Any], *, max_tokens: int | None = None, temperature: float | None = None
) -> RunOptions:
    """The engine's :class:`~uniscale_integrations.options.RunOptions` of one call; ``max_tokens`` and
    ``temperature`` fill in what the call leaves unset."""
    unknown = sorted(set(options) - CallOptions.__optional_keys__)
    if unknown:
        raise InvalidOptionError(unknown[0], f"UniScaleLLM got unexpected call options {unknown}")
    return RunOptions(
        config=options.get("config"),
        stop=options.get("stop", ()),
        seed=options.get("seed"),
        max_new_tokens=options.get("max_tokens"),
        temperature=options.get("temperature"),
        tools=options.get("tools"),
        tool_choice=options.get("tool_choice"),
        parallel_tool_calls=options.get("parallel_tool_calls", True),
        response_format=options.get("response_format"),
    ).or_defaults(max_new_tokens=max_tokens, temperature=temperature)
