"""The HTTP application: OpenAI's chat completions and models endpoints, and UniScale's feedback.

- ``POST /v1/chat/completions``: one search per request (``stream: true`` sends the winning
  answer as server-sent events once the search has chosen it);
- ``GET /v1/models``, ``GET /v1/models/{model}``: the served model names, one per mode;
- ``POST /v1/feedback``: ``{"id": "chatcmpl-...", "correct": true, "score": 0.8}``, exactly once
  per response (404 unknown, 409 already given, 422 invalid);
- ``GET /health``: 200 once the engines are ready (``{"status": "ok"}``; the models and the
  pid only with the key).

Every other request is authenticated, and its body bounded, before it is read
(:mod:`uniscale_integrations.serve.front_door`).

Searches run in worker threads, at most ``max_concurrency`` at a time; the engines are
thread-safe and the models serialise their own batched calls.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from uniscale_integrations.engine import Result, UniScale
from uniscale_integrations.errors import (
    BudgetError,
    ConfigSpaceError,
    ContextLengthError,
    DuplicateFeedbackError,
    InvalidQueryError,
    ModelUnavailableError,
    UniScaleError,
    UnknownDecisionError,
)
from uniscale_integrations.serve.engines import Engines
from uniscale_integrations.serve.front_door import FrontDoor, key_matches
from uniscale_integrations.serve.protocol import (
    APIError,
    ChatCompletionRequest,
    FeedbackRequest,
    chunks,
    completion,
    error_body,
)
from uniscale_integrations.serve.settings import LOG_LEVEL_ENV, ServeSettings

logger = logging.getLogger(__name__)
FEEDBACK_PATH = "/v1/feedback"


def create_app(settings: ServeSettings, engines: Engines | None = None) -> FrontDoor:
    """The application for ``settings`` behind its front door; ``engines`` (else built at start-up)
    are closed at shutdown."""
    started = int(time.time())
    state: dict[str, Engines] = {}
    limiter = anyio.CapacityLimiter(settings.max_concurrency)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ready = engines if engines is not None else await anyio.to_thread.run_sync(Engines.build, settings)
        try:
            if settings.warmup:
                await anyio.to_thread.run_sync(ready.warmup)
            state["engines"] = ready
            logger.info("ready: %s", ", ".join(ready))
            yield
        finally:
            state.pop("engines", None)
            ready.close()

    app = FastAPI(title="UniScale", description=__doc__, lifespan=lifespan)
    _install_error_handlers(app)

    def served() -> Engines:
        if "engines" not in state:
            raise APIError(503, "the server is starting", kind="server_error", code="not_ready")
        return state["engines"]

    def engine_for(model: str) -> UniScale:
        try:
            return served()[model]
        except KeyError:
            raise APIError(
                404,
                f"The model {model!r} does not exist; this server serves {', '.join(served())}",
                param="model",
                code="model_not_found",
            ) from None

    def model_card(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": started, "owned_by": "uniscale"}

    @app.get("/health")
    async def health(request: Request) -> dict[str, Any]:
        ready = served()
        if settings.api_key is not None and not key_matches(request.headers.get("authorization"), settings.api_key):
            return {"status": "ok"}
        return {"status": "ok", "models": list(ready), "pid": os.getpid()}

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card(name) for name in served()]}

    @app.get("/v1/models/{model}")
    async def retrieve_model(model: str) -> dict[str, Any]:
        engine_for(model)
        return model_card(model)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(body: ChatCompletionRequest) -> dict[str, Any] | StreamingResponse:
        engine = engine_for(body.model)
        body.check_supported()
        run = functools.partial(engine.run, body.chat(), body.run_options(settings.max_tokens_limit))
        result = await _search(run, limiter)
        if not body.stream:
            return completion(result, body.model)
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        events = chunks(result, body.model, include_usage=include_usage)

        async def sse() -> AsyncIterator[str]:
            for event in events:
                yield f"data: {json.dumps(event)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(
            sse(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )

    @app.post(FEEDBACK_PATH)
    async def feedback(body: FeedbackRequest) -> dict[str, Any]:
        decision_id = body.decision_id()
        if body.model is not None:
            engine_for(body.model)
        apply = functools.partial(
            served().feedback, decision_id, correct=body.correct, score=body.score, model=body.model
        )
        try:
            model, reward = await anyio.to_thread.run_sync(apply)
        except UnknownDecisionError as exc:
            raise APIError(404, str(exc), param="id", code="decision_not_found") from None
        except DuplicateFeedbackError as exc:
            raise APIError(409, str(exc), param="id", code="feedback_already_given") from None
        except ValueError as exc:
            raise APIError(422, str(exc), code="invalid_value") from None
        return {
            "object": "uniscale.feedback",
            "id": body.id,
            "decision_id": decision_id,
            "model": model,
            "reward": reward,
        }

    return FrontDoor(app, api_key=settings.api_key, max_body_bytes=settings.max_body_bytes)


async def _search(run: Callable[[], Result], limiter: anyio.CapacityLimiter) -> Result:
    """Run one search in a worker thread; engine errors become OpenAI-style errors."""
    try:
        return await anyio.to_thread.run_sync(run, limiter=limiter)
    except ContextLengthError as exc:
        raise APIError(400, str(exc), param="messages", code="context_length_exceeded") from None
    except (InvalidQueryError, ConfigSpaceError, BudgetError) as exc:
        raise APIError(400, str(exc)) from None
    except ModelUnavailableError as exc:
        raise APIError(503, str(exc), kind="server_error", code="model_unavailable") from None
    except ValueError as exc:  # any other value the request asked for that the engine refuses
        raise APIError(400, str(exc)) from None
    except UniScaleError as exc:
        logger.exception("search failed")
        raise APIError(500, str(exc), kind="server_error") from None


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        if first.get("type") == "json_invalid":
            reason = (first.get("ctx") or {}).get("error", "")
            message, param = f"the request body is not valid JSON ({reason})", None
        else:
            where = [str(part) for part in first.get("loc", ()) if part != "body"]
            param = ".".join(where) or None
            message = f"{param}: {first.get('msg')}" if param else str(first.get("msg", "invalid request"))
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        status = 422 if request.url.path == FEEDBACK_PATH else 400
        return JSONResponse(error_body(message, kind="invalid_request_error", param=param), status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        message = (
            str(exc.detail) if exc.status_code != 404 else f"no such endpoint: {request.method} {request.url.path}"
        )
        return JSONResponse(error_body(message, kind=kind), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled error on %s", request.url.path, exc_info=exc)
        return JSONResponse(error_body("internal server error", kind="server_error"), status_code=500)


def app_from_env() -> FrontDoor:
    """The application factory a ``uvicorn`` worker calls (settings from ``UNISCALE_SERVE_SETTINGS``)."""
    if not logging.getLogger().handlers:  # a worker process started by uvicorn
        level = os.environ.get(LOG_LEVEL_ENV, "WARNING").upper()
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    return create_app(ServeSettings.from_env())
