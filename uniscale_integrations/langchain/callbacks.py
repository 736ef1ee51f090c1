"""Callback handlers: feedback into the policy, and the eFLOPs a chain run spent per config."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.tracers.context import register_configure_hook

from uniscale_integrations.engine import UniScale
from uniscale_integrations.errors import DuplicateFeedbackError, UnknownDecisionError
from uniscale_integrations.langchain.chat_model import ChatUniScale
from uniscale_integrations.langchain.messages import METADATA_KEY, decision_id_of

Target = BaseMessage | UUID | str | Any
"""A response message, a LangChain run id (of the model call or any run around it), a run
object with an ``id``, a message id, or a decision id."""


class _Bounded(OrderedDict[str, Any]):
    """A mapping that forgets its oldest entries beyond ``limit``."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


class UniScaleFeedbackHandler(BaseCallbackHandler):
    """Maps LangChain runs and messages to UniScale decisions and applies feedback exactly once.

    Attach it to a chain's (or agent's) callbacks. It remembers which decisions every run
    made, including the runs around the model call, so ``record(chain_run_id, correct=True)``
    works for a model deep inside a chain; ``record(message, ...)`` works from the answer.
    """

    raise_error = True

    def __init__(self, engine: UniScale | ChatUniScale, *, max_runs: int = 100_000):
        super().__init__()
        self._engine = engine
        self._lock = threading.Lock()
        self._parents: _Bounded = _Bounded(max_runs)
        self._decisions: _Bounded = _Bounded(max_runs)
        self._applied: _Bounded = _Bounded(max_runs)

    @property
    def engine(self) -> UniScale:
        return self._engine.uniscale if isinstance(self._engine, ChatUniScale) else self._engine

    def _started(self, run_id: UUID, parent_run_id: UUID | None) -> None:
        with self._lock:
            self._parents[str(run_id)] = None if parent_run_id is None else str(parent_run_id)

    def on_chain_start(
        self, serialized: Any, inputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self._started(run_id, parent_run_id)

    def on_chat_model_start(
        self, serialized: Any, messages: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self._started(run_id, parent_run_id)

    def on_llm_start(
        self, serialized: Any, prompts: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self._started(run_id, parent_run_id)

    def on_tool_start(
        self, serialized: Any, input_str: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self._started(run_id, parent_run_id)

    def on_llm_end(
        self, response: LLMResult, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        with self._lock:
            for generations in response.generations:
                for generation in generations:
                    if not isinstance(generation, ChatGeneration):
                        continue
                    decision = decision_id_of(generation.message)
                    if decision is None:
                        continue
                    if generation.message.id:
                        self._add(generation.message.id, decision)
                    self._add(decision, decision)
                    run: str | None = str(run_id)
                    while run is not None:
                        self._add(run, decision)
                        run = self._parents.get(run)

    def _add(self, key: str, decision: str) -> None:
        decisions = self._decisions.get(key, ())
        if decision not in decisions:
            self._decisions[key] = (*decisions, decision)

    def decisions(self, target: Target) -> tuple[str, ...]:
        """The decision ids made under ``target`` (a message, run id, run, message id or decision id)."""
        if isinstance(target, BaseMessage):
            own = decision_id_of(target)
            if own is not None:
                return (own,)
            key = target.id
        elif isinstance(target, UUID | str):
            key = str(target)
        elif isinstance(getattr(target, "id", None), UUID | str):
            key = str(target.id)
        else:
            raise TypeError(f"cannot find decisions for a {type(target).__name__}")
        with self._lock:
            found = self._decisions.get(key) if key is not None else None
        if not found:
            raise UnknownDecisionError(f"no UniScale decision is known for {key!r}")
        return tuple(found)

    def record(
        self,
        target: Target,
        *,
        correct: bool | float | None = None,
        score: float | None = None,
        evaluation: Mapping[str, Any] | Any = None,
    ) -> list[float]:
        """Apply feedback to every decision made under ``target`` that has none yet.

        ``evaluation`` is an evaluator's result (a mapping or object with ``score`` in
        [0, 1] or a bool, and/or ``value`` ``"Y"``/``"N"``); it sets ``correct``. Returns the
        rewards applied; raises ``DuplicateFeedbackError`` when every decision already had
        its feedback.
        """
        if evaluation is not None:
            if correct is not None:
                raise ValueError("pass either correct= or evaluation=, not both")
            correct = correctness_of(evaluation)
        decisions = self.decisions(target)
        with self._lock:
            todo = [d for d in decisions if d not in self._applied]
            for decision in todo:
                self._applied[decision] = None
        if not todo:
            raise DuplicateFeedbackError(f"every decision under {target!r} already received its feedback")
        rewards = []
        for i, decision in enumerate(todo):
            try:
                rewards.append(self.engine.feedback(decision, correct=correct, score=score))
            except Exception:
                with self._lock:
                    for undone in todo[i:]:
                        self._applied.pop(undone, None)
                raise
        return rewards


def correctness_of(evaluation: Mapping[str, Any] | Any) -> float:
    """Correctness in [0, 1] from an evaluator's result (``score`` or ``value`` Y/N)."""
    get = evaluation.get if isinstance(evaluation, Mapping) else lambda k: getattr(evaluation, k, None)
    score = get("score")
    if isinstance(score, bool):
        return float(score)
    if isinstance(score, int | float):
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"an evaluation score must lie in [0, 1], got {score}")
        return float(score)
    value = get("value")
    if isinstance(value, str) and value.strip().upper() in ("Y", "N"):
        return 1.0 if value.strip().upper() == "Y" else 0.0
    raise ValueError(f"cannot read correctness from {evaluation!r}: it needs a score in [0, 1] or a value Y/N")


@dataclass
class ConfigCost:
    """What one configuration spent across the calls a handler saw."""

    calls: int = 0
    eflops: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class UniScaleCostHandler(BaseCallbackHandler):
    """Totals eFLOPs and tokens per configuration over every ChatUniScale call it sees."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.by_config: dict[str, ConfigCost] = {}

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        for generations in response.generations:
            for generation in generations:
                if not isinstance(generation, ChatGeneration):
                    continue
                record = generation.message.response_metadata.get(METADATA_KEY)
                usage = getattr(generation.message, "usage_metadata", None) or {}
                if not isinstance(record, dict):
                    continue
                with self._lock:
                    cost = self.by_config.setdefault(record["config"], ConfigCost())
                    cost.calls += 1
                    cost.eflops += float(record["eflops"])
                    cost.input_tokens += int(usage.get("input_tokens", 0))
                    cost.output_tokens += int(usage.get("output_tokens", 0))

    @property
    def total(self) -> ConfigCost:
        """All configurations together."""
        with self._lock:
            costs = list(self.by_config.values())
        return ConfigCost(
            calls=sum(c.calls for c in costs),
            eflops=sum(c.eflops for c in costs),
            input_tokens=sum(c.input_tokens for c in costs),
            output_tokens=sum(c.output_tokens for c in costs),
        )

    def __repr__(self) -> str:
        return f"UniScaleCostHandler({self.by_config})"


_cost_callback: ContextVar[UniScaleCostHandler | None] = ContextVar("uniscale_cost_callback", default=None)
register_configure_hook(_cost_callback, inheritable=True)


@contextmanager
def get_uniscale_cost_callback() -> Iterator[UniScaleCostHandler]:
    """Totals eFLOPs and tokens per config of every ChatUniScale call inside the ``with`` block.

    Example:
        .. code-block:: python

            with get_uniscale_cost_callback() as cost:
                chain.invoke({"question": "..."})
            print(cost.total.eflops, cost.by_config)
    """
    handler = UniScaleCostHandler()
    token = _cost_callback.set(handler)
    try:
        yield handler
    finally:
        _cost_callback.reset(token)
