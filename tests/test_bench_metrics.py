"""Benchmark metrics on hand-made points and reward sequences whose answers are worked out by hand."""

import math

import numpy as np
import pytest

from uniscale_integrations.bench.metrics import (
    aiq,
    apgr,
    cumulative_regret,
    gap_captured,
    hull_value,
    mean_spread,
    nondecreasing_hull,
    saving_at_iso_quality,
    share_above,
)


# ---------------------------------------------------------------------- the hull
def test_hull_keeps_the_upper_concave_pareto_front() -> None:
    points = [(1, 0.2), (2, 0.1), (2, 0.3), (3, 0.5), (3.5, 0.45), (4, 0.55), (5, 0.5), (6, 0.55)]
    # (2, 0.1), (3.5, 0.45), (5, 0.5), (6, 0.55) are dominated; (2, 0.3) lies under the chord (1,.2)-(3,.5).
    assert nondecreasing_hull(points).tolist() == [[1.0, 0.2], [3.0, 0.5], [4.0, 0.55]]


def test_hull_of_collinear_points_keeps_the_ends() -> None:
    assert nondecreasing_hull([(0, 0.0), (1, 0.5), (2, 1.0)]).tolist() == [[0.0, 0.0], [2.0, 1.0]]


def test_hull_of_a_cheap_best_point_is_that_point() -> None:
    assert nondecreasing_hull([(1, 0.9), (2, 0.5), (3, 0.8)]).tolist() == [[1.0, 0.9]]


def test_hull_value_is_zero_below_interpolated_inside_flat_after() -> None:
    hull = nondecreasing_hull([(1, 0.2), (3, 0.6)])
    assert hull_value(hull, 0.5) == 0.0
    assert hull_value(hull, 2.0) == pytest.approx(0.4)
    assert hull_value(hull, 10.0) == pytest.approx(0.6)


def test_hull_rejects_bad_points() -> None:
    with pytest.raises(ValueError, match="at least one"):
        nondecreasing_hull([])
    with pytest.raises(ValueError, match="finite"):
        nondecreasing_hull([(1.0, math.nan)])
    with pytest.raises(ValueError, match="costs"):
        nondecreasing_hull([(-1.0, 0.5)])


# ---------------------------------------------------------------------- AIQ
def test_aiq_of_a_hand_made_frontier() -> None:
    # Hull (1, .2) -> (3, .6), flat .6 afterwards, 0 before 1. Over [0, 5]:
    # 0 on [0, 1]; trapezoid (.2 + .6) / 2 * 2 = .8 on [1, 3]; .6 * 2 = 1.2 on [3, 5]; total 2.0 / 5 = 0.4.
    assert aiq([(1, 0.2), (3, 0.6), (2, 0.1)], 0, 5) == pytest.approx(0.4)


def test_aiq_of_one_point_over_a_range_it_covers_is_its_quality() -> None:
    assert aiq([(1, 0.7)], 1, 4) == pytest.approx(0.7)
    assert aiq([(5, 0.7)], 1, 4) == 0.0  # the router cannot serve any budget of the range


def test_aiq_prefers_the_frontier_that_is_higher_everywhere() -> None:
    low = [(1, 0.2), (2, 0.4), (4, 0.5)]
    high = [(1, 0.3), (2, 0.5), (4, 0.6)]
    assert aiq(high, 1, 4) - aiq(low, 1, 4) == pytest.approx(0.1)


def test_aiq_needs_a_range() -> None:
    with pytest.raises(ValueError, match="c_lo < c_hi"):
        aiq([(1, 0.5)], 2, 2)


# ---------------------------------------------------------------------- APGR
def test_apgr_of_random_mixing_is_one_half() -> None:
    # The hull always includes the weak and strong points: mixing them is the straight line.
    assert apgr([], weak=(1, 0.2), strong=(3, 0.6)) == pytest.approx(0.5)
    assert apgr([(2, 0.3)], weak=(1, 0.2), strong=(3, 0.6)) == pytest.approx(0.5)  # under the line: no help


