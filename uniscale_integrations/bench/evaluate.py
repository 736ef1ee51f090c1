"""The benchmark's figures from an outcome table: tuning, replays, frontier, ablations and goals.

:func:`evaluate` tunes on the table's tuning split (UniScale's exploration weight ``alpha`` and
interaction ``shrinkage`` per mode, the model of the TTS-only variant), then replays every policy on the test split
over ``seeds`` streams of ``length`` queries, in both modes, and sweeps the cost weight to
trace each learning policy's quality-cost frontier. Everything it returns is plain data
(:class:`BenchResults`), written out by :mod:`uniscale_integrations.bench.report`.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from uniscale_integrations.bench.metrics import (
    aiq,
    apgr,
    cumulative_regret,
    gap_captured,
    mean_spread,
    nondecreasing_hull,
    saving_at_iso_quality,
    share_above,
)
from uniscale_integrations.bench.practitioners import (
    BEST_ROUTE,
    CASCADE,
    OFFLINE_ROUTER,
    BestRoute,
    OfflineRouter,
    best_cascade_threshold,
    cascade_thresholds,
    cascade_trace,
)
from uniscale_integrations.bench.replay import (
    BEST_FIXED,
    BEST_PER_TIER,
    ORACLE,
    ROUTING_ONLY,
    TTS_ONLY,
    TUNED_FIXED,
    TUNED_PER_TIER,
    UNISCALE,
    UNISCALE_PRIOR,
    UNTUNED,
    BanditSettings,
    PolicySpec,
    Replay,
    Trace,
    ablation_specs,
    best_per_tier_arms,
    early_stopping_specs,
    replay,
    standard_specs,
    tts_arms,
    tuned_traces,
    uniscale,
    warmed_uniscale,
)
from uniscale_integrations.outcomes import OutcomeTable
from uniscale_integrations.policy.base import Policy, PolicyContext
from uniscale_integrations.policy.baselines import KNN, Oracle
from uniscale_integrations.policy.prior import Prior
from uniscale_integrations.reward.weights import Mode, RewardWeights

logger = logging.getLogger(__name__)

MODES: tuple[Mode, ...] = ("cost-sensitive", "quality-first")
SWEEP_COST_WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 0.95)
"""Cost weights ``w3`` of the frontier sweep; ``w1 : w2 = 6 : 1`` as in the cost-sensitive preset. It reaches 0.95
so that the learners' frontiers span the cost range down to the cheapest config, as the rivals' knobs do
(BEST-Route's loosest tolerance and the cascade's lowest threshold answer with S's greedy path): AIQ counts
no accuracy below a router's cheapest point."""
FRONTIER_POLICIES = (UNISCALE, UNISCALE_PRIOR, "kNN", OFFLINE_ROUTER, ORACLE)
"""Replayed at every cost weight of the sweep (Greedy, UniScale without exploration, stays in the modes' tables)."""
RIVALS = ("kNN", OFFLINE_ROUTER, BEST_ROUTE, CASCADE)
"""What a practitioner would use instead: UniScale's frontier is compared with each one's."""
BEST_ROUTE_TOLERANCES = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 1.0)


@dataclass(frozen=True)
class BenchSettings:
    """How the replays are run."""

    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    length: int = 1000
    alphas: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
    """UniScale's exploration weights tried on the tuning split."""
    prior_alphas: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
    """The same, for UniScale started from the tuning split's prior (tried on halves of the tuning split)."""
    shrinkages: tuple[float, ...] = (1.0, 4.0, 16.0, 64.0)
    """How much harder than the main effects the interactions are shrunk, tried with every alpha of both grids.
    On the 182 tuning questions, choosing from this grid carried from one half of the tuning split to the other
    (+0.013 / +0.014 with the prior, +0.000 / +0.002 cold, over plain ridge alone; on the first 62 questions it
    had not: docs/bench.md, "Interaction shrinkage")."""
    prior_weights: tuple[float, ...] = (1.0, 0.5, 0.25, 0.1)
    """How many live observations each of the prior's outcomes counts as, tried with every prior alpha. Chosen
    from this grid, the weight carried from one half of the tuning split to the other (+0.003 / +0.008 over
    weight 1 alone: docs/bench.md, "182 tuning questions and the prior weight")."""
    tuning_seeds: tuple[int, ...] = tuple(range(1000, 1020))
    """Seeds of the tuning replays. Their streams bring each question back as often as the test streams do
    (:func:`tuning_length`), so they are short, and more seeds than the test's 5 steady the choice."""
    knn_k: int = 10
    modes: tuple[Mode, ...] = MODES
    sweep: tuple[float, ...] = SWEEP_COST_WEIGHTS
    iso_tolerance: float = 0.01
    """Accuracy that may be lost for the saving at iso-accuracy (1 point)."""


