"""``RunOptions``: one call's options, checked once where they enter (an adapter, the server, ``engine.run``).

Each adapter reads its framework's call options into one :class:`RunOptions`; the engine uses what
selection needs (``config``, ``models``, ``budget``, ``seed``, and what the reply must be: tools or a
schema go to the models that declare them) and hands it to the executor, which takes the rest
(``stop``, ``max_new_tokens``, ``temperature``, ``budget``, ``tools``, ``response_format``). Nothing
downstream checks them again.

>>> options = RunOptions(config="S/qp1/cp4/bs1", stop="###", max_new_tokens=64)
>>> options.config, options.stop, options.replace(seed=7).seed
(Config('S/qp1/cp4/bs1'), ('###',), 7)
>>> RunOptions(temperature=-1.0)
Traceback (most recent call last):
...
uniscale_integrations.errors.InvalidOptionError: temperature must be a finite number >= 0, got -1.0
>>> add = {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}
>>> RunOptions(tools=[add], tool_choice="any").tool_choice
'required'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from uniscale_integrations.checks import non_negative, positive_int
from uniscale_integrations.errors import InvalidOptionError
from uniscale_integrations.features.space import Config
from uniscale_integrations.reward.budget import Budget
from uniscale_integrations.tools import Asked, ResponseFormat, Tool, checked_tool_choice, checked_tools


@dataclass(frozen=True, init=False)
class RunOptions:
    """What one call may ask of the engine beyond the query; every option may be left unset."""

    config: Config | None
    """Run this configuration (given as a ``Config`` or its ``"M/qp1/cp4/bs1"`` form) instead of the policy's choice."""
    models: tuple[str, ...] | None
    """Choose among these models of the space only (the policy still picks the test-time scaling)."""
    stop: tuple[str, ...]
    """Stop sequences (given as one string or several); each must be non-empty."""
    seed: int | None
    """Fixes this call's sampling (default: drawn from the engine's seeded generator)."""
    max_new_tokens: int | None
    """New tokens per path (default: the executor's budget of the model)."""
    temperature: float | None
    """Temperature of sampled paths (CP > 1 or BS > 1); 0 makes every path greedy (default: the executor's)."""
    budget: Budget | None
    """Caps on this query's eFLOPs, generated tokens and seconds."""
    tools: tuple[Tool, ...]
    """Tools the model may call (each a :class:`~uniscale_integrations.tools.Tool` or OpenAI's
    ``{"type": "function", "function": {...}}``); only models that declare tool calls are chosen."""
    tool_choice: str | None
    """``"auto"`` (default with tools), ``"required"``, ``"none"`` or a tool's name (see
    :func:`~uniscale_integrations.tools.checked_tool_choice` for the forms it takes)."""
    parallel_tool_calls: bool
    """Whether a reply may make several calls (else the first is kept)."""
    response_format: ResponseFormat | None
    """A reply that is one JSON value (a :class:`~uniscale_integrations.tools.ResponseFormat`, or OpenAI's
    ``response_format``); only models that declare JSON output are chosen."""

    def __init__(
        self,
        config: Config | str | None = None,
        models: Collection[str] | None = None,
        stop: str | Sequence[str] | None = (),
        seed: int | None = None,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        budget: Budget | None = None,
        tools: Sequence[Tool | Mapping[str, Any]] | None = None,
        tool_choice: object = None,
        parallel_tool_calls: bool = True,
        response_format: ResponseFormat | Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(config, str):
            config = Config.parse(config)
        elif config is not None and not isinstance(config, Config):
            raise InvalidOptionError("config", f"config must be a Config or its text form, got {config!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise InvalidOptionError("seed", f"seed must be an integer, got {seed!r}")
        if budget is not None and not isinstance(budget, Budget):
            raise InvalidOptionError("budget", f"budget must be a Budget, got {budget!r}")
        if not isinstance(parallel_tool_calls, bool):
            raise InvalidOptionError(
                "parallel_tool_calls", f"parallel_tool_calls must be a bool, got {parallel_tool_calls!r}"
            )
        checked = checked_tools(tools)
        set_ = object.__setattr__
        set_(self, "config", config)
        set_(self, "models", None if models is None else _names(models))
        set_(self, "stop", _stops(stop))
        set_(self, "seed", seed)
        set_(self, "max_new_tokens", _checked("max_new_tokens", max_new_tokens, positive_int))
        set_(self, "temperature", _checked("temperature", temperature, non_negative))
        set_(self, "budget", budget)
        set_(self, "tools", checked)
        set_(self, "tool_choice", checked_tool_choice(tool_choice, checked))
        set_(self, "parallel_tool_calls", parallel_tool_calls)
        set_(self, "response_format", ResponseFormat.of(response_format))

    @classmethod
    def of(cls, options: RunOptions | None = None, **fields: Any) -> RunOptions:
        """``options`` (default: none set) with ``fields`` changed: what a call's ``options=`` and keywords make."""
        options = options if options is not None else cls()
        return options.replace(**fields) if fields else options

    def replace(self, **changes: Any) -> RunOptions:
        """These options with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)

    def asked(self, answered: Collection[str] = ()) -> Asked:
        """What these options ask a reply to be; ``answered``: keys of the calls the chat has had answered."""
        return Asked(self.tools, self.tool_choice, self.parallel_tool_calls, self.response_format, frozenset(answered))

    def or_defaults(self, *, max_new_tokens: int | None = None, temperature: float | None = None) -> RunOptions:
        """These options, with ``max_new_tokens`` and ``temperature`` filled in where they are unset."""
        return self.replace(
            max_new_tokens=self.max_new_tokens if self.max_new_tokens is not None else max_new_tokens,
            temperature=self.temperature if self.temperature is not None else temperature,
        )


def _checked(name: str, value: Any, check: Callable[[str, Any], Any]) -> Any:
    try:
        return None if value is None else check(name, value)
    except ValueError as exc:
        raise InvalidOptionError(name, str(exc)) from None


def _names(models: Collection[str]) -> tuple[str, ...]:
    if isinstance(models, str) or not isinstance(models, Collection) or not models:
        raise InvalidOptionError("models", f"models must be a non-empty collection of model names, got {models!r}")
    if not all(isinstance(m, str) for m in models):
        raise InvalidOptionError("models", f"model names must be strings, got {models!r}")
    return tuple(models)


def _stops(stop: str | Sequence[str] | None) -> tuple[str, ...]:
    stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
    if any(not isinstance(s, str) or not s for s in stops):
        raise InvalidOptionError("stop", "stop sequences must be non-empty strings")
    return stops
