"""The OpenAI wire format: requests in, completions, stream chunks and errors out.

Responses follow OpenAI's chat completion objects field for field, plus one top-level
field, ``"uniscale"``, with the decision: chosen config, the model that answered, eFLOPs,
verifier score, decision id and the policy's estimate (OpenAI clients keep unknown fields:
the Python client in ``model_extra``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from uniscale_integrations.engine import Result
from uniscale_integrations.errors import ConfigSpaceError, InvalidOptionError, InvalidQueryError, UnknownDecisionError
from uniscale_integrations.options import RunOptions
from uniscale_integrations.store.records import checked_decision_id
from uniscale_integrations.tools import ToolCall, canonical_json, tool_fields

ID_PREFIX = "chatcmpl-"
"""A response id is this prefix and the decision id: ``chatcmpl-<32 hex digits>``."""
EXTRA_KEY = "uniscale"
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}
_MAX_STOP = 4


class APIError(Exception):
    """An error to send as OpenAI's ``{"error": {...}}`` body with an HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, kind=self.kind, param=self.param, code=self.code)


def error_body(message: str, *, kind: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


# ---------------------------------------------------------------------- requests
class Message(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    role: str
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    include_usage: bool = False


class UniScaleOptions(BaseModel):
    """UniScale's own request options (send them with the OpenAI client's ``extra_body``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    config: str | None = None
    """Force a configuration, e.g. ``"S/qp1/cp2/bs1"`` (debugging, benchmarks)."""


class ChatCompletionRequest(BaseModel):
    """The fields of OpenAI's request that UniScale honours; others are accepted and ignored
    (sampling knobs such as ``top_p``) or refused (``functions``, ``n > 1``, ``logprobs``).

    Fields are validated strictly: a string or a boolean is never taken for a number, nor a
    string for a boolean."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, strict=True)

    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    tools: list[Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    functions: list[Any] | None = None
    logprobs: bool | None = None
    response_format: dict[str, Any] | None = None
    uniscale: UniScaleOptions | None = None

    def chat(self) -> list[dict[str, Any]]:
        """The engine's chat: system/developer, user, assistant (with their ``tool_calls``) and ``tool`` messages
        (each answering a call of the assistant turn before it) with text content."""
        chat: list[dict[str, Any]] = []
        for i, message in enumerate(self.messages):
            role = _ROLES.get(message.role)
            if role is None:
                raise APIError(
                    400,
                    f"messages[{i}]: role {message.role!r} is not supported; UniScale takes system, developer, "
                    "user, assistant and tool messages",
                    param=f"messages[{i}].role",
                )
            entry: dict[str, Any] = {"role": role}
            extra = message.model_extra
            if extra or role == "tool":  # a plain message (the common case, maybe thousands) needs no tool fields
                try:
                    entry.update(tool_fields({"role": role, **(extra or {})}, i))
                except InvalidQueryError as exc:
                    raise APIError(400, str(exc), param=f"messages[{i}]") from None
            if role == "tool" and not _answers_a_call(chat, entry.get("tool_call_id")):
                raise APIError(
                    400,
                    f"messages[{i}]: a tool message must answer a tool call of the assistant message before it",
                    param=f"messages[{i}].role",
                )
            empty_allowed = role == "assistant" and entry.get("tool_calls")
            entry["content"] = "" if empty_allowed and message.content is None else _text(message.content, i)
            chat.append(entry)
        if not any(m["role"] == "user" for m in chat):
            raise APIError(400, "the conversation has no user message to answer", param="messages")
        return chat

    def run_options(self, max_tokens_limit: int) -> RunOptions:
        """The engine's options for this request; their errors name the request's field."""
        max_tokens, param = (
            (self.max_completion_tokens, "max_completion_tokens")
            if self.max_completion_tokens is not None
            else (self.max_tokens, "max_tokens")
        )
        if max_tokens is not None and max_tokens > max_tokens_limit:
            raise APIError(400, f"{param} is {max_tokens}; this server allows at most {max_tokens_limit}", param=param)
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or ())
        if len(stops) > _MAX_STOP:
            raise APIError(400, f"stop takes at most {_MAX_STOP} sequences, got {len(stops)}", param="stop")
        params = {"max_new_tokens": param, "config": "uniscale.config"}
        try:
            return RunOptions(
                config=self.uniscale.config if self.uniscale is not None else None,
                stop=stops,
                seed=self.seed,
                max_new_tokens=max_tokens,
                temperature=self.temperature,
                tools=self.tools,
                tool_choice=self.tool_choice,
                parallel_tool_calls=self.parallel_tool_calls is not False,
                response_format=self.response_format,
            )
        except InvalidOptionError as exc:
            raise APIError(400, str(exc), param=params.get(exc.option, exc.option)) from None
        except ConfigSpaceError as exc:  # the forced configuration's text
            raise APIError(400, str(exc), param="uniscale.config") from None

    def check_supported(self) -> None:
        """Refuse what UniScale cannot honour rather than silently answering something else."""
        if self.n is not None and self.n != 1:
            raise APIError(400, "n must be 1: UniScale returns the one answer its search chose", param="n")
        if self.functions:
            raise APIError(400, "functions (deprecated by OpenAI) is not supported: send tools", param="functions")
        if self.logprobs:
            raise APIError(400, "logprobs are not supported", param="logprobs")
        if self.stream_options is not None and not self.stream:
            raise APIError(400, "stream_options is only allowed when stream is true", param="stream_options")


class FeedbackRequest(BaseModel):
    """Feedback for one response: ``correct`` (bool or [0, 1]) and/or ``score`` ([0, 1])."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: str
    """The response id (``chatcmpl-...``) or its bare decision id."""
    correct: bool | float | None = None
    score: float | None = None
    model: str | None = None
    """The served model that answered; optional (the id finds it)."""

    def decision_id(self) -> str:
        text = self.id.removeprefix(ID_PREFIX)
        try:
            return checked_decision_id(text)
        except UnknownDecisionError:
            raise APIError(
                422, f"{self.id!r} is not a response id: ids are '{ID_PREFIX}' and 32 hex digits", param="id"
            ) from None


def _answers_a_call(chat: list[dict[str, Any]], call_id: str | None) -> bool:
    """Whether a tool message with ``call_id`` follows (past other tool messages) an assistant's tool call (with
    that id, when the calls have ids)."""
    for previous in reversed(chat):
        if previous["role"] == "tool":
            continue
        calls = previous.get("tool_calls") or ()
        ids = {call["id"] for call in calls if call["id"]}
        return bool(calls) and (not ids or call_id in ids)
    return False


def _text(content: str | list[dict[str, Any]] | None, index: int) -> str:
    if content is None:
        raise APIError(400, f"messages[{index}] has no content", param=f"messages[{index}].content")
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise APIError(
                400,
                f"messages[{index}]: UniScale takes text only; got a {part.get('type')!r} content part",
                param=f"messages[{index}].content",
            )
        parts.append(part["text"])
    return "".join(parts)


# ---------------------------------------------------------------------- responses
def response_id(result: Result) -> str:
    return ID_PREFIX + result.decision_id


def _calls(result: Result) -> tuple[ToolCall, ...]:
    return result.reply.tool_calls if result.reply is not None else ()


def finish_reason(result: Result) -> Literal["stop", "length", "tool_calls"]:
    """``"tool_calls"`` when the answer calls tools; ``"length"`` when the path that gave the answer ran out of new
    tokens (or of budget)."""
    if _calls(result):
        return "tool_calls"
    winner = next((p for p in result.paths if p.finished and p.text == result.text), None)
    return "length" if winner is not None and winner.status in ("length", "budget") else "stop"


def wire_call(call: ToolCall, index: int | None = None) -> dict[str, Any]:
    """A tool call as OpenAI sends it: arguments as JSON text (and, in a stream's delta, its index)."""
    function = {"name": call.name, "arguments": canonical_json(call.arguments)}
    wire = {"id": call.id, "type": "function", "function": function}
    return wire if index is None else {"index": index, **wire}


def _message(result: Result) -> dict[str, Any]:
    """The answer's message: its text (``None`` beside tool calls, when empty) and its ``tool_calls``."""
    calls = _calls(result)
    message: dict[str, Any] = {"role": "assistant", "content": result.text or (None if calls else ""), "refusal": None}
    if calls:
        message["tool_calls"] = [wire_call(call) for call in calls]
    return message


def completion(result: Result, model: str, created: int | None = None) -> dict[str, Any]:
    """A ``chat.completion`` object."""
    return {
        "id": response_id(result),
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": _message(result),
                "logprobs": None,
                "finish_reason": finish_reason(result),
            }
        ],
        "usage": result.usage.tokens(),
        EXTRA_KEY: result.to_dict(),
    }


