"""Solution paths and how their answers pool: the trace of each path, the vote, the answer's score."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from uniscale_integrations.answers import canonical_answer
from uniscale_integrations.tools import Reply

Aggregation = Literal["weighted_vote", "majority", "best_score"]


PathStatus = Literal["running", "finished", "length", "loop", "step_limit", "pruned", "outranked", "budget"]


CUT: tuple[PathStatus, ...] = ("length", "loop")
"""How a path ends when it is stopped before it ends by itself (it casts no vote unless it stated an answer)."""


@dataclass
class PathTrace:
    """One solution path: its steps' scores, and how it ended."""

    id: int
    variant: int
    tree: int
    parent: int | None
    text: str = ""
    answer: str | None = None
    group: str | None = None
    """The group of meaning it was pooled into, when replies pool by meaning (:class:`MeaningPool`)."""
    step_scores: list[float] = field(default_factory=list)
    final_score: float | None = None
    status: PathStatus = "running"
    reason: str | None = None
    completion_tokens: int = 0
    reply: Reply | None = None
    """Its reply read for tool calls or JSON, when the call asked for them (``reply.problem``: refused)."""
    _logprob_mark: tuple[float, int] = (0.0, 0)

    @property
    def steps(self) -> int:
        return len(self.step_scores)

    @property
    def mean_score(self) -> float:
        return sum(self.step_scores) / len(self.step_scores) if self.step_scores else 0.0

    @property
    def finished(self) -> bool:
        return self.final_score is not None

    @property
    def refused(self) -> bool:
        """Whether its reply failed what the call asked for (it casts no vote)."""
        return self.reply is not None and self.reply.problem is not None

    @property
    def key(self) -> str | None:
        """What the path votes for: its tool calls or JSON value, else its group of meaning, else its answer's
        canonical form; nothing when its reply was refused."""
        if self.reply is not None and (self.refused or self.reply.key is not None):
            return self.reply.key
        if self.group is not None:
            return self.group
        return canonical_answer(self.answer) if self.answer is not None else None


def aggregate(paths: Sequence[PathTrace], method: Aggregation = "weighted_vote") -> PathTrace | None:
    """The finished path whose answer wins; ``None`` when no path finished.

    The returned path is the best-scored one among those giving the winning answer. Paths whose reply was
    refused (a malformed tool call, a schema violation) only win when every finished path was refused.
    """
    finished = [p for p in paths if p.finished]
    done = [p for p in finished if not p.refused] or finished
    if not done:
        return None
    if method == "best_score":
        return max(done, key=lambda p: p.final_score or 0.0)
    weight: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for path in done:
        if path.key is not None:
            weight[path.key] += path.final_score or 0.0
            count[path.key] += 1
    if not weight:
        return max(done, key=lambda p: p.final_score or 0.0)
    if method == "weighted_vote":
        winner = max(weight, key=lambda a: (weight[a], count[a]))
    elif method == "majority":
        winner = max(count, key=lambda a: (count[a], weight[a]))
    else:
        raise ValueError(f"unknown aggregation {method!r}")
    return max((p for p in done if p.key == winner), key=lambda p: p.final_score or 0.0)


def answer_score(paths: Sequence[PathTrace], winner: PathTrace) -> float:
    """The mean final score of the finished paths voting as the winner does.

    A winner that votes for nothing (free text without a stated answer) is backed by itself alone.
    """
    if winner.key is None:
        return winner.final_score or 0.0
    backers = [p for p in paths if p.finished and p.key == winner.key]
    return sum(p.final_score or 0.0 for p in backers) / len(backers)
