"""Benchmark metrics: regret, the quality-cost frontier, AIQ, APGR and savings at iso-accuracy.

A *point* is ``(cost, quality)``: mean eFLOPs per query and accuracy, for one policy run
(or one fixed configuration). Definitions (see docs/bench.md for the discussion):

- **Non-decreasing convex hull** (RouterBench, Hu et al. 2024): the best quality reachable at
  a cost budget ``c`` by randomly mixing measured points whose cost is at most ``c``; the upper
  concave envelope of the Pareto-optimal points, flat after the best one.
- **AIQ** (RouterBench): the hull's mean height over a cost range ``[c_lo, c_hi]``,
  ``1 / (c_hi - c_lo) * integral hull(c) dc``. Below a router's cheapest point the hull is 0
  (the router cannot serve that budget).
- **APGR** (RouteLLM, Ong et al. 2024): with a *weak* point ``(c_w, q_w)`` and a *strong* point
  ``(c_s, q_s)``, the performance gap recovered at cost ``c`` is ``(hull(c) - q_w) / (q_s - q_w)``;
  APGR is its mean over ``[c_w, c_s]``. As in RouteLLM, whose routers reach both models at
  their extreme thresholds, the hull includes the weak and the strong points, so mixing the
  two at random scores 0.5.
- **Saving at iso-accuracy**: the cheapest *measured* point whose quality is at most
  ``tolerance`` below a reference point's, as a share of eFLOPs saved against the reference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from uniscale_integrations.features.joint import FloatArray

Point = tuple[float, float]
"""``(cost, quality)``."""


def _points(points: Sequence[Point] | FloatArray) -> FloatArray:
    array = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if array.shape[0] == 0:
        raise ValueError("at least one (cost, quality) point is needed")
    if not np.isfinite(array).all():
        raise ValueError("points must be finite")
    if (array[:, 0] < 0).any():
        raise ValueError("costs must be >= 0")
    return array


def nondecreasing_hull(points: Sequence[Point] | FloatArray) -> FloatArray:
    """Vertices ``(k, 2)`` of the non-decreasing convex hull, by increasing cost.

    >>> nondecreasing_hull([(1, 0.2), (2, 0.1), (3, 0.5), (4, 0.55), (5, 0.5)]).tolist()
    [[1.0, 0.2], [3.0, 0.5], [4.0, 0.55]]
    """
    array = _points(points)
    order = np.lexsort((-array[:, 1], array[:, 0]))  # by cost, then best quality first
    pareto: list[tuple[float, float]] = []
    for cost, quality in array[order]:
        if not pareto or quality > pareto[-1][1]:
            if pareto and cost == pareto[-1][0]:
                continue
            pareto.append((float(cost), float(quality)))
    hull: list[tuple[float, float]] = []
    for point in pareto:
        while len(hull) >= 2 and _cross(hull[-2], hull[-1], point) >= 0.0:
            hull.pop()
        hull.append(point)
    return np.asarray(hull, dtype=np.float64)


def _cross(o: Point, a: Point, b: Point) -> float:
    """> 0 when ``a`` lies below the segment from ``o`` to ``b`` (so it is not a hull vertex)."""
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def hull_value(hull: FloatArray, cost: float, below: float = 0.0) -> float:
    """The hull's quality at ``cost``: ``below`` under its cheapest vertex, flat after its last."""
    if cost < hull[0, 0]:
        return below
    return float(np.interp(cost, hull[:, 0], hull[:, 1]))


def _integral(hull: FloatArray, lo: float, hi: float, below: float = 0.0) -> float:
    """Exact integral of the piecewise-linear hull over ``[lo, hi]``."""
    if hi <= lo:
        return 0.0
    start = float(hull[0, 0])
    total = below * max(0.0, min(hi, start) - lo)
    a = max(lo, start)
    if a >= hi:
        return total
    knots = np.concatenate(([a], hull[(hull[:, 0] > a) & (hull[:, 0] < hi), 0], [hi]))
    values = np.interp(knots, hull[:, 0], hull[:, 1])
    return total + float(np.sum((values[1:] + values[:-1]) * np.diff(knots)) / 2.0)


