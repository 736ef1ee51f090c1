"""Replay mechanics on a small hand-made outcome table whose best choices are known."""

import numpy as np
import pytest

from uniscale_integrations.bench import evaluate as evaluate_module
from uniscale_integrations.bench.evaluate import (
    BenchSettings,
    evaluate,
    planned_runs,
    tune_bandit,
    tune_prior_bandit,
    tuning_length,
)
from uniscale_integrations.bench.replay import (
    BEST_FIXED,
    BEST_PER_TIER,
    ORACLE,
    UNISCALE,
    BanditSettings,
    PolicySpec,
    best_fixed_arm,
    best_per_tier_arms,
    drift_stream,
    replay,
    routing_arms,
    run_policy,
    standard_specs,
    stream,
    tts_arms,
    uniscale,
    warmed_uniscale,
)
from uniscale_integrations.bench.report import summary_markdown
from uniscale_integrations.bench.synthetic import synthetic_table
from uniscale_integrations.features.space import ConfigSpace
from uniscale_integrations.outcomes import OutcomeRow, OutcomeTable, QuestionRow, TableMeta
from uniscale_integrations.policy.base import PolicyContext
from uniscale_integrations.policy.linucb import joint_linucb
from uniscale_integrations.policy.prior import Prior
from uniscale_integrations.reward.weights import RewardWeights

CONFIGS = ("S/qp1/cp1/bs1", "M/qp1/cp1/bs1", "M/qp1/cp4/bs1")
COST = (0.05, 0.3, 0.9)
# Tier "a": only S is needed (all right); tier "b": only M with 4 candidates is right.
RIGHT = {"a": (True, True, True), "b": (False, False, True)}
COST_SENSITIVE = RewardWeights.preset("cost-sensitive")

PLAIN = BanditSettings(0.5, shrinkage=1.0)
"""UniScale with plain ridge."""


def hand_table(per_tier: int = 6, es_off: bool = True) -> OutcomeTable:
    space = ConfigSpace.grid(("S", "M"), (1,), (1, 4))
    space = ConfigSpace([c for c in space if str(c) in CONFIGS])
    z = space.with_costs(dict(zip(space, COST, strict=True))).features()
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    rng = np.random.default_rng(0)
    questions, outcomes = [], []
    for tier, centre in (("a", [1.0, 1.0, 0.0]), ("b", [1.0, 0.0, 1.0])):
        for i in range(per_tier):
            context = np.asarray(centre) + np.r_[0.0, 0.05 * rng.normal(size=2)]
            qid = f"{tier}{i}"
            questions.append(
                QuestionRow(qid, tier, "test", f"question {qid}", "1", tuple(context / np.linalg.norm(context)))
            )
            for a, config in enumerate(CONFIGS):
                for es in (True, False) if es_off else (True,):
                    factor = 1.0 if es or a == 0 else 1.5
                    outcomes.append(
                        OutcomeRow(
                            qid,
                            config,
                            es,
                            "1",
                            RIGHT[tier][a],
                            0.5,
                            1e11 * (a + 1) * factor,
                            min(1.0, COST[a] * factor),
                            10,
                            10,
                            0.1,
                        )
                    )
    meta = TableMeta(CONFIGS, tuple(tuple(r) for r in z), (True, False) if es_off else (True,), {})
    return OutcomeTable(meta, questions, outcomes)


def test_known_best_fixed_and_best_per_tier() -> None:
    table = hand_table()
    everything = np.arange(table.n_questions)
    assert best_per_tier_arms(table, COST_SENSITIVE, everything) == {"a": 0, "b": 2}
    # Per question, cost-sensitive: S earns .6/.1*.5/.3*.95 on a and only .335 on b; M/cp4 earns .68 on both.
    rewards = table.rewards(COST_SENSITIVE)
    assert rewards[0].tolist() == pytest.approx([0.935, 0.86, 0.68])
    assert rewards[-1].tolist() == pytest.approx([0.335, 0.26, 0.68])
    assert best_fixed_arm(table, COST_SENSITIVE, everything) == 2  # (0.935 + 0.335) / 2 < 0.68


def test_oracle_beats_every_fixed_config_and_the_hindsight_references() -> None:
    table = hand_table()
    specs = standard_specs(table, bandit=PLAIN, tts_model="M")
    result = replay(table, specs, COST_SENSITIVE, seeds=(0, 1, 2), length=120)
    for seed in result.seeds:
        total = {name: float(result.traces[name][seed].reward.sum()) for name in result.names}
        fixed = {name: value for name, value in total.items() if name.startswith("Fixed ")}
        assert total[BEST_FIXED] == pytest.approx(max(fixed.values()))
        assert total[BEST_PER_TIER] >= total[BEST_FIXED] - 1e-9
        assert all(total[ORACLE] >= value - 1e-9 for value in total.values())
        # Here the tiers are pure, so the best config per tier is the Oracle.
        assert total[ORACLE] == pytest.approx(total[BEST_PER_TIER])


