"""Engine results as LlamaIndex responses: the winning path's text plus UniScale's metadata."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseGen,
    MessageRole,
)

from uniscale_integrations.engine import Result

DECISION_ID_KEY = "decision_id"


def result_metadata(result: Result) -> dict[str, Any]:
    """What ``additional_kwargs`` carries: the usage's token counts and UniScale's record of the decision."""
    return {**result.usage.tokens(), **result.to_dict()}


def _raw(metadata: dict[str, Any]) -> dict[str, Any]:
    """``raw`` in the shape LlamaIndex's token counting reads: the usage under ``"usage"``."""
    usage = {k: metadata[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    return {"usage": usage, **{k: v for k, v in metadata.items() if k not in usage}}


def chat_response(result: Result) -> ChatResponse:
    metadata = result_metadata(result)
    message = ChatMessage(role=MessageRole.ASSISTANT, content=result.text)
    return ChatResponse(message=message, raw=_raw(metadata), additional_kwargs=metadata)


def completion_response(result: Result) -> CompletionResponse:
    metadata = result_metadata(result)
    return CompletionResponse(text=result.text, raw=_raw(metadata), additional_kwargs=metadata)


def chat_chunks(result: Result) -> ChatResponseGen:
    """The winning text word by word (one empty piece for an empty text); every chunk names the decision,
    the last carries all metadata."""
    pieces = result.pieces() or [""]
    so_far = ""
    for i, piece in enumerate(pieces):
        so_far += piece
        last = i == len(pieces) - 1
        metadata = result_metadata(result) if last else {DECISION_ID_KEY: result.decision_id}
        yield ChatResponse(
            message=ChatMessage(role=MessageRole.ASSISTANT, content=so_far),
            delta=piece,
            raw=_raw(metadata) if last else None,
            additional_kwargs=metadata,
        )


def completion_chunks(result: Result) -> CompletionResponseGen:
    """As :func:`chat_chunks`, for completions."""
    for chunk in chat_chunks(result):
        text = chunk.message.content or ""
        yield CompletionResponse(text=text, delta=chunk.delta, raw=chunk.raw, additional_kwargs=chunk.additional_kwargs)
