"""Executing a configuration: question variants (QP) x candidates (CP), pooled by vote.

A *question variant* is the user's last message rewritten by one of
:data:`VARIANT_TEMPLATES` (variant 0 is the message as written), followed by the
executor's answer ``instruction`` when it has one; the rest of the chat is kept. All
``QP * CP`` paths of a configuration decode in one batched call. With
``CP = 1`` each variant is decoded greedily (the variants themselves bring the
diversity); with ``CP > 1`` candidates are sampled.

The answer is chosen by a confidence-weighted vote over the extracted final answers,
each path weighing ``exp(mean token log-prob)``. The verifier score of the answer is
the winning answer's share of the vote times the mean confidence of the paths behind
it: one confident path scores its confidence, and agreement raises the score.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from uniscale_integrations.core.answers import extract_answer
from uniscale_integrations.core.cost import CostModel, Usage
from uniscale_integrations.core.space import Config
from uniscale_integrations.errors import ConfigSpaceError
from uniscale_integrations.tts.backends import Completion, Generator, Message, SamplingParams

STEP_BY_STEP = "Think step by step, then give the final answer as 'Answer: <number>'."
"""Instruction for math questions: chain of thought (give it 160+ new tokens)."""
BRIEF = "Reply with only the final answer, as 'Answer: <number>'."
"""Instruction for math questions: the answer alone (fast; 24 new tokens suffice)."""

VARIANT_TEMPLATES: tuple[str, ...] = (
    "{question}",
    "Read the problem carefully and solve it.\n\n{question}",
    "{question}\n\nWork it out step by step before answering.",
    "Here is a problem for you.\n{question}\nCheck your arithmetic, then answer.",
)


@dataclass(frozen=True)
class Path:
    """One solution path and what became of it."""

    variant: int
    text: str
    answer: str | None
    confidence: float
    completion_tokens: int
    finish_reason: str


@dataclass
class Execution:
    """What running one configuration on one query produced and cost."""

    config: Config
    answer: str
    text: str
    score: float
    eflops: float
    usage: Usage
    seconds: float
    paths: list[Path] = field(default_factory=list)


def question_variants(messages: Sequence[Message], qp: int, instruction: str | None = None) -> list[list[Message]]:
    """``qp`` chats that differ only in how the last user message is phrased."""
    if qp > len(VARIANT_TEMPLATES):
        raise ConfigSpaceError(f"qp={qp} exceeds the {len(VARIANT_TEMPLATES)} question variants available")
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if last_user is None:
        raise ValueError("the chat has no user message to answer")
    question = messages[last_user]["content"]
    variants = []
    for template in VARIANT_TEMPLATES[:qp]:
        chat = [dict(m) for m in messages]
        content = template.format(question=question)
        chat[last_user]["content"] = f"{content}\n{instruction}" if instruction else content
        variants.append(chat)
    return variants


def with_system_prompt(messages: Sequence[Message], system_prompt: str) -> list[Message]:
    """The chat with ``system_prompt`` first, unless the chat brings its own system message."""
    if any(m["role"] == "system" for m in messages):
        return [dict(m) for m in messages]
    return [{"role": "system", "content": system_prompt}, *(dict(m) for m in messages)]


def vote(paths: Sequence[Path]) -> tuple[str | None, float, Path | None]:
    """The confidence-weighted majority answer, its score, and its most confident path."""
    weight: dict[str, float] = defaultdict(float)
    for path in paths:
        if path.answer is not None:
            weight[path.answer] += path.confidence
    total = sum(p.confidence for p in paths)
    if not weight or total <= 0:
        return None, 0.0, None
    answer = max(weight, key=lambda a: (weight[a], -_first_index(paths, a)))
    backers = [p for p in paths if p.answer == answer]
    share = weight[answer] / total
    mean_confidence = weight[answer] / len(backers)
    best = max(backers, key=lambda p: p.confidence)
    return answer, share * mean_confidence, best


def _first_index(paths: Sequence[Path], answer: str) -> int:
    return next(i for i, p in enumerate(paths) if p.answer == answer)


class Executor:
    """Runs configurations on generators, one per model name, and prices the work."""

    def __init__(
        self,
        generators: Mapping[str, Callable[[], Generator]],
        cost_model: CostModel,
        *,
        max_new_tokens: int = 128,
        temperature: float = 0.7,
        system_prompt: str | None = None,
        instruction: str | None = None,
    ):
        self._factories = dict(generators)
        self._generators: dict[str, Generator] = {}
        self.cost_model = cost_model
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.system_prompt = system_prompt
        self.instruction = instruction

    def generator(self, model: str) -> Generator:
        """The generator for ``model``, created on first use."""
        if model not in self._generators:
            try:
                factory = self._factories[model]
            except KeyError:
                raise ConfigSpaceError(f"no generator for model {model!r}") from None
            self._generators[model] = factory()
        return self._generators[model]

    def execute(
        self, messages: Sequence[Message], config: Config, *, seed: int | None = None, stop: Sequence[str] = ()
    ) -> Execution:
        if config.bs > 1:
            raise ConfigSpaceError(f"{config}: step-level beam search (bs > 1) is not available yet")
        started = time.perf_counter()
        generator = self.generator(config.model)
        if self.system_prompt is not None:
            messages = with_system_prompt(messages, self.system_prompt)
        chats = question_variants(messages, config.qp, self.instruction)
        prompts = [generator.render(chat) for chat in chats]
        params = SamplingParams(
            max_new_tokens=self.max_new_tokens,
            temperature=0.0 if config.cp == 1 else self.temperature,
            stop=tuple(stop),
            seed=seed,
        )
        batch = generator.generate(prompts, n=config.cp, params=params)
        paths = [_path(c) for c in batch.completions]
        answer, score, best = vote(paths)
        chosen = best if best is not None else max(paths, key=lambda p: p.confidence)
        return Execution(
            config=config,
            answer=answer if answer is not None else chosen.text,
            text=chosen.text,
            score=score,
            eflops=self.cost_model.eflops(generator.shape, batch.usage),
            usage=batch.usage,
            seconds=time.perf_counter() - started,
            paths=paths,
        )


def _path(completion: Completion) -> Path:
    return Path(
        variant=completion.prompt_index,
        text=completion.text,
        answer=extract_answer(completion.text),
        confidence=math.exp(completion.mean_logprob),
        completion_tokens=completion.completion_tokens,
        finish_reason=completion.finish_reason,
    )
