"""Question streams with automatic checking, from reasoning-gym's procedural generators.

Five difficulty tiers (tuned so that the offline ladder's configurations win on
different ones; see docs/bench.md): easy and hard chain sums, three-term
arithmetic, leg counting and GSM8K-style word problems.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from uniscale_integrations.answers import extract_answer, same_answer, stated_answer
from uniscale_integrations.outcomes import SPLITS


@dataclass(frozen=True)
class Question:
    """A question with its reference answer and the tier it was drawn from."""

    id: str
    tier: str
    text: str
    answer: str
    entry: Mapping[str, Any] | None = field(default=None, compare=False, repr=False, hash=False)
    """The reasoning-gym entry the question came from (for its own checker, :meth:`score`)."""

    def score(self, solution: str) -> float:
        """reasoning-gym's own score (1.0 = right) of the answer a solution text states.

        The answer is the last ``Answer: ...`` (or ``\\boxed{}``) line, else the last number, else
        a one-line text as a whole (a bare answer such as "No"), with Markdown emphasis and a
        trailing full stop removed.
        """
        import reasoning_gym

        if self.entry is None:
            raise ValueError(f"{self.id} carries no reasoning-gym entry to score against")
        answer = _answer_of(solution)
        if answer is None:
            return 0.0
        family = self.entry["metadata"]["source_dataset"]
        try:
            return float(reasoning_gym.get_score_answer_fn(family)(answer=answer, entry=self.entry))
        except (ArithmeticError, ValueError):  # the checker's own failures on absurd answers (e.g. 10**400)
            return 0.0

    def is_correct(self, prediction: str | None) -> bool:
        """Whether a predicted final answer (or a whole solution text) is right: reasoning-gym's
        score where the question carries its entry, else the answers compared by value or text."""
        if prediction is None:
            return False
        if self.entry is not None:
            return self.score(prediction) >= 1.0
        answer = _answer_of(prediction)
        return answer is not None and same_answer(answer, self.answer)


def _answer_of(solution: str) -> str | None:
    stated = stated_answer(solution)
    if stated is not None:
        return stated.strip().strip("*").rstrip(".").strip()
    number = extract_answer(solution)
    if number is not None:
        return number
    bare = solution.strip().strip("*").rstrip(".").strip()
    return bare if bare and "\n" not in bare and len(bare) <= 64 else None


TIERS: Mapping[str, tuple[str, Mapping[str, Any]]] = {
    "chain_sum_easy": ("chain_sum", {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 2}),
    "chain_sum_hard": ("chain_sum", {"min_terms": 4, "max_terms": 5, "min_digits": 2, "max_digits": 3}),
    "arithmetic": (
        "basic_arithmetic",
        {
            "min_terms": 3,
            "max_terms": 3,
            "min_digits": 1,
            "max_digits": 2,
            "operators": ("+", "-", "*"),
            "allow_parentheses": False,
            "allow_negation": False,
        },
    ),
    "legs": ("leg_counting", {"min_animals": 1, "max_animals": 3, "max_instances": 3}),
    "gsm": ("gsm_symbolic", {}),
    "equations": ("simple_equations", {}),
    "weekday": ("calendar_arithmetic", {}),
    "syllogism": ("syllogism", {}),
    "family": ("family_relationships", {}),
    "durations": ("time_intervals", {}),
    "sorting": (
        "number_sorting",
        {"min_numbers": 3, "max_numbers": 5, "min_decimals": 0, "max_decimals": 0, "min_value": -50, "max_value": 99},
    ),
}


def _without_example_list(question: str) -> str:
    """number_sorting's question minus its answer-format block, whose example list the 0.5B model
    copies verbatim (0 of 40 right with it); a bracketed list is what its checker parses."""
    task = question.split("\nPlease follow the instruction below:")[0].strip()
    return f"{task}\nGive the sorted numbers as a list in square brackets."


REWRITES: Mapping[str, Callable[[str], str]] = {"sorting": _without_example_list}
"""Tiers whose generator's question text is rewritten before it is asked."""


V1_TIERS: tuple[str, ...] = ("chain_sum_easy", "chain_sum_hard", "arithmetic", "legs", "gsm")
"""The tiers of outcome table v1 (the default stream)."""


def tier_questions(tier: str, size: int, seed: int) -> list[Question]:
    """``size`` questions of one tier, reproducible from ``seed``."""
    import reasoning_gym

    try:
        generator, knobs = TIERS[tier]
    except KeyError:
        raise ValueError(f"unknown tier {tier!r}; choose from {sorted(TIERS)}") from None
    dataset = reasoning_gym.create_dataset(generator, size=size, seed=seed, **knobs)
    rewrite = REWRITES.get(tier, str.strip)
    return [
        Question(
            id=f"{tier}-{seed}-{i}",
            tier=tier,
            text=rewrite(str(entry["question"])),
            answer=str(entry["answer"]),
            entry=entry,
        )
        for i, entry in enumerate(dataset)
    ]


def mixed_stream(size: int, seed: int = 0, tiers: Sequence[str] | None = None) -> list[Question]:
    """``size`` questions spread evenly over ``tiers``, in a seeded random order."""
    tiers = list(tiers) if tiers is not None else list(V1_TIERS)
    if size < 1 or not tiers:
        raise ValueError("a stream needs a positive size and at least one tier")
    per_tier = -(-size // len(tiers))
    pool = [q for i, tier in enumerate(tiers) for q in tier_questions(tier, per_tier, seed * 1000 + i)]
    order = np.random.default_rng(seed).permutation(len(pool))
    return [pool[i] for i in order[:size]]


"""A benchmark's questions are either for tuning (never reported) or for the reported test."""


def assign_splits(questions: Sequence[Question], tune_share: float, seed: int = 0) -> dict[str, str]:
    """Each question's split, ``"tune"`` or ``"test"``, stratified by tier and reproducible.

    Within each tier, ``round(tune_share * n)`` questions go to the tuning split, chosen by a
    seeded hash of their ids (so the split of a question does not depend on the order of the
    stream, and a resumed collection assigns the same splits).
    """
    if not 0.0 <= tune_share < 1.0:
        raise ValueError(f"tune_share must lie in [0, 1), got {tune_share}")
    by_tier: dict[str, list[str]] = {}
    for question in questions:
        by_tier.setdefault(question.tier, []).append(question.id)
    splits: dict[str, str] = {}
    for ids in by_tier.values():
        ranked = sorted(dict.fromkeys(ids), key=lambda i: (zlib.crc32(f"{seed}/{i}".encode()), i))
        n_tune = round(tune_share * len(ranked))
        for rank, question_id in enumerate(ranked):
            splits[question_id] = SPLITS[0] if rank < n_tune else SPLITS[1]
    return splits


def question_seed(question_id: str) -> int:
    """The sampling seed of every run of a question (collection and live)."""
    return zlib.crc32(question_id.encode())
