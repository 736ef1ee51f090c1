"""Queries as the engine takes them: a string or a chat of text messages, checked once on the way in."""

from __future__ import annotations

import json
import reprlib
from collections.abc import Mapping, Sequence
from typing import Any

from uniscale_integrations.errors import InvalidQueryError
from uniscale_integrations.tools import tool_fields

Message = dict[str, Any]
"""A chat message: ``{"role": "system" | "user" | "assistant" | "tool", "content": str}``; an assistant's may hold
``tool_calls``, a tool result ``tool_call_id`` and ``name`` (:func:`~uniscale_integrations.tools.tool_fields`)."""


MAX_QUERY_CHARS = 100_000
"""The most characters a query may have, all its messages together."""


MAX_MESSAGES = 1_000
"""The most messages a chat may have."""


def as_messages(query: str | Sequence[Message]) -> list[Message]:
    if isinstance(query, str):
        return [{"role": "user", "content": _validated_text(query)}]
    if isinstance(query, bytes | bytearray):
        raise InvalidQueryError("a query must be text (str), got bytes: decode them first")
    if isinstance(query, Sequence) and query:
        if len(query) > MAX_MESSAGES:
            raise InvalidQueryError(f"the chat has {len(query):,} messages; the limit is {MAX_MESSAGES:,}")
        messages = []
        for i, m in enumerate(query):
            if not (isinstance(m, Mapping) and isinstance(m.get("role"), str) and "content" in m):
                raise InvalidQueryError(f"a chat message needs 'role' and 'content', got {reprlib.repr(m)}")
            if m["content"] is None:
                raise InvalidQueryError(f"messages[{i}] has no content")
            if not isinstance(m["content"], str):
                raise InvalidQueryError(
                    f"messages[{i}]: UniScale takes text only; the content is a {type(m['content']).__name__}"
                )
            message = {"role": m["role"], "content": m["content"], **tool_fields(m, i)}
            for text in (message["role"], message["content"], json.dumps(message, ensure_ascii=False)):
                _check_unicode(text)
            messages.append(message)
        if not any(m["role"] == "user" for m in messages):
            raise InvalidQueryError("the chat has no user message")
        _validated_text(query_text(messages))
        total = sum(len(m["content"]) for m in messages)
        if total > MAX_QUERY_CHARS:
            raise InvalidQueryError(
                f"the chat has {total:,} characters in all its messages; the limit is {MAX_QUERY_CHARS:,}"
            )
        return messages
    raise InvalidQueryError(f"a query must be a non-empty string or chat, got {type(query).__name__}")


def query_text(query: str | Sequence[Message]) -> str:
    if isinstance(query, str):
        return _validated_text(query)
    return next(m["content"] for m in reversed(query) if m["role"] == "user")


def query_record(messages: Sequence[Message]) -> str:
    """The text a decision's query hash is taken of: a lone user message's content, else the chat as JSON."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return json.dumps(list(messages), ensure_ascii=False)


def record_messages(record: str) -> list[Message]:
    """The chat a :func:`query_record` was taken of: the chat its JSON holds, else one user message.

    A lone user message whose own text is the JSON of a longer chat reads back as that chat (the one
    case the record does not tell apart).
    """
    try:
        data = json.loads(record)
    except ValueError:
        data = None
    lone_user = (
        isinstance(data, list) and len(data) == 1 and isinstance(data[0], Mapping) and data[0].get("role") == "user"
    )
    if isinstance(data, list) and data and not lone_user:
        try:
            return as_messages(data)
        except InvalidQueryError:
            pass
    return as_messages(record)


def _validated_text(text: str) -> str:
    if not isinstance(text, str):
        raise InvalidQueryError(f"a query must be a string, got {type(text).__name__}")
    if not text.strip():
        raise InvalidQueryError("the query is empty")
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidQueryError(f"the query has {len(text):,} characters; the limit is {MAX_QUERY_CHARS:,}")
    _check_unicode(text)
    return text


def _check_unicode(text: str) -> None:
    """Refuse lone surrogates (what undecodable bytes become), which no tokenizer or store accepts."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidQueryError(
            f"the query is not valid Unicode: a lone surrogate {text[exc.start]!r} at position {exc.start} "
            f"(decode the input with errors='replace')"
        ) from None
