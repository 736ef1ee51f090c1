"""The UniScale engine: select a configuration, execute it, learn from its reward."""

from __future__ import annotations

import logging
import math
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from uniscale_integrations.core.bandit import LinUCB
from uniscale_integrations.core.cost import CostModel, ModelShape, SpacePricing, Usage
from uniscale_integrations.core.encoder import QueryEncoder
from uniscale_integrations.core.events import ConfigSelected, FeedbackApplied, Listener, emit
from uniscale_integrations.core.features import ProductFeatures
from uniscale_integrations.core.reward import Mode, RewardWeights
from uniscale_integrations.core.space import Config, ConfigSpace
from uniscale_integrations.errors import (
    DuplicateFeedbackError,
    InvalidQueryError,
    UnknownDecisionError,
)

if TYPE_CHECKING:
    from uniscale_integrations.core.verifiers import Verifier
    from uniscale_integrations.models import ModelRegistry, ModelSpec
    from uniscale_integrations.tts.search import Aggregation, EarlyStopping, Execution, PathTrace

logger = logging.getLogger(__name__)

Message = dict[str, str]
MAX_QUERY_CHARS = 100_000


class ConfigExecutor(Protocol):
    """Runs one configuration on one chat (see :class:`uniscale_integrations.tts.Executor`)."""

    def execute(
        self,
        messages: Sequence[Message],
        config: Config,
        *,
        seed: int | None = None,
        stop: Sequence[str] = (),
        listeners: Iterable[Listener] = (),
        max_new_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Execution: ...


@dataclass(frozen=True)
class Estimate:
    """The policy's view of one configuration for one query."""

    config: Config
    mean: float
    width: float
    ucb: float


@dataclass
class Result:
    """An answer and everything about how it was produced."""

    answer: str
    """The final answer (extracted and pooled across paths)."""
    text: str
    """The full text of the best path behind the answer."""
    config: Config
    eflops: float
    cost: float
    """eFLOPs normalised against the dearest configuration of the space, in [0, 1]."""
    usage: Usage
    seconds: float
    score: float
    """Verifier score of the answer, in [0, 1]."""
    decision_id: str
    estimate: Estimate | None
    """The policy's estimate for the chosen configuration (None when the config was forced)."""
    paths: list[PathTrace] = field(default_factory=list, repr=False)
    """The search's trace: every path, its step scores, and where and why it stopped."""
    verifier_eflops: float = 0.0
    """The part of ``eflops`` spent by the verifier."""


@dataclass(frozen=True)
class _Pending:
    features: ProductFeatures
    arm: int
    score: float
    cost: float


class Explanation(list[Estimate]):
    """Every configuration's estimate for one query, best upper confidence bound first."""

    def __str__(self) -> str:
        lines = [f"{'config':<18} {'mean':>8} {'width':>8} {'ucb':>8}"]
        lines += [f"{e.config!s:<18} {e.mean:>8.3f} {e.width:>8.3f} {e.ucb:>8.3f}" for e in self]
        return "\n".join(lines)


class UniScale:
    """Per query, picks ``(model, QP, CP, BS)`` with LinUCB, runs it, and learns from feedback.

    Feedback may arrive late, through :meth:`feedback` keyed by the result's
    ``decision_id``; each decision takes exactly one feedback.
    """

    def __init__(
        self,
        space: ConfigSpace,
        executor: ConfigExecutor,
        shapes: Mapping[str, ModelShape],
        *,
        encoder: QueryEncoder | None = None,
        weights: RewardWeights | None = None,
        cost_model: CostModel | None = None,
        alpha: float = 0.5,
        l2_lambda: float = 1.0,
        gamma: float = 1.0,
        seed: int = 0,
        max_pending: int = 100_000,
        listeners: Sequence[Listener] = (),
        specs: Mapping[str, ModelSpec] | None = None,
    ):
        self.cost_model = cost_model if cost_model is not None else CostModel()
        self.pricing = SpacePricing.of(space, shapes, self.cost_model)
        self._space = space.with_costs(self.pricing.normalised())
        self.executor = executor
        self.encoder = encoder if encoder is not None else QueryEncoder()
        self.weights = weights if weights is not None else RewardWeights.preset("cost-sensitive")
        z = self._space.features()
        self._action_features = z / np.linalg.norm(z, axis=1, keepdims=True)
        dim = z.shape[1] * self.encoder.context_dim
        self.bandit = LinUCB(dim, alpha=alpha, l2_lambda=l2_lambda, gamma=gamma)
        self._rng = np.random.default_rng(seed)
        self._lock = threading.RLock()
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._resolved: OrderedDict[str, None] = OrderedDict()
        self._max_pending = max_pending
        self.listeners: list[Listener] = list(listeners)
        self.specs: dict[str, ModelSpec] = dict(specs) if specs is not None else {}
        """What is known of each model of the space (name, context length), for the adapters."""

    @classmethod
    def from_defaults(
        cls,
        mode: Mode = "cost-sensitive",
        *,
        models: Sequence[str] | None = None,
        qp: Sequence[int] = (1, 2),
        cp: Sequence[int] = (1, 4),
        bs: Sequence[int] = (1,),
        registry: ModelRegistry | None = None,
        device: str | None = None,
        max_new_tokens: int = 128,
        system_prompt: str | None = None,
        instruction: str | None = None,
        verifier: Verifier | None = None,
        early_stopping: EarlyStopping | None = None,
        aggregation: Aggregation = "weighted_vote",
        **kwargs: object,
    ) -> UniScale:
        """The offline ladder (S and M) over a small QP x CP grid; nothing loads until used.

        ``instruction`` is appended to the question (e.g. ``tts.search.STEP_BY_STEP`` for math);
        ``system_prompt`` is put first in chats that bring none. ``verifier`` scores steps and
        answers (default: each path's own token confidence); see :class:`~uniscale_integrations.tts.Executor`.
        """
        from uniscale_integrations.models import DEFAULT_LADDER, ModelRegistry, load_model, resolve_device
        from uniscale_integrations.tts.backends import HFGenerator
        from uniscale_integrations.tts.search import EarlyStopping, Executor

        registry = registry if registry is not None else ModelRegistry.default()
        models = tuple(models) if models is not None else DEFAULT_LADDER
        device = device or resolve_device()
        specs = {name: registry[name] for name in models}
        cost_model = CostModel.for_device(device)

        def factory(name: str) -> Callable[[], HFGenerator]:
            return lambda: HFGenerator(load_model(specs[name], device=device))

        executor = Executor(
            {name: factory(name) for name in models},
            cost_model,
            max_new_tokens=max_new_tokens,
            system_prompt=system_prompt,
            instruction=instruction,
            verifier=verifier,
            early_stopping=early_stopping if early_stopping is not None else EarlyStopping(),
            aggregation=aggregation,
        )
        shapes = {n: ModelShape(s.params, s.n_layers, s.kv_dim) for n, s in specs.items()}
        return cls(
            ConfigSpace.grid(models, qp, cp, bs),
            executor,
            shapes,
            weights=RewardWeights.preset(mode),
            cost_model=cost_model,
            specs=specs,
            **kwargs,  # type: ignore[arg-type]
        )

    @property
    def space(self) -> ConfigSpace:
        return self._space

    def model_name(self, model: str) -> str:
        """The full name of a model of the space (its short name when no spec is known)."""
        spec = self.specs.get(model)
        return spec.hf_name if spec is not None else model

    @property
    def context_window(self) -> int | None:
        """The smallest context length among the space's models, when every one is known."""
        lengths = [self.specs[m].context_length for m in self._space.models if m in self.specs]
        return min(lengths) if lengths and len(lengths) == len(self._space.models) else None

    def features(self, query: str | Sequence[Message]) -> ProductFeatures:
        """The joint features of every configuration for ``query``.

        Both factors are scaled to unit norm, so every joint vector has norm 1: before any
        feedback every configuration has the same exploration bonus, whatever its size.
        """
        context = self.encoder.encode_one(_query_text(query))
        return ProductFeatures(context / np.linalg.norm(context), self._action_features)

    def explain(self, query: str | Sequence[Message]) -> Explanation:
        """Each configuration's estimated reward (mean), uncertainty (width) and UCB."""
        features = self.features(query)
        with self._lock:
            mean, width = self.bandit.scores(features)
            alpha = self.bandit.alpha
        estimates = [
            Estimate(config, float(m), float(w), float(m + alpha * w))
            for config, m, w in zip(self._space, mean, width, strict=True)
        ]
        return Explanation(sorted(estimates, key=lambda e: -e.ucb))

    def run(
        self,
        query: str | Sequence[Message],
        config: Config | None = None,
        *,
        stop: Sequence[str] = (),
        listeners: Sequence[Listener] = (),
        seed: int | None = None,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Result:
        """Answer ``query`` (a string or a chat), choosing the configuration unless one is given.

        ``listeners`` receive this call's events (config selected, steps scored, paths pruned)
        besides the engine's own listeners. ``seed`` fixes this call's sampling (default: drawn
        from the engine's seeded generator). ``max_new_tokens`` and ``temperature`` override
        the executor's for this call (``temperature`` applies to sampled paths).
        """
        messages = _as_messages(query)
        features = self.features(messages)
        if config is not None:
            arm = self._space.index(config)
            estimate = None
        else:
            with self._lock:
                arm = self.bandit.select(features)
                mean, width = self.bandit.scores(features)
                m, w = float(mean[arm]), float(width[arm])
                estimate = Estimate(self._space[arm], m, w, m + self.bandit.alpha * w)
            config = self._space[arm]
        observers = [*self.listeners, *listeners]
        decision_id = uuid.uuid4().hex
        emit(
            observers,
            ConfigSelected(
                decision_id,
                str(config),
                estimate.mean if estimate else None,
                estimate.width if estimate else None,
                estimate.ucb if estimate else None,
                forced=estimate is None,
            ),
        )
        if seed is None:
            with self._lock:
                seed = int(self._rng.integers(2**31))
        execution = self.executor.execute(
            messages,
            config,
            seed=seed,
            stop=stop,
            listeners=observers,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
        )
        cost = self.pricing.normalise(execution.eflops)
        self._remember(decision_id, _Pending(features, arm, execution.score, cost))
        logger.info("decision %s: %s, %.3g eFLOPs, score %.2f", decision_id, config, execution.eflops, execution.score)
        return Result(
            answer=execution.answer,
            text=execution.text,
            config=config,
            eflops=execution.eflops,
            cost=cost,
            usage=execution.usage,
            seconds=execution.seconds,
            score=execution.score,
            decision_id=decision_id,
            estimate=estimate,
            paths=execution.paths,
            verifier_eflops=execution.verifier_eflops,
        )

    def feedback(self, decision_id: str, *, correct: bool | float | None = None, score: float | None = None) -> float:
        """Apply the dense reward of a decision, exactly once, and return it.

        ``correct`` (True/False or a value in [0, 1]) is the answer's correctness when it
        is known; without it, the verifier score stands in for it. ``score`` replaces the
        verifier's score (a user's rating in [0, 1]).
        """
        correct_value = _unit("correct", correct)
        score_value = _unit("score", score)
        with self._lock:
            pending = self._pending.get(decision_id) if isinstance(decision_id, str) else None
            if pending is None:
                if isinstance(decision_id, str) and decision_id in self._resolved:
                    raise DuplicateFeedbackError(f"decision {decision_id} already received its feedback")
                raise UnknownDecisionError(f"unknown decision id {decision_id!r}")
            verifier = pending.score if score_value is None else score_value
            reward = self.weights.reward(
                correct=verifier if correct_value is None else correct_value,
                score=verifier,
                cost=pending.cost,
            )
            self.bandit.update(pending.features.row(pending.arm), reward)
            del self._pending[decision_id]
            self._resolved[decision_id] = None
            while len(self._resolved) > self._max_pending:
                self._resolved.popitem(last=False)
        emit(self.listeners, FeedbackApplied(decision_id, reward, correct_value))
        return reward

    def _remember(self, decision_id: str, pending: _Pending) -> None:
        with self._lock:
            self._pending[decision_id] = pending
            if len(self._pending) > self._max_pending:
                dropped, _ = self._pending.popitem(last=False)
                logger.warning("forgetting decision %s: more than %d await feedback", dropped, self._max_pending)


def _unit(name: str, value: bool | float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return float(value)
    if not isinstance(value, int | float) or not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a bool or a finite number in [0, 1], got {value!r}")
    return float(value)


def _as_messages(query: str | Sequence[Message]) -> list[Message]:
    if isinstance(query, str):
        return [{"role": "user", "content": _validated_text(query)}]
    if isinstance(query, Sequence) and query:
        messages = []
        for m in query:
            if not (isinstance(m, Mapping) and isinstance(m.get("role"), str) and "content" in m):
                raise InvalidQueryError(f"a chat message needs 'role' and 'content', got {m!r}")
            messages.append({"role": m["role"], "content": str(m["content"])})
        if not any(m["role"] == "user" for m in messages):
            raise InvalidQueryError("the chat has no user message")
        _validated_text(_query_text(messages))
        return messages
    raise InvalidQueryError(f"a query must be a non-empty string or chat, got {type(query).__name__}")


def _query_text(query: str | Sequence[Message]) -> str:
    if isinstance(query, str):
        return _validated_text(query)
    return next(m["content"] for m in reversed(query) if m["role"] == "user")


def _validated_text(text: str) -> str:
    if not isinstance(text, str):
        raise InvalidQueryError(f"a query must be a string, got {type(text).__name__}")
    if not text.strip():
        raise InvalidQueryError("the query is empty")
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidQueryError(f"the query has {len(text):,} characters; the limit is {MAX_QUERY_CHARS:,}")
    return text
