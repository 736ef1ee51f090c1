"""Early stopping: the path bound (method.md section 3), and the rules that stop once the vote is decided or settled."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from uniscale_integrations.executor.paths import Aggregation, PathTrace

CHECK_TOKENS = 8
"""Decoding steps between two checks: of a budget's caps, and of the vote when paths do not pause
at step ends (``EarlyStopping(pause_at_steps=False)``)."""


@dataclass(frozen=True)
class EarlyStopping:
    """Path-aware early stopping: prune a path that can no longer beat the best finished one.

    ``v_sup`` is the largest score a step can get; ``None`` uses the largest step score
    seen so far in this search (an empirical, less conservative bound). ``bound_paths`` is
    the paper's rule, path by path; ``decided_vote`` stops every path once the aggregation's
    winner can no longer change (alone, it never changes the answer).

    With ``pause_at_steps=False`` a BS = 1 search never waits at step ends: its paths decode
    without pauses (a batch of rows paused at a step end idles while the others catch up), the
    vote is checked every :data:`CHECK_TOKENS` tokens, and a path is scored once, when it ends.
    Only ``decided_vote`` applies then (the path bound needs step scores), so the answer is the
    one early stopping off gives. Beam search (BS > 1) always pauses: its beams are chosen there.
    """

    enabled: bool = True
    h_max: int = 8
    v_sup: float | None = 1.0
    bound_paths: bool = True
    decided_vote: bool = True
    pause_at_steps: bool = True
    settle: float | None = None
    """With ``decided_vote``, also stop once the leading answer would hold with at least this
    probability had every open path voted too (:func:`leader_holds`); ``None``: only once it is
    certain. Chosen on table v2's tuning split (see docs/bench.md)."""

    def __post_init__(self) -> None:
        if self.h_max < 1:
            raise ValueError(f"h_max must be >= 1, got {self.h_max}")
        if self.v_sup is not None and not 0.0 <= self.v_sup <= 1.0:
            raise ValueError(f"v_sup must lie in [0, 1], got {self.v_sup}")
        if self.settle is not None and not 0.5 < self.settle < 1.0:
            raise ValueError(f"settle must lie in (0.5, 1), got {self.settle}")

    def bound(self, step: int, mean_score: float, v_sup: float) -> float:
        """The best mean score a path at ``step`` with ``mean_score`` could still reach."""
        remaining = max(0, self.h_max - step)
        return (step * mean_score + remaining * v_sup) / self.h_max


def vote_decided(
    paths: Sequence[PathTrace], open_beams: int, v_sup: float, method: Aggregation = "weighted_vote"
) -> str | None:
    """Why :func:`aggregate`'s answer can no longer change, or ``None`` while it still can.

    ``open_beams`` paths may still finish, each with a final score of at most ``v_sup``: the
    winner is decided when even all of them backing the runner-up (or a new answer) could not
    overtake the leader.
    """
    done = [p for p in paths if p.finished]
    if not done:
        return None
    if method == "best_score":
        best = max(p.final_score or 0.0 for p in done)
        return f"best finished score {best:.3f} >= v_sup {v_sup:.3f}" if best >= v_sup else None
    tally: dict[str, float] = defaultdict(float)
    for path in done:
        if path.key is not None:
            tally[path.key] += (path.final_score or 0.0) if method == "weighted_vote" else 1.0
    if not tally:
        return None
    leader, *others = sorted(tally.values(), reverse=True)
    runner_up = others[0] if others else 0.0
    reach = open_beams * (v_sup if method == "weighted_vote" else 1.0)
    if leader > runner_up + reach:
        return f"vote decided: leader {leader:.3f} > runner-up {runner_up:.3f} + {open_beams} open beams ({reach:.3f})"
    return None


def leader_holds(leader: int, others: int, open_paths: int) -> float:
    """The probability that the leading answer, backed by ``leader`` of the finished paths against
    ``others`` behind other answers, still has more votes than all of those together once
    ``open_paths`` more paths have voted.

    Each open path backs the leader with an unknown probability whose posterior, after the
    finished votes and a uniform prior, is Beta(leader + 1, others + 1); the open votes are
    then Beta-binomial. This is the Beta stopping rule of Adaptive-Consistency (Aggarwal et al.,
    EMNLP 2023) with the number of open paths known, as it is in one batched search. Written by
    hand: a dozen lines of log-gamma arithmetic, where SciPy would be a dependency for one pmf.

    >>> round(leader_holds(4, 0, 4), 3), round(leader_holds(2, 1, 5), 3), leader_holds(3, 0, 0)
    (0.992, 0.643, 1.0)
    """
    a, b, n = leader + 1, others + 1, open_paths
    log_beta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    holds = 0.0
    for x in range(n + 1):
        if leader + x > others + n - x:
            log_pmf = (
                math.lgamma(n + 1)
                - math.lgamma(x + 1)
                - math.lgamma(n - x + 1)
                + math.lgamma(x + a)
                + math.lgamma(n - x + b)
                - math.lgamma(n + a + b)
                - log_beta
            )
            holds += math.exp(log_pmf)
    return min(1.0, holds)


def vote_settled(paths: Sequence[PathTrace], open_paths: int, settle: float) -> str | None:
    """Why the leading answer is taken as settled (:func:`leader_holds` >= ``settle``), or ``None``."""
    counts = sorted(Counter(p.key for p in paths if p.finished and p.key is not None).values(), reverse=True)
    if not counts:
        return None
    chance = leader_holds(counts[0], sum(counts[1:]), open_paths)
    if chance >= settle:
        return f"vote settled: the leader holds with probability {chance:.3f} over {open_paths} open paths"
    return None
