"""What the executor needs of a backend: a :class:`Generator` that opens decode :class:`Session` s of many rows.

The rows of a session decode together, step by step; the base :class:`Session` owns what every backend
does alike (keep, reorder or duplicate rows, resume them at step ends, finish them) and each backend
writes the decoding. Usage is counted exactly, for the cost model.
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self

from uniscale_integrations.checks import non_negative, positive_int
from uniscale_integrations.features.query import Message
from uniscale_integrations.reward.cost import Shaped, Usage
from uniscale_integrations.tools import ToolFormat

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class SamplingParams:
    """How the rows of a session decode: ``temperature == 0`` means greedy decoding."""

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
    """A path ends (``"loop"``) once it has fallen into a loop (``backends.hf.stops.ends_in_loop``): a
    degenerate loop that greedy decoding never leaves, and that would run to the cap without an answer."""
    step_delimiter: str | None = None
    """Where a step ends: a row waits there (``"step_done"``) until :meth:`Session.resume`; ``None``: no steps."""
    forbid_first: tuple[str, ...] = ()
    """Texts a row's first token may not start with (a reply that must be text may not open a tool call, nor
    be empty: the end-of-sequence token is refused too)."""
    begin_with: tuple[str, ...] = ()
    """Texts one of which a row writes first (a forced call's tool, among the tools' names). This and
    :attr:`forbid_first` are honoured where the backend has the vocabulary (in process)."""

    def __post_init__(self) -> None:
        positive_int("max_new_tokens", self.max_new_tokens)
        non_negative("temperature", self.temperature)
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must lie in (0, 1], got {self.top_p}")
        if self.step_delimiter == "":
            raise ValueError("step_delimiter must be a non-empty string or None")


RowStatus = Literal["running", "step_done", "finished"]
"""Where a path stands: decoding, waiting at a step end, or done."""


@dataclass
class Row:
    """One path of a :class:`Session`: what it generated and where it stands (a backend adds its own state)."""

    prompt_index: int
    token_ids: list[int] = field(default_factory=list)
    """Generated tokens (all steps; placeholders where a server returns text): the length counts them."""
    step_start: int = 0
    """Index in ``token_ids`` where the current step began."""
    logprob_sum: float = 0.0
    """Sum of the generated tokens' log-probabilities under the model (untempered)."""
    status: RowStatus = "running"
    finish_reason: str | None = None
    """``"eos"``, ``"stop"``, ``"answer"``, ``"loop"`` or ``"length"`` when finished (or a caller's reason,
    see :meth:`Session.finish`)."""

    @property
    def completion_tokens(self) -> int:
        return len(self.token_ids)

    def text(self, tokenizer: Any = None) -> str:
        """The generated text, cut at the stop string it stopped on (``tokenizer``: the generator's)."""
        raise NotImplementedError

    def step_text(self, tokenizer: Any = None) -> str:
        """The text of the current step (since ``step_start``)."""
        raise NotImplementedError

    def duplicate(self, copy_index: int) -> Self:
        """A copy for beam expansion (the ``copy_index``-th, from 1): its own lists; a backend gives it its
        own random stream."""
        row = copy.copy(self)
        row.token_ids = list(self.token_ids)
        return row

    def start_step(self) -> None:
        """Leave the step end this row waits at and decode the next step."""
        self.status = "running"
        self.step_start = len(self.token_ids)


class Session(ABC):
    """Step-wise batched decoding of ``n`` rows per prompt (``n``: one count, or one per prompt).

    Rows are ordered by prompt, then copy. The base holds the rows and what every backend does
    alike (:meth:`select`, :meth:`resume`, :meth:`finish`); a backend decodes (:meth:`_advance`) and,
    where it keeps per-row state beside the rows (a KV cache), follows a new row order (:meth:`_reorder`).
    :class:`~uniscale_integrations.backends.hf.session.DecodeSession` decodes in process,
    :class:`~uniscale_integrations.backends.openai.RemoteSession` over HTTP.
    """

    rows: Sequence[Row]

    def __init__(self, prompts: Sequence[str], n: int | Sequence[int], params: SamplingParams) -> None:
        if not prompts:
            raise ValueError("a session needs at least one prompt")
        counts = [n] * len(prompts) if isinstance(n, int) else [int(c) for c in n]
        if len(counts) != len(prompts):
            raise ValueError(f"got {len(counts)} counts for {len(prompts)} prompts")
        if any(c < 0 for c in counts) or sum(counts) < 1:
            raise ValueError(f"row counts must be >= 0 with at least one row, got {counts}")
        self.counts = counts
        self.params = params
        self.usage = Usage()

    @property
    @abstractmethod
    def backend(self) -> str:
        """What decodes: ``"fast"`` or ``"hf"`` in process, ``"openai"`` over HTTP."""

    @property
    def active(self) -> bool:
        """Whether any row is running or waiting at a step end."""
        return any(r.status != "finished" for r in self.rows)

    def advance(self, max_tokens: int | None = None) -> None:
        """Decode the running rows until each ends its step (or finishes), or for ``max_tokens`` more tokens."""
        if max_tokens is not None and max_tokens < 0:
            raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")
        self._advance(max_tokens)

    @abstractmethod
    def _advance(self, max_tokens: int | None) -> None: ...

    def select(self, indices: Sequence[int]) -> None:
        """Keep exactly these rows, in this order; a repeated index duplicates a row (:meth:`Row.duplicate`)."""
        count = len(self.rows)
        for i in indices:
            if not 0 <= i < count:
                raise IndexError(f"row index {i} out of range for {count} rows")
        rows = []
        copies: dict[int, int] = {}
        for i in indices:
            rows.append(self.rows[i] if i not in copies else self.rows[i].duplicate(copies[i]))
            copies[i] = copies.get(i, 0) + 1
        self._reorder(indices, rows)
        self.rows = rows

    def _reorder(self, indices: Sequence[int], rows: list[Row]) -> None:  # noqa: B027 - optional hook
        """Follow the new order of the rows (``rows[j]`` was ``self.rows[indices[j]]``) in per-row state."""

    def resume(self) -> None:
        """Start a new step in every row that waits at a step end."""
        for row in self.rows:
            if row.status == "step_done":
                row.start_step()

    def finish(self, indices: Sequence[int], reason: str) -> None:
        """Mark rows finished: they stay in :attr:`rows` but never compute again."""
        for i in indices:
            row = self.rows[i]
            if row.status != "finished":
                row.status, row.finish_reason = "finished", reason


class Generator(Protocol):
    """A model that decodes many paths of several prompts in one batched session."""

    @property
    def name(self) -> str: ...

    @property
    def shape(self) -> Shaped: ...

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase | None:
        """The model's tokenizer; None where the backend returns text (a remote server)."""
        ...

    @property
    def tool_format(self) -> ToolFormat | None:
        """How the model writes tool calls, when :meth:`render` can show it tools (else None)."""
        ...

    def render(self, messages: Sequence[Message], tools: Sequence[Mapping[str, Any]] | None = None) -> str:
        """The prompt text for a chat, through the model's chat template, with ``tools`` (OpenAI's form) shown
        to the model when given (only a generator with a :attr:`tool_format` takes them)."""
        ...

    def session(self, prompts: Sequence[str], n: int | Sequence[int], params: SamplingParams) -> Session:
        """A step-wise batched decode session of ``n`` rows per prompt (see :class:`Session`)."""
        ...


def release_memory() -> None:
    """Hand the memory freed by a large search back to the system (glibc keeps it otherwise)."""
    import gc

    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass
