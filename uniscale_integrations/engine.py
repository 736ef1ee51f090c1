"""The UniScale engine: select a configuration, execute it, learn from its reward."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from uniscale_integrations.checks import unit_interval
from uniscale_integrations.defaults import Defaults
from uniscale_integrations.errors import (
    BudgetError,
    CapabilityError,
    ContextLengthError,
    ModelUnavailableError,
    StoreError,
    UnknownModelError,
)
from uniscale_integrations.events import ConfigSelected, FeedbackApplied, Listener, emit
from uniscale_integrations.features.encoder import QueryEncoder
from uniscale_integrations.features.joint import ProductFeatures
from uniscale_integrations.features.query import Message, as_messages, query_record, query_text, record_messages
from uniscale_integrations.features.space import Config, ConfigSpace
from uniscale_integrations.options import RunOptions
from uniscale_integrations.policy.attribution import Attribution, attribute
from uniscale_integrations.policy.linucb import DEFAULT_ALPHA, DEFAULT_SHRINKAGE, LinUCB, LinUCBPolicy, joint_linucb
from uniscale_integrations.policy.prior import DEFAULT_PRIOR, Prior
from uniscale_integrations.policy.replica import Replica
from uniscale_integrations.reward.budget import Budget, Cap
from uniscale_integrations.reward.cost import (
    CostModel,
    NominalBudget,
    Shaped,
    SpacePricing,
    Usage,
    nominal_usage,
)
from uniscale_integrations.reward.weights import Mode, RewardWeights
from uniscale_integrations.store import PolicyStore, open_store
from uniscale_integrations.store.records import Decision, Outcome, checked_decision_id, new_decision_id, query_hash
from uniscale_integrations.tools import Reply, needs

if TYPE_CHECKING:
    from uniscale_integrations.executor.paths import PathTrace
    from uniscale_integrations.executor.search import Execution
    from uniscale_integrations.executor.trace import SearchTrace
    from uniscale_integrations.models import ModelSpec

logger = logging.getLogger(__name__)
_PIECES = re.compile(r"\s*\S+\s*|\s+")


class ConfigExecutor(Protocol):
    """Runs one configuration on one chat (see :class:`uniscale_integrations.executor.search.Executor`).

    An executor may also offer ``prompt_tokens(messages, model, qp, options) -> int | None`` (the tokens
    of the longest rendered variant) and ``token_budget(model) -> int``; with them, the engine leaves
    out models whose context window cannot hold a query before it chooses.
    """

    def execute(
        self, messages: Sequence[Message], config: Config, options: RunOptions, listeners: Iterable[Listener] = ()
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
    model: str | None = None
    """The full name of the model that answered (its short name, ``config.model``, when no spec is known)."""
    trace: SearchTrace | None = field(default=None, repr=False)
    """The search in short: paths, steps, pruned paths, votes, tokens, why it stopped (``None`` when the
    executor keeps no trace)."""
    reply: Reply | None = None
    """The answer read as the call asked: its tool calls or JSON value (``None`` for a text call). A reply with a
    ``problem`` is one no candidate got right, returned as text."""

    def to_dict(self) -> dict[str, Any]:
        """The decision, its cost and its score as plain data: what every adapter attaches to its response."""
        estimate = self.estimate
        return {
            "decision_id": self.decision_id,
            "config": str(self.config),
            "model": self.model if self.model is not None else self.config.model,
            "eflops": self.eflops,
            "verifier_eflops": self.verifier_eflops,
            "cost": self.cost,
            "score": self.score,
            "answer": self.answer,
            "seconds": self.seconds,
            "estimate": None
            if estimate is None
            else {"mean": estimate.mean, "width": estimate.width, "ucb": estimate.ucb},
            "paths": len(self.paths),
            "pruned": sum(p.status == "pruned" for p in self.paths),
            "budget_exhausted": self.budget_exhausted,
            "trace": self.trace.to_dict() if self.trace is not None else None,
        }

    def pieces(self) -> list[str]:
        """:attr:`text` in word-sized pieces (whitespace kept) that join back to it: what a stream sends."""
        return _PIECES.findall(self.text)


class Explanation(list[Estimate]):
    """Every eligible configuration's estimate for one query, best upper confidence bound first;
    :attr:`attribution`: which context features drove the choice; :attr:`excluded`: the models left out
    for what the call needs (tools, JSON), and why."""

    def __init__(
        self,
        estimates: Iterable[Estimate] = (),
        attribution: Attribution | None = None,
        excluded: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(estimates)
        self.attribution = attribution
        """The chosen configuration's estimate split over the context features, and its lead over the runner-up."""
        self.excluded: dict[str, str] = dict(excluded or {})

    def __str__(self) -> str:
        lines = [f"{'config':<18} {'mean':>8} {'width':>8} {'ucb':>8}"]
        lines += [f"{e.config!s:<18} {e.mean:>8.3f} {e.width:>8.3f} {e.ucb:>8.3f}" for e in self]
        lines += [f"left out: {model}: {why}" for model, why in self.excluded.items()]
        if self.attribution is not None:
            lines += ["", str(self.attribution)]
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

    ``prior`` starts the policy from past outcomes rather than from nothing
    (:mod:`~uniscale_integrations.policy.prior`): ``"default"`` is the shipped table's tuning
    split, with contexts re-encoded by this engine's encoder and rewards recomputed under its
    weights and cost normalisation; the policy keeps learning online from there. ``prior_weight``
    is how many live observations each of the prior's outcomes counts as (default: the prior's
    own; :data:`~uniscale_integrations.policy.prior.DEFAULT_PRIOR_WEIGHT` for ``"default"``).

    LinUCB's settings: ``alpha`` weighs exploration, ``l2_lambda`` is the ridge, ``gamma < 1`` forgets old
    feedback (drift), and ``shrinkage`` regularises the query-by-configuration interactions that many times
    harder than the configurations' overall levels
    (:func:`~uniscale_integrations.features.joint.interaction_ridge_scale`).

    The store records the encoder's context representation (``encoder.representation``); a store
    whose decisions were encoded with another one is refused (:class:`StoreRepresentationError`),
    unless ``refit_representation``: then every logged query is re-encoded with this engine's
    encoder, which needs a store that keeps its queries. Likewise a store logged under other reward
    weights is refused unless ``refit_rewards``.
    """

    def __init__(
        self,
        space: ConfigSpace,
        executor: ConfigExecutor,
        shapes: Mapping[str, Shaped],
        *,
        encoder: QueryEncoder | None = None,
        weights: RewardWeights | None = None,
        cost_model: CostModel | None = None,
        alpha: float = DEFAULT_ALPHA,
        l2_lambda: float = 1.0,
        gamma: float = 1.0,
        shrinkage: float = DEFAULT_SHRINKAGE,
        seed: int = 0,
        max_pending: int = 100_000,
        listeners: Sequence[Listener] = (),
        specs: Mapping[str, ModelSpec] | None = None,
        store: str | os.PathLike[str] | PolicyStore | None = None,
        snapshot_every: int = 1000,
        max_prompt_tokens: int | None = None,
        refit_rewards: bool = False,
        refit_representation: bool = False,
        nominal_budget: NominalBudget | None = None,
        prior: Prior | Literal["default"] | None = None,
        prior_weight: float | None = None,
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
        bandit_settings = {"alpha": alpha, "l2_lambda": l2_lambda, "gamma": gamma, "shrinkage": shrinkage}
        joint_linucb(z.shape[1], self.encoder.context_dim, **bandit_settings)  # validates
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
            self.store.attach_representation(
                self.encoder.representation, self._reencoded if refit_representation else None
            )
            self._replica = Replica(
                self.store,
                self._space,
                self._action_features,
                self.encoder.context_dim,
                **bandit_settings,
                snapshot_every=snapshot_every,
                prior=self._prior(prior, prior_weight),
            )
        except BaseException:
            self.store.close()
            raise

    def _prior(self, prior: Prior | str | None, weight: float | None) -> Prior | None:
        if prior is None:
            if weight is not None:
                raise ValueError("prior_weight needs a prior")
            return None
        if isinstance(prior, str) and prior == DEFAULT_PRIOR:
            prior = Prior.default(self.weights, encode=self.encoder.encode, normalise_cost=self.pricing.normalise)
        if not isinstance(prior, Prior):
            raise ValueError(f"prior must be a Prior, {DEFAULT_PRIOR!r} or None, got {prior!r}")
        return prior if weight is None else prior.weighted(weight)

    @classmethod
    def from_defaults(cls, mode: Mode = "cost-sensitive", **options: Any) -> UniScale:
        """An engine on the default stack: the offline ladder (S and M) over a small QP x CP grid;
        nothing loads until used.

        ``mode`` picks the reward weights. ``options`` are the stack's settings
        (:class:`~uniscale_integrations.defaults.Defaults`: ``models``, ``qp``, ``cp``, ``bs``, ``style``,
        ``max_new_tokens``, ``temperature``, ``instruction``, ``verifier``, ``early_stopping``, ``remote``,
        ...) and this class's own keywords (``seed``, ``store``, ``alpha``, ``listeners``, ...).
        """
        defaults, engine_options = Defaults.split(options)
        return cls(**{**defaults.build().engine_kwargs(mode), **engine_options})

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
    def policy(self) -> LinUCBPolicy:
        """The policy: the replay of the store's feedback log as of the last :meth:`sync`."""
        return self._replica.policy

    @property
    def bandit(self) -> LinUCB:
        """The policy's LinUCB (its arrays and hyperparameters)."""
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
        return ProductFeatures(self._contexts([query_text(as_messages(query))])[0], self._action_features)

    def _contexts(self, texts: list[str]) -> np.ndarray:
        """The unit-norm context vectors of query texts, as decisions keep them."""
        contexts = self.encoder.encode(texts)
        return contexts / np.linalg.norm(contexts, axis=1, keepdims=True)

    def _reencoded(self, records: list[str]) -> np.ndarray:
        """The contexts of logged queries (:func:`query_record` texts) under this engine's encoder."""
        return self._contexts([query_text(record_messages(r)) for r in records])

    def explain(self, query: str | Sequence[Message], options: RunOptions | None = None) -> Explanation:
        """Each configuration's estimated reward (mean), uncertainty (width) and UCB, and which context
        features drove the choice (the top-UCB configuration's estimate split over them, and its lead
        over the runner-up: see :mod:`~uniscale_integrations.policy.attribution`). With ``options`` that ask
        for tools or a schema, the models that cannot serve the call are left out (``Explanation.excluded``)."""
        messages = as_messages(query)
        capable, excluded = self._capable(messages, options if options is not None else RunOptions(), strict=False)
        features = self.features(messages)
        with self._lock:
            self._replica.catch_up()
            mean, width, ucb = self.policy.estimates(features)
            eligible = [i for i, config in enumerate(self._space) if config.model in capable]
            order = sorted(eligible, key=lambda i: (-ucb[i], i))  # run()'s rule: the highest UCB, ties the first
            attribution = (
                attribute(
                    self.bandit,
                    features,
                    self.encoder.feature_names,
                    list(self._space),
                    order[0],
                    order[1] if len(order) > 1 else None,
                )
                if order
                else None
            )
        estimates = [Estimate(self._space[i], float(mean[i]), float(width[i]), float(ucb[i])) for i in order]
        return Explanation(estimates, attribution, excluded)

    def run(
        self,
        query: str | Sequence[Message],
        options: RunOptions | Config | None = None,
        *,
        listeners: Sequence[Listener] = (),
        **fields: Any,
    ) -> Result:
        """Answer ``query`` (a string or a chat), choosing the configuration unless the options force one.

        ``options`` (:class:`~uniscale_integrations.options.RunOptions`) are this call's options; its
        fields may also be given as keywords (``run(q, config=..., seed=...)``), or a lone
        :class:`Config` forces that configuration. ``listeners`` receive this call's events (config
        selected, steps scored, paths pruned) besides the engine's own listeners.

        A ``budget`` leaves out the configurations whose nominal cost exceeds a cap
        (:class:`BudgetError` if none fits), and the search stops at a cap with its best answer so far
        (``Result.budget_exhausted``). ``models`` restricts the choice to those models of the space.
        When the chosen configuration's model cannot be loaded, the model is left out of this engine's
        choices from then on (with a warning) and another configuration is chosen.
        """
        options = RunOptions.of(RunOptions(config=options) if isinstance(options, Config) else options, **fields)
        messages = as_messages(query)
        config = options.config
        if config is None:
            known = self._known_models(options.models) if options.models is not None else None
            capable, _ = self._capable(messages, options, known)
            models = self._fitting_models(messages, options, capable)
        else:
            self._capable(messages, options, {config.model})
            self._fitting_models(messages, options, {config.model}, forced=True)
        features = self.features(messages)
        while True:
            arm, estimate = (
                (self._space.index(config), None)
                if config is not None
                else self._select(features, options.budget, models)
            )
            try:
                return self._execute(messages, features, arm, estimate, listeners, options)
            except ModelUnavailableError as exc:
                if config is not None or exc.model not in self._space.models:
                    raise
                self._exclude(exc)

    def _exclude(self, error: ModelUnavailableError) -> None:
        """Leave a model that failed to load out of this engine's choices from now on."""
        with self._lock:
            self._excluded.add(error.model)
        logger.warning("%s; its configurations are left out from now on", error)

    def _capable(
        self,
        messages: list[Message],
        options: RunOptions,
        models: Collection[str] | None = None,
        *,
        strict: bool = True,
    ) -> tuple[frozenset[str], dict[str, str]]:
        """The models (of ``models``, default all) that declare what the call needs (tool calls, JSON output), and
        why each other one is left out; with ``strict``, :class:`CapabilityError` when none is left."""
        need = needs(messages, options.asked())
        candidates = list(models) if models is not None else list(self._space.models)
        excluded = {}
        for model in candidates:
            missing = sorted(need - (self.specs[model].capabilities if model in self.specs else frozenset()))
            if missing:
                excluded[model] = f"{self.model_name(model)} declares no {' and no '.join(missing)}"
        if strict and len(excluded) == len(candidates):
            raise CapabilityError(
                f"no model can serve this call, which needs {' and '.join(sorted(need))} "
                f"({'; '.join(f'{m}: {why}' for m, why in excluded.items())})"
            )
        return frozenset(m for m in candidates if m not in excluded), excluded

    def _fitting_models(
        self,
        messages: list[Message],
        options: RunOptions,
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
                tokens = count(messages, model, qp, options) if count is not None else None
            except ModelUnavailableError as exc:
                if forced:
                    raise
                self._exclude(exc)
                continue
            window = self.specs[model].context_length if model in self.specs else None
            new = options.max_new_tokens
            new = new if new is not None else (budget(model) if callable(budget) else 0)
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
            best = self.policy.select(candidates)
            mean, width, ucb = self.policy.estimates(candidates)
        arm = allowed[best]
        return arm, Estimate(self._space[arm], float(mean[best]), float(width[best]), float(ucb[best]))

    def _execute(
        self,
        messages: list[Message],
        features: ProductFeatures,
        arm: int,
        estimate: Estimate | None,
        listeners: Sequence[Listener],
        options: RunOptions,
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
        if options.seed is None:
            with self._lock:
                options = options.replace(seed=int(self._rng.integers(2**31)))
        execution = self.executor.execute(messages, config, options, observers)
        cost = self.pricing.normalise(execution.eflops)
        text = query_record(messages)
        decision = Decision(decision_id, config, features.context, cost, execution.score, query_hash(text), text)
        for dropped in self.store.record(decision, max_pending=self._max_pending):
            logger.warning("forgetting decision %s: more than %d await feedback", dropped, self._max_pending)
        logger.debug("decision %s: %s, %.3g eFLOPs, score %.2f", decision_id, config, execution.eflops, execution.score)
        return Result(
            model=self.model_name(config.model),
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
            trace=execution.trace,
            reply=execution.reply,
        )

    def feedback(self, decision_id: str, *, correct: bool | float | None = None, score: float | None = None) -> float:
        """Apply the dense reward of a decision, exactly once, and return it.

        ``correct`` (True/False or a value in [0, 1]) is the answer's correctness when it
        is known; without it, the verifier score stands in for it. ``score`` replaces the
        verifier's score (a user's rating in [0, 1]).
        """
        correct_value = None if correct is None else unit_interval("correct", correct, booleans=True)
        score_value = None if score is None else unit_interval("score", score)
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
        imported = self.store.import_(
            data, str(path), context_dim=self.encoder.context_dim, representation=self.encoder.representation
        )
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