@dataclass
class ModeResults:
    """One mode's replays on the test split."""

    mode: str
    weights: RewardWeights
    bandit: BanditSettings
    """UniScale's settings, chosen on the tuning split."""
    prior_bandit: BanditSettings | None
    """UniScale + prior's settings, chosen on halves of the tuning split (``None`` without one)."""
    tts_model: str
    tuning: dict[str, Any]
    rows: list[dict[str, Any]]
    """One per policy: name, kind, and ``metric: (mean, sd)`` over seeds."""
    curves: dict[str, dict[str, tuple[list[float], list[float]]]]
    """Per policy: cumulative regret against ``oracle`` and ``best_fixed``, mean and sd per step."""
    choices: list[list[float]]
    """UniScale's share of each config per window of the stream, averaged over seeds."""
    window: int
    tier_choices: dict[str, dict[str, float]]
    """Per tier, UniScale's share of each config over the second half of the streams."""
    best_per_tier: dict[str, str]
    best_fixed: str
    early_stopping: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class BenchResults:
    """Everything the report shows."""

    info: dict[str, Any]
    modes: dict[str, ModeResults]
    frontier: dict[str, Any]
    tiers: list[dict[str, Any]]
    goals: list[dict[str, Any]]


def planned_runs(table: OutcomeTable, settings: BenchSettings) -> int:
    """How many (policy, seed) replays :func:`evaluate` will run (for a progress bar)."""
    seeds = len(settings.seeds)
    has_tune = any(q.split == "tune" for q in table.questions)
    has_off = False in table.coverage and bool(table.coverage[False].any())
    n_models = len({c.model for c in table.configs})
    rivals = 3 if has_tune else 0  # UniScale + prior, the offline router, BEST-Route
    per_mode = rivals + 5 + n_models + table.n_configs + 2 + 1 + (3 if has_off else 0)
    per_sweep = len(FRONTIER_POLICIES) - (0 if has_tune else 2)
    # tuning: a tick per (settings, seed) replay; with the prior one per settings
    grid = len(settings.tuning_seeds) * len(settings.alphas) + len(settings.prior_alphas) * len(settings.prior_weights)
    tuning = grid * len(settings.shrinkages) if has_tune else 0
    return seeds * (len(settings.modes) * per_mode + len(settings.sweep) * per_sweep) + len(settings.modes) * tuning


def sweep_weights(cost_weight: float) -> RewardWeights:
    """The reward weights of one sweep point: ``w3`` given, ``w1 : w2 = 6 : 1``."""
    rest = 1.0 - cost_weight
    return RewardWeights(correct=rest * 6 / 7, score=rest / 7, cost=cost_weight)


def evaluate(
    table: OutcomeTable,
    settings: BenchSettings = BenchSettings(),
    progress: Callable[[int], None] | None = None,
) -> BenchResults:
    """Tune on the tuning split, replay on the test split, and measure every goal."""
    test = table.subset("test")
    try:
        tune: OutcomeTable | None = table.subset("tune")
    except ValueError:
        tune = None
    modes: dict[str, ModeResults] = {}
    for mode in settings.modes:
        modes[mode] = _mode(table, test, tune, mode, settings, progress)
    frontier = _frontier(test, tune, modes, settings, progress)
    results = BenchResults(
        info=_info(table, test, tune, settings),
        modes=modes,
        frontier=frontier,
        tiers=_tier_table(test),
        goals=[],
    )
    results.goals = goals(results, settings)
    return results


# ---------------------------------------------------------------------- tuning
def tuning_length(questions: int, repeats: float) -> int:
    """The length of a tuning stream over ``questions`` questions that brings each back ``repeats`` times, as
    the streams the choice is for do. Longer streams favour exploring: over the 62 questions the tuning split
    had in session 8, at the test's 1,000 queries (each question 16 times), the prior's alpha 1 beat 0.5 on 20
    seeds; at the test's 4 repeats, 0.5 beat 1."""
    return max(1, round(questions * repeats))


def tuning_rewards(
    table: OutcomeTable,
    spec: PolicySpec,
    weights: RewardWeights,
    settings: BenchSettings,
    repeats: float,
    progress: Callable[[int], None] | None = None,
) -> list[float]:
    """``spec``'s mean reward on ``table`` per tuning seed, on streams that bring each question back ``repeats``
    times (:func:`tuning_length`)."""
    length = tuning_length(table.n_questions, repeats)
    seeds = list(settings.tuning_seeds)
    result = replay(table, [spec], weights, seeds=seeds, length=length, hindsight=False, progress=progress)
    return [float(t.reward.mean()) for t in result.traces[spec.name].values()]


def tuning_halves(tune: OutcomeTable) -> tuple[OutcomeTable, OutcomeTable]:
    """The tuning split's two halves (alternate questions), on which a prior is fitted and scored crosswise."""
    return tune.select(range(0, tune.n_questions, 2)), tune.select(range(1, tune.n_questions, 2))


