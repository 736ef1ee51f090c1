"""What a practitioner who doubts UniScale would run instead, replayed on the same streams.

Three baselines, each fitted on the outcome table's tuning split only (never on the test split):

- :class:`OfflineRouter`: a router trained offline, as RouteLLM's classifier routers are (Ong et al.,
  2024, "RouteLLM: Learning to Route LLMs with Preference Data"): one ridge regression per
  configuration of the reward on the query context, then the configuration with the best
  predicted reward. It chooses among the same configurations as UniScale and never learns online.
- :class:`BestRoute`: BEST-Route's chooser of a model and a number of samples (Ding et al., ICML
  2025, "BEST-Route: Adaptive LLM Routing with Test-Time Optimal Compute"): one logistic regression
  per (model, n) option predicts whether best-of-n of that model answers right, and the cheapest
  option whose predicted chance is within ``tolerance`` of the best option's is chosen. Sweeping
  ``tolerance`` traces its frontier.
- :func:`cascade_trace`: a cascade (FrugalGPT, Chen et al., 2023; AutoMix, Aggarwal et al., 2024):
  the small rung answers first (one greedy or sampled path), and the query escalates to a strong
  configuration when the small rung's confidence (its verifier score) is below a threshold; an
  escalated query pays for both. It runs two configurations on some queries, so it is not a
  :class:`~uniscale_integrations.policy.base.Policy` (which chooses one); it is replayed on the same
  streams as a trace. Sweeping the threshold traces its frontier.

The two routers are policies: they go through the same replay, on the same features, as UniScale.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge

from uniscale_integrations.bench.replay import IntArray, Trace
from uniscale_integrations.features.joint import FloatArray, ProductFeatures
from uniscale_integrations.features.space import Config
from uniscale_integrations.outcomes import OutcomeTable
from uniscale_integrations.policy.base import Policy, PolicyContext
from uniscale_integrations.reward.weights import RewardWeights

OFFLINE_ROUTER = "offline router"
BEST_ROUTE = "BEST-Route"
CASCADE = "cascade"


class OfflineRouter(Policy):
    """Per-configuration ridge regression of the reward on the context, fitted once (on the tuning split)."""

    name = OFFLINE_ROUTER

    def __init__(self, contexts: FloatArray, rewards: FloatArray, l2: float = 1.0):
        super().__init__()
        fitted = Ridge(alpha=l2).fit(contexts, rewards)  # one output per configuration
        self._coef, self._intercept = fitted.coef_, fitted.intercept_

    @classmethod
    def from_table(cls, tune: OutcomeTable, weights: RewardWeights) -> OfflineRouter:
        """Fitted on ``tune``'s contexts and rewards under ``weights``."""
        return cls(tune.contexts, tune.rewards(weights))

    def _select(self, features: ProductFeatures, hindsight: Sequence[float] | None) -> int:
        return int(np.argmax(self._coef @ features.context + self._intercept))

    @classmethod
    def _unit_test_params(cls, context: PolicyContext) -> Iterator[dict[str, Any]]:
        contexts, rewards = _training_set(context)
        yield {"contexts": contexts, "rewards": rewards}


class BestRoute(Policy):
    """The cheapest (model, n) option predicted to be right nearly as often as the best option.

    ``correct[q, k]`` says whether option ``k`` was right on training question ``q``; ``costs``
    orders the options (the tuning split's mean eFLOPs). :meth:`from_table` takes the options of
    a table: the configurations with QP = BS = 1 (one model, ``n`` = CP candidates voted).
    """

    name = BEST_ROUTE

    def __init__(
        self,
        contexts: FloatArray,
        correct: FloatArray,
        costs: Sequence[float],
        tolerance: float = 0.05,
        options: Sequence[int] | None = None,
        l2: float = 1.0,
    ):
        super().__init__()
        if not 0.0 <= tolerance <= 1.0:
            raise ValueError(f"tolerance must lie in [0, 1], got {tolerance}")
        self.tolerance = tolerance
        self.options = tuple(range(correct.shape[1])) if options is None else tuple(options)
        self._order = sorted(self.options, key=lambda a: float(costs[a]))
        self._models = {a: _classifier(contexts, correct[:, a], l2) for a in self.options}

    @classmethod
    def from_table(cls, tune: OutcomeTable, tolerance: float = 0.05) -> BestRoute:
        """Fitted on ``tune``, over its (model, n) options."""
        costs = tune.array("eflops").mean(axis=0)
        return cls(tune.contexts, tune.array("correct"), costs, tolerance, best_route_options(tune.configs))

    def _select(self, features: ProductFeatures, hindsight: Sequence[float] | None) -> int:
        chance = {a: _chance(model, features.context) for a, model in self._models.items()}
        best = max(chance.values())
        return next(a for a in self._order if chance[a] >= best - self.tolerance)

    @classmethod
    def _unit_test_params(cls, context: PolicyContext) -> Iterator[dict[str, Any]]:
        contexts, rewards = _training_set(context)
        costs = np.arange(context.n_arms, dtype=np.float64)
        yield {"contexts": contexts, "correct": (rewards > 0.5).astype(np.float64), "costs": costs}
        yield {"contexts": contexts, "correct": (rewards > 0.5).astype(np.float64), "costs": costs, "tolerance": 1.0}


