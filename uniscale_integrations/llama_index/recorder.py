"""``DecisionRecorder``: writes the decisions behind a query engine's response into its metadata.

A query may make several LLM calls (retrieval, refine steps, sub-questions). The recorder
follows LlamaIndex's span tree: each :class:`~.events.ConfigSelectedEvent` is noted on the
span of its LLM call, a span's decisions pass to its parent when it exits, and a span that
returns a query ``Response`` (streaming or not) gets them in
``response.metadata["uniscale_decision_ids"]``, oldest first.
"""

from __future__ import annotations

import inspect
import threading
from types import TracebackType
from typing import Any

from llama_index.core.base.response.schema import (
    AsyncStreamingResponse,
    PydanticResponse,
    Response,
    StreamingResponse,
)
from llama_index.core.instrumentation import Dispatcher, root_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.span import BaseSpan
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
from pydantic import PrivateAttr

from uniscale_integrations.llama_index.events import ConfigSelectedEvent

DECISION_IDS_KEY = "uniscale_decision_ids"
QueryResponse = Response | StreamingResponse | AsyncStreamingResponse | PydanticResponse


class DecisionRecorder:
    """Attach it (``DecisionRecorder().attach()``, or ``with DecisionRecorder():``) before querying."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parents: dict[str, str | None] = {}
        self._decisions: dict[str, list[str]] = {}
        self._span_hook = _SpanHook(self)
        self._event_hook = _EventHook(self)
        self._dispatcher: Dispatcher | None = None

    def attach(self, dispatcher: Dispatcher | None = None) -> DecisionRecorder:
        """Listen on ``dispatcher`` (default: LlamaIndex's root dispatcher, which sees every span)."""
        if self._dispatcher is not None:
            raise RuntimeError("this DecisionRecorder is already attached")
        self._dispatcher = dispatcher if dispatcher is not None else root_dispatcher
        self._dispatcher.add_span_handler(self._span_hook)
        self._dispatcher.add_event_handler(self._event_hook)
        return self

    def detach(self) -> None:
        """Stop listening (a no-op when not attached)."""
        if self._dispatcher is not None:
            self._dispatcher.span_handlers.remove(self._span_hook)
            self._dispatcher.event_handlers.remove(self._event_hook)
            self._dispatcher = None
        with self._lock:
            self._parents.clear()
            self._decisions.clear()

    def __enter__(self) -> DecisionRecorder:
        return self.attach()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.detach()

    def _enter(self, span_id: str, parent_id: str | None) -> None:
        with self._lock:
            self._parents[span_id] = parent_id

    def _decided(self, span_id: str, decision_id: str) -> None:
        with self._lock:
            self._decisions.setdefault(span_id, []).append(decision_id)

    def _exit(self, span_id: str, result: Any) -> None:
        with self._lock:
            parent = self._parents.pop(span_id, None)
            decisions = self._decisions.pop(span_id, [])
            if decisions and parent is not None:
                self._decisions.setdefault(parent, []).extend(decisions)
        if decisions and isinstance(result, QueryResponse):
            result.metadata = {**(result.metadata or {}), DECISION_IDS_KEY: list(decisions)}

    def _drop(self, span_id: str) -> None:
        with self._lock:
            self._parents.pop(span_id, None)
            self._decisions.pop(span_id, None)


class _SpanHook(BaseSpanHandler[BaseSpan]):
    """Tells the recorder when spans open, close (with their result) or fail."""

    _recorder: DecisionRecorder = PrivateAttr()

    def __init__(self, recorder: DecisionRecorder):
        super().__init__(open_spans={}, completed_spans=[], dropped_spans=[], current_span_ids={})
        self._recorder = recorder

    @classmethod
    def class_name(cls) -> str:
        return "UniScaleDecisionSpanHook"

    def span_enter(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._recorder._enter(id_, parent_id)

    def span_exit(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        result: Any | None = None,
        **kwargs: Any,
    ) -> None:
        self._recorder._exit(id_, result)

    def span_drop(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> None:
        self._recorder._drop(id_)

    def new_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_span_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        return None

    def prepare_to_exit_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        result: Any | None = None,
        **kwargs: Any,
    ) -> None:
        return None

    def prepare_to_drop_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> None:
        return None


class _EventHook(BaseEventHandler):
    """Tells the recorder which span each UniScale decision was made under."""

    _recorder: DecisionRecorder = PrivateAttr()

    def __init__(self, recorder: DecisionRecorder):
        super().__init__()
        self._recorder = recorder

    @classmethod
    def class_name(cls) -> str:
        return "UniScaleDecisionEventHook"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if isinstance(event, ConfigSelectedEvent) and event.span_id is not None:
            self._recorder._decided(event.span_id, event.decision_id)
