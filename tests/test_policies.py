"""One contract for every policy, plus what distinguishes each."""

import inspect
from collections.abc import Callable

import numpy as np
import pytest

from uniscale_integrations import LinUCB
from uniscale_integrations.bench import practitioners  # noqa: F401 - its policies join the contract
from uniscale_integrations.features.joint import ProductFeatures
from uniscale_integrations.policy import KNN, Fixed, Greedy, LinUCBPolicy, Oracle, Policy, PolicyContext, RandomPolicy

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


def _policies() -> list[type[Policy]]:
    """Every concrete policy of the package (the contract below runs on each, with its own test parameters)."""
    found, todo = [], list(Policy.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__.startswith("uniscale_integrations.") and not inspect.isabstract(cls):
            found.append(cls)
    return sorted(set(found), key=lambda cls: cls.__name__)


CONTEXT = PolicyContext(seed=3, dim=DZ * DC, n_arms=N_CONFIGS, context_dim=DC)
CASES = [(cls, i) for cls in _policies() for i, _ in enumerate(cls._unit_test_params(CONTEXT))]


def test_every_policy_is_under_contract() -> None:
    assert {cls.__name__ for cls, _ in CASES} == {
        "LinUCBPolicy",
        "Greedy",
        "RandomPolicy",
        "Fixed",
        "Oracle",
        "KNN",
        "OfflineRouter",
        "BestRoute",
    }


def _build(cls: type[Policy], case: int) -> Policy:
    """A new policy with the ``case``-th of the parameters it names for the contract test."""
    return cls(**list(cls._unit_test_params(CONTEXT))[case])


@pytest.mark.parametrize(("cls", "case"), CASES, ids=[f"{cls.__name__}-{case}" for cls, case in CASES])
def test_policy_contract(cls: type[Policy], case: int) -> None:
    policy = _build(cls, case)
    assert isinstance(policy, Policy)
    assert isinstance(policy.name, str)
    assert policy.name
    stream = _stream(0, 60)
    arms = []
    for features, rewards in stream:
        arm = policy.select(features, hindsight=rewards)
        assert type(arm) is int
        assert 0 <= arm < N_CONFIGS
        assert policy.update(features, arm, float(rewards[arm])) is policy
        arms.append(arm)
    assert policy.n_updates == sum(policy.pulls.values()) == len(stream)
    for arm, pulls in policy.pulls.items():
        mean = policy.mean_reward(arm)
        assert mean is not None
        assert pulls == arms.count(arm)
        assert min(r[arm] for _, r in stream) - 1e-9 <= mean <= max(r[arm] for _, r in stream) + 1e-9
    assert policy.name in repr(policy)
    assert type(policy).__name__ in repr(policy)

    replay = _build(cls, case)  # the same parameters choose the same arms on the same stream
    chosen = []
    for features, rewards in stream:
        arm = replay.select(features, hindsight=rewards)
        replay.update(features, arm, float(rewards[arm]))
        chosen.append(arm)
    assert chosen == arms

    features = stream[0][0]
    with pytest.raises(IndexError):
        policy.update(features, N_CONFIGS, 0.5)
    with pytest.raises(ValueError, match="finite"):
        policy.update(features, 0, float("nan"))
    assert policy.n_updates == len(stream)


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
