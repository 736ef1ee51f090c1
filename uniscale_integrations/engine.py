"""The UniScale engine: select a configuration, execute it, learn from its reward."""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from uniscale_integrations.errors import (
    BudgetError,
    ConfigSpaceError,
    ContextLengthError,
    ModelUnavailableError,
    StoreError,
    UnknownModelError,
)
from uniscale_integrations.events import ConfigSelected, FeedbackApplied, Listener, emit
from uniscale_integrations.features.encoder import QueryEncoder
from uniscale_integrations.features.joint import ProductFeatures
from uniscale_integrations.features.query import Message, as_messages, query_record, query_text
from uniscale_integrations.features.space import Config, ConfigSpace
from uniscale_integrations.policy.linucb import LinUCB
from uniscale_integrations.policy.replica import Replica
from uniscale_integrations.reward.budget import Budget, Cap
from uniscale_integrations.reward.cost import CostModel, ModelShape, NominalBudget, SpacePricing, Usage, nominal_usage
from uniscale_integrations.reward.weights import Mode, RewardWeights
from uniscale_integrations.store.records import Decision, Outcome, checked_decision_id, new_decision_id, query_hash
from uniscale_integrations.store.sqlite import PolicyStore, open_store

if TYPE_CHECKING:
    from uniscale_integrations.executor.paths import Aggregation, PathTrace
    from uniscale_integrations.executor.search import Execution
    from uniscale_integrations.executor.stopping import EarlyStopping
    from uniscale_integrations.executor.styles import AnswerStyle
    from uniscale_integrations.executor.verifiers import Verifier
    from uniscale_integrations.models import ModelRegistry, ModelSpec

logger = logging.getLogger(__name__)