def test_apgr_of_a_concave_router() -> None:
    # Weak (0, 0), strong (2, 1), router point (1, 0.75): hull area 0.375 + 0.875 = 1.25 over a width of 2.
    assert apgr([(1, 0.75)], weak=(0, 0.0), strong=(2, 1.0)) == pytest.approx(0.625)


def test_apgr_is_one_when_the_strong_quality_comes_at_the_weak_cost() -> None:
    assert apgr([(1, 0.6)], weak=(1, 0.2), strong=(3, 0.6)) == pytest.approx(1.0)


def test_apgr_needs_a_real_gap() -> None:
    with pytest.raises(ValueError, match="cost more"):
        apgr([], weak=(3, 0.2), strong=(1, 0.6))
    with pytest.raises(ValueError, match="better"):
        apgr([], weak=(1, 0.6), strong=(3, 0.6))


# ---------------------------------------------------------------------- saving at iso-accuracy
def test_saving_takes_the_cheapest_point_within_one_point() -> None:
    points = [(10.0, 0.500), (4.0, 0.490), (3.0, 0.489), (2.0, 0.40)]
    saving, index = saving_at_iso_quality(points, reference=(10.0, 0.50), tolerance=0.01)  # type: ignore[misc]
    assert index == 1  # 0.490 is exactly one point below: allowed; 0.489 is not
    assert saving == pytest.approx(0.6)


def test_saving_is_none_when_no_point_is_accurate_enough() -> None:
    assert saving_at_iso_quality([(1.0, 0.3), (2.0, 0.45)], reference=(10.0, 0.5)) is None


def test_saving_is_negative_when_only_a_dearer_point_qualifies() -> None:
    saving, _ = saving_at_iso_quality([(12.0, 0.6)], reference=(10.0, 0.5))  # type: ignore[misc]
    assert saving == pytest.approx(-0.2)


# ---------------------------------------------------------------------- regret and friends
def test_cumulative_regret_against_a_reference() -> None:
    assert cumulative_regret([1.0, 0.5, 0.5, 1.0], [0.5, 0.5, 1.0, 1.0]).tolist() == [0.5, 0.5, 0.0, 0.0]


def test_regret_against_the_oracle_never_decreases() -> None:
    rng = np.random.default_rng(0)
    rewards = rng.random((50, 4))
    chosen = rewards[np.arange(50), rng.integers(4, size=50)]
    curve = cumulative_regret(rewards.max(axis=1), chosen)
    assert (np.diff(curve) >= 0).all()
    assert curve[-1] == pytest.approx(float(rewards.max(axis=1).sum() - chosen.sum()))


def test_regret_needs_aligned_sequences() -> None:
    with pytest.raises(ValueError, match="one length"):
        cumulative_regret([1.0, 2.0], [1.0])


def test_gap_captured() -> None:
    assert gap_captured(0.45, low=0.40, high=0.50) == pytest.approx(0.5)
    assert gap_captured(0.55, low=0.40, high=0.50) == pytest.approx(1.5)
    assert math.isnan(gap_captured(0.4, low=0.4, high=0.4))


def test_share_above_the_hull() -> None:
    reference = [(1, 0.2), (3, 0.6)]  # hull value at cost 2 is 0.4; no reference point serves a budget below 1
    assert share_above([(2, 0.5), (2, 0.4), (2, 0.3), (0.5, 0.1)], reference) == pytest.approx(0.5)
    assert share_above([(2, 0.3), (4, 0.6)], reference) == 0.0


def test_mean_spread_ignores_nan() -> None:
    mean, spread = mean_spread([1.0, 3.0, math.nan])
    assert (mean, spread) == pytest.approx((2.0, math.sqrt(2.0)))
    assert mean_spread([5.0]) == (5.0, 0.0)
    assert all(math.isnan(v) for v in mean_spread([]))
