"""Interaction shrinkage: a ridge that holds query-by-configuration interactions harder than main effects."""

from __future__ import annotations

import numpy as np
import pytest

from uniscale_integrations.features.joint import ProductFeatures, interaction_ridge_scale
from uniscale_integrations.policy.linucb import LinUCB, joint_linucb


def test_main_effects_keep_the_plain_ridge_and_interactions_get_the_shrinkage() -> None:
    scale = interaction_ridge_scale(3, 4, 16.0).reshape(3, 4)
    assert (scale[0, :] == 1.0).all()  # the configuration bias times every context entry
    assert (scale[:, 0] == 1.0).all()  # every configuration feature times the context bias
    assert (scale[1:, 1:] == 16.0).all()
    assert (interaction_ridge_scale(3, 4, 1.0) == 1.0).all()
    for bad in (0.0, -2.0, float("nan"), True, "4"):
        with pytest.raises(ValueError, match="shrinkage must be"):
            interaction_ridge_scale(3, 4, bad)  # type: ignore[arg-type]


def test_shrinkage_is_plain_ridge_on_interactions_scaled_down() -> None:
    """Ridge with multiplier s on a coordinate equals plain ridge on that coordinate divided by sqrt(s): the same
    estimates and the same widths, so the same decisions."""
    rng = np.random.default_rng(4)
    dz, dc, shrinkage = 3, 4, 9.0
    actions = rng.normal(size=(5, dz))
    actions[:, 0] = 1.0
    shrunk = joint_linucb(dz, dc, alpha=0.7, shrinkage=shrinkage)
    divisor = np.sqrt(interaction_ridge_scale(dz, dc, shrinkage))
    plain = LinUCB(dz * dc, alpha=0.7)
    for _ in range(60):
        context = np.r_[1.0, rng.normal(size=dc - 1)]
        features = ProductFeatures(context, actions)
        rows = features.dense()
        mean, width = shrunk.scores(features)
        plain_mean, plain_width = plain.scores(rows / divisor)
        np.testing.assert_allclose(mean, plain_mean, atol=1e-10)
        np.testing.assert_allclose(width, plain_width, atol=1e-10)
        arm = int(rng.integers(len(actions)))
        reward = float(rows[arm] @ rng.normal(size=dz * dc) * 0.1)
        shrunk.update(rows[arm], reward)
        plain.update(rows[arm] / divisor, reward)


def test_more_shrinkage_pulls_choices_towards_the_best_configuration_overall() -> None:
    """On noise that only looks query-dependent, a strongly shrunk bandit's estimated differences between
    configurations vary less across queries (the context's own main effect moves every configuration alike)."""
    rng = np.random.default_rng(5)
    dz, dc = 3, 6
    actions = np.eye(dz)
    actions[:, 0] = 1.0
    contexts = np.hstack([np.ones((40, 1)), rng.normal(size=(40, dc - 1))])
    spreads = {}
    for shrinkage in (1.0, 64.0):
        bandit = joint_linucb(dz, dc, alpha=0.0, shrinkage=shrinkage)
        for context in contexts:
            features = ProductFeatures(context, actions)
            for arm in range(dz):
                bandit.update(features.row(arm), float(rng.normal()) + 0.2 * arm)
        estimates = np.array([bandit.scores(ProductFeatures(c, actions))[0] for c in contexts])
        differences = estimates - estimates.mean(axis=1, keepdims=True)
        spreads[shrinkage] = float(differences.std(axis=0).mean())
    assert spreads[64.0] < 0.5 * spreads[1.0]
