"""Replay: the real policies of :mod:`uniscale_integrations.policy`, online, over an outcome table.

Each seed draws one shuffled stream of the table's questions (shuffled passes over all of
them when the stream is longer than the table) and every policy sees that same stream: at each step it
chooses a configuration from the question's joint features (the context vector the engine's
encoder gave the question at collection, cached in the table, times the configurations'
features), receives the reward the table holds for that choice, and updates, through the same
:class:`~uniscale_integrations.policy.base.Policy` contract the engine drives. Nothing is
re-implemented here: UniScale is :class:`~uniscale_integrations.policy.linucb.LinUCBPolicy`
around :class:`~uniscale_integrations.policy.linucb.LinUCB`, fed
:class:`~uniscale_integrations.features.joint.ProductFeatures` (the factored fast path).

Hindsight references (best fixed config on the stream, best config per tier on the stream)
are computed from the table, not run as policies: no online policy could follow them.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from uniscale_integrations.features.joint import FloatArray, ProductFeatures
from uniscale_integrations.features.space import ConfigSpace
from uniscale_integrations.outcomes import OutcomeTable
from uniscale_integrations.policy.base import Policy, PolicyContext
from uniscale_integrations.policy.baselines import KNN, Fixed, Greedy, Oracle, RandomPolicy
from uniscale_integrations.policy.linucb import (
    DEFAULT_ALPHA,
    DEFAULT_SHRINKAGE,
    LinUCB,
    LinUCBPolicy,
    joint_linucb,
)
from uniscale_integrations.policy.prior import Prior
from uniscale_integrations.reward.weights import RewardWeights

logger = logging.getLogger(__name__)

IntArray = NDArray[np.int64]

BEST_FIXED = "best fixed (hindsight)"
BEST_PER_TIER = "best config per tier (hindsight)"
TUNED_FIXED = "best fixed (chosen on the tuning split)"
TUNED_PER_TIER = "best config per tier (chosen on the tuning split)"
ORACLE = "Oracle"
UNISCALE = "UniScale"
UNISCALE_PRIOR = "UniScale + prior"
TTS_ONLY = "UniScale TTS-only"
ROUTING_ONLY = "UniScale routing-only"


@dataclass(frozen=True)
class PolicySpec:
    """How to build one policy for a replay, and what it may choose from and learn from.

    ``arms`` restricts the policy to some configurations of the table (indices; ``None``: all).
    ``learn`` is the reward the policy learns from (``None``: the replay's weights, which are
    also what it is scored by; an ablation learns from other weights). ``early_stopping``
    picks which collected outcomes the policy lives with.
    """

    name: str
    make: Callable[[PolicyContext], Policy]
    arms: tuple[int, ...] | None = None
    learn: RewardWeights | None = None
    early_stopping: bool = True


@dataclass
class Trace:
    """One policy over one stream: what it chose and what that gave, step by step."""

    name: str
    seed: int
    questions: IntArray
    arms: IntArray
    """Chosen configurations, as indices into the table's space."""
    reward: FloatArray
    """The reward under the replay's weights (what the policy is scored by)."""
    correct: FloatArray
    eflops: FloatArray
    seconds: float = 0.0
    """Wall time of the replay loop (select + update for every step)."""

    @property
    def steps(self) -> int:
        return int(self.questions.size)


@dataclass
class Replay:
    """Every policy's trace on every seed's stream, with the hindsight references."""

    weights: RewardWeights
    streams: dict[int, IntArray]
    traces: dict[str, dict[int, Trace]] = field(default_factory=dict)

    @property
    def seeds(self) -> list[int]:
        return sorted(self.streams)

    @property
    def names(self) -> list[str]:
        return list(self.traces)

    def add(self, trace: Trace) -> None:
        self.traces.setdefault(trace.name, {})[trace.seed] = trace


