"""LlamaIndex chat messages and call options, as the engine takes them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole, TextBlock
from pydantic import BaseModel, ConfigDict, Field, field_validator

from uniscale_integrations.engine import Message
from uniscale_integrations.features.space import Config

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
    """``[{"role", "content"}]`` for the engine; text only (other blocks raise a ``ValueError``)."""
    if isinstance(messages, str | ChatMessage) or not isinstance(messages, Sequence):
        raise TypeError(f"messages must be a sequence of ChatMessage, got {type(messages).__name__}")
    chat = []
    for message in messages:
        if not isinstance(message, ChatMessage):
            raise TypeError(f"messages must be ChatMessage objects, got {type(message).__name__}")
        other = [type(block).__name__ for block in message.blocks if not isinstance(block, TextBlock)]
        if other:
            raise ValueError(f"UniScaleLLM takes text only; a {message.role.value} message holds {', '.join(other)}")
        chat.append({"role": _ROLES[message.role], "content": message.content or ""})
    return chat


class CallOptions(BaseModel):
    """Per-call options of :class:`~uniscale_integrations.llama_index.UniScaleLLM`; anything else is refused."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    max_tokens: int | None = Field(default=None, gt=0, strict=True)
    temperature: float | None = Field(default=None, ge=0.0)
    stop: tuple[str, ...] = ()
    seed: int | None = Field(default=None, strict=True)
    config: Config | None = None
    """Force this configuration (a ``Config`` or its ``"S/qp1/cp1/bs1"`` form) instead of the policy's choice."""

    @field_validator("temperature")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("temperature must be finite")
        return value

    @field_validator("stop", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("config", mode="before")
    @classmethod
    def _parse_config(cls, value: Any) -> Any:
        return Config.parse(value) if isinstance(value, str) else value

    def run_kwargs(self, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments for ``engine.run``; ``defaults`` fills ``max_tokens``/``temperature`` left unset."""
        max_tokens = self.max_tokens if self.max_tokens is not None else defaults.get("max_tokens")
        temperature = self.temperature if self.temperature is not None else defaults.get("temperature")
        return {
            "config": self.config,
            "stop": self.stop,
            "seed": self.seed,
            "max_new_tokens": max_tokens,
            "temperature": temperature,
        }
