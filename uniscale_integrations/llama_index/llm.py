"""``UniScaleLLM``: the UniScale engine as a LlamaIndex chat LLM that calls tools (a ``FunctionCallingLLM``)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    ToolCallBlock,
)
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW, DEFAULT_NUM_OUTPUTS
from llama_index.core.instrumentation.span import active_span_id
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.llms.utils import parse_partial_json
from pydantic import Field, PrivateAttr

from uniscale_integrations.engine import Result, UniScale
from uniscale_integrations.features.query import Message
from uniscale_integrations.llama_index.events import CallForwarder, forward_feedback
from uniscale_integrations.llama_index.messages import run_options, to_chat
from uniscale_integrations.llama_index.responses import (
    chat_chunks,
    chat_response,
    completion_chunks,
    completion_response,
)
from uniscale_integrations.tools import TOOL_CALLS

if TYPE_CHECKING:
    from llama_index.core.tools import BaseTool

logger = logging.getLogger(__name__)


class UniScaleLLM(FunctionCallingLLM):
    """Per call, UniScale picks the model and the test-time scaling, runs it and answers.

    ``UniScaleLLM()`` uses ``UniScale.from_defaults()``; pass ``engine=`` to share or tune one.
    Responses' ``additional_kwargs`` (and ``raw``) carry the usage, the chosen config, its eFLOPs,
    the verifier score and the ``decision_id`` to give feedback on. Per-call options: ``max_tokens``,
    ``temperature``, ``stop``, ``seed`` and ``config`` (force a configuration), and the tool options of
    :class:`~uniscale_integrations.llama_index.messages.CallOptions`.

    Tool calling (``chat_with_tools``, ``FunctionAgent``, ``structured_predict``): calls with tools only go
    to models that declare tool calls (M and L; S's chat template takes none); a CP > 1 configuration's
    candidates vote on the call. Tool calls come back as ``ToolCallBlock``s of the response's message.
    """

    max_tokens: int | None = Field(default=None, gt=0, description="New tokens per path (default: the engine's).")
    temperature: float | None = Field(
        default=None, ge=0.0, description="Temperature of sampled paths (default: the engine's)."
    )
    _engine: UniScale = PrivateAttr()

    def __init__(self, engine: UniScale | None = None, **kwargs: Any) -> None:
        if engine is not None and not isinstance(engine, UniScale):
            raise TypeError(f"engine must be a UniScale engine, got {type(engine).__name__}")
        super().__init__(**kwargs)
        self._engine = engine if engine is not None else UniScale.from_defaults()
        forward_feedback(self._engine)

    @classmethod
    def class_name(cls) -> str:
        return "UniScaleLLM"

    @property
    def engine(self) -> UniScale:
        return self._engine

    @property
    def metadata(self) -> LLMMetadata:
        engine = self._engine
        names = [engine.model_name(model) for model in engine.space.models]
        num_output: int = getattr(engine.executor, "max_new_tokens", DEFAULT_NUM_OUTPUTS)
        return LLMMetadata(
            context_window=engine.context_window or DEFAULT_CONTEXT_WINDOW,
            num_output=self.max_tokens if self.max_tokens is not None else num_output,
            is_chat_model=True,
            is_function_calling_model=any(
                TOOL_CALLS in engine.specs[m].capabilities for m in engine.space.models if m in engine.specs
            ),
            model_name=names[0] if len(names) == 1 else f"uniscale({', '.join(names)})",
        )

    def _run(self, chat: list[Message], options: dict[str, Any], span_id: str | None) -> Result:
        """Run the engine under the LLM call's span."""
        call = run_options(options, max_tokens=self.max_tokens, temperature=self.temperature)
        result = self._engine.run(chat, call, listeners=[CallForwarder(span_id)])
        logger.debug("UniScaleLLM call %s: decision %s, %s", span_id, result.decision_id, result.config)
        return result

    async def _arun(self, chat: list[Message], options: dict[str, Any]) -> Result:
        return await asyncio.to_thread(self._run, chat, options, active_span_id.get())

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return chat_response(self._run(to_chat(messages), kwargs, active_span_id.get()))

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return completion_response(self._run(_prompt_chat(prompt), kwargs, active_span_id.get()))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        # The engine runs now, inside the call's span; the answer then streams in chunks.
        return chat_chunks(self._run(to_chat(messages), kwargs, active_span_id.get()))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        return completion_chunks(self._run(_prompt_chat(prompt), kwargs, active_span_id.get()))

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return chat_response(await self._arun(to_chat(messages), kwargs))

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return completion_response(await self._arun(_prompt_chat(prompt), kwargs))

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        chunks = chat_chunks(await self._arun(to_chat(messages), kwargs))

        async def stream() -> ChatResponseAsyncGen:
            for chunk in chunks:
                yield chunk

        return stream()

    @llm_completion_callback()
    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseAsyncGen:
        chunks = completion_chunks(await self._arun(_prompt_chat(prompt), kwargs))

        async def stream() -> CompletionResponseAsyncGen:
            for chunk in chunks:
                yield chunk

        return stream()

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: str | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """The ``chat`` arguments of a call with ``tools``: OpenAI tool dicts, ``tool_choice`` (``"required"``
        when ``tool_required``, else ``"auto"`` unless given) and ``parallel_tool_calls``."""
        messages = list(chat_history or [])
        if user_msg is not None:
            messages.append(ChatMessage(role="user", content=user_msg) if isinstance(user_msg, str) else user_msg)
        if tool_choice is None:
            tool_choice = "required" if tool_required else "auto"
        return {
            "messages": messages,
            "tools": [tool.metadata.to_openai_tool() for tool in tools] or None,
            "tool_choice": tool_choice if tools else None,
            "parallel_tool_calls": allow_parallel_tool_calls,
            **kwargs,
        }

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        """The response's tool calls; a streamed chunk's half-written arguments are read as far as they go."""
        calls = [block for block in response.message.blocks if isinstance(block, ToolCallBlock)]
        if not calls and error_on_no_tool_call:
            raise ValueError(f"expected at least one tool call, got none: {response.message.content!r}")
        return [
            ToolSelection(tool_id=call.tool_call_id or "", tool_name=call.tool_name, tool_kwargs=_arguments(call))
            for call in calls
        ]


def _arguments(call: ToolCallBlock) -> dict[str, Any]:
    """A call's arguments as an object; JSON text (perhaps half-written while streaming) is read as far as it goes."""
    if isinstance(call.tool_kwargs, dict):
        return call.tool_kwargs
    try:
        value = parse_partial_json(call.tool_kwargs)
    except (ValueError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _prompt_chat(prompt: str) -> list[Message]:
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a string, got {type(prompt).__name__}")
    return [{"role": "user", "content": prompt}]