def _training_set(context: PolicyContext, n: int = 60) -> tuple[FloatArray, FloatArray]:
    """A small offline training set for the contract test: configuration ``i`` pays on queries of cluster
    ``i``, contexts near the cluster's basis vector (``dim / n_arms`` numbers, as the contract's features)."""
    rng = np.random.default_rng(context.seed)
    clusters = rng.integers(context.n_arms, size=n)
    basis = np.eye(context.n_arms, context.dim // context.n_arms)
    contexts = basis[clusters] + rng.normal(0.0, 0.05, (n, basis.shape[1]))
    rewards = 0.2 + 0.6 * (clusters[:, None] == np.arange(context.n_arms)) + rng.normal(0.0, 0.05, (n, context.n_arms))
    return contexts, rewards


def best_route_options(configs: Sequence[Config]) -> tuple[int, ...]:
    """The (model, n) options: configurations with QP = BS = 1."""
    options = tuple(i for i, c in enumerate(configs) if c.qp == 1 and c.bs == 1)
    if not options:
        raise ValueError("BEST-Route needs configurations with QP = BS = 1")
    return options


def _classifier(contexts: FloatArray, labels: FloatArray, l2: float) -> tuple[FloatArray, float]:
    """A logistic regression of ``labels`` on ``contexts`` as (weights, intercept); a constant rate when one
    class is missing. Kept as numbers, so a prediction is one dot product (a replay makes thousands)."""
    if np.unique(labels).size < 2:
        rate = float(np.clip(labels.mean(), 1e-6, 1 - 1e-6))
        return np.zeros(contexts.shape[1]), float(np.log(rate / (1 - rate)))
    fitted = LogisticRegression(C=1.0 / l2, max_iter=1000).fit(contexts, labels.astype(int))
    return fitted.coef_[0], float(fitted.intercept_[0])


def _chance(model: tuple[FloatArray, float], context: FloatArray) -> float:
    weights, intercept = model
    return float(1.0 / (1.0 + np.exp(-(weights @ context + intercept))))


def cascade_trace(
    table: OutcomeTable,
    weights: RewardWeights,
    questions: IntArray,
    seed: int,
    *,
    small: int,
    strong: int,
    threshold: float,
) -> Trace:
    """The cascade ``small -> strong`` on a stream: escalate when the small answer's score is below ``threshold``.

    ``arms`` records the configuration whose answer is returned; eFLOPs and cost add both runs
    on escalated queries (the cost is clipped to 1, as the engine clips it).
    """
    score, correct = table.array("score"), table.array("correct")
    eflops, cost = table.array("eflops"), table.array("cost")
    escalate = score[questions, small] < threshold
    answered = np.where(escalate, strong, small).astype(np.int64)
    paid = eflops[questions, small] + np.where(escalate, eflops[questions, strong], 0.0)
    paid_cost = np.minimum(1.0, cost[questions, small] + np.where(escalate, cost[questions, strong], 0.0))
    right = correct[questions, answered]
    reward = np.asarray(
        [
            weights.reward(correct=float(c), score=float(s), cost=float(k))
            for c, s, k in zip(right, score[questions, answered], paid_cost, strict=True)
        ]
    )
    return Trace(name=CASCADE, seed=seed, questions=questions, arms=answered, reward=reward, correct=right, eflops=paid)


def cascade_thresholds(tune: OutcomeTable, small: int, points: int = 9) -> list[float]:
    """Thresholds for the sweep: quantiles of the small rung's scores on the tuning split, plus never and always."""
    scores = tune.array("score")[:, small]
    inner = np.quantile(scores, np.linspace(0.1, 0.9, points)).tolist()
    return [0.0, *sorted(set(inner)), 1.0 + 1e-9]


def best_cascade_threshold(
    tune: OutcomeTable, weights: RewardWeights, *, small: int, strong: int, thresholds: Sequence[float]
) -> float:
    """The threshold with the best mean reward on the tuning split (ties: the lower)."""
    questions = np.arange(tune.n_questions, dtype=np.int64)
    means = [
        float(cascade_trace(tune, weights, questions, 0, small=small, strong=strong, threshold=t).reward.mean())
        for t in thresholds
    ]
    return float(thresholds[int(np.argmax(means))])
