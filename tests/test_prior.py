"""The policy's prior: the shipped table's tuning split, applied before any feedback (real MiniLM, real SQLite)."""

from pathlib import Path

import numpy as np
import pytest

from uniscale_integrations import Config, UniScale
from uniscale_integrations.features.space import ConfigSpace
from uniscale_integrations.outcomes import default_table_path, load_table
from uniscale_integrations.policy.linucb import joint_linucb
from uniscale_integrations.policy.prior import DEFAULT_PRIOR_WEIGHT, Prior
from uniscale_integrations.reward.weights import RewardWeights

GRID = {"models": ("S", "M"), "qp": (1, 2), "cp": (1, 2, 4, 8)}


@pytest.fixture(scope="module")
def tune():
    return load_table(default_table_path()).subset("tune")


def test_the_default_prior_is_the_tuning_split_in_the_engines_terms(tune) -> None:
    engine = UniScale.from_defaults(prior="default", **GRID)
    cold = UniScale.from_defaults(**GRID)
    # One update per (tuning question, configuration) before any feedback; none from the test split.
    assert engine.bandit.n_updates == tune.n_questions * tune.n_configs
    assert cold.bandit.n_updates == 0
    # It learned what the table says: on a tuning question, M's best configuration outranks S's greedy path.
    question = tune.questions[int(np.argmax(tune.array("correct")[:, -1]))].text
    means = {e.config: e.mean for e in engine.explain(question)}
    assert means[Config("M", 2, 8)] > means[Config("S")]
    assert len({round(e.mean, 9) for e in cold.explain(question)}) == 1


def test_a_restart_resumes_the_same_prior_and_log(tmp_path: Path) -> None:
    store = tmp_path / "policy.sqlite"
    with UniScale.from_defaults(prior="default", store=store, **GRID) as first:
        result = first.run("What is 2 + 2?", config=Config("S"), max_new_tokens=4)
        first.feedback(result.decision_id, correct=True)
        state = first.bandit.state_dict()
    with UniScale.from_defaults(prior="default", store=store, **GRID) as again:
        for key, value in state.items():
            np.testing.assert_allclose(np.asarray(again.bandit.state_dict()[key]), value, err_msg=key)
        assert again.bandit.n_updates == first.bandit.n_updates


def test_only_the_spaces_configurations_take_evidence_and_bad_priors_are_refused(tune) -> None:
    engine = UniScale.from_defaults(prior="default", models=("M",), qp=(1,), cp=(1, 4))
    assert engine.bandit.n_updates == tune.n_questions * 2
    with pytest.raises(ValueError, match="prior must be a Prior, 'default' or None"):
        UniScale.from_defaults(prior="tuned")
    narrow = Prior.of_table(tune, RewardWeights.preset("cost-sensitive"))  # the table's own contexts
    assert narrow.contexts.shape[1] == tune.contexts.shape[1] == 21
    with pytest.raises(ValueError, match="rewards"):
        Prior("bad", narrow.contexts, narrow.configs, narrow.rewards[:, :3])
    other_encoder = Prior("8-d", narrow.contexts[:, :13], narrow.configs, narrow.rewards)
    with pytest.raises(ValueError, match="contexts of 13 numbers but this engine's encoder makes 21"):
        UniScale.from_defaults(prior=other_encoder, **GRID)


def _applied(prior: Prior, tune) -> np.ndarray:
    """The design ``A`` and target ``b`` of a plain LinUCB after ``prior``, side by side."""
    bandit = joint_linucb(tune.action_features.shape[1], prior.contexts.shape[1], alpha=0.5)
    assert prior.apply(bandit, ConfigSpace(tune.configs), tune.action_features) == tune.n_questions * tune.n_configs
    return np.column_stack([bandit.A - np.eye(bandit.dim), bandit.b])


def test_a_weighted_prior_counts_each_outcome_as_that_many_observations(tune) -> None:
    prior = Prior.of_table(tune, RewardWeights.preset("quality-first"))
    once = _applied(prior, tune)
    np.testing.assert_allclose(_applied(prior.weighted(0.25), tune), 0.25 * once, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(_applied(prior.weighted(3.0), tune), 3.0 * once, rtol=1e-9, atol=1e-12)
    assert prior.weighted(0.25).digest != prior.digest == prior.weighted(1.0).digest
    for bad in (0.0, -1.0, float("nan"), float("inf"), True, "1"):
        with pytest.raises(ValueError, match="weight must be"):
            prior.weighted(bad)  # type: ignore[arg-type]


def test_the_engines_prior_weight_reaches_the_policy_and_keys_its_snapshots(tmp_path: Path) -> None:
    store = tmp_path / "policy.sqlite"
    with UniScale.from_defaults(prior="default", prior_weight=1.0, store=store, snapshot_every=1, **GRID) as heavy:
        result = heavy.run("What is 2 + 2?", config=Config("S"), max_new_tokens=4)
        heavy.feedback(result.decision_id, correct=True)
        heavy_b = heavy.bandit.b.copy()
    with UniScale.from_defaults(prior="default", prior_weight=0.25, **GRID) as light_cold:
        light_prior_b = light_cold.bandit.b.copy()
    # The same store under a lighter prior: its own prior plus the one logged feedback, not the heavy snapshot.
    with UniScale.from_defaults(prior="default", prior_weight=0.25, store=store, **GRID) as light:
        assert light.bandit.n_updates == heavy.bandit.n_updates
        assert not np.allclose(light.bandit.b, heavy_b)
        x = light.bandit.b - light_prior_b  # the one live update, at full weight in both
        np.testing.assert_allclose(x, heavy_b - _prior_b(1.0), rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(_prior_b(None), _prior_b(DEFAULT_PRIOR_WEIGHT))
    with pytest.raises(ValueError, match="prior_weight needs a prior"):
        UniScale.from_defaults(prior_weight=0.5, **GRID)


def _prior_b(weight: float | None) -> np.ndarray:
    with UniScale.from_defaults(prior="default", prior_weight=weight, **GRID) as engine:
        return engine.bandit.b.copy()