def chunks(result: Result, model: str, *, include_usage: bool, created: int | None = None) -> Iterator[dict[str, Any]]:
    """``chat.completion.chunk`` objects: the role, the answer piece by piece, each tool call (its id and name,
    then its arguments in two pieces, as OpenAI streams them), the finish reason (with UniScale's record), then the
    usage when asked (``choices`` empty, OpenAI's convention)."""
    base = {
        "id": response_id(result),
        "object": "chat.completion.chunk",
        "created": created if created is not None else int(time.time()),
        "model": model,
        "system_fingerprint": None,
    }
    extra = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**base, "choices": [choice], **extra, **more}

    yield chunk({"role": "assistant", "content": ""})
    for piece in result.pieces():
        yield chunk({"content": piece})
    for i, call in enumerate(_calls(result)):
        wire = wire_call(call, i)
        arguments = wire["function"]["arguments"]
        half = len(arguments) // 2
        yield chunk({"tool_calls": [{**wire, "function": {"name": call.name, "arguments": arguments[:half]}}]})
        yield chunk({"tool_calls": [{"index": i, "function": {"arguments": arguments[half:]}}]})
    yield chunk({}, finish_reason(result), **{EXTRA_KEY: result.to_dict()})
    if include_usage:
        yield {**base, "choices": [], "usage": result.usage.tokens(), EXTRA_KEY: result.to_dict()}