def _grid(
    alphas: Sequence[float], shrinkages: Sequence[float], prior_weights: Sequence[float | None] = (None,)
) -> list[BanditSettings]:
    return [BanditSettings(a, s, w) for a in alphas for s in shrinkages for w in prior_weights]


def _best(grid: Sequence[BanditSettings], scores: dict[str, float]) -> BanditSettings:
    """The settings with the best score; ties go to less exploration, then to more shrinkage, then to the
    heavier prior."""
    return max(grid, key=lambda b: (scores[str(b)], -b.alpha, b.shrinkage, b.prior_weight or 0.0))


def tune_bandit(
    tune: OutcomeTable,
    weights: RewardWeights,
    settings: BenchSettings,
    progress: Callable[[int], None] | None = None,
    *,
    repeats: float,
) -> tuple[BanditSettings, dict[str, float]]:
    """UniScale's settings (alpha x shrinkage) with the best mean reward on the tuning split, on streams that
    bring each question back ``repeats`` times (:func:`tuning_length`)."""
    grid = _grid(settings.alphas, settings.shrinkages)
    scores: dict[str, float] = {}
    for bandit in grid:
        spec = PolicySpec(UNISCALE, uniscale(bandit))
        scores[str(bandit)] = float(np.mean(tuning_rewards(tune, spec, weights, settings, repeats, progress)))
    return _best(grid, scores), scores


def tune_prior_bandit(
    tune: OutcomeTable,
    weights: RewardWeights,
    settings: BenchSettings,
    progress: Callable[[int], None] | None = None,
    *,
    repeats: float,
) -> tuple[BanditSettings, dict[str, float]]:
    """UniScale + prior's settings (alpha x shrinkage x prior weight): the prior from one half of the tuning split,
    the replay on the other half, and the other way round (the prior never sees the questions it is scored on);
    each question comes back ``repeats`` times per stream (:func:`tuning_length`)."""
    halves = tuning_halves(tune)
    crosswise = [(Prior.of_table(fit, weights), held_out) for fit, held_out in (halves, halves[::-1])]
    grid = _grid(settings.prior_alphas, settings.shrinkages, settings.prior_weights)
    scores: dict[str, float] = {}
    for bandit in grid:
        means = []
        for prior, held_out in crosswise:
            spec = PolicySpec(UNISCALE_PRIOR, warmed_uniscale(bandit, prior, held_out))
            means += tuning_rewards(held_out, spec, weights, settings, repeats)
        scores[str(bandit)] = float(np.mean(means))
        if progress is not None:
            progress(1)
    return _best(grid, scores), scores


def tune_rivals(tune: OutcomeTable, weights: RewardWeights) -> dict[str, Any]:
    """BEST-Route's tolerance and the cascade's strong config and threshold, each the best on the tuning split."""
    questions = np.arange(tune.n_questions, dtype=np.int64)
    features = [tune.features(q) for q in range(tune.n_questions)]

    def mean_reward(policy: BestRoute) -> float:
        rewards = tune.rewards(weights)
        return float(np.mean([rewards[q, policy.select(features[q])] for q in questions]))

    tolerance = max(BEST_ROUTE_TOLERANCES, key=lambda t: (mean_reward(BestRoute.from_table(tune, t)), t))
    small = _cascade_small(tune)
    best = {}
    for strong in _cascade_strong(tune, weights):
        threshold = best_cascade_threshold(
            tune, weights, small=small, strong=strong, thresholds=cascade_thresholds(tune, small)
        )
        trace = cascade_trace(tune, weights, questions, 0, small=small, strong=strong, threshold=threshold)
        best[strong] = (float(trace.reward.mean()), threshold)
    strong = max(best, key=lambda a: best[a][0])
    return {
        "tolerance": tolerance,
        "small": small,
        "strong": strong,
        "threshold": best[strong][1],
        "small_config": str(tune.configs[small]),
        "strong_config": str(tune.configs[strong]),
    }


def _cascade_small(table: OutcomeTable) -> int:
    """The cascade's first step: the cheapest configuration of the smallest model (its one path)."""
    eflops = table.array("eflops").mean(axis=0)
    return int(min((a for a, c in enumerate(table.configs) if c.paths == 1), key=lambda a: eflops[a]))


def _cascade_strong(table: OutcomeTable, weights: RewardWeights) -> list[int]:
    """Where a cascade escalates: the other model's greedy path, or its best config on the tuning split."""
    small_model = table.configs[_cascade_small(table)].model
    others = [a for a, c in enumerate(table.configs) if c.model != small_model]
    greedy = [a for a in others if table.configs[a].paths == 1]
    rewards = table.rewards(weights).mean(axis=0)
    return sorted({*greedy[:1], max(others, key=lambda a: rewards[a])})


