"""The server's front door: a request is authenticated and its body bounded before any of it is read.

:class:`FrontDoor` is plain ASGI middleware around the application. For every HTTP request
but those to :data:`OPEN_PATHS` it checks the bearer key first (in constant time), then the
declared ``Content-Length`` against ``max_body_bytes``, then reads the body itself, chunk by
chunk, stopping at the limit, and hands the application the body it read. So an
unauthenticated or oversized request costs a header's worth of work, never its body's.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from uniscale_integrations.serve.protocol import error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/health"})
"""Answered without the key (``/health`` then says only ``"ok"``)."""
DEFAULT_MAX_BODY_BYTES = 1 << 20
"""The largest request body a server accepts unless told otherwise (1 MiB)."""


def key_matches(authorization: str | None, api_key: str | None) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <api_key>`` (always, without a key)."""
    if api_key is None:
        return True
    return hmac.compare_digest((authorization or "").encode(), f"Bearer {api_key}".encode())


def header(scope: Scope, name: bytes) -> str | None:
    """A request header's value (the first, decoded as Latin-1), or ``None``."""
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class FrontDoor:
    """Authenticate, then bound and read the body, before ``app`` sees the request."""

    def __init__(self, app: ASGIApp, *, api_key: str | None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES):
        self.app = app
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] not in OPEN_PATHS and not key_matches(header(scope, b"authorization"), self.api_key):
            await _reply(send, 401, "Incorrect API key provided.", code="invalid_api_key")
            return
        declared = header(scope, b"content-length")
        if declared is not None and (not declared.strip().isdigit() or int(declared) > self.max_body_bytes):
            await _reply(send, 413, self._too_large(declared), code="request_too_large")
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = bool(message.get("more_body", False))
            if len(body) > self.max_body_bytes:
                await _reply(send, 413, self._too_large(f"over {self.max_body_bytes}"), code="request_too_large")
                return
        await self.app(scope, _replay(bytes(body), receive), send)

    def _too_large(self, size: str) -> str:
        return (
            f"the request body ({size} bytes) exceeds this server's limit of {self.max_body_bytes:,} bytes "
            "(uniscale serve --max-body-bytes)"
        )


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the body already read, then waits on the client as the original does."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _reply(send: Send, status: int, message: str, *, code: str) -> None:
    payload = json.dumps(error_body(message, kind="invalid_request_error", code=code)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