def stream(n_questions: int, length: int, seed: int) -> IntArray:
    """A shuffled stream of question indices: shuffled passes over every question, one after the
    other, so that in a stream longer than the table each question recurs as evenly as it can
    (1,000 queries over 240 questions: each 4 or 5 times), and a shorter one is a permutation's head.

    >>> sorted(stream(5, 5, seed=0).tolist())
    [0, 1, 2, 3, 4]
    >>> sorted(np.bincount(stream(5, 12, seed=0)).tolist())
    [2, 2, 2, 3, 3]
    """
    if n_questions < 1 or length < 1:
        raise ValueError(f"need questions and a positive length, got {n_questions} and {length}")
    rng = np.random.default_rng([seed, 2026])
    passes = -(-length // n_questions)
    return np.concatenate([rng.permutation(n_questions) for _ in range(passes)])[:length].astype(np.int64)


def drift_stream(table: OutcomeTable, before: Sequence[str], after: Sequence[str], length: int, seed: int) -> IntArray:
    """A stream whose tier mix changes at ``length // 2``: shuffled passes over the questions of the tiers
    ``before``, then over those of the tiers ``after``."""
    halves = []
    for part, (tiers, size) in enumerate(((before, length // 2), (after, length - length // 2))):
        unknown = sorted(set(tiers) - set(table.tiers))
        if unknown or not tiers:
            raise ValueError(f"drift tiers must be tiers of the table, got {list(tiers)} (unknown: {unknown})")
        pool = np.flatnonzero(np.isin(np.asarray(table.tiers)[table.tier_index], list(tiers)))
        halves.append(pool[stream(pool.size, size, seed * 2 + part)])
    return np.concatenate(halves).astype(np.int64)


def run_policy(
    table: OutcomeTable,
    spec: PolicySpec,
    weights: RewardWeights,
    questions: IntArray,
    seed: int,
    features: Sequence[ProductFeatures] | None = None,
) -> Trace:
    """Run one policy online over ``questions`` (indices into ``table``)."""
    arms = np.arange(table.n_configs) if spec.arms is None else np.asarray(spec.arms, dtype=np.int64)
    scored = table.rewards(weights, spec.early_stopping)[:, arms]
    learned = scored if spec.learn is None else table.rewards(spec.learn, spec.early_stopping)[:, arms]
    if np.isnan(scored[questions]).any():
        raise ValueError(
            f"{spec.name}: the stream holds questions without outcomes for early_stopping={spec.early_stopping}"
        )
    if features is None:
        features = question_features(table, spec.arms)
    context_dim = table.contexts.shape[1]
    dim = table.action_features.shape[1] * context_dim
    policy = spec.make(PolicyContext(seed=seed, dim=dim, n_arms=int(arms.size), context_dim=context_dim))
    chosen = np.empty(questions.size, dtype=np.int64)
    started = time.perf_counter()
    for t, q in enumerate(questions.tolist()):
        feats = features[q]
        local = policy.select(feats, learned[q])
        policy.update(feats, local, float(learned[q, local]))
        chosen[t] = local
    seconds = time.perf_counter() - started
    global_arms = arms[chosen]
    return _trace(
        table, spec.name, seed, questions, global_arms, scored[questions, chosen], spec.early_stopping, seconds
    )


def question_features(table: OutcomeTable, arms: Sequence[int] | None = None) -> list[ProductFeatures]:
    """Every question's joint features over ``arms``, built once per replay and reused."""
    return [table.features(q, arms) for q in range(table.n_questions)]


def _trace(
    table: OutcomeTable,
    name: str,
    seed: int,
    questions: IntArray,
    arms: IntArray,
    reward: FloatArray,
    early_stopping: bool,
    seconds: float = 0.0,
) -> Trace:
    return Trace(
        name=name,
        seed=seed,
        questions=questions,
        arms=arms,
        reward=np.asarray(reward, dtype=np.float64),
        correct=table.array("correct", early_stopping)[questions, arms],
        eflops=table.array("eflops", early_stopping)[questions, arms],
        seconds=seconds,
    )


def best_fixed_arm(table: OutcomeTable, weights: RewardWeights, questions: IntArray) -> int:
    """The configuration with the largest total reward on the stream (ties: lowest index)."""
    return int(np.argmax(table.rewards(weights)[questions].sum(axis=0)))


def best_per_tier_arms(table: OutcomeTable, weights: RewardWeights, questions: IntArray) -> dict[str, int]:
    """Per tier, the configuration with the largest total reward on the stream's questions of that tier."""
    rewards = table.rewards(weights)[questions]
    tiers = table.tier_index[questions]
    return {
        table.tiers[t]: int(np.argmax(rewards[tiers == t].sum(axis=0)))
        for t in range(len(table.tiers))
        if (tiers == t).any()
    }


def hindsight_traces(table: OutcomeTable, weights: RewardWeights, questions: IntArray, seed: int) -> list[Trace]:
    """The best fixed config and the best config per tier, both chosen knowing the whole stream."""
    rewards = table.rewards(weights)
    fixed = np.full(questions.size, best_fixed_arm(table, weights, questions), dtype=np.int64)
    per_tier = best_per_tier_arms(table, weights, questions)
    tiered = np.asarray([per_tier[table.tiers[t]] for t in table.tier_index[questions]], dtype=np.int64)
    return [
        _trace(table, BEST_FIXED, seed, questions, fixed, rewards[questions, fixed], True),
        _trace(table, BEST_PER_TIER, seed, questions, tiered, rewards[questions, tiered], True),
    ]


def tuned_traces(
    tune: OutcomeTable, test: OutcomeTable, weights: RewardWeights, questions: IntArray, seed: int
) -> list[Trace]:
    """The best fixed config and the best config per tier as chosen on the tuning split, run on the stream.

    The hindsight references choose on the very questions they are scored on, so they are partly
    luck: the maximum of 16 noisy means is biased up. These choose before seeing the stream, as a
    deployed system must (and the tier, which no policy is told, is given to the per-tier one).
    """
    rewards, tuned = tune.rewards(weights), test.rewards(weights)
    fixed = np.full(questions.size, int(np.argmax(rewards.mean(axis=0))), dtype=np.int64)
    per_tier = {tier: int(np.argmax(rewards[tune.tier_index == k].mean(axis=0))) for k, tier in enumerate(tune.tiers)}
    tiered = np.asarray([per_tier[test.tiers[t]] for t in test.tier_index[questions]], dtype=np.int64)
    return [
        _trace(test, TUNED_FIXED, seed, questions, fixed, tuned[questions, fixed], True),
        _trace(test, TUNED_PER_TIER, seed, questions, tiered, tuned[questions, tiered], True),
    ]


def replay(
    table: OutcomeTable,
    specs: Sequence[PolicySpec],
    weights: RewardWeights,
    *,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    length: int = 1000,
    hindsight: bool = True,
    progress: Callable[[int], None] | None = None,
    streams: Mapping[int, IntArray] | None = None,
) -> Replay:
    """Every spec on every seed's stream (the same stream for all specs of a seed); ``streams`` gives the
    streams by seed instead of :func:`stream`'s shuffled passes (``seeds`` and ``length`` are then unused)."""
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"policy names must be unique, got {names}")
    if streams is None:
        streams = {seed: stream(table.n_questions, length, seed) for seed in seeds}
    result = Replay(weights, {seed: np.asarray(questions, dtype=np.int64) for seed, questions in streams.items()})
    seeds = result.seeds
    # The policies' matrices are small (d in the hundreds): BLAS threads only fight each other for the cores
    # (a 325 x 325 inverse took 100 ms with OpenBLAS's threads on 2 busy cores, 3 ms with one).
    with threadpool_limits(limits=1, user_api="blas"):
        _run_specs(table, specs, weights, result, progress)
    if hindsight:
        for seed in seeds:
            for trace in hindsight_traces(table, weights, result.streams[seed], seed):
                result.add(trace)
    return result


def _run_specs(
    table: OutcomeTable,
    specs: Sequence[PolicySpec],
    weights: RewardWeights,
    result: Replay,
    progress: Callable[[int], None] | None,
) -> None:
    """Every spec on every stream of ``result``, each question's features built once per set of arms."""
    cache: dict[tuple[int, ...] | None, list[ProductFeatures]] = {}
    for spec in specs:
        if spec.arms not in cache:
            cache[spec.arms] = question_features(table, spec.arms)
        for seed in result.seeds:
            result.add(run_policy(table, spec, weights, result.streams[seed], seed, cache[spec.arms]))
            if progress is not None:
                progress(1)


# ---------------------------------------------------------------------- the standard line-up
@dataclass(frozen=True)
class BanditSettings:
    """UniScale's settings that the tuning split chooses: exploration ``alpha``, the ``shrinkage`` of the
    query-by-configuration interactions (:func:`~uniscale_integrations.features.joint.interaction_ridge_scale`)
    and, for UniScale started from a prior, how many live observations each prior outcome counts as
    (``prior_weight``; ``None``: the prior's own weight)."""

    alpha: float
    shrinkage: float
    prior_weight: float | None = None

    def __str__(self) -> str:
        text = f"alpha {self.alpha:g}, shrinkage {self.shrinkage:g}"
        return text if self.prior_weight is None else f"{text}, prior weight {self.prior_weight:g}"


UNTUNED = BanditSettings(alpha=DEFAULT_ALPHA, shrinkage=DEFAULT_SHRINKAGE)
"""The engine's default settings, for a table without a tuning split."""


def _linucb(context: PolicyContext, settings: BanditSettings, gamma: float, name: str) -> LinUCBPolicy:
    bandit = joint_linucb(
        context.dim // context.context_dim,
        context.context_dim,
        alpha=settings.alpha,
        gamma=gamma,
        shrinkage=settings.shrinkage,
    )
    return LinUCBPolicy(bandit, name=name)


def uniscale(
    settings: BanditSettings, *, gamma: float = 1.0, name: str = UNISCALE
) -> Callable[[PolicyContext], Policy]:
    """A factory for UniScale's policy: LinUCB over the joint features, as the engine builds it."""

    def make(context: PolicyContext) -> Policy:
        return _linucb(context, settings, gamma, name)

    return make


def fresh_like(bandit: LinUCB, name: str = UNISCALE) -> Callable[[PolicyContext], Policy]:
    """A factory for a fresh LinUCB with ``bandit``'s hyperparameters (an engine's, to replay what it runs)."""

    def make(context: PolicyContext) -> Policy:
        fresh = LinUCB(
            context.dim,
            alpha=bandit.alpha,
            l2_lambda=bandit.l2_lambda,
            gamma=bandit.gamma,
            ridge_scale=bandit.ridge_scale,
        )
        return LinUCBPolicy(fresh, name=name)

    return make


def warmed_uniscale(
    settings: BanditSettings, prior: Prior, table: OutcomeTable, *, name: str = UNISCALE_PRIOR, gamma: float = 1.0
) -> Callable[[PolicyContext], Policy]:
    """UniScale started from ``prior`` (:mod:`~uniscale_integrations.policy.prior`) over ``table``'s configurations."""
    space = ConfigSpace(table.configs)
    warmed: dict[int, LinUCBPolicy] = {}  # by dimension: the prior is applied once, then copied per stream

    if settings.prior_weight is not None:
        prior = prior.weighted(settings.prior_weight)

    def make(context: PolicyContext) -> Policy:
        if context.dim not in warmed:
            policy = _linucb(context, settings, gamma, name)
            prior.apply(policy.bandit, space, table.action_features)
            warmed[context.dim] = policy
        return copy.deepcopy(warmed[context.dim])

    return make


def tts_arms(table: OutcomeTable, model: str) -> tuple[int, ...]:
    """The configurations of one model (UniScale restricted to test-time scaling)."""
    arms = tuple(i for i, c in enumerate(table.configs) if c.model == model)
    if not arms:
        raise ValueError(f"no config of model {model!r} in the table")
    return arms


def routing_arms(table: OutcomeTable) -> tuple[int, ...]:
    """The configurations with QP = CP = BS = 1 (UniScale restricted to routing)."""
    arms = tuple(i for i, c in enumerate(table.configs) if c.paths == 1)
    if not arms:
        raise ValueError("no config with QP = CP = BS = 1 in the table")
    return arms


def standard_specs(
    table: OutcomeTable,
    *,
    bandit: BanditSettings,
    tts_model: str,
    knn_k: int = 10,
    fixed: bool = True,
) -> list[PolicySpec]:
    """UniScale, its TTS-only and routing-only restrictions, Random, Greedy, kNN, every Fixed config, Oracle."""
    specs = [
        PolicySpec(UNISCALE, uniscale(bandit)),
        PolicySpec(f"{TTS_ONLY} ({tts_model})", uniscale(bandit), arms=tts_arms(table, tts_model)),
        PolicySpec(ROUTING_ONLY, uniscale(bandit), arms=routing_arms(table)),
        PolicySpec("Random", lambda c: RandomPolicy(seed=c.seed)),
        PolicySpec("Greedy", lambda c: Greedy(c.dim)),
        PolicySpec("kNN", lambda c: KNN(c.n_arms, k=knn_k)),
    ]
    if fixed:
        specs += [PolicySpec(f"Fixed {config}", _fixed(i)) for i, config in enumerate(table.configs)]
    specs.append(PolicySpec(ORACLE, lambda c: Oracle()))
    return specs


def _fixed(arm: int) -> Callable[[PolicyContext], Policy]:
    return lambda c: Fixed(arm, name="Fixed")


def ablation_specs(weights: RewardWeights, *, bandit: BanditSettings) -> list[PolicySpec]:
    """UniScale learning without the verifier score (w2 = 0) and without the cost term (w3 = 0).

    Both are scored by the full ``weights``; only what they learn from changes.
    """
    return [
        PolicySpec(
            "UniScale w/o dense verification (w2=0)",
            uniscale(bandit),
            learn=RewardWeights(correct=weights.correct, score=0.0, cost=weights.cost),
        ),
        PolicySpec(
            "UniScale w/o cost term (w3=0)",
            uniscale(bandit),
            learn=RewardWeights(correct=weights.correct, score=weights.score, cost=0.0),
        ),
    ]


def early_stopping_specs(*, bandit: BanditSettings) -> list[PolicySpec]:
    """UniScale with path-aware early stopping (as collected) and without it."""
    return [
        PolicySpec(UNISCALE, uniscale(bandit)),
        PolicySpec("UniScale w/o early stopping", uniscale(bandit), early_stopping=False),
    ]


def summary(trace: Trace) -> Mapping[str, float]:
    """Means over a trace: reward, accuracy, eFLOPs."""
    return {
        "reward": float(trace.reward.mean()),
        "accuracy": float(trace.correct.mean()),
        "eflops": float(trace.eflops.mean()),
    }
