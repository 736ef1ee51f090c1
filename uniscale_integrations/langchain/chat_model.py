"""``ChatUniScale``: a LangChain chat model that routes and scales each call with UniScale."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import CallbackManager, CallbackManagerForLLMRun, dispatch_custom_event
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput, ModelProfile
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, PrivateAttr

from uniscale_integrations.engine import Result, UniScale
from uniscale_integrations.events import ConfigSelected, Event, FeedbackApplied, PathPruned, StepScored
from uniscale_integrations.langchain.messages import ai_chunks, ai_message, to_chat
from uniscale_integrations.langchain.structured import Method, structured_runnable
from uniscale_integrations.options import RunOptions
from uniscale_integrations.reward.weights import Mode
from uniscale_integrations.tools import JSON_OUTPUT, TOOL_CALLS

if TYPE_CHECKING:
    from uniscale_integrations.models import ModelSpec

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
_TOOL_OPTIONS = ("tools", "tool_choice", "parallel_tool_calls", "response_format")
"""Call options that :meth:`ChatUniScale.bind_tools` and ``with_structured_output`` bind, read into ``RunOptions``."""


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

    Tool calling: :meth:`bind_tools` (``tool_choice`` ``"auto"``, ``"any"``, ``"none"`` or a tool's name)
    and :meth:`with_structured_output` (``json_schema``, ``function_calling``, ``json_mode``). A call that
    carries tools or a schema (or a history with tool calls) is only routed to models that declare them
    (M and L do, S does not: its chat template takes no tools); the candidates of a CP > 1 configuration
    vote on the call (tool and canonical arguments), those that break the schema dropped first.

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
    parallel_tool_calls: bool = True
    """Whether a reply may make several tool calls (else the first is kept); a call may say otherwise."""

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

    def _specs(self) -> list[ModelSpec]:
        """The specs of the models a call may use (the pinned one, or all), without building the engine."""
        from uniscale_integrations.models import DEFAULT_LADDER, ModelRegistry

        if self.engine is not None:
            specs = [self.engine.specs[m] for m in self.engine.space.models if m in self.engine.specs]
        else:
            registry = ModelRegistry.default()
            specs = [registry[m] for m in (self.models or DEFAULT_LADDER)]
        pinned = [s for s in specs if self.model_name in (s.name, s.hf_name)]
        return pinned if self.model_name != ROUTER_NAME else specs

    def _resolve_model_profile(self) -> ModelProfile | None:
        """What the models a call may use support: tool calling and structured output when one declares them."""
        specs = self._specs()
        tools = any(TOOL_CALLS in s.capabilities for s in specs)
        return ModelProfile(
            max_input_tokens=max(s.context_length for s in specs),
            text_inputs=True,
            text_outputs=True,
            image_inputs=False,
            audio_inputs=False,
            video_inputs=False,
            pdf_inputs=False,
            tool_calling=tools,
            tool_choice=tools,
            tool_call_streaming=tools,
            structured_output=any(JSON_OUTPUT in s.capabilities for s in specs),
            temperature=True,
        )

    def bind_tools(
        self,
        tools: Sequence[Mapping[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: Mapping[str, Any] | str | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """This model with ``tools`` (LangChain tools, functions, pydantic classes or OpenAI tool dicts) bound.

        ``tool_choice``: ``"auto"`` (default), ``"any"`` or ``True`` (a call is required), ``"none"``, or a
        tool's name (that tool is called); an unknown name is refused here, before anything runs. Keyword
        arguments agents pass are taken: ``parallel_tool_calls``, ``response_format`` (OpenAI's form),
        ``strict`` (every call is checked against its schema anyway).
        """
        kwargs.pop("strict", None)
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        options = RunOptions(
            tools=formatted,
            tool_choice=tool_choice,
            parallel_tool_calls=kwargs.get("parallel_tool_calls", self.parallel_tool_calls),
            response_format=kwargs.get("response_format"),
        )
        return super().bind(tools=formatted, tool_choice=options.tool_choice, **kwargs)

    def with_structured_output(
        self,
        schema: Mapping[str, Any] | type | None = None,
        *,
        method: Method = "json_schema",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """A runnable that answers with an instance of ``schema`` (a pydantic class, a TypedDict or a JSON
        schema; ``method`` and ``include_raw`` as in :mod:`~uniscale_integrations.langchain.structured`).
        ``strict`` is taken and needs nothing: replies are always checked against the schema."""
        if kwargs:
            raise ValueError(f"with_structured_output got unexpected arguments {sorted(kwargs)}")
        return structured_runnable(self, self.bind_tools, schema, method, include_raw)

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
        return ChatResult(generations=[ChatGeneration(message=ai_message(result))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """The winning answer, streamed once the search has chosen it: its text, then its tool calls as
        ``tool_call_chunks``; usage and metadata come last."""
        result = self._run(messages, stop, run_manager, kwargs)
        for message in ai_chunks(result):
            chunk = ChatGenerationChunk(message=message)
            if run_manager is not None and message.content:
                run_manager.on_llm_new_token(message.text, chunk=chunk)
            yield chunk

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
        asked = {name: kwargs.pop(name) for name in _TOOL_OPTIONS if name in kwargs}
        kwargs.pop("strict", None)
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
            **{"parallel_tool_calls": self.parallel_tool_calls, **asked},
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
