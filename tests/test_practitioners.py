"""The practitioners' baselines on the shipped table's tuning split (real outcomes) and on a known stream."""

import numpy as np
import pytest

from uniscale_integrations.bench.practitioners import (
    BestRoute,
    OfflineRouter,
    best_cascade_threshold,
    best_route_options,
    cascade_thresholds,
    cascade_trace,
)
from uniscale_integrations.features.joint import ProductFeatures
from uniscale_integrations.outcomes import default_table_path, load_table
from uniscale_integrations.reward.weights import RewardWeights

WEIGHTS = RewardWeights.preset("cost-sensitive")


@pytest.fixture(scope="module")
def tune():
    return load_table(default_table_path()).subset("tune")


def _arm(table, name: str) -> int:
    return [str(c) for c in table.configs].index(name)


def test_a_cascade_pays_for_both_runs_when_it_escalates(tune) -> None:
    small, strong = _arm(tune, "S/qp1/cp1/bs1"), _arm(tune, "M/qp1/cp4/bs1")
    questions = np.arange(tune.n_questions)
    never = cascade_trace(tune, WEIGHTS, questions, 0, small=small, strong=strong, threshold=0.0)
    always = cascade_trace(tune, WEIGHTS, questions, 0, small=small, strong=strong, threshold=2.0)
    eflops, correct, score = tune.array("eflops"), tune.array("correct"), tune.array("score")
    assert np.array_equal(never.arms, np.full(tune.n_questions, small))
    np.testing.assert_allclose(never.eflops, eflops[:, small])
    assert np.array_equal(always.correct, correct[:, strong])
    np.testing.assert_allclose(always.eflops, eflops[:, small] + eflops[:, strong])
    middle = float(np.median(score[:, small]))
    some = cascade_trace(tune, WEIGHTS, questions, 0, small=small, strong=strong, threshold=middle)
    assert np.array_equal(some.arms == strong, score[:, small] < middle)
    thresholds = cascade_thresholds(tune, small)
    assert thresholds[0] == 0.0
    assert thresholds[-1] > 1.0
    assert best_cascade_threshold(tune, WEIGHTS, small=small, strong=strong, thresholds=thresholds) in thresholds


def test_best_route_takes_the_cheapest_option_within_its_tolerance(tune) -> None:
    options = best_route_options(tune.configs)
    assert {str(tune.configs[a]) for a in options} >= {"S/qp1/cp1/bs1", "M/qp1/cp8/bs1"}
    assert all(tune.configs[a].qp == 1 for a in options)
    features = [tune.features(q) for q in range(tune.n_questions)]
    eflops = tune.array("eflops").mean(axis=0)
    strict, loose = BestRoute.from_table(tune, 0.0), BestRoute.from_table(tune, 1.0)
    cheapest = min(options, key=lambda a: eflops[a])
    assert {loose.select(f) for f in features} == {cheapest}
    assert np.mean([eflops[strict.select(f)] for f in features]) > eflops[cheapest]


def test_the_offline_routers_learn_which_config_pays_per_cluster() -> None:
    rng = np.random.default_rng(0)
    clusters = rng.integers(3, size=90)
    contexts = np.eye(3)[clusters] + rng.normal(0, 0.05, (90, 3))
    rewards = 0.2 + 0.6 * (clusters[:, None] == np.arange(3))
    router = OfflineRouter(contexts, rewards)
    best_route = BestRoute(contexts, (rewards > 0.5).astype(float), costs=[3.0, 2.0, 1.0], tolerance=0.1)
    for cluster in range(3):
        features = ProductFeatures(np.eye(3)[cluster], np.eye(3))
        assert router.select(features) == cluster
        assert best_route.select(features) == cluster
    with pytest.raises(ValueError, match="tolerance"):
        BestRoute(contexts, rewards, costs=[1, 2, 3], tolerance=2.0)
