"""``ChatUniScale``: a LangChain chat model that routes and scales each call with UniScale."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import Any

from langchain_core.callbacks import CallbackManager, CallbackManagerForLLMRun, dispatch_custom_event
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

from uniscale_integrations.engine import Result, UniScale
from uniscale_integrations.events import ConfigSelected, Event, FeedbackApplied, PathPruned, StepScored
from uniscale_integrations.langchain.messages import response_metadata, to_chat, usage_metadata
from uniscale_integrations.options import RunOptions
from uniscale_integrations.reward.weights import Mode

CUSTOM_EVENTS: dict[type, str] = {
    ConfigSelected: "uniscale_config_selected",
    StepScored: "uniscale_step_scored",
    PathPruned: "uniscale_path_pruned",
    FeedbackApplied: "uniscale_feedback_applied",
}
"""Names of the custom events (``on_custom_event`` / ``astream_events``) each engine event becomes."""

logger = logging.getLogger(__name__)
ROUTER_NAME = "uniscale"
_ENGINE_FIELDS = {"models", "qp", "cp", "bs", "system_prompt", "instruction", "seed"}
"""The fields a default engine is built from (``UniScale.from_defaults`` takes them by these names)."""
_INHERITED = (
    "handlers",
    "inheritable_handlers",
    "parent_run_id",
    "tags",
    "inheritable_tags",
    "metadata",
    "inheritable_metadata",
)
"""What the forwarder's callback manager takes over from the call's run manager."""


class ChatUniScale(BaseChatModel):
    """Per call, UniScale picks a model and a test-time-scaling budget, runs it, and answers.

    ``ChatUniScale()`` builds ``UniScale.from_defaults()`` on first use (the offline S/M
    ladder); pass ``engine=`` to share one engine (and its learning) between chat models,
    handlers and code. Every response carries ``usage_metadata`` (tokens of every path
    and verifier call) and ``response_metadata["uniscale"]`` (config, eFLOPs, verifier
    score, decision id and the choice's mean, width and UCB); feed correctness back with
    :class:`~uniscale_integrations.langchain.UniScaleFeedbackHandler`.

    Per call, ``model="M"`` pins a model (as the ``model`` field does),
    ``force_config="M/qp1/cp4/bs1"`` forces a configuration and ``seed=`` fixes the sampling.
    ``temperature`` applies to sampled paths (CP > 1 or BS > 1); 0 makes every path greedy.
    There is no tool calling: the S model's chat template has none.

    Example:
        .. code-block:: python

            from uniscale_integrations.langchain import ChatUniScale

            llm = ChatUniScale(mode="quality-first", max_tokens=160)
            message = llm.invoke("What is 17 + 25?")
            message.response_metadata["uniscale"]["config"]  # e.g. 'M/qp1/cp4/bs1'
    """

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    engine: UniScale | None = Field(default=None, exclude=True)
    """The engine to use; default: ``UniScale.from_defaults`` with the fields below, built on first use."""
    model_name: str = Field(default=ROUTER_NAME, alias="model")
    """``"uniscale"`` routes over every model of the space; a model's name (short, e.g. ``"M"``, or
    full, e.g. ``"Qwen2.5-Coder-0.5B-Instruct"``) pins that model and lets UniScale choose its
    test-time scaling. Each response's ``model_name`` names the model that answered."""
    mode: Mode = "cost-sensitive"
    """Reward preset of a default engine: ``cost-sensitive`` or ``quality-first``."""
    models: list[str] | None = None
    """Model ladder of a default engine (default: S and M)."""
    qp: list[int] = Field(default_factory=lambda: [1, 2])
    cp: list[int] = Field(default_factory=lambda: [1, 4])
    bs: list[int] = Field(default_factory=lambda: [1])
    max_tokens: int | None = Field(default=None, ge=1)
    """New tokens per path (default: the engine's)."""
    temperature: float | None = Field(default=None, ge=0.0)
    """Sampling temperature of sampled paths (default: the engine's, 0.7)."""
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    system_prompt: str | None = None
    """System message put first in chats that bring none (default engine only)."""
    instruction: str | None = None
    """Appended to the question by a default engine (e.g. ``executor.STEP_BY_STEP`` for math)."""
    seed: int = 0
    """Seed of a default engine's policy and sampling."""
    streaming: bool = False
    """Whether ``invoke`` goes through ``stream`` (callbacks then see each piece)."""

    _engine_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "uniscale"

    @property
    def uniscale(self) -> UniScale:
        """The engine, built on first use when none was given."""
        with self._engine_lock:
            if self.engine is None:
                self.engine = UniScale.from_defaults(self.mode, **self.model_dump(include=_ENGINE_FIELDS))
            return self.engine

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "mode": self.mode,
            "models": self.models,
            "qp": self.qp,
            "cp": self.cp,
            "bs": self.bs,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="uniscale",
            ls_model_name=kwargs.get("model", self.model_name),
            ls_model_type="chat",
        )
        if self.temperature is not None:
            params["ls_temperature"] = kwargs.get("temperature", self.temperature)
        if self.max_tokens is not None:
            params["ls_max_tokens"] = kwargs.get("max_tokens", self.max_tokens)
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            return generate_from_stream(self._stream(messages, stop=stop, run_manager=run_manager, **kwargs))
        result = self._run(messages, stop, run_manager, kwargs)
        message = AIMessage(
            content=result.text,
            usage_metadata=usage_metadata(result),
            response_metadata=response_metadata(result),
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """The winning answer, streamed once the search has chosen it; usage and metadata come last."""
        result = self._run(messages, stop, run_manager, kwargs)
        for piece in result.pieces():
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager is not None:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=usage_metadata(result),
                response_metadata=response_metadata(result),
                chunk_position="last",
            )
        )

    def _run(
        self,
        messages: Sequence[BaseMessage],
        stop: list[str] | None,
        run_manager: CallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> Result:
        config = kwargs.pop("force_config", None)
        seed = kwargs.pop("seed", None)
        model = kwargs.pop("model", self.model_name)
        if kwargs:
            raise TypeError(f"ChatUniScale got unexpected call options {sorted(kwargs)}")
        engine = self.uniscale
        options = RunOptions(
            config=config,
            models=_pinned_models(engine, model),
            stop=stop if stop is not None else (self.stop or ()),
            seed=seed,
            max_new_tokens=self.max_tokens,
            temperature=self.temperature,
        )
        forward = _EventForwarder(run_manager) if run_manager is not None else _dispatch_to_enclosing_run
        return engine.run(to_chat(messages), options, listeners=[forward])


def _pinned_models(engine: UniScale, model: str) -> tuple[str] | None:
    """The space's models a ``model`` name allows: all for the router's name, else the one it names."""
    if model == ROUTER_NAME:
        return None
    for name in engine.space.models:
        if model in (name, engine.model_name(name)):
            return (name,)
    known = [ROUTER_NAME, *engine.space.models, *(engine.model_name(m) for m in engine.space.models)]
    raise ValueError(f"unknown model {model!r}: ChatUniScale takes one of {list(dict.fromkeys(known))}")


def _dispatch_to_enclosing_run(event: Event) -> None:
    """On ``stream``/``astream`` LangChain gives ``_stream`` no run manager: events go to the enclosing run."""
    try:
        dispatch_custom_event(CUSTOM_EVENTS[type(event)], asdict(event))
    except RuntimeError:  # called outside any run: nobody to tell
        logger.debug("no enclosing LangChain run for %s", type(event).__name__)


class _EventForwarder:
    """Sends the engine's events of one call to LangChain as custom events of that call's run."""

    def __init__(self, run_manager: CallbackManagerForLLMRun):
        self._run_id = run_manager.run_id
        self._manager = CallbackManager(**{name: getattr(run_manager, name) for name in _INHERITED})

    def __call__(self, event: Event) -> None:
        self._manager.on_custom_event(CUSTOM_EVENTS[type(event)], asdict(event), run_id=self._run_id)