def test_uniscale_learns_to_route_each_tier() -> None:
    table = hand_table()
    trace = replay(table, [PolicySpec(UNISCALE, uniscale(PLAIN))], COST_SENSITIVE, seeds=(0,), length=400).traces[
        UNISCALE
    ][0]
    late = slice(300, 400)
    tiers = table.tier_index[trace.questions[late]]
    arms = trace.arms[late]
    assert (arms[tiers == 0] == 0).mean() > 0.9  # S on tier a
    assert (arms[tiers == 1] == 2).mean() > 0.9  # M/cp4 on tier b
    assert trace.correct[late].mean() > 0.9


def test_replay_is_deterministic_per_seed_and_seeds_differ() -> None:
    table = hand_table()
    specs = standard_specs(table, bandit=PLAIN, tts_model="M")
    first = replay(table, specs, COST_SENSITIVE, seeds=(3,), length=60)
    second = replay(table, specs, COST_SENSITIVE, seeds=(3,), length=60)
    for name in first.names:
        assert first.traces[name][3].arms.tolist() == second.traces[name][3].arms.tolist(), name
    other = replay(table, specs, COST_SENSITIVE, seeds=(4,), length=60)
    assert other.streams[4].tolist() != first.streams[3].tolist()


def test_stream_is_a_permutation_or_shuffled_passes_over_every_question() -> None:
    assert sorted(stream(7, 7, seed=1).tolist()) == list(range(7))
    assert len(set(stream(7, 4, seed=1).tolist())) == 4
    long = stream(7, 500, seed=1)
    assert long.size == 500
    assert sorted(set(np.bincount(long, minlength=7).tolist())) == [71, 72]  # as even as 500 / 7 allows
    for start in range(0, 497, 7):
        assert sorted(long[start : start + 7].tolist()) == list(range(7))  # each pass is a permutation
    assert stream(7, 500, seed=2).tolist() != long.tolist()
    with pytest.raises(ValueError, match="positive"):
        stream(0, 5, seed=1)


def test_a_drift_stream_changes_its_tier_mix_half_way() -> None:
    table = hand_table()
    questions = drift_stream(table, ["a"], ["b"], 20, seed=3)
    tiers = np.asarray(table.tiers)[table.tier_index[questions]]
    assert questions.size == 20
    assert set(tiers[:10]) == {"a"}
    assert set(tiers[10:]) == {"b"}
    assert sorted(set(questions[:10].tolist())) == list(range(6))  # shuffled passes over tier a's questions
    again = replay(table, [PolicySpec(UNISCALE, uniscale(PLAIN))], COST_SENSITIVE, streams={3: questions})
    assert np.array_equal(again.traces[UNISCALE][3].questions, questions)
    with pytest.raises(ValueError, match="unknown"):
        drift_stream(table, ["a"], ["c"], 20, seed=0)


def test_restricted_policies_choose_only_their_configs() -> None:
    table = hand_table()
    assert tts_arms(table, "M") == (1, 2)
    assert routing_arms(table) == (0, 1)
    specs = standard_specs(table, bandit=PLAIN, tts_model="M")
    result = replay(table, specs, COST_SENSITIVE, seeds=(0,), length=100)
    assert set(result.traces["UniScale TTS-only (M)"][0].arms.tolist()) <= {1, 2}
    assert set(result.traces["UniScale routing-only"][0].arms.tolist()) <= {0, 1}


def test_replay_runs_the_core_bandit_unchanged() -> None:
    """The replay's UniScale makes exactly the choices a hand-written loop over the policy package's LinUCB makes."""
    table = hand_table()
    questions = stream(table.n_questions, 80, seed=5)
    settings = BanditSettings(0.7, shrinkage=4.0)
    trace = run_policy(table, PolicySpec(UNISCALE, uniscale(settings)), COST_SENSITIVE, questions, seed=5)
    bandit = joint_linucb(table.action_features.shape[1], table.contexts.shape[1], alpha=0.7, shrinkage=4.0)
    rewards = table.rewards(COST_SENSITIVE)
    arms = []
    for q in questions:
        features = table.features(int(q))
        arm = bandit.select(features)
        bandit.update(features.row(arm), rewards[q, arm])
        arms.append(arm)
    assert trace.arms.tolist() == arms


def test_an_ablation_learns_from_its_weights_but_is_scored_by_the_mode() -> None:
    table = hand_table()
    questions = stream(table.n_questions, 200, seed=0)
    no_cost = RewardWeights(correct=0.6, score=0.1, cost=0.0)
    trace = run_policy(table, PolicySpec("w3=0", uniscale(PLAIN), learn=no_cost), COST_SENSITIVE, questions, seed=0)
    scored = table.rewards(COST_SENSITIVE)[questions, trace.arms]
    assert trace.reward.tolist() == pytest.approx(scored.tolist())
    aware = run_policy(table, PolicySpec(UNISCALE, uniscale(PLAIN)), COST_SENSITIVE, questions, seed=0)
    tier_a = table.tier_index[questions[100:]] == 0
    # Blind to cost, it has no reason to prefer the cheap S on tier a; the cost-aware policy does.
    assert (aware.arms[100:][tier_a] == 0).mean() > 0.9
    assert (trace.arms[100:][tier_a] == 0).mean() < 0.7
    assert trace.eflops.mean() > aware.eflops.mean()


