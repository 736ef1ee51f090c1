"""Acceptance tests for :class:`uniscale_integrations.policy.linucb.LinUCB`.

Layout: a generic contract (``TestPolicyContract``) that runs on every hyperparameter
set ``LinUCB._unit_test_params()`` names (river's pattern), then numerical accuracy,
learning (regret, drift), agreement with MABWiser, persistence and input validation.
"""

from __future__ import annotations

import doctest
import io
import json
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uniscale_integrations.features.joint import ProductFeatures
from uniscale_integrations.policy import linucb as bandit_module
from uniscale_integrations.policy.linucb import STATE_FORMAT_VERSION, LinUCB

PARAMS = list(LinUCB._unit_test_params())
PARAM_IDS = [f"a{p['alpha']}-l{p['l2_lambda']}-g{p['gamma']}" for p in PARAMS]


# ----------------------------------------------------------------------------- helpers
def random_updates(
    bandit: LinUCB, n: int, rng: np.random.Generator, scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Feed ``n`` random observations; return them as ``(xs, rewards)``."""
    xs = scale * rng.normal(size=(n, bandit.dim))
    rewards = rng.normal(size=n)
    for x, r in zip(xs, rewards, strict=True):
        bandit.update(x, r)
    return xs, rewards


def rebuild_design(
    xs: np.ndarray,
    rewards: np.ndarray,
    l2_lambda: float,
    gamma: float,
    refresh_every: int,
    ridge_scale: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``A`` and ``b`` from scratch, by the documented formula, not by recursion.

    ``A_t = lambda * gamma^j * diag(ridge_scale) + sum_s gamma^(t-s) x_s x_s^T`` with
    ``j = t % refresh_every``, and ``b_t = sum_s gamma^(t-s) r_s x_s``.
    """
    t = len(xs)
    weights = gamma ** np.arange(t - 1, -1, -1, dtype=np.float64)
    design = (xs * weights[:, None]).T @ xs
    scale = np.ones(xs.shape[1]) if ridge_scale is None else ridge_scale
    design += l2_lambda * gamma ** (t % refresh_every) * np.diag(scale)
    return design, (weights * rewards) @ xs


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


def state_equal(left: dict[str, Any], right: dict[str, Any]) -> bool:
    if left.keys() != right.keys():
        return False
    for key, value in left.items():
        if isinstance(value, np.ndarray):
            if not np.array_equal(value, right[key]):
                return False
        elif value != right[key] or type(value) is not type(right[key]):
            return False
    return True


def product_features(rng: np.random.Generator, n: int, dz: int, dc: int) -> ProductFeatures:
    actions = np.column_stack([np.ones(n), rng.normal(size=(n, dz - 1))])
    context = np.r_[1.0, rng.normal(size=dc - 1)]
    return ProductFeatures(context=context, actions=actions)


def linear_stream_regret(
    bandit: LinUCB,
    *,
    horizon: int,
    n_configs: int,
    seed: int,
    switch_at: int | None = None,
    noise: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-step regret of ``bandit`` and of a uniform Random policy on one stream.

    Each round draws fresh joint features ``X ~ N(0, 1)^(n_configs, d)``; the reward of
    row ``a`` is ``theta* . x_a + N(0, noise^2)`` with ``||theta*|| = 1``. From round
    ``switch_at`` on, ``theta*`` is replaced by an independent unit vector, so the best
    configuration of a given ``X`` changes. The stream (features and noise) does not
    depend on the decisions, so different bandits see the same rounds.
    """
    rng = np.random.default_rng(seed)
    d = bandit.dim
    thetas = rng.normal(size=(2, d))
    thetas /= np.linalg.norm(thetas, axis=1, keepdims=True)
    random_rng = np.random.default_rng(seed + 1)
    regret, random_regret = np.empty(horizon), np.empty(horizon)
    for t in range(horizon):
        truth = thetas[1] if switch_at is not None and t >= switch_at else thetas[0]
        features = rng.normal(size=(n_configs, d))
        means = features @ truth
        noise_draw = noise * rng.normal()
        arm = bandit.select(features)
        bandit.update(features[arm], means[arm] + noise_draw)
        regret[t] = means.max() - means[arm]
        random_regret[t] = means.max() - means[random_rng.integers(n_configs)]
    return regret, random_regret


# ----------------------------------------------------------------------------- contract
@pytest.mark.parametrize("params", PARAMS, ids=PARAM_IDS)
class TestPolicyContract:
    """What every configuration of the policy must honour."""

    @pytest.fixture
    def make(self, params: dict[str, float]) -> Callable[[int], LinUCB]:
        return lambda dim: LinUCB(dim, **params)

    def test_select_returns_python_int_in_range(self, make: Callable[[int], LinUCB]) -> None:
        rng = np.random.default_rng(0)
        bandit = make(12)
        for _ in range(30):
            features = product_features(rng, 7, 3, 4)
            arm = bandit.select(features)
            assert type(arm) is int
            assert 0 <= arm < 7
            assert bandit.update(features.row(arm), float(rng.normal())) is bandit
        assert bandit.n_updates == 30

    def test_ties_break_to_lowest_index(self, make: Callable[[int], LinUCB]) -> None:
        bandit = make(6)
        rows = np.tile(np.arange(1.0, 7.0), (4, 1))
        assert bandit.select(rows) == 0  # all four rows identical
        rng = np.random.default_rng(1)
        random_updates(bandit, 40, rng)
        candidates = rng.normal(size=(5, 6))
        best = int(np.argmax(bandit.ucb(candidates)))
        others = [i for i in range(5) if i != best]
        # The best row at positions 2 and 4: the earlier copy wins.
        arranged = candidates[[others[0], others[1], best, others[2], best]]
        assert bandit.select(arranged) == 2

    def test_factored_path_equals_dense_path(self, make: Callable[[int], LinUCB]) -> None:
        rng = np.random.default_rng(2)
        bandit = make(5 * 6)
        for _ in range(120):
            features = product_features(rng, 40, 5, 6)
            mean_fast, width_fast = bandit.scores(features)
            mean_dense, width_dense = bandit.scores(features.dense())
            np.testing.assert_allclose(mean_fast, mean_dense, rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(width_fast, width_dense, rtol=1e-10, atol=1e-10)
            arm = bandit.select(features)
            assert arm == bandit.select(features.dense())
            bandit.update(features.row(arm), float(rng.normal()))

    def test_same_stream_same_decisions(self, make: Callable[[int], LinUCB]) -> None:
        runs = []
        for _ in range(2):
            rng = np.random.default_rng(3)
            bandit = make(8)
            decisions = []
            for _ in range(60):
                features = product_features(rng, 9, 2, 4)
                decisions.append(bandit.select(features))
                bandit.update(features.row(decisions[-1]), float(rng.normal()))
            runs.append(decisions)
        assert runs[0] == runs[1]

    def test_state_round_trip_is_exact(self, make: Callable[[int], LinUCB]) -> None:
        rng = np.random.default_rng(4)
        original = make(10)
        random_updates(original, 77, rng)  # stop between two refreshes
        state = original.state_dict()
        restored = LinUCB.from_state(state)
        assert state_equal(restored.state_dict(), state)
        xs, rewards = rng.normal(size=(90, 10)), rng.normal(size=90)
        for x, r in zip(xs, rewards, strict=True):
            original.update(x, r)
            restored.update(x, r)
        assert state_equal(restored.state_dict(), original.state_dict())
        probe = rng.normal(size=(25, 10))
        assert np.array_equal(restored.ucb(probe), original.ucb(probe))

    def test_invalid_update_leaves_state_unchanged(self, make: Callable[[int], LinUCB]) -> None:
        rng = np.random.default_rng(5)
        bandit = make(4)
        random_updates(bandit, 9, rng)
        before = bandit.state_dict()
        good = rng.normal(size=4)
        bad_calls: list[tuple[Any, Any, str]] = [
            (good, math.nan, "reward must be finite"),
            (good, math.inf, "reward must be finite"),
            (good, "reward", "reward must be a real number"),
            (np.array([1.0, math.nan, 0.0, 0.0]), 1.0, "x must be finite"),
            (np.array([1.0, 0.0, -math.inf, 0.0]), 1.0, "x must be finite"),
            (np.full(4, 1e200), 1.0, "must not overflow"),  # x^T x overflows
            (good, 1e308, "must not overflow"),  # reward * ||x|| overflows
            (rng.normal(size=5), 1.0, r"x must have shape \(4,\)"),
            (rng.normal(size=(1, 4)), 1.0, "x must have shape"),
            (np.ones((4, 4)), 1.0, "x must have shape"),
        ]
        for x, reward, message in bad_calls:
            with pytest.raises(ValueError, match=message):
                bandit.update(x, reward)
            assert state_equal(bandit.state_dict(), before)

    def test_repr_names_the_state(self, make: Callable[[int], LinUCB]) -> None:
        bandit = make(3)
        bandit.update(np.array([1.0, 0.0, 2.0]), 1.5)
        text = repr(bandit)
        assert text.startswith("LinUCB(dim=3, ")
        assert f"gamma={bandit.gamma:g}" in text
        assert "n_updates=1" in text


# ----------------------------------------------------------------------------- accuracy
@pytest.mark.parametrize("shaped", [False, True])
@pytest.mark.parametrize("gamma", [1.0, 0.99, 0.9])
@pytest.mark.parametrize("dim", [16, 32])
def test_maintained_inverse_matches_numpy_inverse(dim: int, gamma: float, shaped: bool) -> None:
    """Exact at every step, with plain ridge and with a per-coordinate ridge (topped up by its own shape)."""
    rng = np.random.default_rng(dim)
    scale = rng.uniform(0.5, 20.0, size=dim) if shaped else None
    bandit = LinUCB(dim, alpha=1.0, l2_lambda=0.7, gamma=gamma, ridge_scale=scale)
    xs = 2.0 * rng.normal(size=(2000, dim))
    rewards = rng.normal(size=2000)
    checkpoints = {1, 2, 3, 5, 8, 13, 500, 997, 1999, 2000}
    for t, (x, r) in enumerate(zip(xs, rewards, strict=True), start=1):
        bandit.update(x, r)
        if t in checkpoints:
            design, target = rebuild_design(xs[:t], rewards[:t], 0.7, gamma, bandit.refresh_every, scale)
            assert relative_error(bandit.A, design) < 1e-12, t
            inverse = np.linalg.inv(design)
            assert relative_error(bandit.A_inv, inverse) < 1e-8, t
            assert relative_error(bandit.theta, inverse @ target) < 1e-8, t
            assert relative_error(bandit.b, target) < 1e-12, t
    assert bandit.n_updates == 2000
    assert 2000 % bandit.refresh_every != 0  # the final check falls between two refreshes


@pytest.mark.parametrize("gamma", [1.0, 0.95])
def test_long_stream_stays_exact_and_finite(gamma: float) -> None:
    rng = np.random.default_rng(11)
    dim, n = 6, 100_000
    bandit = LinUCB(dim, l2_lambda=0.5, gamma=gamma)
    xs = rng.normal(size=(n, dim)) * rng.choice([0.01, 1.0, 30.0], size=(n, 1))
    rewards = rng.normal(size=n) * 5.0
    for x, r in zip(xs, rewards, strict=True):
        bandit.update(x, r)
    for array in (bandit.A, bandit.A_inv, bandit.b, bandit.theta):
        assert np.isfinite(array).all()
    design, target = rebuild_design(xs, rewards, 0.5, gamma, bandit.refresh_every)
    inverse = np.linalg.inv(design)
    assert relative_error(bandit.A, design) < 1e-10
    assert relative_error(bandit.A_inv, inverse) < 1e-8
    assert relative_error(bandit.theta, inverse @ target) < 1e-8
    assert state_equal(LinUCB.from_state(bandit.state_dict()).state_dict(), bandit.state_dict())
    if gamma < 1.0:
        # The regulariser is never below lambda / 2, so A^{-1} stays bounded.
        assert np.linalg.eigvalsh(bandit.A_inv).max() <= 2.0 / 0.5 + 1e-9


def test_refresh_interval_and_regulariser_floor() -> None:
    assert LinUCB(8).refresh_every == 32
    assert LinUCB(256).refresh_every == 256
    assert LinUCB(256, gamma=0.99).refresh_every == 68  # floor(ln 2 / -ln 0.99)
    assert LinUCB(16, gamma=0.999).refresh_every == 32
    assert LinUCB(16, gamma=0.5).refresh_every == 1
    bandit = LinUCB(4, l2_lambda=3.0, gamma=0.9)
    rng = np.random.default_rng(0)
    for _ in range(50):
        bandit.update(rng.normal(size=4), 0.0)
        assert 1.5 <= bandit.regularizer <= 3.0


def test_rounding_level_differences_count_as_ties() -> None:
    """UCB is positively homogeneous in x, so scaling a row scales its UCB exactly."""
    bandit = LinUCB(4)
    random_updates(bandit, 30, np.random.default_rng(9))
    x = bandit.theta + 0.1  # theta . x > 0, so the UCB is positive
    assert bandit.ucb(x[None, :])[0] > 0
    assert bandit.select(np.vstack([x, x * (1 + 1e-14)])) == 0  # tied: lowest index
    assert bandit.select(np.vstack([x, x * (1 + 1e-9)])) == 1  # a real difference


def test_fresh_bandit_scores() -> None:
    bandit = LinUCB(3, alpha=2.0, l2_lambda=4.0)
    X = np.array([[1.0, 2.0, 2.0], [0.0, 0.0, 0.0]])  # noqa: N806
    mean, width = bandit.scores(X)
    np.testing.assert_array_equal(mean, [0.0, 0.0])
    np.testing.assert_allclose(width, [1.5, 0.0])  # ||x|| / sqrt(lambda)
    np.testing.assert_allclose(bandit.ucb(X), [3.0, 0.0])


def test_a_per_coordinate_ridge_widens_where_it_is_weak() -> None:
    bandit = LinUCB(3, alpha=1.0, l2_lambda=2.0, ridge_scale=[1.0, 4.0, 0.25])
    np.testing.assert_allclose(np.diag(bandit.A), [2.0, 8.0, 0.5])
    _, width = bandit.scores(np.eye(3))
    np.testing.assert_allclose(width, 1.0 / np.sqrt([2.0, 8.0, 0.5]))  # sqrt(1 / (lambda * scale))
    with pytest.raises(ValueError, match=r"ridge_scale must have shape \(3,\)"):
        LinUCB(3, ridge_scale=[1.0, 1.0])
    with pytest.raises(ValueError, match="ridge_scale must be finite and > 0"):
        LinUCB(3, ridge_scale=[1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="ridge_scale must be an array of real numbers"):
        LinUCB(3, ridge_scale=["a", "b", "c"])


@settings(max_examples=40, deadline=None)
@given(
    dz=st.integers(1, 6),
    dc=st.integers(1, 6),
    n_configs=st.integers(1, 30),
    n_updates=st.integers(0, 60),
    gamma=st.sampled_from([1.0, 0.9]),
    seed=st.integers(0, 2**32 - 1),
)
def test_factored_path_equals_dense_path_any_shape(
    dz: int, dc: int, n_configs: int, n_updates: int, gamma: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    bandit = LinUCB(dz * dc, alpha=0.8, gamma=gamma)
    random_updates(bandit, n_updates, rng, scale=3.0)
    features = ProductFeatures(context=rng.normal(size=dc), actions=rng.normal(size=(n_configs, dz)))
    fast, dense = bandit.scores(features), bandit.scores(features.dense())
    for got, want in zip(fast, dense, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * max(1.0, np.abs(want).max()))
    assert bandit.select(features) == bandit.select(features.dense())


# ----------------------------------------------------------------------------- learning
def test_regret_on_linear_stream_is_small_and_sublinear() -> None:
    """alpha = 1.0 (the default), lambda = 1: 50 configs, d = 32, sigma = 0.1, T = 5,000.

    Measured: LinUCB's cumulative regret is about 0.4% of Random's and
    regret(5000) / regret(2500) is about 1.01. Fresh Gaussian features every round give
    the estimator plenty of diversity, which is why the default alpha suffices.
    """
    bandit = LinUCB(32)
    regret, random_regret = linear_stream_regret(bandit, horizon=5000, n_configs=50, seed=7)
    total, half = regret.sum(), regret[:2500].sum()
    assert total < 0.2 * random_regret.sum()
    assert total / half < 1.6
    assert regret[-500:].mean() < 0.02 * random_regret[-500:].mean()


def test_discounting_recovers_faster_after_a_change() -> None:
    """theta* switches to an independent unit vector at T/2; gamma = 0.98 vs gamma = 1.

    Measured: over the second half, the discounted bandit's regret is about 4% of the
    undiscounted one's; over the 500 rounds right after the switch about 15%.
    """
    horizon, switch = 5000, 2500
    regrets = {}
    for gamma in (1.0, 0.98):
        bandit = LinUCB(32, gamma=gamma)
        regrets[gamma], _ = linear_stream_regret(bandit, horizon=horizon, n_configs=50, seed=8, switch_at=switch)
    stationary, discounted = regrets[1.0], regrets[0.98]
    assert discounted[switch:].sum() < 0.25 * stationary[switch:].sum()
    assert discounted[switch : switch + 500].sum() < 0.5 * stationary[switch : switch + 500].sum()
    # Both learned the first regime; forgetting costs something there, but not much.
    assert discounted[:switch].sum() < 5.0 * stationary[:switch].sum()


# ----------------------------------------------------------------------------- MABWiser
@pytest.mark.parametrize(("alpha", "l2_lambda"), [(1.0, 1.0), (0.3, 2.0), (2.0, 0.5)])
@pytest.mark.parametrize("path", ["factored", "dense"])
def test_decisions_equal_mabwiser_linucb_with_one_hot_features(alpha: float, l2_lambda: float, path: str) -> None:
    """With ``x = onehot(arm) ⊗ c`` every decision equals MABWiser's ``LinUCB``.

    Why they must agree: with one-hot crossed features ``A`` is block diagonal, one
    ``lambda * I + sum c c^T`` block per arm, so our ``theta`` and width are exactly
    MABWiser's per-arm ridge regressions (``mabwiser/linear.py``: ``_RidgeRegression``
    keeps ``A = l2_lambda * I + X^T X`` per arm and re-inverts it with
    ``np.linalg.inv``; ``_LinUCB.predict`` returns ``x . beta + alpha * sqrt(x A^-1 x)``;
    ``scale=False`` is the default, so contexts are used unscaled; epsilon is 0 for
    LinUCB, so its ``rng`` never changes a decision).

    One difference: mabwiser 2.7.4's ``_RidgeRegression.init`` sets
    ``A_inv = A.copy()``, i.e. ``lambda * I`` instead of ``I / lambda``, until an arm's
    first fit; so an arm never played gets width ``sqrt(lambda) * ||c||`` there and
    ``||c|| / sqrt(lambda)`` here. The two agree only for ``lambda = 1``. For
    ``lambda != 1`` both bandits are therefore first given one observation of each arm
    (same context, reward), and decisions are compared from then on.

    How equality is ensured: MABWiser needs a ``fit`` before it predicts, so it is fitted
    on zero rows (which only initialises ``A = lambda * I``). At every step both pick; we
    assert the picks are equal and the UCB values agree to 1e-9, then update both with
    MABWiser's pick, so a single disagreement cannot hide later ones. Ties: MABWiser
    takes ``np.argmax`` over arms in list order, i.e. the lowest index, as we do. Exact
    ties occur between arms not yet played (identical models, bit-identical UCBs in
    MABWiser); in ours their UCBs may differ by rounding, which ``select``'s 1e-12
    relative tie tolerance absorbs. With ``lambda = 1`` the first step is such a tie
    (both pick arm 0).
    """
    mab_module = pytest.importorskip("mabwiser.mab")
    n_arms, dc, steps = 4, 5, 300
    rng = np.random.default_rng(21)
    true_weights = rng.normal(size=(n_arms, dc))
    mab = mab_module.MAB(
        arms=list(range(n_arms)),
        learning_policy=mab_module.LearningPolicy.LinUCB(alpha=alpha, l2_lambda=l2_lambda),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mab.fit(decisions=[], rewards=[], contexts=np.empty((0, dc)))
    ours = LinUCB(n_arms * dc, alpha=alpha, l2_lambda=l2_lambda)
    one_hot = np.eye(n_arms)
    if l2_lambda != 1.0:  # burn-in: one observation per arm (see the docstring)
        for arm in range(n_arms):
            context = np.r_[1.0, rng.normal(size=dc - 1)]
            reward = float(true_weights[arm] @ context + 0.1 * rng.normal())
            mab.partial_fit(decisions=[arm], rewards=[reward], contexts=context[None, :])
            ours.update(np.kron(one_hot[arm], context), reward)
    theirs_picks, our_picks = [], []
    for step in range(steps):
        context = np.r_[1.0, rng.normal(size=dc - 1)]
        features = ProductFeatures(context=context, actions=one_hot)
        candidates = features if path == "factored" else features.dense()
        theirs = int(mab.predict(context[None, :]))
        expectations = mab.predict_expectations(context[None, :])
        our_ucb = ours.ucb(candidates)
        np.testing.assert_allclose(
            our_ucb, [expectations[a] for a in range(n_arms)], rtol=1e-9, atol=1e-12, err_msg=f"step {step}"
        )
        theirs_picks.append(theirs)
        our_picks.append(ours.select(candidates))
        reward = float(true_weights[theirs] @ context + 0.1 * rng.normal())
        mab.partial_fit(decisions=[theirs], rewards=[reward], contexts=context[None, :])
        ours.update(features.row(theirs), reward)
    if l2_lambda == 1.0:
        assert our_picks[0] == theirs_picks[0] == 0  # the all-tied first step
    mismatches = [i for i, (a, b) in enumerate(zip(our_picks, theirs_picks, strict=True)) if a != b]
    assert mismatches == []
    assert set(theirs_picks) == set(range(n_arms))  # the comparison exercised every arm


# ----------------------------------------------------------------------------- persistence
def test_state_survives_npz_and_json_without_pickle() -> None:
    rng = np.random.default_rng(31)
    bandit = LinUCB(9, alpha=0.4, l2_lambda=1.3, gamma=0.97, ridge_scale=rng.uniform(1.0, 9.0, size=9))
    random_updates(bandit, 123, rng)
    state = bandit.state_dict()
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    metadata = json.dumps({k: v for k, v in state.items() if not isinstance(v, np.ndarray)})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # numpy stubs: **kwds clash with allow_pickle
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as loaded:
        restored = LinUCB.from_state({**dict(loaded), **json.loads(metadata)})
    assert state_equal(restored.state_dict(), state)
    # Everything in one npz: scalars come back as 0-d arrays.
    buffer = io.BytesIO()
    np.savez(buffer, **state)  # type: ignore[arg-type]
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as loaded:
        assert state_equal(LinUCB.from_state(loaded).state_dict(), state)
    assert state["format_version"] == STATE_FORMAT_VERSION


def _corruptions(state: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    """Each corrupt variant of ``state`` with (a regex for) the error it must raise."""

    def edited(**changes: Any) -> dict[str, Any]:
        return {**state, **changes}

    asymmetric = state["A"].copy()
    asymmetric[0, 1] += 1e-9
    yield {k: v for k, v in state.items() if k != "b"}, r"missing keys \['b'\]"
    yield edited(extra=1), r"unknown keys \['extra'\]"
    yield edited(format_version=99), "unsupported LinUCB state format_version"
    yield edited(gamma=1.5), "gamma must be in"
    yield edited(l2_lambda=0.0), "l2_lambda must be > 0"
    yield edited(alpha=-1.0), "alpha must be >= 0"
    yield edited(dim=5), "must have shape"
    yield edited(n_updates=-1), "n_updates.*non-negative integer"
    yield edited(n_updates=3.5), "n_updates.*non-negative integer"
    yield edited(since_refresh=10_000), "since_refresh.*must be < refresh_every"
    yield edited(b=np.zeros(7)), r"state\['b'\] must have shape"
    yield edited(theta=state["theta"].astype(np.float32)), "float64 ndarray"
    yield edited(A=state["A"].tolist()), "float64 ndarray"
    yield edited(theta=np.full_like(state["theta"], np.nan)), "must be finite"
    yield edited(A_inv=state["A_inv"] * 1.01), "is not the inverse"
    yield edited(A=asymmetric), "symmetric"
    yield edited(theta=state["theta"] + 0.1), "theta'\\] is not A_inv @ b"
    yield edited(alpha=np.ones(2)), "must be a scalar"
    yield edited(ridge_scale=np.zeros_like(state["ridge_scale"])), "ridge_scale must be finite and > 0"
    yield edited(ridge_scale=np.ones(3)), r"state\['ridge_scale'\] must have shape"
    yield edited(format_version=1), "unsupported LinUCB state format_version 1, expected 2"


def test_corrupt_state_is_rejected_with_value_error() -> None:
    bandit = LinUCB(6, gamma=0.99)
    random_updates(bandit, 40, np.random.default_rng(32))
    state = bandit.state_dict()
    for corrupt, message in _corruptions(state):
        with pytest.raises(ValueError, match=message):
            LinUCB.from_state(corrupt)
    assert state_equal(LinUCB.from_state(state).state_dict(), state)


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dim": 0}, "dim must be a positive integer"),
        ({"dim": -3}, "dim must be a positive integer"),
        ({"dim": 2.5}, "dim must be a positive integer"),
        ({"dim": True}, "dim must be a positive integer"),
        ({"dim": 4, "alpha": -0.1}, "alpha must be >= 0"),
        ({"dim": 4, "alpha": math.nan}, "alpha must be finite"),
        ({"dim": 4, "alpha": "1"}, "alpha must be a real number"),
        ({"dim": 4, "l2_lambda": 0.0}, "l2_lambda must be > 0"),
        ({"dim": 4, "l2_lambda": -1.0}, "l2_lambda must be > 0"),
        ({"dim": 4, "gamma": 0.0}, r"gamma must be in \(0, 1\]"),
        ({"dim": 4, "gamma": 1.0001}, r"gamma must be in \(0, 1\]"),
        ({"dim": 4, "gamma": -0.5}, r"gamma must be in \(0, 1\]"),
        ({"dim": 4, "gamma": math.inf}, "gamma must be finite"),
    ],
)
def test_bad_hyperparameters_raise(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LinUCB(**kwargs)


def test_bad_candidates_raise_and_leave_state_unchanged() -> None:
    rng = np.random.default_rng(41)
    bandit = LinUCB(6)
    random_updates(bandit, 10, rng)
    before = bandit.state_dict()
    shape = r"X must have shape \(n_configs >= 1, 6\)"
    bad_inputs: list[tuple[Any, str]] = [
        (rng.normal(size=(3, 5)), shape),
        (rng.normal(size=6), shape),
        (np.empty((0, 6)), shape),
        (rng.normal(size=(2, 3, 2)), shape),
        (np.array([[1.0, 2.0, math.nan, 0.0, 0.0, 0.0]]), "X must be finite"),
        (
            ProductFeatures(context=rng.normal(size=4), actions=rng.normal(size=(3, 2))),
            "do not match bandit dim 6",
        ),
    ]
    for candidates, message in bad_inputs:
        for method in (bandit.select, bandit.scores, bandit.ucb):
            with pytest.raises(ValueError, match=message):
                method(candidates)
    assert state_equal(bandit.state_dict(), before)


def test_state_views_are_read_only() -> None:
    bandit = LinUCB(3)
    for array in (bandit.A, bandit.A_inv, bandit.b, bandit.theta):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 1.0


def test_module_docstring_example_runs() -> None:
    failures, attempted = doctest.testmod(bandit_module, verbose=False)
    assert attempted > 0
    assert failures == 0
