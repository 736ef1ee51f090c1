"""A finished search in short: its paths, how they ended, the vote, the tokens, and why it stopped.

Everything here is read off what the search recorded (:class:`~uniscale_integrations.executor.paths.PathTrace`
and the generation's :class:`~uniscale_integrations.reward.cost.Usage`); nothing is estimated.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from uniscale_integrations.executor.paths import PathTrace
from uniscale_integrations.reward.budget import Cap
from uniscale_integrations.reward.cost import Usage

SHOWN_PATHS = 8
"""Paths :meth:`SearchTrace.__str__` lists one per line."""


@dataclass(frozen=True)
class PathSummary:
    """One path in a line: where it came from, its steps and scores, how it ended, what it voted for."""

    id: int
    variant: int
    tree: int
    parent: int | None
    steps: int
    mean_score: float
    final_score: float | None
    status: str
    vote: str | None
    tokens: int

    @classmethod
    def of(cls, path: PathTrace) -> PathSummary:
        return cls(
            path.id,
            path.variant,
            path.tree,
            path.parent,
            path.steps,
            path.mean_score,
            path.final_score,
            path.status,
            path.key if path.finished else None,
            path.completion_tokens,
        )

    def __str__(self) -> str:
        origin = f"from #{self.parent}" if self.parent is not None else "root"
        final = f"{self.final_score:.2f}" if self.final_score is not None else "-"
        vote = f" votes {self.vote!r}" if self.vote is not None else ""
        return (
            f"#{self.id:<3} variant {self.variant} tree {self.tree} {origin:<8} {self.steps} steps, "
            f"mean {self.mean_score:.2f}, final {final}, {self.tokens} tokens, {self.status}{vote}"
        )


@dataclass(frozen=True)
class Vote:
    """An answer the finished paths voted for: how many backed it and their summed final score."""

    answer: str
    paths: int
    weight: float


@dataclass(frozen=True)
class SearchTrace:
    """A finished search in short (see the module docstring)."""

    paths: tuple[PathSummary, ...]
    statuses: dict[str, int]
    """How many paths ended each way: finished, pruned, outranked, length, loop, budget, ..."""
    votes: tuple[Vote, ...]
    """Answers by the finished paths backing them, the most backed first."""
    winner: str | None
    """What the answer's paths voted for (``None``: free text without a stated answer)."""
    agreement: float | None
    """The share of the voting paths that back the winner (``None`` when no path voted)."""
    prompt_tokens: int
    completion_tokens: int
    """Tokens the generation read and wrote (the verifier's not counted)."""
    stop_reason: str

    @classmethod
    def of(
        cls, paths: Sequence[PathTrace], winner: PathTrace, generation: Usage, budget_exhausted: Cap | None
    ) -> SearchTrace:
        """The trace of a search that ended with ``paths``, ``winner`` giving the answer."""
        count: Counter[str] = Counter()
        weight: dict[str, float] = defaultdict(float)
        for path in paths:
            if path.finished and path.key is not None:
                count[path.key] += 1
                weight[path.key] += path.final_score or 0.0
        votes = tuple(Vote(k, count[k], weight[k]) for k in sorted(count, key=lambda k: (-count[k], -weight[k])))
        voters = sum(count.values())
        return cls(
            paths=tuple(PathSummary.of(p) for p in paths),
            statuses=dict(Counter(p.status for p in paths).most_common()),
            votes=votes,
            winner=winner.key,
            agreement=count[winner.key] / voters if winner.key is not None and voters else None,
            prompt_tokens=generation.prompt_tokens,
            completion_tokens=generation.completion_tokens,
            stop_reason=stop_reason(paths, budget_exhausted),
        )

    @property
    def steps(self) -> int:
        """The most steps any path took."""
        return max((p.steps for p in self.paths), default=0)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-able)."""
        data = asdict(self)
        data["steps"] = self.steps
        return data

    def __str__(self) -> str:
        ended = ", ".join(f"{n} {status}" for status, n in self.statuses.items())
        votes = ", ".join(f"{v.answer!r} x{v.paths}" for v in self.votes[:4]) or "none"
        agreement = f"{self.agreement:.0%} of the voting paths" if self.agreement is not None else "no vote"
        lines = [
            f"search:  {len(self.paths)} paths ({ended}), up to {self.steps} steps; "
            f"{self.prompt_tokens} prompt + {self.completion_tokens} completion tokens",
            f"votes:   {votes}; the answer has {agreement}",
            f"stopped: {self.stop_reason}",
        ]
        lines += [f"  {p}" for p in self.paths[:SHOWN_PATHS]]
        if len(self.paths) > SHOWN_PATHS:
            lines.append(f"  ({len(self.paths) - SHOWN_PATHS} more paths)")
        return "\n".join(lines)


def stop_reason(paths: Sequence[PathTrace], budget_exhausted: Cap | None) -> str:
    """Why the search ended: a budget cap, a decided vote, or every path's own end (with how many the
    path bound pruned)."""
    if budget_exhausted is not None:
        return f"the {budget_exhausted} budget was spent; the answer is the best found so far"
    pruned = [p.reason or "" for p in paths if p.status == "pruned"]
    vote = next((r for r in pruned if r.startswith("vote")), None)
    bound = sum(r.startswith("bound") for r in pruned)
    by_bound = f"{bound} pruned by the path bound" if bound else ""
    if vote is not None:
        return f"{vote}; {by_bound}" if by_bound else vote
    return f"every path ended; {by_bound}" if by_bound else "every path ended"