def test_without_early_stopping_a_policy_lives_with_those_outcomes() -> None:
    table = hand_table()
    questions = stream(table.n_questions, 30, seed=0)
    trace = run_policy(table, PolicySpec("off", uniscale(PLAIN), early_stopping=False), COST_SENSITIVE, questions, 0)
    assert trace.eflops.tolist() == table.array("eflops", False)[questions, trace.arms].tolist()
    on_only = hand_table(es_off=False)
    with pytest.raises(Exception, match="early_stopping=False"):
        run_policy(on_only, PolicySpec("off", uniscale(PLAIN), early_stopping=False), COST_SENSITIVE, questions, 0)


def test_policy_names_must_be_unique() -> None:
    table = hand_table()
    spec = PolicySpec(UNISCALE, uniscale(PLAIN))
    with pytest.raises(ValueError, match="unique"):
        replay(table, [spec, spec], COST_SENSITIVE, seeds=(0,), length=5)


def test_evaluate_reports_every_goal_on_a_synthetic_table() -> None:
    table = synthetic_table(8, seed=1)
    settings = BenchSettings(seeds=(0, 1), length=150, alphas=(0.5, 1.0), sweep=(0.05, 0.3))
    ticks: list[int] = []
    results = evaluate(table, settings, progress=ticks.append)
    assert sum(ticks) == planned_runs(table, settings)  # the progress bar ends full
    assert set(results.modes) == {"cost-sensitive", "quality-first"}
    assert {g["goal"] for g in results.goals} == {"P1", "P2", "P3", "P4"}
    for mode in results.modes.values():
        rewards = {row["policy"]: row["reward"][0] for row in mode.rows}
        assert rewards[ORACLE] >= max(rewards.values()) - 1e-9
        assert mode.bandit.alpha in settings.alphas
        assert mode.bandit.shrinkage in settings.shrinkages
        assert mode.early_stopping, "the synthetic table has outcomes without early stopping"
    metrics = results.frontier["metrics"]
    assert metrics["Oracle"]["aiq"][0] >= metrics["UniScale"]["aiq"][0]
    length, questions = results.info["length"], results.info["test_questions"]
    assert length > questions
    recurs = f"each {length // questions} or {length // questions + 1} times per stream"
    assert f"in shuffled passes over the {questions} distinct test questions ({recurs})" in summary_markdown(results)


def test_tuning_streams_bring_each_question_back_as_often_as_the_test_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    tune = synthetic_table(8, seed=1).subset("tune")
    seen: list[tuple[int, int, int]] = []
    real = evaluate_module.replay

    def spy(table: OutcomeTable, specs: list[PolicySpec], weights: RewardWeights, **kwargs: object) -> object:
        seen.append((table.n_questions, kwargs["length"], len(kwargs["seeds"])))  # type: ignore[arg-type]
        return real(table, specs, weights, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(evaluate_module, "replay", spy)
    tune_bandit(tune, COST_SENSITIVE, BenchSettings(alphas=(0.5,), shrinkages=(1.0,)), repeats=4.0)
    assert seen == [(tune.n_questions, 4 * tune.n_questions, 20)]
    seen.clear()
    settings = BenchSettings(prior_alphas=(0.5,), shrinkages=(1.0,), prior_weights=(1.0,))
    tune_prior_bandit(tune, COST_SENSITIVE, settings, repeats=2.5)
    assert len(seen) == 2  # one half scored with the other's prior, and the other way round
    assert sum(n for n, _, _ in seen) == tune.n_questions
    assert [length for _, length, _ in seen] == [tuning_length(n, 2.5) for n, _, _ in seen]
    assert tuning_length(62, 1000 / 248) == 250
    assert tuning_length(1, 0.1) == 1


def test_the_prior_weight_is_tuned_with_alpha_and_changes_the_warmed_policy() -> None:
    table = synthetic_table(8, seed=1)
    tune = table.subset("tune")
    settings = BenchSettings(prior_alphas=(0.5,), shrinkages=(1.0,), prior_weights=(1.0, 0.1))
    best, scores = tune_prior_bandit(tune, COST_SENSITIVE, settings, repeats=2.0)
    assert set(scores) == {"alpha 0.5, shrinkage 1, prior weight 1", "alpha 0.5, shrinkage 1, prior weight 0.1"}
    assert scores[str(best)] == max(scores.values())
    prior = Prior.of_table(tune, COST_SENSITIVE)
    dz, dc = table.action_features.shape[1], table.contexts.shape[1]
    context = PolicyContext(seed=0, dim=dz * dc, n_arms=table.n_configs, context_dim=dc)
    designs = {
        w: warmed_uniscale(BanditSettings(0.5, 1.0, w), prior, table)(context).bandit.A  # type: ignore[attr-defined]
        for w in (None, 1.0, 0.1)
    }
    np.testing.assert_array_equal(designs[None], designs[1.0])
    eye = np.eye(designs[1.0].shape[0])
    np.testing.assert_allclose(designs[0.1] - eye, 0.1 * (designs[1.0] - eye), rtol=1e-9, atol=1e-12)
