"""Engine results as LlamaIndex responses: the winning path's text plus UniScale's metadata."""

from __future__ import annotations

import re
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
_CHUNK = re.compile(r"\s*\S+\s*|\s+")


def result_metadata(result: Result, model_name: str) -> dict[str, Any]:
    """What ``additional_kwargs`` carries: usage, config, cost, score, decision and the policy's estimate."""
    usage = result.usage
    metadata: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "model": model_name,
        "config": str(result.config),
        "eflops": result.eflops,
        "cost": result.cost,
        "score": result.score,
        "answer": result.answer,
        "seconds": result.seconds,
        DECISION_ID_KEY: result.decision_id,
    }
    if result.estimate is not None:
        metadata.update(mean=result.estimate.mean, width=result.estimate.width, ucb=result.estimate.ucb)
    return metadata


def _raw(metadata: dict[str, Any]) -> dict[str, Any]:
    """``raw`` in the shape LlamaIndex's token counting reads: the usage under ``"usage"``."""
    usage = {k: metadata[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    return {"usage": usage, **{k: v for k, v in metadata.items() if k not in usage}}


def chat_response(result: Result, model_name: str) -> ChatResponse:
    metadata = result_metadata(result, model_name)
    message = ChatMessage(role=MessageRole.ASSISTANT, content=result.text)
    return ChatResponse(message=message, raw=_raw(metadata), additional_kwargs=metadata)


def completion_response(result: Result, model_name: str) -> CompletionResponse:
    metadata = result_metadata(result, model_name)
    return CompletionResponse(text=result.text, raw=_raw(metadata), additional_kwargs=metadata)


def _chunks(text: str) -> list[str]:
    """``text`` in word-sized pieces (whitespace kept) that join back to it; one empty piece for ``""``."""
    return _CHUNK.findall(text) or [""]


def chat_chunks(result: Result, model_name: str) -> ChatResponseGen:
    """The winning text word by word; every chunk names the decision, the last carries all metadata."""
    pieces = _chunks(result.text)
    so_far = ""
    for i, piece in enumerate(pieces):
        so_far += piece
        last = i == len(pieces) - 1
        metadata = result_metadata(result, model_name) if last else {DECISION_ID_KEY: result.decision_id}
        yield ChatResponse(
            message=ChatMessage(role=MessageRole.ASSISTANT, content=so_far),
            delta=piece,
            raw=_raw(metadata) if last else None,
            additional_kwargs=metadata,
        )


def completion_chunks(result: Result, model_name: str) -> CompletionResponseGen:
    """As :func:`chat_chunks`, for completions."""
    for chunk in chat_chunks(result, model_name):
        text = chunk.message.content or ""
        yield CompletionResponse(text=text, delta=chunk.delta, raw=chunk.raw, additional_kwargs=chunk.additional_kwargs)