class ConfigExecutor(Protocol):
    """Runs one configuration on one chat (see :class:`uniscale_integrations.executor.search.Executor`).

    An executor may also offer ``prompt_tokens(messages, model, qp) -> int | None`` (the tokens of
    the longest rendered variant) and ``max_new_tokens``; with them, the engine leaves out models
    whose context window cannot hold a query before it chooses.
    """

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
        budget: Budget | None = None,
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
    budget_exhausted: Cap | None = None
    """The budget cap that stopped the search early; the answer is then the best found so far."""


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

    ``store`` keeps decisions, the feedback log and the policy: a path to an SQLite file
    (or an :class:`~uniscale_integrations.store.sqlite.SQLiteStore`), or a ``postgresql://`` URL
    (or a :class:`~uniscale_integrations.store.postgres.PostgresStore`) makes them durable
    and shareable between processes; without one they live in memory. The policy is always
    the replay of the feedback log (see :mod:`~uniscale_integrations.policy.replica`).
    Decisions wait for feedback up to ``max_pending`` at a time (the oldest are dropped
    with a warning). Close the engine (or use it as a context manager) to close the store.
    Costs are shares of the dearest configuration's nominal eFLOPs under ``nominal_budget``
    (prompt and new tokens per path); give the budget the executor's token cap, or long paths
    clip at a cost of 1.
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
        store: str | os.PathLike[str] | PolicyStore | None = None,
        snapshot_every: int = 1000,
        max_prompt_tokens: int | None = None,
        refit_rewards: bool = False,
        nominal_budget: NominalBudget | None = None,
    ):
        if max_prompt_tokens is not None and (
            isinstance(max_prompt_tokens, bool) or not isinstance(max_prompt_tokens, int) or max_prompt_tokens < 1
        ):
            raise ValueError(f"max_prompt_tokens must be a positive integer or None, got {max_prompt_tokens!r}")
        self.max_prompt_tokens = max_prompt_tokens
        """The most prompt tokens a query may render to (each model's context window bounds it too)."""
        if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
            raise ValueError(f"max_pending must be a positive integer, got {max_pending!r}")
        self.cost_model = cost_model if cost_model is not None else CostModel()
        nominal_budget = nominal_budget if nominal_budget is not None else NominalBudget()
        self.pricing = SpacePricing.of(space, shapes, self.cost_model, nominal_budget)
        self._space = space.with_costs(self.pricing.normalised())
        self.executor = executor
        self.encoder = encoder if encoder is not None else QueryEncoder()
        self.weights = weights if weights is not None else RewardWeights.preset("cost-sensitive")
        z = self._space.features()
        self._action_features = z / np.linalg.norm(z, axis=1, keepdims=True)
        LinUCB(z.shape[1] * self.encoder.context_dim, alpha=alpha, l2_lambda=l2_lambda, gamma=gamma)  # validates
        self._rng = np.random.default_rng(seed)
        self._lock = threading.RLock()
        self._max_pending = max_pending
        self._nominal_tokens = {c: nominal_usage(c, nominal_budget).completion_tokens for c in self._space}
        self._excluded: set[str] = set()
        """Models that failed to load; selection leaves their configurations out."""
        self.listeners: list[Listener] = list(listeners)
        self.specs: dict[str, ModelSpec] = dict(specs) if specs is not None else {}
        """What is known of each model of the space (name, context length), for the adapters."""
        self.store = open_store(store)
        try:
            self._attach_space()
            self._attach_reward(refit_rewards)
            self._replica = Replica(
                self.store,
                self._space,
                self._action_features,
                self.encoder.context_dim,
                alpha=alpha,
                l2_lambda=l2_lambda,
                gamma=gamma,
                snapshot_every=snapshot_every,
            )
        except BaseException:
            self.store.close()
            raise

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
        style: str | AnswerStyle = "plain",
        max_new_tokens: int | None = None,
        temperature: float = 0.7,
        top_p: float = 0.95,
        greedy_first: bool = False,
        stop_at_answer: bool | None = None,
        stop_on_loop: bool = False,
        system_prompt: str | None = None,
        instruction: str | None = None,
        verifier: Verifier | Literal["cross-model"] | None = None,
        early_stopping: EarlyStopping | None = None,
        aggregation: Aggregation = "weighted_vote",
        verifier_timeout: float | None = None,
        remote: Mapping[str, str] | None = None,
        **kwargs: object,
    ) -> UniScale:
        """The offline ladder (S and M) over a small QP x CP grid; nothing loads until used.

        ``style`` (:data:`~uniscale_integrations.executor.styles.STYLES`: ``"plain"``, ``"reasoned"``,
        ``"brief"``) sets the instruction appended to the question, each rung's token budget,
        whether a path stops at its answer line, and whether candidates pool by meaning;
        ``instruction``, ``max_new_tokens`` (every rung) and ``stop_at_answer`` override it.
        ``temperature`` to ``stop_on_loop`` say how paths decode (see
        :class:`~uniscale_integrations.executor.search.Executor`; table v2 was decoded with the reasoned style,
        temperature 0.6, top-p 0.9, greedy first and the loop stop);
        ``system_prompt`` is put first in chats that bring none. ``verifier`` scores steps and
        answers (default: each path's own token confidence; ``"cross-model"``: each rung's paths
        by the next larger rung's log-likelihood, see
        :func:`~uniscale_integrations.executor.verifiers.cross_model_verifiers`), each call within ``verifier_timeout``
        seconds when set; see :class:`~uniscale_integrations.executor.search.Executor`. ``remote`` maps rungs
        to the base URL of an OpenAI-compatible server that serves them under the rung's name (e.g.
        ``{"M": "http://gpu-box:8080/v1"}``): those rungs generate there
        (:class:`~uniscale_integrations.backends.openai.OpenAIGenerator`, ChatML prompts), priced
        by their declared size and the tokens the server reports.
        """
        from uniscale_integrations.backends.base import Generator
        from uniscale_integrations.backends.hf.generator import HFGenerator
        from uniscale_integrations.backends.openai import OpenAIGenerator
        from uniscale_integrations.executor.pooling import MeaningPool
        from uniscale_integrations.executor.search import Executor
        from uniscale_integrations.executor.stopping import EarlyStopping
        from uniscale_integrations.executor.styles import answer_style
        from uniscale_integrations.executor.verifiers import cross_model_verifiers
        from uniscale_integrations.features.encoder import MiniLMEmbedder
        from uniscale_integrations.models import DEFAULT_LADDER, ModelRegistry, load_model, resolve_device

        registry = registry if registry is not None else ModelRegistry.default()
        models = tuple(models) if models is not None else DEFAULT_LADDER
        device = device or resolve_device()
        specs = {name: registry[name] for name in models}
        remote = dict(remote or {})
        unknown = sorted(set(remote) - set(models))
        if unknown:
            raise ConfigSpaceError(f"remote rung(s) {', '.join(unknown)} not among the models {', '.join(models)}")
        cost_model = CostModel.for_device(device)
        shapes = {n: ModelShape.of(s) for n, s in specs.items()}
        answers = answer_style(style)
        budgets = answers.budgets(models) if max_new_tokens is None else dict.fromkeys(models, max_new_tokens)

        def factory(name: str) -> Callable[[], Generator]:
            if name in remote:
                return lambda: OpenAIGenerator(remote[name], name, shapes[name]).check()
            return lambda: HFGenerator(load_model(specs[name], device=device))

        executor = Executor(
            {name: factory(name) for name in models},
            cost_model,
            max_new_tokens=max(budgets.values(), default=answers.max_new_tokens),
            token_budgets=budgets,
            temperature=temperature,
            top_p=top_p,
            greedy_first=greedy_first,
            stop_at_answer=answers.stop_at_answer if stop_at_answer is None else stop_at_answer,
            stop_on_loop=stop_on_loop,
            system_prompt=system_prompt,
            instruction=instruction if instruction is not None else answers.instruction,
            verifier=cross_model_verifiers(specs, device=device, cost_model=cost_model)
            if verifier == "cross-model"
            else verifier,
            early_stopping=early_stopping if early_stopping is not None else EarlyStopping(),
            aggregation=aggregation,
            verifier_timeout=verifier_timeout,
            meaning=MeaningPool(MiniLMEmbedder(device), cost_model=cost_model) if answers.pool_by_meaning else None,
        )
        return cls(
            ConfigSpace.grid(models, qp, cp, bs),
            executor,
            shapes,
            weights=RewardWeights.preset(mode),
            cost_model=cost_model,
            specs=specs,
            **kwargs,  # type: ignore[arg-type]
        )

    def _attach_reward(self, refit: bool) -> None:
        """Record the reward weights in the store; a store logged under others is refused unless ``refit``."""

        def reweigh(correct: float | None, score: float, cost: float) -> float:
            return self.weights.reward(correct=score if correct is None else correct, score=score, cost=cost)

        weights = self.weights
        self.store.attach_reward(
            {"correct": weights.correct, "score": weights.score, "cost": weights.cost}, reweigh if refit else None
        )

    def _attach_space(self) -> None:
        """Record this engine's space in the store; say so when it differs from the one there."""
        configs = [str(c) for c in self._space]
        previous = self.store.attach(
            {
                "configs": configs,
                "config_features": list(self._space.feature_names),
                "context_features": list(self.encoder.feature_names),
            }
        )
        if previous is not None:
            before = previous.get("configs")
            before = before if isinstance(before, list) else []
            added = [c for c in configs if c not in before]
            removed = [c for c in before if c not in configs]
            logger.info(
                "store %s: the config space changed (added: %s; removed: %s); the policy is refitted from the "
                "feedback log on the configurations still present",
                self.store.path,
                ", ".join(added) or "none",
                ", ".join(map(str, removed)) or "none",
            )

    @property
    def space(self) -> ConfigSpace:
        return self._space

    @property
    def bandit(self) -> LinUCB:
        """The policy: the replay of the store's feedback log as of the last :meth:`sync`."""
        return self._replica.bandit

    def sync(self) -> int:
        """Apply feedback that other engines sharing the store have committed; returns how many rows.

        :meth:`run`, :meth:`explain` and :meth:`feedback` do this themselves.
        """
        with self._lock:
            return self._replica.catch_up()

    def rebuild(self) -> LinUCB:
        """A bandit replayed from the whole feedback log, snapshots ignored (to check or repair)."""
        with self._lock:
            return self._replica.rebuild()

    def model_name(self, model: str) -> str:
        """The full name of a model of the space (its short name when no spec is known)."""
        spec = self.specs.get(model)
        return spec.hf_name if spec is not None else model

    def describe(self, result: Result) -> dict[str, Any]:
        """A result's decision as plain data: what the adapters attach to their responses."""
        estimate = result.estimate
        return {
            "decision_id": result.decision_id,
            "config": str(result.config),
            "model": self.model_name(result.config.model),
            "eflops": result.eflops,
            "verifier_eflops": result.verifier_eflops,
            "cost": result.cost,
            "score": result.score,
            "answer": result.answer,
            "seconds": result.seconds,
            "estimate": None
            if estimate is None
            else {"mean": estimate.mean, "width": estimate.width, "ucb": estimate.ucb},
            "paths": len(result.paths),
            "pruned": sum(p.status == "pruned" for p in result.paths),
            "budget_exhausted": result.budget_exhausted,
        }

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
        context = self.encoder.encode_one(query_text(as_messages(query)))
        return ProductFeatures(context / np.linalg.norm(context), self._action_features)

    def explain(self, query: str | Sequence[Message]) -> Explanation:
        """Each configuration's estimated reward (mean), uncertainty (width) and UCB."""
        features = self.features(query)
        with self._lock:
            self._replica.catch_up()
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
        budget: Budget | None = None,
        models: Collection[str] | None = None,
    ) -> Result:
        """Answer ``query`` (a string or a chat), choosing the configuration unless one is given.

        ``listeners`` receive this call's events (config selected, steps scored, paths pruned)
        besides the engine's own listeners. ``seed`` fixes this call's sampling (default: drawn
        from the engine's seeded generator). ``max_new_tokens`` and ``temperature`` override
        the executor's for this call (``temperature`` applies to sampled paths).

        ``budget`` caps this query's eFLOPs, generated tokens and seconds: configurations whose
        nominal cost exceeds a cap are not selected (:class:`BudgetError` if none fits), and the
        search stops at a cap with its best answer so far (``Result.budget_exhausted``).
        ``models`` restricts the choice to those models of the space (the policy still picks
        the test-time scaling). When the chosen configuration's model cannot be loaded, the model is left out of this
        engine's choices from then on (with a warning) and another configuration is chosen.
        """
        if max_new_tokens is not None and (
            isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1
        ):
            raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
        if temperature is not None and (
            isinstance(temperature, bool) or not (isinstance(temperature, int | float) and 0 <= temperature < math.inf)
        ):
            raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
        stop = checked_stop(stop)
        if models is not None:
            models = self._known_models(models)
        messages = as_messages(query)
        if config is None:
            models = self._fitting_models(messages, max_new_tokens, models)
        else:
            self._fitting_models(messages, max_new_tokens, {config.model}, forced=True)
        features = self.features(messages)
        while True:
            arm, estimate = (
                (self._space.index(config), None) if config is not None else self._select(features, budget, models)
            )
            try:
                return self._execute(
                    messages, features, arm, estimate, listeners, seed, stop, max_new_tokens, temperature, budget
                )
            except ModelUnavailableError as exc:
                if config is not None or exc.model not in self._space.models:
                    raise
                self._exclude(exc)

    def _exclude(self, error: ModelUnavailableError) -> None:
        """Leave a model that failed to load out of this engine's choices from now on."""
        with self._lock:
            self._excluded.add(error.model)
        logger.warning("%s; its configurations are left out from now on", error)

    def _fitting_models(
        self,
        messages: list[Message],
        max_new_tokens: int | None,
        models: Collection[str] | None,
        *,
        forced: bool = False,
    ) -> frozenset[str]:
        """The models (of ``models``, default all) whose context window holds the rendered prompt and
        its new tokens, within :attr:`max_prompt_tokens`; :class:`ContextLengthError` when none does.

        Models that failed to load are left out, unless ``forced`` (a forced configuration's model is
        tried again, and its loading error raised)."""
        candidates = list(models) if models is not None else list(self._space.models)
        budget = getattr(self.executor, "token_budget", None)
        count = getattr(self.executor, "prompt_tokens", None)
        fits, refusals = [], []
        with self._lock:
            excluded = set(self._excluded)
        for model in candidates:
            if model in excluded and not forced:
                continue
            qp = max(c.qp for c in self._space if c.model == model)
            try:
                tokens = count(messages, model, qp) if count is not None else None
            except ModelUnavailableError as exc:
                if forced:
                    raise
                self._exclude(exc)
                continue
            window = self.specs[model].context_length if model in self.specs else None
            new = max_new_tokens if max_new_tokens is not None else (budget(model) if callable(budget) else 0)
            too_long = []
            if tokens is not None and window is not None and tokens + new > window:
                too_long.append(f"{tokens:,} prompt + {new:,} new tokens exceed its context window of {window:,}")
            if tokens is not None and self.max_prompt_tokens is not None and tokens > self.max_prompt_tokens:
                too_long.append(f"{tokens:,} prompt tokens exceed the limit of {self.max_prompt_tokens:,}")
            if too_long:
                refusals.append(f"{model}: {'; '.join(too_long)}")
            else:
                fits.append(model)
        if not fits and not refusals:  # every candidate failed to load
            names = ", ".join(sorted(candidates))
            raise ModelUnavailableError(names, f"no model of the space could be loaded ({names}); see the warnings")
        if not fits:
            raise ContextLengthError(
                f"the prompt is too long for every model ({' | '.join(refusals)}); "
                "shorten the messages or ask for fewer new tokens"
            )
        return frozenset(fits)

    def _known_models(self, models: Collection[str]) -> frozenset[str]:
        if isinstance(models, str) or not models:
            raise ValueError(f"models must be a non-empty collection of model names, got {models!r}")
        unknown = sorted(set(models) - set(self._space.models))
        if unknown:
            raise UnknownModelError(f"models {unknown} are not in the space; it has {list(self._space.models)}")
        return frozenset(models)

    def _select(
        self, features: ProductFeatures, budget: Budget | None, models: Collection[str] | None = None
    ) -> tuple[int, Estimate]:
        """The configuration with the best UCB among those allowed (models asked for, budget, loadable models)."""
        with self._lock:
            excluded = set(self._excluded)
        allowed = [
            i
            for i, c in enumerate(self._space)
            if c.model not in excluded
            and (models is None or c.model in models)
            and (budget is None or budget.fits(eflops=self.pricing.nominal[c], tokens=self._nominal_tokens[c]))
        ]
        if not allowed:
            wanted = set(models if models is not None else self._space.models)
            if wanted <= excluded:
                names = ", ".join(sorted(wanted))
                raise ModelUnavailableError(names, f"no model of the space could be loaded ({names}); see the warnings")
            cheapest = min(self._space, key=lambda c: self.pricing.nominal[c])
            raise BudgetError(
                f"no configuration fits {budget}: the cheapest, {cheapest}, needs "
                f"{self.pricing.nominal[cheapest]:.3g} eFLOPs and {self._nominal_tokens[cheapest]} tokens nominally"
            )
        candidates = ProductFeatures(features.context, features.actions[allowed])
        with self._lock:
            self._replica.catch_up()
            best = self.bandit.select(candidates)
            mean, width = self.bandit.scores(candidates)
            alpha = self.bandit.alpha
        arm = allowed[best]
        m, w = float(mean[best]), float(width[best])
        return arm, Estimate(self._space[arm], m, w, m + alpha * w)

    def _execute(
        self,
        messages: list[Message],
        features: ProductFeatures,
        arm: int,
        estimate: Estimate | None,
        listeners: Sequence[Listener],
        seed: int | None,
        stop: Sequence[str],
        max_new_tokens: int | None,
        temperature: float | None,
        budget: Budget | None,
    ) -> Result:
        config = self._space[arm]
        observers = [*self.listeners, *listeners]
        decision_id = new_decision_id()
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
            **({"budget": budget} if budget is not None else {}),  # executors without budgets keep working
        )
        cost = self.pricing.normalise(execution.eflops)
        text = query_record(messages)
        decision = Decision(decision_id, config, features.context, cost, execution.score, query_hash(text), text)
        for dropped in self.store.record(decision, max_pending=self._max_pending):
            logger.warning("forgetting decision %s: more than %d await feedback", dropped, self._max_pending)
        logger.debug("decision %s: %s, %.3g eFLOPs, score %.2f", decision_id, config, execution.eflops, execution.score)
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
            budget_exhausted=execution.budget_exhausted,
        )

    def feedback(self, decision_id: str, *, correct: bool | float | None = None, score: float | None = None) -> float:
        """Apply the dense reward of a decision, exactly once, and return it.

        ``correct`` (True/False or a value in [0, 1]) is the answer's correctness when it
        is known; without it, the verifier score stands in for it. ``score`` replaces the
        verifier's score (a user's rating in [0, 1]).
        """
        correct_value = _unit("correct", correct)
        score_value = _unit("score", score, booleans=False)
        decision_id = checked_decision_id(decision_id)

        def judge(decision: Decision) -> Outcome:
            verifier = decision.score if score_value is None else score_value
            reward = self.weights.reward(
                correct=verifier if correct_value is None else correct_value, score=verifier, cost=decision.cost
            )
            return Outcome(reward, correct_value, verifier)

        outcome = self.store.resolve(decision_id, judge)  # one transaction: exactly once, across processes
        with self._lock:
            self._replica.catch_up()
        emit(self.listeners, FeedbackApplied(decision_id, outcome.reward, correct_value))
        return outcome.reward

    # ------------------------------------------------------------------ export, import, closing
    def export_json(self, path: str | os.PathLike[str]) -> None:
        """Write the store (decisions, feedback log, space) and the current policy to a JSON file.

        The policy's arrays are there to be read; :meth:`import_json` replays the log instead.
        """
        with self._lock:
            self._replica.catch_up()
            state = self.bandit.state_dict()
        data = self.store.export()
        data["policy"] = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in state.items()}
        target = Path(path)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_text(json.dumps(data, allow_nan=False, ensure_ascii=False) + "\n", encoding="utf-8")
        partial.replace(target)

    def import_json(self, path: str | os.PathLike[str]) -> int:
        """Load an :meth:`export_json` file into this engine's store, which must hold no decisions.

        The policy is then the replay of the imported log in this engine's space. Returns the
        number of feedback rows imported; raises :class:`StoreError` naming the problem.
        """
        try:
            data: Any = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StoreError(f"cannot import {path}: {exc}") from exc
        imported = self.store.import_(data, str(path), context_dim=self.encoder.context_dim)
        self.sync()
        return imported

    def close(self) -> None:
        """Close the store; feedback for pending decisions can be given after reopening it."""
        self.store.close()

    def __enter__(self) -> UniScale:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def _unit(name: str, value: bool | float | None, *, booleans: bool = True) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) and booleans:
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be {'a bool or ' if booleans else ''}a finite number in [0, 1], got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be {'a bool or ' if booleans else ''}a finite number in [0, 1], got {value!r}")
    return float(value)


def checked_stop(stop: Sequence[str]) -> tuple[str, ...]:
    """Stop sequences as a tuple; each must be a non-empty string (the server's rule too)."""
    if isinstance(stop, str):
        stop = [stop]
    stops = tuple(stop)
    if any(not isinstance(s, str) or not s for s in stops):
        raise ValueError("stop sequences must be non-empty strings")
    return stops