def tune_tts_model(tune: OutcomeTable, weights: RewardWeights) -> tuple[str, dict[str, float]]:
    """The model whose best fixed config earns the most on the tuning split."""
    rewards = tune.rewards(weights).mean(axis=0)
    models = list(dict.fromkeys(c.model for c in tune.configs))
    best_by_model = {m: float(max(rewards[i] for i in tts_arms(tune, m))) for m in models}
    return max(models, key=lambda m: best_by_model[m]), best_by_model


# ---------------------------------------------------------------------- one mode
def _mode(
    table: OutcomeTable,
    test: OutcomeTable,
    tune: OutcomeTable | None,
    mode: Mode,
    settings: BenchSettings,
    progress: Callable[[int], None] | None,
) -> ModeResults:
    weights = RewardWeights.preset(mode)
    tuning: dict[str, Any] = {}
    prior_bandit = None
    if tune is not None:
        repeats = settings.length / test.n_questions
        bandit, tuning["bandit"] = tune_bandit(tune, weights, settings, progress, repeats=repeats)
        tts_model, tuning["tts_model"] = tune_tts_model(tune, weights)
        prior_bandit, tuning["prior_bandit"] = tune_prior_bandit(tune, weights, settings, progress, repeats=repeats)
        tuning["rivals"] = rivals = tune_rivals(tune, weights)
    else:
        bandit, tts_model = UNTUNED, table.configs[-1].model
    logger.info("%s: %s, TTS-only model %s (tuned on %s)", mode, bandit, tts_model, "tune split" if tune else "-")
    specs = standard_specs(test, bandit=bandit, tts_model=tts_model, knn_k=settings.knn_k)
    # The other models' TTS-only variants too (not tuned for, shown for comparison).
    others = [m for m in dict.fromkeys(c.model for c in test.configs) if m != tts_model]
    specs[2:2] = [PolicySpec(f"{TTS_ONLY} ({m})", uniscale(bandit), arms=tts_arms(test, m)) for m in others]
    specs[-1:-1] = ablation_specs(weights, bandit=bandit)
    if tune is not None and prior_bandit is not None:
        specs[1:1] = [PolicySpec(UNISCALE_PRIOR, warmed_uniscale(prior_bandit, Prior.of_table(tune, weights), test))]
        specs[-1:-1] = [
            PolicySpec(OFFLINE_ROUTER, _offline_router(tune, weights)),
            PolicySpec(BEST_ROUTE, lambda c: BestRoute.from_table(tune, rivals["tolerance"])),
        ]
    result = replay(test, specs, weights, seeds=settings.seeds, length=settings.length, progress=progress)
    if tune is not None:
        cascade = {k: rivals[k] for k in ("small", "strong", "threshold")}
        for seed in result.seeds:
            result.add(cascade_trace(test, weights, result.streams[seed], seed, **cascade))
            for trace in tuned_traces(tune, test, weights, result.streams[seed], seed):
                result.add(trace)
    rows = [_row(name, result) for name in result.names]
    curves = {name: _curves(name, result) for name in result.names if name not in (ORACLE,)}
    choices, window = _choice_shares(result.traces[UNISCALE], test.n_configs)
    best_fixed_arms = [int(result.traces[BEST_FIXED][s].arms[0]) for s in result.seeds]
    counts = Counter(best_fixed_arms).most_common()
    best_fixed = ", ".join(f"{test.configs[a]} on {k} of {len(best_fixed_arms)} seeds" for a, k in counts)
    per_tier = best_per_tier_arms(test, weights, np.arange(test.n_questions))
    mode_results = ModeResults(
        mode=mode,
        weights=weights,
        bandit=bandit,
        prior_bandit=prior_bandit,
        tts_model=tts_model,
        tuning=tuning,
        rows=rows,
        curves=curves,
        choices=choices,
        window=window,
        tier_choices=_tier_choices(test, result.traces[UNISCALE]),
        best_per_tier={tier: str(test.configs[arm]) for tier, arm in per_tier.items()},
        best_fixed=best_fixed,
    )
    if False in test.coverage and test.coverage[False].any():
        mode_results.early_stopping = _early_stopping(test, weights, bandit, settings, progress)
    return mode_results


def _kind(name: str) -> str:
    if name.startswith("Fixed "):
        return "fixed"
    if name in (ORACLE, BEST_FIXED, BEST_PER_TIER, TUNED_FIXED, TUNED_PER_TIER):
        return "reference"
    if " w/o " in name:
        return "ablation"
    return "policy"


def _per_seed(name: str, result: Replay) -> dict[str, list[float]]:
    values: dict[str, list[float]] = {k: [] for k in ("reward", "accuracy", "eflops", "regret_oracle", "regret_best")}
    for seed in result.seeds:
        trace = result.traces[name][seed]
        oracle = result.traces[ORACLE][seed].reward
        best = result.traces[BEST_FIXED][seed].reward
        values["reward"].append(float(trace.reward.mean()))
        values["accuracy"].append(float(trace.correct.mean()))
        values["eflops"].append(float(trace.eflops.mean()))
        values["regret_oracle"].append(float(np.sum(oracle - trace.reward)))
        values["regret_best"].append(float(np.sum(best - trace.reward)))
    return values


