"""Answer styles: the instruction added to each question, the token budget of a path on each
model, where a path may stop, and how the candidates' answers pool.

One table for everything that asks a model for an answer (the engine's defaults, the CLI, the
server, the benchmark), so that a style means the same budget everywhere.

- ``"reasoned"``: think step by step, then state ``Answer: <answer>`` on the last line (numbers,
  words, dates, lists). The path stops once it wrote that line. 768 new tokens: on the 310
  questions of table v2, the greedy paths that still reached that cap were at most 10% on every
  tier on both rungs (``benchmarks/samples_report.py``; 384 tokens left up to 18% cut on M
  and 22% on S). Candidates pool by the value of their stated answers.
- ``"brief"``: only the answer, as ``Answer: <number>``; 32 tokens, pooled by stated answer.
- ``"plain"``: the question as asked (chat, RAG); free-form replies of up to 256 tokens, pooled
  by meaning (:class:`~uniscale_integrations.executor.pooling.MeaningPool`).
- ``"step-by-step"``: table v1's math style, chain of thought then ``Answer: <number>``; 128 tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from uniscale_integrations.errors import ConfigSpaceError

STEP_BY_STEP = "Think step by step, then give the final answer as 'Answer: <number>'."
"""Instruction for math questions: chain of thought (give it 160+ new tokens)."""
REASON_THEN_ANSWER = "Think step by step, then give the final answer on its own last line as 'Answer: <answer>'."
"""Instruction for any question with a short answer (numbers, words, dates, lists): chain of thought."""
BRIEF = "Reply with only the final answer, as 'Answer: <number>'."
"""Instruction for math questions: the answer alone (fast; 32 new tokens suffice)."""


@dataclass(frozen=True)
class AnswerStyle:
    """How paths are asked to answer, how far they may write, and how their answers pool."""

    name: str
    instruction: str | None
    """Appended to the question (``None``: the question as asked)."""
    max_new_tokens: int
    """New tokens per path, unless :attr:`per_model` says otherwise."""
    per_model: Mapping[str, int] = field(default_factory=dict)
    """Token budgets of the rungs that need another one."""
    stop_at_answer: bool = False
    """A path ends once it wrote its final-answer line."""
    pool_by_meaning: bool = False
    """Candidates are free-form replies, pooled by what they mean rather than by a stated answer."""

    def __post_init__(self) -> None:
        budgets = [self.max_new_tokens, *self.per_model.values()]
        if any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in budgets):
            raise ValueError(f"style {self.name!r}: token budgets must be positive integers, got {budgets}")
        object.__setattr__(self, "per_model", MappingProxyType(dict(self.per_model)))

    def budgets(self, models: tuple[str, ...] | list[str]) -> dict[str, int]:
        """The token budget of each of ``models``."""
        return {m: self.per_model.get(m, self.max_new_tokens) for m in models}


STYLES: Mapping[str, AnswerStyle] = MappingProxyType(
    {
        "reasoned": AnswerStyle("reasoned", REASON_THEN_ANSWER, 768, stop_at_answer=True),
        "brief": AnswerStyle("brief", BRIEF, 32, stop_at_answer=True),
        "plain": AnswerStyle("plain", None, 256, pool_by_meaning=True),
        "step-by-step": AnswerStyle("step-by-step", STEP_BY_STEP, 128),
    }
)


def answer_style(style: str | AnswerStyle) -> AnswerStyle:
    """A style by name (see :data:`STYLES`), or the style given."""
    if isinstance(style, AnswerStyle):
        return style
    try:
        return STYLES[style]
    except KeyError:
        raise ConfigSpaceError(f"unknown answer style {style!r}; choose from {', '.join(STYLES)}") from None
