"""Outcomes of BS = 1 configurations derived from collected samples (:mod:`~uniscale_integrations.bench.samples`).

A (question, model) record holds, per question variant, the greedy path and 8 seeded samples.
A configuration ``(model, qp, cp)`` is the set of rows it would decode:

- ``cp = 1``: the greedy path of each of the first ``qp`` variants;
- ``cp = k > 1``: samples ``0 .. k-1`` of each of those variants, or with ``greedy_first`` the
  greedy path and samples ``0 .. k-2`` (a live run with the same seed samples exactly these rows).

Its cost is the decode session's own accounting for those rows alone (:func:`derived_usage`),
and its answer is the vote over their final answers (:func:`vote`). A path cut at the token cap
without a final-answer line casts no vote: its answer would be read from unfinished reasoning.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from uniscale_integrations.answers import canonical_answer, voted_answer
from uniscale_integrations.bench.data import Question
from uniscale_integrations.executor.paths import CUT
from uniscale_integrations.reward.cost import Usage

Record = Mapping[str, Any]
Path = Mapping[str, Any]


def derived_usage(prompt_tokens: Sequence[int], rows: Sequence[tuple[int, int]]) -> Usage:
    """The usage of a session of ``rows`` ``(variant, generated tokens)`` decoded without pauses.

    The fast runner prefills each distinct prompt unpadded in a pass of its own; then each decode
    step feeds every row that has not finished, reading the cache width so far (the longest prompt
    plus the steps taken) for each. A row's last token is sampled but never fed.
    """
    variants = sorted({v for v, _ in rows})
    width = max(prompt_tokens[v] for v in variants)
    lengths = [n for _, n in rows]
    usage = Usage(
        prompt_tokens=sum(prompt_tokens[v] for v, _ in rows),
        completion_tokens=sum(lengths),
        tokens_processed=sum(prompt_tokens[v] for v in variants),
        forward_passes=len(variants),
    )
    for step in range(1, max(lengths)):
        fed = sum(n > step for n in lengths)
        usage += Usage(tokens_processed=fed, forward_passes=1, kv_reads=fed * (width + step))
    return usage


def rescored(records: Sequence[Record], questions: Mapping[str, Question]) -> list[dict[str, Any]]:
    """The records with every path's ``correct`` scored again by today's checker (the texts are kept,
    so a better answer parser never needs the samples generated again)."""
    out = []
    for record in records:
        question = questions[record["question"]]
        paths = [{**p, "correct": question.score(p["text"])} for p in record["paths"]]
        out.append({**record, "paths": paths})
    return out


def rows_of(record: Record, qp: int, cp: int, *, greedy_first: bool = False) -> list[Path]:
    """The paths a ``qp`` x ``cp`` configuration decodes (see the module docstring)."""
    first = -1 if greedy_first or cp == 1 else 0
    wanted = {-1} if cp == 1 else set(range(first, first + cp))
    return [p for p in record["paths"] if p["variant"] < qp and p["sample"] in wanted]


def path_answer(path: Path) -> str | None:
    """The canonical answer a path casts in a vote (:func:`~uniscale_integrations.answers.voted_answer`)."""
    answer = voted_answer(path["text"], cut=path["finish"] in CUT)
    return canonical_answer(answer) if answer else None


def confidence(path: Path) -> float:
    """The path's own confidence: the geometric-mean probability of its tokens."""
    return math.exp(path["logprob"] / path["tokens"]) if path["tokens"] else 0.0


@dataclass(frozen=True)
class Vote:
    """The pooled answer of a configuration's paths."""

    answer: str | None
    correct: bool
    score: float
    """The mean confidence of the paths behind the answer."""


def tally(
    paths: Sequence[Path], method: str = "weighted", weight: Callable[[Path], float] = confidence
) -> dict[str, float]:
    """Each stated answer's votes among ``paths``: ``weight`` (default: the path's own confidence)
    with ``"weighted"``, counts with ``"majority"``."""
    votes: dict[str, float] = defaultdict(float)
    for path in paths:
        answer = path_answer(path)
        if answer is not None:
            votes[answer] += weight(path) if method == "weighted" else 1.0
    return dict(votes)


def vote(paths: Sequence[Path], method: str = "weighted", weight: Callable[[Path], float] = confidence) -> Vote:
    """Pool the paths' answers by a ``weight``-weighted (``"weighted"``) or plain (``"majority"``) vote;
    the score is the mean ``weight`` of the winner's backers."""
    votes = tally(paths, method, weight)
    backers: dict[str, list[Path]] = defaultdict(list)
    for path in paths:
        answer = path_answer(path)
        if answer is not None:
            backers[answer].append(path)
    if not votes:
        best = max(paths, key=weight)
        return Vote(None, False, weight(best))
    winner = max(votes, key=lambda a: (votes[a], len(backers[a])))
    chosen = backers[winner]
    return Vote(winner, max(p["correct"] for p in chosen) >= 1.0, sum(map(weight, chosen)) / len(chosen))


def pass_at(paths: Sequence[Path]) -> bool:
    """Whether any path is right (the oracle's pick)."""
    return any(p["correct"] >= 1.0 for p in paths)
