"""Engine results as LlamaIndex responses: the winning path's text and tool calls plus UniScale's metadata."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseGen,
    MessageRole,
    TextBlock,
    ToolCallBlock,
)

from uniscale_integrations.engine import Result
from uniscale_integrations.tools import canonical_json

DECISION_ID_KEY = "decision_id"


def result_metadata(result: Result) -> dict[str, Any]:
    """What ``additional_kwargs`` carries: the usage's token counts and UniScale's record of the decision."""
    return {**result.usage.tokens(), **result.to_dict()}


def _raw(metadata: dict[str, Any]) -> dict[str, Any]:
    """``raw`` in the shape LlamaIndex's token counting reads: the usage under ``"usage"``."""
    usage = {k: metadata[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    return {"usage": usage, **{k: v for k, v in metadata.items() if k not in usage}}


def call_blocks(result: Result) -> list[ToolCallBlock]:
    """The tool calls of ``result`` (none for a text reply), each with its id and its arguments as an object."""
    calls = result.reply.tool_calls if result.reply is not None else ()
    return [ToolCallBlock(tool_call_id=c.id, tool_name=c.name, tool_kwargs=c.arguments) for c in calls]


def chat_response(result: Result) -> ChatResponse:
    metadata = result_metadata(result)
    message = ChatMessage(role=MessageRole.ASSISTANT, blocks=[TextBlock(text=result.text), *call_blocks(result)])
    return ChatResponse(message=message, raw=_raw(metadata), additional_kwargs=metadata)


def completion_response(result: Result) -> CompletionResponse:
    metadata = result_metadata(result)
    return CompletionResponse(text=result.text, raw=_raw(metadata), additional_kwargs=metadata)


def chat_chunks(result: Result) -> ChatResponseGen:
    """The winning text word by word (one empty piece for an empty text), then its tool calls one by one, each
    call's arguments first half-written (JSON text, as a provider streams them), then whole; every chunk names the
    decision, the last carries all metadata."""
    pieces = result.pieces() or [""]
    steps: list[tuple[str, list[ToolCallBlock]]] = [(piece, []) for piece in pieces]
    calls = call_blocks(result)
    for i, call in enumerate(calls):
        text = canonical_json(call.tool_kwargs)
        partial = call.model_copy(update={"tool_kwargs": text[: max(1, len(text) // 2)]})
        steps += [("", [*calls[:i], partial]), ("", calls[: i + 1])]
    text = ""
    for i, (piece, blocks) in enumerate(steps):
        text += piece
        last = i == len(steps) - 1
        metadata = result_metadata(result) if last else {DECISION_ID_KEY: result.decision_id}
        yield ChatResponse(
            message=ChatMessage(role=MessageRole.ASSISTANT, blocks=[TextBlock(text=text), *blocks]),
            delta=piece,
            raw=_raw(metadata) if last else None,
            additional_kwargs=metadata,
        )


def completion_chunks(result: Result) -> CompletionResponseGen:
    """As :func:`chat_chunks`, for completions."""
    for chunk in chat_chunks(result):
        text = chunk.message.content or ""
        yield CompletionResponse(text=text, delta=chunk.delta, raw=chunk.raw, additional_kwargs=chunk.additional_kwargs)
