"""One contract for every policy, plus what distinguishes each."""

from collections.abc import Callable

import numpy as np
import pytest

from uniscale_integrations import LinUCB
from uniscale_integrations.features.joint import ProductFeatures
from uniscale_integrations.policy import KNN, Fixed, Greedy, LinUCBPolicy, Oracle, Policy, RandomPolicy

N_CONFIGS, DZ, DC = 3, 3, 3
ACTIONS = np.eye(N_CONFIGS)

FACTORIES: dict[str, Callable[[], Policy]] = {
    "UniScale": lambda: LinUCBPolicy(LinUCB(DZ * DC, alpha=0.3)),
    "Greedy": lambda: Greedy(DZ * DC),
    "kNN": lambda: KNN(N_CONFIGS, k=5),
    "Random": lambda: RandomPolicy(seed=3),
    "Fixed": lambda: Fixed(1),
}


def _stream(seed: int, length: int) -> list[tuple[ProductFeatures, np.ndarray]]:
    """Each query belongs to one of three clusters; config i is best on cluster i."""
    rng = np.random.default_rng(seed)
    stream = []
    for _ in range(length):
        cluster = int(rng.integers(3))
        context = np.eye(3)[cluster] + rng.normal(0, 0.05, 3)
        rewards = np.full(N_CONFIGS, 0.2) + rng.normal(0, 0.05, N_CONFIGS)
        rewards[cluster] += 0.6
        stream.append((ProductFeatures(context, ACTIONS), rewards))
    return stream


def _mean_reward(policy: Policy, stream: list[tuple[ProductFeatures, np.ndarray]]) -> float:
    total = 0.0
    for features, rewards in stream:
        arm = policy.select(features, hindsight=rewards)
        assert 0 <= arm < N_CONFIGS
        policy.update(features, arm, float(rewards[arm]))
        total += rewards[arm]
    return total / len(stream)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_policy_contract(name: str) -> None:
    policy = FACTORIES[name]()
    assert isinstance(policy, Policy)
    assert name in repr(policy) or policy.name == name
    assert 0 < _mean_reward(policy, _stream(0, 50)) <= 1.0


@pytest.mark.parametrize("name", ["UniScale", "kNN"])
def test_learning_policies_find_the_best_config_per_cluster(name: str) -> None:
    stream = _stream(1, 400)
    learned = _mean_reward(FACTORIES[name](), stream)
    random = _mean_reward(RandomPolicy(seed=0), stream)
    oracle = _mean_reward(Oracle(), stream)
    assert learned > random + 0.25
    assert learned > oracle - 0.1


def test_oracle_needs_hindsight_and_fixed_checks_its_arm() -> None:
    features = _stream(2, 1)[0][0]
    with pytest.raises(ValueError, match="hindsight"):
        Oracle().select(features)
    with pytest.raises(IndexError, match="fixed arm 7"):
        Fixed(7).select(features)
    with pytest.raises(ValueError, match="k must be"):
        KNN(3, k=0)


def test_greedy_exploits_its_mean_estimate_only() -> None:
    greedy = Greedy(DZ * DC)
    features, _ = _stream(3, 1)[0]
    greedy.update(features, 2, 1.0)
    mean, _ = greedy.bandit.scores(features)
    assert greedy.select(features) == int(np.argmax(mean)) == 2