def aiq(points: Sequence[Point] | FloatArray, c_lo: float, c_hi: float) -> float:
    """Average improvement in quality: the hull's mean height over ``[c_lo, c_hi]``.

    >>> round(aiq([(1, 0.2), (3, 0.6)], 0, 4), 6)   # 0 on [0,1], 0.2->0.6 on [1,3], 0.6 on [3,4]
    0.35
    """
    if not (math.isfinite(c_lo) and math.isfinite(c_hi)) or c_hi <= c_lo:
        raise ValueError(f"need c_lo < c_hi, got [{c_lo}, {c_hi}]")
    return _integral(nondecreasing_hull(points), c_lo, c_hi) / (c_hi - c_lo)


def apgr(points: Sequence[Point] | FloatArray, weak: Point, strong: Point) -> float:
    """Average performance gap recovered between a weak and a strong point (see the module doc).

    >>> round(apgr([], weak=(1, 0.2), strong=(3, 0.6)), 9)   # random mixing of the two
    0.5
    >>> round(apgr([(1, 0.6)], weak=(1, 0.2), strong=(3, 0.6)), 9)   # the strong quality at the weak cost
    1.0
    """
    (c_w, q_w), (c_s, q_s) = weak, strong
    if not c_s > c_w:
        raise ValueError(f"the strong point must cost more than the weak one, got {c_s} <= {c_w}")
    if not q_s > q_w:
        raise ValueError(f"the strong point must be better than the weak one, got {q_s} <= {q_w}")
    own = _points(points) if len(points) else np.zeros((0, 2))
    hull = nondecreasing_hull(np.vstack([own, [weak, strong]]))
    mean_quality = _integral(hull, c_w, c_s) / (c_s - c_w)
    return float((mean_quality - q_w) / (q_s - q_w))


def saving_at_iso_quality(
    points: Sequence[Point] | FloatArray, reference: Point, tolerance: float = 0.01
) -> tuple[float, int] | None:
    """``(share of cost saved, index of the point)`` for the cheapest point within ``tolerance``.

    Among the measured ``points`` whose quality is at least ``reference quality - tolerance``,
    the cheapest; ``None`` when no point qualifies. The share is ``1 - cost / reference cost``
    (negative when the qualifying point costs more than the reference).

    >>> saving_at_iso_quality([(10, 0.50), (3, 0.495), (2, 0.40)], reference=(10, 0.50))
    (0.7, 1)
    """
    array = _points(points)
    c_ref, q_ref = reference
    if not c_ref > 0:
        raise ValueError(f"the reference cost must be > 0, got {c_ref}")
    eligible = np.flatnonzero(array[:, 1] >= q_ref - tolerance - 1e-12)
    if eligible.size == 0:
        return None
    best = int(eligible[np.argmin(array[eligible, 0])])
    return 1.0 - float(array[best, 0]) / c_ref, best


def share_above(points: Sequence[Point] | FloatArray, reference: Sequence[Point] | FloatArray) -> float:
    """Share of ``points`` lying strictly above the non-decreasing hull of ``reference``.

    >>> share_above([(2, 0.5), (2, 0.3)], [(1, 0.2), (3, 0.6)])
    0.5
    """
    array = _points(points)
    hull = nondecreasing_hull(reference)
    above = [q > hull_value(hull, c) + 1e-12 for c, q in array]
    return float(np.mean(above))


def cumulative_regret(reference: Sequence[float] | FloatArray, achieved: Sequence[float] | FloatArray) -> FloatArray:
    """``sum_{s<=t} (reference_s - achieved_s)`` for every ``t``.

    >>> cumulative_regret([1.0, 1.0, 0.5], [0.5, 1.0, 1.0]).tolist()
    [0.5, 0.5, 0.0]
    """
    ref = np.asarray(reference, dtype=np.float64)
    got = np.asarray(achieved, dtype=np.float64)
    if ref.shape != got.shape or ref.ndim != 1:
        raise ValueError(f"reference and achieved must be 1-D of one length, got {ref.shape} and {got.shape}")
    return np.cumsum(ref - got)


def gap_captured(value: float, low: float, high: float) -> float:
    """Share of the gap from ``low`` to ``high`` that ``value`` closes (NaN when there is no gap).

    >>> gap_captured(0.45, low=0.40, high=0.50)
    0.5
    """
    gap = high - low
    if abs(gap) < 1e-12:
        return math.nan
    return round((value - low) / gap, 12)


def mean_spread(values: Sequence[float] | FloatArray) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value); NaNs are ignored."""
    array = np.asarray(values, dtype=np.float64)
    array = array[np.isfinite(array)]
    if array.size == 0:
        return math.nan, math.nan
    spread = float(np.std(array, ddof=1)) if array.size > 1 else 0.0
    return float(np.mean(array)), spread
