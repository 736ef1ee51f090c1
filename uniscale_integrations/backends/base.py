"""Generator backends: turn prompts into many sampled paths at once, with exact accounting."""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from uniscale_integrations.reward.cost import ModelShape, Usage

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from uniscale_integrations.backends.hf.session import DecodeSession
    from uniscale_integrations.models import LoadedModel

Message = dict[str, str]
"""A chat message: ``{"role": "system" | "user" | "assistant", "content": ...}``."""


@dataclass(frozen=True)
class SamplingParams:
    """How to sample: ``temperature == 0`` means greedy decoding."""

    max_new_tokens: int = 64
    temperature: float = 0.7
    top_p: float = 0.95
    stop: tuple[str, ...] = ()
    seed: int | None = None
    greedy_first: bool = False
    """The first path of each prompt decodes greedily; the others sample (candidate 0 is the greedy one)."""
    stop_at_answer: bool = False
    """A path ends once it has written a final-answer line ("Answer: ..."): what follows is never read."""
    stop_on_loop: bool = False
    """A path ends (``"loop"``) once its tail repeats itself (``tts.decoding.repeats_itself``): a
    degenerate loop that greedy decoding never leaves, and that would run to the cap without an answer."""

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must lie in (0, 1], got {self.top_p}")


@dataclass(frozen=True)
class Completion:
    """One generated path."""

    prompt_index: int
    text: str
    completion_tokens: int
    mean_logprob: float
    """Mean log-probability of the generated tokens under the (untempered) model."""
    finish_reason: str
    """``"stop"`` (end of sequence or a stop string) or ``"length"``."""


@dataclass
class GenerationBatch:
    """Every path of one batched call, and the work the call did."""

    completions: list[Completion]
    usage: Usage = field(default_factory=Usage)


RowStatus = Literal["running", "step_done", "finished"]
"""Where a path stands: decoding, waiting at a step end, or done."""


class PathRow(Protocol):
    """One path of a :class:`Session`: what it generated and where it stands."""

    prompt_index: int
    token_ids: list[int]
    """Generated tokens (placeholders where a server returns text): the length counts them."""
    logprob_sum: float
    status: RowStatus
    finish_reason: str | None

    def text(self, tokenizer: Any) -> str:
        """The generated text, cut at the stop string it stopped on (``tokenizer``: the generator's)."""
        ...


class Session(Protocol):
    """Step-wise batched decoding of many paths (:class:`~uniscale_integrations.backends.hf.session.DecodeSession`
    in process, :class:`~uniscale_integrations.backends.openai.RemoteSession` over HTTP)."""

    @property
    def rows(self) -> Sequence[PathRow]: ...

    @property
    def usage(self) -> Usage: ...

    def advance(self, max_tokens: int | None = None) -> None:
        """Decode the running rows until each ends its step (or ``max_tokens`` more tokens)."""
        ...

    def select(self, indices: Sequence[int]) -> None:
        """Keep exactly these rows, in this order; a repeated index duplicates a row."""
        ...

    def resume(self) -> None:
        """Start a new step in every row that waits at a step end."""
        ...

    def finish(self, indices: Sequence[int], reason: str) -> None:
        """Mark rows finished; they never compute again."""
        ...


class Generator(Protocol):
    """A model that samples ``n`` paths for each of several prompts in one batched call."""

    @property
    def name(self) -> str: ...

    @property
    def shape(self) -> ModelShape: ...

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase | None:
        """The model's tokenizer; None where the backend returns text (a remote server)."""
        ...

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text for a chat, through the model's chat template."""
        ...

    def generate(self, prompts: Sequence[str], n: int, params: SamplingParams) -> GenerationBatch: ...

    def session(
        self,
        prompts: Sequence[str],
        n: int | Sequence[int],
        params: SamplingParams,
        *,
        step_delimiter: str | None = None,
    ) -> Session:
        """A step-wise batched decode session (see :mod:`uniscale_integrations.backends.hf.session`)."""
        ...


class HFGenerator:
    """A local transformers causal LM; all ``len(prompts) * n`` paths decode as one batch.

    Decoding runs on :class:`~uniscale_integrations.backends.hf.session.DecodeSession`: each
    distinct prompt is prefilled once and shared by its ``n`` paths, a finished path
    leaves the batch at once, and on CPU the hand-written fast runner is used where the
    architecture allows (see that module).
    """

    def __init__(self, loaded: LoadedModel):
        self.loaded = loaded
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.loaded.spec.name

    @property
    def shape(self) -> ModelShape:
        spec = self.loaded.spec
        return ModelShape.of(spec)

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self.loaded.tokenizer

    def render(self, messages: Sequence[Message]) -> str:
        text = self.loaded.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        return str(text)

    def session(
        self,
        prompts: Sequence[str],
        n: int | Sequence[int],
        params: SamplingParams,
        *,
        step_delimiter: str | None = None,
    ) -> DecodeSession:
        from uniscale_integrations.backends.hf.session import DecodeSession

        return DecodeSession(self.loaded, prompts, n, params, step_delimiter=step_delimiter)

    def generate(self, prompts: Sequence[str], n: int, params: SamplingParams) -> GenerationBatch:
        if not prompts:
            raise ValueError("generate needs at least one prompt")
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        with self._lock:
            session = self.session(prompts, n, params)
            session.advance()
        tokenizer = self.loaded.tokenizer
        completions = []
        for row in session.rows:
            length = len(row.token_ids)
            completions.append(
                Completion(
                    prompt_index=row.prompt_index,
                    text=row.text(tokenizer).strip(),
                    completion_tokens=length,
                    mean_logprob=row.logprob_sum / length if length else 0.0,
                    finish_reason="length" if row.finish_reason == "length" else "stop",
                )
            )
        return GenerationBatch(completions, session.usage)


def release_memory() -> None:
    """Hand the memory freed by a large search back to the system (glibc keeps it otherwise)."""
    import gc

    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def _eos_ids(model: object, tokenizer: object) -> set[int]:
    ids: set[int] = set()
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (config_eos, getattr(tokenizer, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(v for v in value if isinstance(v, int))
    return ids


def _cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    cuts = [text.find(s) for s in stop if s and s in text]
    if not cuts:
        return text, False
    return text[: min(cuts)], True