def _row(name: str, result: Replay) -> dict[str, Any]:
    per_seed = _per_seed(name, result)
    row: dict[str, Any] = {"policy": name, "kind": _kind(name)}
    for key, values in per_seed.items():
        row[key] = mean_spread(values)
    row["seconds"] = float(sum(t.seconds for t in result.traces[name].values()))
    return row


def _curves(name: str, result: Replay) -> dict[str, tuple[list[float], list[float]]]:
    out = {}
    for reference in (ORACLE, BEST_FIXED):
        curves = np.asarray(
            [cumulative_regret(result.traces[reference][s].reward, result.traces[name][s].reward) for s in result.seeds]
        )
        spread = curves.std(axis=0, ddof=1) if len(result.seeds) > 1 else np.zeros(curves.shape[1])
        out["oracle" if reference == ORACLE else "best_fixed"] = (curves.mean(axis=0).tolist(), spread.tolist())
    return out


def _choice_shares(traces: dict[int, Trace], n_configs: int, windows: int = 20) -> tuple[list[list[float]], int]:
    length = next(iter(traces.values())).steps
    window = max(1, -(-length // windows))
    shares = np.zeros((-(-length // window), n_configs))
    for trace in traces.values():
        for w in range(shares.shape[0]):
            chunk = trace.arms[w * window : (w + 1) * window]
            shares[w] += np.bincount(chunk, minlength=n_configs) / chunk.size
    return (shares / len(traces)).tolist(), window


def _tier_choices(test: OutcomeTable, traces: dict[int, Trace]) -> dict[str, dict[str, float]]:
    counts = np.zeros((len(test.tiers), test.n_configs))
    for trace in traces.values():
        half = trace.steps // 2
        tiers = test.tier_index[trace.questions[half:]]
        np.add.at(counts, (tiers, trace.arms[half:]), 1.0)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    return {
        tier: {str(c): float(shares[t, a]) for a, c in enumerate(test.configs) if shares[t, a] > 0}
        for t, tier in enumerate(test.tiers)
    }


def _early_stopping(
    test: OutcomeTable,
    weights: RewardWeights,
    bandit: BanditSettings,
    settings: BenchSettings,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """UniScale with and without early stopping, on the test questions collected both ways."""
    both = test.covered(False)
    result = replay(
        both,
        [*early_stopping_specs(bandit=bandit), PolicySpec(ORACLE, lambda c: Oracle())],
        weights,
        seeds=settings.seeds,
        length=settings.length,
        hindsight=True,
        progress=progress,
    )
    rows = []
    for name in (UNISCALE, "UniScale w/o early stopping"):
        row = _row(name, result)
        row["questions"] = both.n_questions
        rows.append(row)
    for a, config in enumerate(both.configs):
        if config.paths == 1:
            continue
        on_eflops, off_eflops = both.array("eflops", True)[:, a], both.array("eflops", False)[:, a]
        rows.append(
            {
                "policy": f"Fixed {config}",
                "kind": "fixed",
                "questions": both.n_questions,
                "accuracy_on": float(both.array("correct", True)[:, a].mean()),
                "accuracy_off": float(both.array("correct", False)[:, a].mean()),
                "eflops_on": float(on_eflops.mean()),
                "eflops_off": float(off_eflops.mean()),
                "tokens_on": float(both.array("completion_tokens", True)[:, a].mean()),
                "tokens_off": float(both.array("completion_tokens", False)[:, a].mean()),
                "pruned": float(both.array("pruned", True)[:, a].mean()),
            }
        )
    return rows


# ---------------------------------------------------------------------- frontier
def _frontier(
    test: OutcomeTable,
    tune: OutcomeTable | None,
    modes: dict[str, ModeResults],
    settings: BenchSettings,
    progress: Callable[[int], None] | None,
) -> dict[str, Any]:
    """Every learning policy over the cost-weight sweep, the rivals over their own knobs; fixed configs and
    their hull; AIQ, APGR, savings."""
    nearest = [min(modes.values(), key=lambda m: abs(m.weights.cost - w)) if modes else None for w in settings.sweep]
    names = [n for n in FRONTIER_POLICIES if tune is not None or n not in (UNISCALE_PRIOR, OFFLINE_ROUTER)]
    points: dict[str, list[list[tuple[float, float]]]] = {name: [] for name in names}
    for cost_weight, mode in zip(settings.sweep, nearest, strict=True):
        weights = sweep_weights(cost_weight)
        bandit = mode.bandit if mode is not None else UNTUNED
        specs = [
            PolicySpec(UNISCALE, uniscale(bandit)),
            PolicySpec("kNN", lambda c: KNN(c.n_arms, k=settings.knn_k)),
            PolicySpec(ORACLE, lambda c: Oracle()),
        ]
        if tune is not None and mode is not None and mode.prior_bandit is not None:
            specs += [
                PolicySpec(UNISCALE_PRIOR, warmed_uniscale(mode.prior_bandit, Prior.of_table(tune, weights), test)),
                PolicySpec(OFFLINE_ROUTER, _offline_router(tune, weights)),
            ]
        result = replay(
            test, specs, weights, seeds=settings.seeds, length=settings.length, hindsight=False, progress=progress
        )
        for name in names:
            points[name].append([_point(result.traces[name][s]) for s in result.seeds])
    streams = result.streams if settings.sweep else {}
    if tune is not None:
        points.update(_rival_points(test, tune, streams))
    correct, eflops = test.array("correct"), test.array("eflops")
    fixed_points = [
        [(float(eflops[streams[s], a].mean()), float(correct[streams[s], a].mean())) for s in sorted(streams)]
        for a in range(test.n_configs)
    ]
    random_points = [_random_point(test, streams[s], s) for s in sorted(streams)]
    seeds = sorted(streams)
    per_seed: dict[str, dict[str, list[float]]] = {}
    saving: list[float] = []
    saving_at: list[float] = []
    oracle_saving: list[float] = []
    prior_saving: list[float] = []
    above: list[float] = []
    for i, _ in enumerate(seeds):
        fixed = np.asarray([fp[i] for fp in fixed_points])
        c_lo, c_hi = float(fixed[:, 0].min()), float(fixed[:, 0].max())
        weak = tuple(fixed[int(np.argmin(fixed[:, 0]))])
        strong_index = int(np.lexsort((fixed[:, 0], -fixed[:, 1]))[0])  # most accurate, then cheapest
        strong = tuple(fixed[strong_index])
        routers = {name: np.asarray([sweep_point[i] for sweep_point in pts]) for name, pts in points.items()}
        routers["single configs (hull)"] = fixed
        routers["Random"] = np.asarray([random_points[i]])
        for name, pts in routers.items():
            entry = per_seed.setdefault(name, {"aiq": [], "apgr": []})
            entry["aiq"].append(aiq(pts, c_lo, c_hi))
            valid = strong[0] > weak[0] and strong[1] > weak[1]
            entry["apgr"].append(apgr(pts, weak, strong) if valid else math.nan)
        found = saving_at_iso_quality(routers[UNISCALE], strong, settings.iso_tolerance)
        saving.append(found[0] if found else math.nan)
        saving_at.append(settings.sweep[found[1]] if found else math.nan)
        ceiling = saving_at_iso_quality(routers[ORACLE], strong, settings.iso_tolerance)
        oracle_saving.append(ceiling[0] if ceiling else math.nan)
        if UNISCALE_PRIOR in routers:
            found = saving_at_iso_quality(routers[UNISCALE_PRIOR], strong, settings.iso_tolerance)
            prior_saving.append(found[0] if found else math.nan)
        above.append(share_above(routers[UNISCALE], fixed))
    mean_points = {name: np.mean(np.asarray(pts), axis=1).tolist() for name, pts in points.items()}
    fixed_mean = np.mean(np.asarray(fixed_points), axis=1)
    strong_config = int(np.lexsort((fixed_mean[:, 0], -fixed_mean[:, 1]))[0])
    return {
        "sweep": list(settings.sweep),
        "points": mean_points,
        "fixed": {str(c): fixed_mean[a].tolist() for a, c in enumerate(test.configs)},
        "fixed_hull": nondecreasing_hull(fixed_mean).tolist(),
        "random": np.mean(np.asarray(random_points), axis=0).tolist(),
        "metrics": {name: {k: mean_spread(v) for k, v in m.items()} for name, m in per_seed.items()},
        "most_accurate_config": str(test.configs[strong_config]),
        "saving": mean_spread(saving),
        "saving_found": int(np.isfinite(saving).sum()),
        "prior_saving": mean_spread(prior_saving) if prior_saving else (math.nan, math.nan),
        "prior_saving_found": int(np.isfinite(prior_saving).sum()),
        "oracle_saving": mean_spread(oracle_saving),
        "saving_cost_weight": [float(w) for w in saving_at],
        "share_above_hull": mean_spread(above),
        "seeds": len(seeds),
    }


def _offline_router(tune: OutcomeTable, weights: RewardWeights) -> Callable[[PolicyContext], Policy]:
    """A factory of the offline router fitted on ``tune`` under ``weights``."""
    return lambda context: OfflineRouter.from_table(tune, weights)


def _rival_points(
    test: OutcomeTable, tune: OutcomeTable, streams: dict[int, np.ndarray]
) -> dict[str, list[list[tuple[float, float]]]]:
    """BEST-Route over its tolerances and the cascade over its thresholds and strong configs, per seed's stream.

    Neither depends on the cost weight: each knob setting is one point of its frontier.
    """
    seeds = sorted(streams)
    features = [test.features(q) for q in range(test.n_questions)]
    weights = sweep_weights(0.0)  # the cascade's reward is not what its points are made of
    best_route = []
    for tolerance in BEST_ROUTE_TOLERANCES:
        router = BestRoute.from_table(tune, tolerance)
        chosen = np.asarray([router.select(f) for f in features], dtype=np.int64)
        best_route.append([_static_point(test, streams[s], chosen) for s in seeds])
    small = _cascade_small(tune)
    cascade = [
        [
            _point(cascade_trace(test, weights, streams[s], s, small=small, strong=strong, threshold=threshold))
            for s in seeds
        ]
        for strong in _cascade_strong(tune, RewardWeights.preset("cost-sensitive"))
        for threshold in cascade_thresholds(tune, small)
    ]
    return {BEST_ROUTE: best_route, CASCADE: cascade}


def _static_point(test: OutcomeTable, questions: np.ndarray, chosen: np.ndarray) -> tuple[float, float]:
    """(mean eFLOPs, accuracy) of a router that answers question ``q`` with ``chosen[q]``, on a stream."""
    arms = chosen[questions]
    return float(test.array("eflops")[questions, arms].mean()), float(test.array("correct")[questions, arms].mean())


def _point(trace: Trace) -> tuple[float, float]:
    return float(trace.eflops.mean()), float(trace.correct.mean())


def _random_point(test: OutcomeTable, questions: np.ndarray, seed: int) -> tuple[float, float]:
    """Random's (cost, accuracy) point: the expectation over uniform choices, exact."""
    return float(test.array("eflops")[questions].mean()), float(test.array("correct")[questions].mean())


# ---------------------------------------------------------------------- tables and goals
def _tier_table(test: OutcomeTable) -> list[dict[str, Any]]:
    """Accuracy and mean eFLOPs of every config on every tier of the test split."""
    rows = []
    correct, eflops = test.array("correct"), test.array("eflops")
    for t, tier in enumerate(test.tiers):
        mask = test.tier_index == t
        rows.append(
            {
                "tier": tier,
                "questions": int(mask.sum()),
                "accuracy": {str(c): float(correct[mask, a].mean()) for a, c in enumerate(test.configs)},
                "eflops": {str(c): float(eflops[mask, a].mean()) for a, c in enumerate(test.configs)},
                "oracle_accuracy": float(correct[mask].max(axis=1).mean()),
            }
        )
    return rows


def _info(
    table: OutcomeTable, test: OutcomeTable, tune: OutcomeTable | None, settings: BenchSettings
) -> dict[str, Any]:
    return {
        "questions": table.n_questions,
        "test_questions": test.n_questions,
        "tune_questions": tune.n_questions if tune is not None else 0,
        "tiers": list(table.tiers),
        "configs": [str(c) for c in table.configs],
        "early_stopping_off_questions": int(test.coverage.get(False, np.zeros(0, dtype=bool)).sum()),
        "seeds": list(settings.seeds),
        "length": settings.length,
        "table_settings": dict(table.meta.settings),
    }


def _find(rows: Sequence[dict[str, Any]], name: str) -> dict[str, Any]:
    for row in rows:
        if row["policy"] == name:
            return row
    raise KeyError(name)


def _p1_goals(
    mode: str, m: ModeResults, row: dict[str, Any], best: dict[str, Any], tier: dict[str, Any], settings: BenchSettings
) -> list[dict[str, Any]]:
    """P1 for one UniScale variant in one mode: regret against the best fixed config, headroom captured."""
    name, regret = row["policy"], row["regret_best"]
    captured = gap_captured(row["reward"][0], best["reward"][0], tier["reward"][0])
    share = 2 / 3 if mode == "cost-sensitive" else 1 / 3
    return [
        {
            "goal": "P1",
            "mode": mode,
            "what": f"regret of {name} against the best fixed config ({m.best_fixed}) at query {settings.length}",
            "measured": regret,
            "detail": {"name": name, "uniscale_reward": row["reward"][0], "best_fixed_reward": best["reward"][0]},
            "target": "< 0",
            "met": bool(regret[0] < 0),
        },
        {
            "goal": "P1",
            "mode": mode,
            "what": f"{name}: share of the gap from the best fixed config to the best config per tier captured",
            "measured": (captured, math.nan),
            "detail": {
                "name": name,
                "uniscale": row["reward"][0],
                "best_fixed": best["reward"][0],
                "per_tier": tier["reward"][0],
            },
            "target": f">= {share:.3f}",
            "met": bool(math.isfinite(captured) and captured >= share),
        },
    ]


def goals(results: BenchResults, settings: BenchSettings) -> list[dict[str, Any]]:
    """P1-P4 with the measured figures, per mode where the goal depends on it."""
    out: list[dict[str, Any]] = []
    for mode, m in results.modes.items():
        uni = _find(m.rows, UNISCALE)
        best = _find(m.rows, BEST_FIXED)
        tier = _find(m.rows, BEST_PER_TIER)
        for variant in (r for r in m.rows if r["policy"] in (UNISCALE, UNISCALE_PRIOR)):
            out += _p1_goals(mode, m, variant, best, tier, settings)
        tuned = {r["policy"]: r["reward"][0] for r in m.rows if r["policy"] in (TUNED_FIXED, TUNED_PER_TIER)}
        if tuned:
            out.append(
                {
                    "goal": "P1",
                    "mode": mode,
                    "what": "best mean reward of UniScale and UniScale + prior against the references chosen on the "
                    "tuning split (what a deployment could have known)",
                    "measured": (
                        max(r["reward"][0] for r in m.rows if r["policy"] in (UNISCALE, UNISCALE_PRIOR)),
                        math.nan,
                    ),
                    "detail": {"tuned_references": tuned},
                    "target": "report",
                    "met": None,
                }
            )
        tts = _find(m.rows, f"{TTS_ONLY} ({m.tts_model})")
        routing = _find(m.rows, ROUTING_ONLY)
        untuned = {
            r["policy"]: 100.0 * (uni["reward"][0] - r["reward"][0]) / r["reward"][0]
            for r in m.rows
            if r["policy"].startswith(TTS_ONLY) and r is not tts
        }
        for other, paper in ((tts, 8.2), (routing, 12.1)):
            gain = 100.0 * (uni["reward"][0] - other["reward"][0]) / other["reward"][0]
            out.append(
                {
                    "goal": "P3",
                    "mode": mode,
                    "what": f"UniScale reward over {other['policy']} (paper: +{paper}%)",
                    "measured": (gain, math.nan),
                    "detail": {"other_tts_only": untuned if other is tts else {}},
                    "target": "> 0 (paper +" + f"{paper}%)",
                    "met": bool(gain > 0),
                }
            )
        if m.early_stopping:
            on = _find(m.early_stopping, UNISCALE)
            off = _find(m.early_stopping, "UniScale w/o early stopping")
            saving = 100.0 * (1.0 - on["eflops"][0] / off["eflops"][0])
            accuracy_cost = 100.0 * (off["accuracy"][0] - on["accuracy"][0])
            out.append(
                {
                    "goal": "P4",
                    "mode": mode,
                    "what": "early stopping: eFLOPs saved by UniScale "
                    f"({on['questions']} questions collected both ways)",
                    "measured": (saving, math.nan),
                    "detail": {"accuracy_points_lost": accuracy_cost},
                    "target": "report (paper: -8.2% reward without it)",
                    "met": None,
                }
            )
    frontier = results.frontier
    uni_aiq = frontier["metrics"][UNISCALE]["aiq"]
    hull_aiq = frontier["metrics"]["single configs (hull)"]["aiq"]
    out.append(
        {
            "goal": "P1",
            "mode": "sweep of w3",
            "what": "UniScale frontier above the hull of all single configs: AIQ (UniScale vs hull)",
            "measured": uni_aiq,
            "detail": {"hull_aiq": hull_aiq, "share_of_points_above_hull": frontier["share_above_hull"]},
            "target": f"> {hull_aiq[0]:.4f}",
            "met": bool(uni_aiq[0] > hull_aiq[0]),
        }
    )
    metrics = frontier["metrics"]
    for name in (UNISCALE, UNISCALE_PRIOR):
        if name not in metrics:
            continue
        rivals = {r: metrics[r]["aiq"][0] for r in RIVALS if r in metrics}
        beaten = [r for r, value in rivals.items() if value > metrics[name]["aiq"][0]]
        out.append(
            {
                "goal": "P1",
                "mode": "sweep of w3",
                "what": f"{name} frontier AIQ against each rival's (" + ", ".join(rivals) + ")",
                "measured": metrics[name]["aiq"],
                "detail": {"rivals_aiq": rivals, "above_uniscale": beaten},
                "target": ">= each rival's",
                "met": not beaten,
            }
        )
    saving = frontier["saving"]
    out.append(
        {
            "goal": "P2",
            "mode": "sweep of w3",
            "what": f"eFLOPs saved against the most accurate single config ({frontier['most_accurate_config']}) "
            f"at <= {100 * settings.iso_tolerance:g} point of accuracy lost",
            "measured": saving,
            "detail": {
                "seeds_with_a_qualifying_point": frontier["saving_found"],
                "with_prior": frontier["prior_saving"],
                "with_prior_found": frontier["prior_saving_found"],
                "of": frontier["seeds"],
                "oracle_saving": frontier["oracle_saving"],
            },
            "target": ">= 0.60",
            "met": bool(
                math.isfinite(saving[0]) and saving[0] >= 0.6 and frontier["saving_found"] == frontier["seeds"]
            ),
        }
    )
    return out
