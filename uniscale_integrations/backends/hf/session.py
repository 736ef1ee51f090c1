"""A hand-written, batched, step-wise decode session over a local transformers model.

A :class:`DecodeSession` holds many *rows* (paths) that decode together, one forward
pass per token for all of them:

- each **distinct** prompt is prefilled once (one left-padded batch); the rows that share
  a prompt get copies of its KV cache, so ``n`` samples of one prompt cost one prefill;
- :meth:`DecodeSession.advance` decodes the running rows until each reaches the step
  delimiter (``"step_done"``: it waits), an end-of-sequence token or stop string
  (``"finished"``), or ``params.max_new_tokens``;
- :meth:`DecodeSession.select` keeps, reorders or duplicates rows (beam expansion and
  pruning) by indexing the KV cache along the batch; :meth:`DecodeSession.resume` starts
  the next step of the waiting rows.

Rows that wait or finished are kept **out of the forward pass**: the session orders its
KV slots so that the rows to compute are a prefix of the batch, and a finished row's
slot is dropped. So a pruned or finished path really stops costing compute, and
:attr:`DecodeSession.usage` counts exactly what was computed.

Two runners execute the model:

- ``"fast"`` (CPU, fp32, Llama/Qwen2-style models): a hand-written forward over the model's
  own weights, with a preallocated KV cache, fused QKV and gate/up projections, and the
  linear layers pre-packed for oneDNN (``torch.ops.mkldnn._linear_pointwise``). Same fp32
  arithmetic as the model (no quantisation); results differ from the transformers forward
  only by float summation order (~1e-6 relative). It keeps a packed copy of the linear
  weights per model (about the size of the model again), built once per process.
- ``"hf"``: the model's own ``forward`` with a ``DynamicCache`` (any architecture, CUDA).
  Rows that wait are fed a pad token with attention mask 0 and are counted in
  ``usage.tokens_processed``.

``backend="auto"`` (default) picks ``"fast"`` where it applies; the environment variable
``UNISCALE_DECODE_BACKEND`` (``auto``/``fast``/``hf``) overrides the default.

Opt-in, not the default: ``weights="int8"`` runs the fast runner's linear layers with
per-channel int8 weights and dynamically quantised activations (``torch.ao`` dynamic
quantisation). On the 2-core development CPU it decodes about 2x faster than fp32 (see
``benchmarks/RESULTS.md``) but it is not the same model: greedy outputs diverge from fp32
within a few tokens, and costs and scores are no longer those of the fp32 model.
"""

from __future__ import annotations

import copy
import os
import random
import re
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F  # noqa: N812

from uniscale_integrations.answers import is_final_answer_line
from uniscale_integrations.backends.base import RowStatus, SamplingParams, _cut_at_stop, _eos_ids
from uniscale_integrations.reward.cost import Usage

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from uniscale_integrations.models import LoadedModel

Backend = Literal["auto", "fast", "hf"]
Weights = Literal["fp32", "int8"]

ANSWER_WINDOW = 48
"""Tokens looked at to find the line a newline just ended (``SamplingParams.stop_at_answer``)."""

LOOP_MAX_PERIOD = 64
LOOP_MIN_SPAN = 48
LOOP_MIN_REPEATS = 3
LOOP_LINE_PERIOD = 4
"""The most lines in a block that :func:`lines_repeat` looks for."""
LOOP_LINE_REPEATS = 6
"""How many times in a row a block of lines must come back (numbers aside) to count as a loop."""
LOOP_LINE_WINDOW = 512
"""Tokens decoded to look for repeated lines (enough for 24 lines of ~20 tokens)."""
_DIGITS = re.compile(r"\d+")


def repeats_itself(ids: Sequence[int]) -> bool:
    """Whether the tail of ``ids`` is one block of at most :data:`LOOP_MAX_PERIOD` tokens written
    :data:`LOOP_MIN_REPEATS` or more times in a row, over at least :data:`LOOP_MIN_SPAN` tokens.

    Written by hand: transformers' ``no_repeat_ngram_size`` and repetition penalties change the
    distribution; this only ends a row that has already fallen into a loop (``"1974 - 2026 = "``
    over and over), keeping every token it sampled before.

    >>> repeats_itself([7, 8, 9] * 16), repeats_itself([7, 8, 9] * 15), repeats_itself(list(range(60)))
    (True, False, False)
    """
    n = len(ids)
    for period in range(1, min(LOOP_MAX_PERIOD, n // LOOP_MIN_REPEATS) + 1):
        repeats = max(LOOP_MIN_REPEATS, -(-LOOP_MIN_SPAN // period))
        span = repeats * period
        if span > n or ids[n - period :] != ids[n - 2 * period : n - period]:
            continue
        tail = ids[n - span :]
        if all(tail[i] == tail[i + period] for i in range(span - period)):
            return True
    return False


def lines_repeat(text: str) -> bool:
    """Whether the last complete lines of ``text`` are one block of at most
    :data:`LOOP_LINE_PERIOD` lines written :data:`LOOP_LINE_REPEATS` times in a row, numbers
    aside: a row counting on without end ("27. Check: 68*r = 3394", "28. Check: 68*r = 3394",
    ...), which :func:`repeats_itself` misses because the numbers change. Blank lines are
    skipped; lines of fewer than 8 characters once numbers are masked never make a block.

    >>> lines_repeat("".join(f"{i}. She used {i} + 1 = {i + 1} spoons.\\n" for i in range(6)))
    True
    >>> lines_repeat("".join(f"{i}. She used {i} + 1 = {i + 1} spoons.\\n" for i in range(5)))
    False
    >>> lines_repeat("12 + 5 = 17\\n17 + 8 = 25\\n25 + 3 = 28\\n28 + 9 = 37\\nAnswer: 37\\n")
    False
    """
    lines = [masked for line in text.split("\n")[:-1] if (masked := _DIGITS.sub("#", line).strip())]
    for period in range(1, LOOP_LINE_PERIOD + 1):
        need = period * LOOP_LINE_REPEATS
        if len(lines) < need:
            break
        tail = lines[-need:]
        if all(len(line) >= 8 for line in tail[:period]) and all(
            tail[i] == tail[i + period] for i in range(need - period)
        ):
            return True
    return False


def ends_in_loop(ids: Sequence[int], tokenizer: Any) -> bool:
    """Whether a row that just sampled ``ids[-1]`` is in a loop (``SamplingParams.stop_on_loop``):
    its tail repeats itself (:func:`repeats_itself`), or the line it just ended closes a run of
    repeated lines (:func:`lines_repeat`)."""
    if repeats_itself(ids):
        return True
    if "\n" not in _decode(tokenizer, ids[-1:]):
        return False
    return lines_repeat(_decode(tokenizer, ids[-LOOP_LINE_WINDOW:]))


TOP_P_CANDIDATES = 64
"""Top-p sampling first looks at this many most likely tokens and widens only when the
nucleus does not fit (exact either way; avoids sorting a 151k vocabulary per step)."""


@dataclass
class Row:
    """One path: the tokens it generated so far and where it stands."""

    prompt_index: int
    token_ids: list[int] = field(default_factory=list)
    """Generated tokens (all steps), the end-of-sequence token included when one was sampled."""
    step_start: int = 0
    """Index in ``token_ids`` where the current step began."""
    logprob_sum: float = 0.0
    """Sum of the generated tokens' log-probabilities under the model (untempered)."""
    status: RowStatus = "running"
    finish_reason: str | None = None
    """``"eos"``, ``"stop"``, ``"answer"``, ``"loop"`` or ``"length"`` when finished (or a caller's reason,
    see ``finish``)."""
    stop: tuple[str, ...] = field(default=(), repr=False)
    """Stop strings: :meth:`text` is cut at the first one when the row stopped on it."""
    stream: int = field(default=0, repr=False)
    """This row's own random stream: its draws do not depend on which other rows share the batch."""
    greedy: bool = False
    """Decodes greedily whatever the session's temperature (``SamplingParams.greedy_first``)."""
    step_marks: list[tuple[int, float]] = field(default_factory=list)
    """``(tokens, logprob_sum)`` at each step end passed without pausing (``mark_steps``)."""
    _content: bool = field(default=False, repr=False)
    _pending: bool = field(default=False, repr=False)
    _decoded: tuple[int, str] | None = field(default=None, repr=False, compare=False)

    @property
    def completion_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def step_tokens(self) -> int:
        return len(self.token_ids) - self.step_start

    def text(self, tokenizer: PreTrainedTokenizerBase) -> str:
        """The generated text (special tokens skipped), cut at the stop string it stopped on."""
        if self._decoded is None or self._decoded[0] != len(self.token_ids):
            self._decoded = (len(self.token_ids), _decode(tokenizer, self.token_ids))
        return self._cut(self._decoded[1])

    def step_text(self, tokenizer: PreTrainedTokenizerBase) -> str:
        """The text of the current step (since ``step_start``)."""
        return self._cut(_decode(tokenizer, self.token_ids[self.step_start :]))

    def _cut(self, text: str) -> str:
        if self.finish_reason == "stop" and self.stop:
            return _cut_at_stop(text, self.stop)[0]
        return text


class DecodeSession:
    """Batched step-wise decoding of ``n`` rows per prompt, with exact usage accounting.

    ``n`` is one count for every prompt or one count per prompt. Rows are ordered by
    prompt, then copy. ``usage.prompt_tokens`` bills each row's useful prompt tokens (rows
    duplicated later by :meth:`select` share their parent's); ``tokens_processed`` counts
    every position computed (the padded prefill of each distinct prompt once, then one
    per computed row per decode step); ``kv_reads`` the cached positions attention read.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        prompts: Sequence[str],
        n: int | Sequence[int],
        params: SamplingParams,
        *,
        step_delimiter: str | None = None,
        backend: Backend | None = None,
        weights: Weights = "fp32",
        ignore_eos: bool = False,
        mark_steps: bool = False,
    ):
        if not prompts:
            raise ValueError("a decode session needs at least one prompt")
        counts = [n] * len(prompts) if isinstance(n, int) else [int(c) for c in n]
        if len(counts) != len(prompts):
            raise ValueError(f"got {len(counts)} counts for {len(prompts)} prompts")
        if any(c < 0 for c in counts) or sum(counts) < 1:
            raise ValueError(f"row counts must be >= 0 with at least one row, got {counts}")
        if step_delimiter == "":
            raise ValueError("step_delimiter must be a non-empty string or None")
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self.params = params
        self.step_delimiter = step_delimiter
        self.mark_steps = mark_steps
        """Record step ends in ``Row.step_marks`` and keep decoding, instead of waiting at them."""
        self.ignore_eos = ignore_eos
        """Benchmarks only: never stop on end-of-sequence tokens (fixed-length decoding)."""
        self.usage = Usage()
        self._eos = set() if ignore_eos else _eos_ids(loaded.model, self.tokenizer)
        base = params.seed if params.seed is not None else random.SystemRandom().getrandbits(63)
        needles = [s for s in params.stop if s] + ([step_delimiter] if step_delimiter else [])
        self._window = max((len(s) for s in needles), default=0) + 4

        distinct: dict[str, int] = {}
        for prompt in prompts:
            distinct.setdefault(prompt, len(distinct))
        source = [distinct[prompts[i]] for i, c in enumerate(counts) for _ in range(c)]
        self.rows: list[Row] = [Row(prompt_index=i, stop=params.stop) for i, c in enumerate(counts) for _ in range(c)]
        for row, copy_index in zip(self.rows, (j for c in counts for j in range(c)), strict=True):
            row.greedy = params.greedy_first and copy_index == 0
            row.stream = row_stream(base, row.prompt_index, copy_index - 1 if params.greedy_first else copy_index)

        encoded = self.tokenizer(list(distinct), return_tensors="pt", padding=True, add_special_tokens=False)
        input_ids = encoded["input_ids"].to(loaded.device)
        mask = encoded["attention_mask"].to(loaded.device)
        lengths = mask.sum(dim=1)
        if int(lengths.min()) < 1:
            raise ValueError("every prompt must encode to at least one token")

        self._runner = _make_runner(loaded, backend, weights)
        with torch.inference_mode():
            src = torch.tensor(source, device=loaded.device)
            logits = self._runner.prefill(input_ids, mask, src, params.max_new_tokens)
        self._logits = logits.float()
        self._slot_rows = list(range(len(self.rows)))
        """Which row each KV slot holds (the runner's batch order)."""
        processed, passes = self._runner.prefill_work(mask)
        self.usage += Usage(prompt_tokens=int(lengths[src].sum()), tokens_processed=processed, forward_passes=passes)

    @property
    def backend(self) -> str:
        """The runner in use: ``"fast"`` or ``"hf"``."""
        return self._runner.name

    @property
    def active(self) -> bool:
        """Whether any row is running or waiting at a step end."""
        return any(r.status != "finished" for r in self.rows)

    def advance(self, max_tokens: int | None = None) -> None:
        """Decode the running rows together until none runs, or for ``max_tokens`` more tokens."""
        if max_tokens is not None and max_tokens < 0:
            raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")
        with torch.inference_mode():
            self._runner.compact()
            done = 0
            while max_tokens is None or done < max_tokens:
                running = [i for i, r in enumerate(self.rows) if r.status == "running"]
                if not running:
                    break
                pending = [i for i in running if self.rows[i]._pending]
                self._arrange(pending, [i for i in running if not self.rows[i]._pending])
                if pending:
                    self._feed(pending)
                self._sample(len(running))
                done += 1

    def select(self, indices: Sequence[int]) -> None:
        """Keep exactly these rows, in this order; a repeated index duplicates a row."""
        count = len(self.rows)
        for i in indices:
            if not 0 <= i < count:
                raise IndexError(f"row index {i} out of range for {count} rows")
        new_rows: list[Row] = []
        copies: dict[int, int] = {}
        for i in indices:
            row = self.rows[i]
            if i in copies:
                row = copy.copy(row)
                row.token_ids = list(row.token_ids)
                row.step_marks = list(row.step_marks)
                row.stream = _mix(row.stream, copies[i], len(row.token_ids))
            copies[i] = copies.get(i, 0) + 1
            new_rows.append(row)
        slot_of = {r: s for s, r in enumerate(self._slot_rows)}
        live = [(j, slot_of[i]) for j, i in enumerate(indices) if new_rows[j].status != "finished" and i in slot_of]
        with torch.inference_mode():
            self._reslot([s for _, s in live])
        self._slot_rows = [j for j, _ in live]
        self.rows = new_rows

    def resume(self) -> None:
        """Start a new step in every row that waits at a step end."""
        for row in self.rows:
            if row.status == "step_done":
                row.status = "running"
                row.step_start = len(row.token_ids)
                row._content = False

    def finish(self, indices: Sequence[int], reason: str) -> None:
        """Mark rows finished (they stay in :attr:`rows` but never compute again)."""
        for i in indices:
            row = self.rows[i]
            if row.status != "finished":
                row.status = "finished"
                row.finish_reason = reason

    # -- internals ---------------------------------------------------------------------

    def _arrange(self, first: list[int], second: list[int]) -> None:
        """Order the KV slots: ``first`` rows, then ``second``, then waiting rows; drop finished ones."""
        waiting = [i for i, r in enumerate(self.rows) if r.status == "step_done"]
        order = first + second + waiting
        if order == self._slot_rows:
            return
        slot_of = {r: s for s, r in enumerate(self._slot_rows)}
        self._reslot([slot_of[i] for i in order])
        self._slot_rows = order

    def _reslot(self, slots: list[int]) -> None:
        if slots == list(range(len(self._slot_rows))):
            return
        index = torch.tensor(slots, dtype=torch.long, device=self._logits.device)
        self._runner.select(index)
        self._logits = self._logits.index_select(0, index)

    def _feed(self, pending: list[int]) -> None:
        """One forward pass over the rows whose last sampled token is not in the cache yet."""
        tokens = torch.tensor([self.rows[i].token_ids[-1] for i in pending], device=self._logits.device)
        logits, computed, span = self._runner.decode(tokens)
        self._logits[: len(pending)] = logits.float()
        self.usage += Usage(tokens_processed=computed, forward_passes=1, kv_reads=computed * span)
        for i in pending:
            self.rows[i]._pending = False

    def _sample(self, count: int) -> None:
        """Sample the next token of the ``count`` running rows (slots ``0 .. count - 1``)."""
        uniforms = None
        if self.params.temperature != 0:
            draws = [_uniform(self.rows[self._slot_rows[slot]]) for slot in range(count)]
            uniforms = torch.tensor(draws, dtype=torch.float64, device=self._logits.device)
        tokens, logprobs = sample_tokens(self._logits[:count], self.params, uniforms=uniforms)
        greedy = [slot for slot in range(count) if self.rows[self._slot_rows[slot]].greedy]
        if greedy and self.params.temperature != 0:
            index = torch.tensor(greedy, device=self._logits.device)
            logits = self._logits.index_select(0, index).float()
            tokens[index] = logits.argmax(dim=-1)
            logprobs[index] = logits.gather(1, tokens[index].unsqueeze(1)).squeeze(1) - torch.logsumexp(logits, -1)
        for slot, (token, logprob) in enumerate(zip(tokens.tolist(), logprobs.tolist(), strict=True)):
            row = self.rows[self._slot_rows[slot]]
            row.token_ids.append(token)
            row.logprob_sum += logprob
            row._pending = True
            self._update_status(row, token)
        self.usage += Usage(completion_tokens=count)

    def _update_status(self, row: Row, token: int) -> None:
        if token in self._eos:
            row.status, row.finish_reason = "finished", "eos"
            return
        stops = [s for s in self.params.stop if s]
        if stops and self._ends_with_new(row.token_ids, 0, stops, need_content=False):
            row.status, row.finish_reason = "finished", "stop"
            return
        if self.params.stop_at_answer and self._ends_answer_line(row.token_ids):
            row.status, row.finish_reason = "finished", "answer"
            return
        if len(row.token_ids) >= self.params.max_new_tokens:
            row.status, row.finish_reason = "finished", "length"
            return
        if self.params.stop_on_loop and ends_in_loop(row.token_ids, self.tokenizer):
            row.status, row.finish_reason = "finished", "loop"
            return
        if self.step_delimiter:
            need = not row._content
            if self._ends_with_new(row.token_ids, row.step_start, [self.step_delimiter], need_content=need):
                if self.mark_steps:
                    row.step_marks.append((len(row.token_ids), row.logprob_sum))
                    row.step_start = len(row.token_ids)
                    row._content = False
                else:
                    row.status = "step_done"
            elif need:
                window = row.token_ids[max(row.step_start, len(row.token_ids) - self._window) :]
                row._content = bool(_decode(self.tokenizer, window).strip())

    def _ends_answer_line(self, ids: list[int]) -> bool:
        """Whether the last token ended a line that states a final answer."""
        if "\n" not in _decode(self.tokenizer, ids[-1:]):
            return False
        lines = _decode(self.tokenizer, ids[-ANSWER_WINDOW:]).split("\n")
        finished = [line for line in lines[:-1] if line.strip()]
        return bool(finished) and is_final_answer_line(finished[-1])

    def _ends_with_new(self, ids: list[int], start: int, needles: list[str], *, need_content: bool) -> bool:
        """Whether a needle occurs in ``ids[start:]``'s text, ending in the text of the last token.

        With ``need_content``, only after the first non-whitespace character (a step must have
        content before its delimiter; leading blank lines are not a step).
        """
        lo = max(start, len(ids) - self._window)
        before = _decode(self.tokenizer, ids[lo:-1])
        text = _decode(self.tokenizer, ids[lo:])
        floor = 0
        if need_content:
            stripped = text.lstrip()
            if not stripped:
                return False
            floor = len(text) - len(stripped) + 1
        return any(text.find(s, max(floor, len(before) - len(s) + 1)) != -1 for s in needles)


def sample_tokens(
    logits: torch.Tensor,
    params: SamplingParams,
    generator: torch.Generator | None = None,
    *,
    uniforms: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next token per row (greedy at temperature 0, else temperature + top-p) and its log-prob.

    The log-prob is under the untempered model (``log_softmax`` of the raw logits).
    ``uniforms`` (one draw in [0, 1) per row) picks each row's token by inverting its own
    distribution, so a row's sample depends on nothing but its logits and its draw;
    without them, ``generator`` drives ``torch.multinomial``.
    """
    logits = logits.float()
    if params.temperature == 0:
        tokens = logits.argmax(dim=-1)
    else:
        scaled = logits / params.temperature if params.temperature != 1 else logits
        if params.top_p < 1:
            tokens = _top_p_sample(scaled, params.top_p, generator, uniforms)
        else:
            probs = torch.softmax(scaled, dim=-1)
            tokens = _draw(probs, generator, uniforms).squeeze(1)
    chosen = logits.gather(1, tokens.unsqueeze(1)).squeeze(1)
    return tokens, chosen - torch.logsumexp(logits, dim=-1)


def _top_p_sample(
    scaled: torch.Tensor, top_p: float, generator: torch.Generator | None, uniforms: torch.Tensor | None = None
) -> torch.Tensor:
    """Nucleus sampling without sorting the whole vocabulary when the nucleus is small.

    Keeps the most likely tokens whose preceding cumulative probability is below
    ``top_p`` (the most likely token always). Looks at the top ``TOP_P_CANDIDATES``
    first and widens (x4) until their mass reaches ``top_p``, so the result is exact.
    """
    vocab = scaled.shape[-1]
    total = torch.logsumexp(scaled, dim=-1, keepdim=True)
    k = min(vocab, TOP_P_CANDIDATES)
    while True:
        values, ids = scaled.topk(k, dim=-1)
        probs = (values - total).exp()
        cumulative = probs.cumsum(dim=-1)
        if k == vocab or bool((cumulative[:, -1] >= top_p).all()):
            break
        k = min(vocab, k * 4)
    keep = (cumulative - probs) < top_p
    keep[:, 0] = True
    probs = probs.masked_fill(~keep, 0.0)
    return ids.gather(1, _draw(probs, generator, uniforms)).squeeze(1)


def _draw(probs: torch.Tensor, generator: torch.Generator | None, uniforms: torch.Tensor | None) -> torch.Tensor:
    """One index per row of unnormalised ``probs``: inverse CDF at ``uniforms``, else multinomial."""
    if uniforms is None:
        return torch.multinomial(probs, 1, generator=generator)
    cumulative = probs.double().cumsum(dim=-1)
    target = uniforms.to(cumulative.device).unsqueeze(1) * cumulative[:, -1:]
    choice = (cumulative <= target).sum(dim=-1, keepdim=True)
    return choice.clamp(max=probs.shape[-1] - 1)


_MASK64 = (1 << 64) - 1


def _mix(*values: int) -> int:
    """A 64-bit hash of integers (splitmix64 finaliser), for deriving independent streams."""
    h = 0x9E3779B97F4A7C15
    for value in values:
        h = ((h ^ (value & _MASK64)) * 0xBF58476D1CE4E5B9) & _MASK64
        h ^= h >> 31
        h = (h * 0x94D049BB133111EB) & _MASK64
        h ^= h >> 29
    return h


def row_stream(seed: int, prompt_index: int, sample: int) -> int:
    """The random stream of a session's row: sample ``sample`` of prompt ``prompt_index`` (the greedy
    row of ``greedy_first`` is sample -1). Its draws depend on nothing else (:func:`_uniform`)."""
    return _mix(seed, prompt_index, sample)


def _uniform(row: Row) -> float:
    """The row's draw for its next token: a function of its stream and position only."""
    return (_mix(row.stream, len(row.token_ids)) >> 11) / float(1 << 53)


def _decode(tokenizer: Any, ids: Sequence[int]) -> str:
    if not ids:
        return ""
    return str(tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False))


# -- runners -------------------------------------------------------------------------------


class _Runner:
    """Executes the model over a batch of KV slots."""

    name = "base"

    def prefill(self, input_ids: torch.Tensor, mask: torch.Tensor, src: torch.Tensor, budget: int) -> torch.Tensor:
        """Prefill the distinct prompts once; slot ``j`` gets prompt ``src[j]``. Next-token logits per slot."""
        raise NotImplementedError

    def prefill_work(self, mask: torch.Tensor) -> tuple[int, int]:
        """Token positions computed and forward passes made by :meth:`prefill` of the prompts in ``mask``:
        one padded batch."""
        return int(mask.numel()), 1

    def decode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """Feed one token to each of the first ``len(tokens)`` slots.

        Returns their next-token logits, the rows computed and the attention span read.
        """
        raise NotImplementedError

    def select(self, index: torch.Tensor) -> None:
        """New slot ``j`` is old slot ``index[j]``."""
        raise NotImplementedError

    def compact(self) -> None:
        """Drop cache columns no row needs (optional)."""


def _make_runner(loaded: LoadedModel, backend: Backend | None, weights: Weights = "fp32") -> _Runner:
    choice = backend or os.environ.get("UNISCALE_DECODE_BACKEND", "auto")
    if choice not in ("auto", "fast", "hf"):
        raise ValueError(f"unknown decode backend {choice!r} (auto, fast or hf)")
    if weights not in ("fp32", "int8"):
        raise ValueError(f"unknown weights {weights!r} (fp32 or int8)")
    reason = _fast_unsupported(loaded) if choice != "hf" else "the hf backend was asked for"
    if weights == "int8" and reason is not None:
        raise ValueError(f"int8 weights need the fast decode backend, which does not apply: {reason}")
    if reason is None:
        return _FastRunner(_packed_model(loaded.model, weights))
    if choice == "fast":
        raise ValueError(f"the fast decode backend does not apply: {reason}")
    return _HFRunner(loaded.model)


class _HFRunner(_Runner):
    """The model's own forward with a ``DynamicCache``; idle slots are fed masked pad tokens."""

    name = "hf"

    def __init__(self, model: Any):
        self.model = model
        pad = getattr(model.generation_config, "pad_token_id", None)
        if isinstance(pad, list):
            pad = pad[0] if pad else None
        self.pad_id = int(pad) if pad is not None else 0

    def prefill(self, input_ids: torch.Tensor, mask: torch.Tensor, src: torch.Tensor, budget: int) -> torch.Tensor:
        from transformers import DynamicCache

        self.cache = DynamicCache(config=self.model.config)
        position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=position_ids,
            cache=self.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self.cache.batch_select_indices(src)
        self.mask = mask.index_select(0, src)
        self.length = self.mask.sum(dim=1)
        return out.logits[:, -1].index_select(0, src)

    def decode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        rows = self.mask.shape[0]
        count = tokens.shape[0]
        ids = torch.full((rows, 1), self.pad_id, dtype=torch.long, device=tokens.device)
        ids[:count, 0] = tokens
        column = torch.zeros((rows, 1), dtype=self.mask.dtype, device=self.mask.device)
        column[:count] = 1
        self.mask = torch.cat([self.mask, column], dim=1)
        out = self.model(
            input_ids=ids,
            attention_mask=self.mask,
            position_ids=self.length.unsqueeze(1),
            cache=self.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self.length = self.length + column[:, 0]
        return out.logits[:count, -1], rows, int(self.mask.shape[1])

    def select(self, index: torch.Tensor) -> None:
        self.cache.batch_select_indices(index)
        self.mask = self.mask.index_select(0, index)
        self.length = self.length.index_select(0, index)


# -- the fast CPU runner -------------------------------------------------------------------

_FAST_MODEL_TYPES = ("llama", "qwen2")


def _fast_unsupported(loaded: LoadedModel) -> str | None:
    """Why the fast runner cannot run this model, or ``None`` when it can."""
    model = loaded.model
    config = model.config
    if torch.device(loaded.device).type != "cpu":
        return f"device {loaded.device} (CPU only)"
    if loaded.dtype != torch.float32:
        return f"dtype {loaded.dtype} (fp32 only)"
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return "torch has no oneDNN linear kernels"
    if getattr(config, "model_type", None) not in _FAST_MODEL_TYPES:
        return f"architecture {getattr(config, 'model_type', None)!r} (supported: {', '.join(_FAST_MODEL_TYPES)})"
    if getattr(config, "hidden_act", "silu") != "silu" or getattr(config, "pretraining_tp", 1) != 1:
        return "non-standard MLP"
    if getattr(config, "use_sliding_window", False) or any(
        t != "full_attention" for t in getattr(config, "layer_types", None) or ()
    ):
        return "sliding-window attention"
    inner = getattr(model, "model", None)
    if inner is None or not hasattr(inner, "rotary_emb") or len(inner.layers) != config.num_hidden_layers:
        return "unexpected module layout"
    return None


class _Linear:
    """A linear layer with its weight packed for oneDNN (fp32, same arithmetic as ``F.linear``).

    With ``int8``: per-channel int8 weights and dynamically quantised activations
    (``torch.ao`` dynamic quantisation, fbgemm); an opt-in that changes the numerics.
    """

    def __init__(self, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor | None], *, int8: bool = False):
        weight = torch.cat([w.detach() for w in weights]) if len(weights) > 1 else weights[0].detach()
        self.out_features = int(weight.shape[0])
        if all(b is None for b in biases):
            self.bias: torch.Tensor | None = None
        else:
            self.bias = torch.cat(
                [b.detach() if b is not None else w.new_zeros(w.shape[0]) for w, b in zip(weights, biases, strict=True)]
            ).contiguous()
        self._int8: Any = None
        if int8:
            self._int8 = _int8_linear(weight, self.bias)
        else:
            self.weight = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), None)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self._int8 is not None:
            return self._int8(x)
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")


def _int8_linear(weight: torch.Tensor, bias: torch.Tensor | None) -> Any:
    import warnings

    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
    from torch.ao.quantization import per_channel_dynamic_qconfig

    with torch.inference_mode(False):
        linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        linear.weight = torch.nn.Parameter(weight.clone(), requires_grad=False)
        if bias is not None:
            linear.bias = torch.nn.Parameter(bias.clone(), requires_grad=False)
        linear.qconfig = per_channel_dynamic_qconfig  # type: ignore[assignment]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch deprecates quantized tensor creation
            return DynamicLinear.from_float(linear)


@dataclass
class _Layer:
    norm1: torch.Tensor
    qkv: _Linear
    o: _Linear
    norm2: torch.Tensor
    gate_up: _Linear
    down: _Linear


@dataclass
class _PackedModel:
    embed: torch.Tensor
    layers: list[_Layer]
    norm: torch.Tensor
    head: _Linear
    rotary: Any
    eps: float
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    scaling: float


_PACKED: weakref.WeakKeyDictionary[Any, dict[str, _PackedModel]] = weakref.WeakKeyDictionary()
_PACK_LOCK = threading.Lock()


def _packed_model(model: Any, weights: Weights = "fp32") -> _PackedModel:
    """The model's weights packed for the fast runner; built once per model object and kind."""
    with _PACK_LOCK:
        kinds = _PACKED.setdefault(model, {})
        packed = kinds.get(weights)
        if packed is None:
            with torch.inference_mode():
                packed = _pack(model, int8=weights == "int8")
            kinds[weights] = packed
        return packed


def _pack(model: Any, *, int8: bool = False) -> _PackedModel:
    config = model.config
    inner = model.model
    heads = int(config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    layers = []
    for layer in inner.layers:
        attn, mlp = layer.self_attn, layer.mlp
        layers.append(
            _Layer(
                norm1=layer.input_layernorm.weight.detach(),
                qkv=_Linear(
                    [attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight],
                    [attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias],
                    int8=int8,
                ),
                o=_Linear([attn.o_proj.weight], [attn.o_proj.bias], int8=int8),
                norm2=layer.post_attention_layernorm.weight.detach(),
                gate_up=_Linear(
                    [mlp.gate_proj.weight, mlp.up_proj.weight], [mlp.gate_proj.bias, mlp.up_proj.bias], int8=int8
                ),
                down=_Linear([mlp.down_proj.weight], [mlp.down_proj.bias], int8=int8),
            )
        )
    head = model.get_output_embeddings()
    return _PackedModel(
        embed=inner.embed_tokens.weight.detach(),
        layers=layers,
        norm=inner.norm.weight.detach(),
        head=_Linear([head.weight], [getattr(head, "bias", None)], int8=int8),
        rotary=inner.rotary_emb,
        eps=float(config.rms_norm_eps),
        heads=heads,
        kv_heads=int(config.num_key_value_heads),
        head_dim=head_dim,
        intermediate=int(config.intermediate_size),
        scaling=float(getattr(inner.layers[0].self_attn, "scaling", head_dim**-0.5)),
    )


def _rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm exactly as transformers' Llama/Qwen2 (fp32)."""
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class _FastRunner(_Runner):
    """Hand-written Llama/Qwen2 forward over packed weights and a preallocated KV cache.

    KV cache: ``[layers, slots, kv_heads, capacity, head_dim]``, one column per decode
    step shared by all slots, with a per-slot validity mask (left padding, and the steps a
    slot sat out). Each slot's next position id is its count of valid columns.
    """

    name = "fast"

    def __init__(self, packed: _PackedModel):
        self.p = packed

    def _mlp(self, layer: _Layer, x: torch.Tensor) -> torch.Tensor:
        gate_up = layer.gate_up(_rms(x, layer.norm2, self.p.eps))
        gate, up = gate_up.split(self.p.intermediate, dim=-1)
        return x + layer.down(F.silu(gate) * up)

    def prefill(self, input_ids: torch.Tensor, mask: torch.Tensor, src: torch.Tensor, budget: int) -> torch.Tensor:
        """Each distinct prompt runs on its own, unpadded, with the kernel's causal flag (no
        length-by-length mask is built); its keys and values go right-aligned into the cache."""
        p = self.p
        prompts, length = input_ids.shape
        valid = mask.bool()
        rows = int(src.shape[0])
        capacity = length + min(budget, 256) + 1
        shape = (len(p.layers), rows, p.kv_heads, capacity, p.head_dim)
        self.k = torch.zeros(shape, dtype=p.embed.dtype, device=input_ids.device)
        self.v = torch.zeros(shape, dtype=p.embed.dtype, device=input_ids.device)
        logits = []
        for prompt in range(prompts):
            ids = input_ids[prompt, valid[prompt]]
            slots = (src == prompt).nonzero().squeeze(1)
            logits.append(self._prefill_one(ids, slots, length))
        self.valid = torch.zeros((rows, capacity), dtype=torch.bool, device=input_ids.device)
        self.valid[:, :length] = valid.index_select(0, src)
        self.length = valid.sum(dim=1).index_select(0, src)
        self.span = length
        return torch.stack(logits).index_select(0, src)

    def prefill_work(self, mask: torch.Tensor) -> tuple[int, int]:
        """Each prompt unpadded, in a pass of its own."""
        return int(mask.sum()), int(mask.shape[0])

    def _prefill_one(self, ids: torch.Tensor, slots: torch.Tensor, end: int) -> torch.Tensor:
        """One prompt's forward pass; its cache goes to ``slots`` at columns ``end - len(ids) .. end``."""
        p = self.p
        heads, kv_heads, dim = p.heads, p.kv_heads, p.head_dim
        n = int(ids.shape[0])
        positions = torch.arange(n, device=ids.device).unsqueeze(0)
        x = F.embedding(ids.unsqueeze(0), p.embed)
        cos, sin = p.rotary(x, positions)
        cos, sin = cos.unsqueeze(2), sin.unsqueeze(2)
        h = x.reshape(n, -1)
        for index, layer in enumerate(p.layers):
            qkv = layer.qkv(_rms(h, layer.norm1, p.eps)).view(1, n, heads + 2 * kv_heads, dim)
            qk = _rotate(qkv[:, :, : heads + kv_heads], cos, sin)
            q = qk[:, :, :heads].transpose(1, 2)
            k = qk[:, :, heads:].transpose(1, 2)
            v = qkv[:, :, heads + kv_heads :].transpose(1, 2)
            if slots.numel():
                self.k[index, slots, :, end - n : end] = k
                self.v[index, slots, :, end - n : end] = v
            att = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=p.scaling, enable_gqa=True)
            h = h + layer.o(att.transpose(1, 2).reshape(n, heads * dim))
            h = self._mlp(layer, h)
        return p.head(_rms(h[-1:], p.norm, p.eps)).squeeze(0)

    def decode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        p = self.p
        count = int(tokens.shape[0])
        heads, kv_heads, dim = p.heads, p.kv_heads, p.head_dim
        col = self.span
        self._reserve(col + 1)
        self.valid[:count, col] = True
        span = col + 1
        attn_mask = self.valid[:count, :span].view(count, 1, 1, span)
        x = F.embedding(tokens, p.embed)
        cos, sin = p.rotary(x, self.length[:count].unsqueeze(1))  # [count, 1, dim]
        for index, layer in enumerate(p.layers):
            qkv = layer.qkv(_rms(x, layer.norm1, p.eps)).view(count, heads + 2 * kv_heads, dim)
            qk = _rotate(qkv[:, : heads + kv_heads], cos, sin)
            keys, values = self.k[index, :count], self.v[index, :count]
            keys[:, :, col] = qk[:, heads:]
            values[:, :, col] = qkv[:, heads + kv_heads :]
            q = qk[:, :heads].reshape(count, kv_heads, heads // kv_heads, dim)
            att = F.scaled_dot_product_attention(
                q, keys[:, :, :span], values[:, :, :span], attn_mask=attn_mask, scale=p.scaling
            )
            x = x + layer.o(att.reshape(count, heads * dim))
            x = self._mlp(layer, x)
        logits = p.head(_rms(x, p.norm, p.eps))
        self.length[:count] += 1
        self.span = span
        return logits, count, span

    def _reserve(self, needed: int) -> None:
        capacity = self.k.shape[3]
        if needed <= capacity:
            return
        self._rebuild(None, max(needed, capacity * 2))

    def _rebuild(self, index: torch.Tensor | None, capacity: int) -> None:
        span = self.span
        k, v, valid = self.k[:, :, :, :span], self.v[:, :, :, :span], self.valid[:, :span]
        if index is not None:
            k, v, valid = k.index_select(1, index), v.index_select(1, index), valid.index_select(0, index)
        shape = (k.shape[0], k.shape[1], k.shape[2], capacity, k.shape[4])
        self.k = k.new_zeros(shape)
        self.v = v.new_zeros(shape)
        self.k[:, :, :, :span] = k
        self.v[:, :, :, :span] = v
        self.valid = valid.new_zeros((valid.shape[0], capacity))
        self.valid[:, :span] = valid

    def select(self, index: torch.Tensor) -> None:
        self._rebuild(index, self.k.shape[3])
        self.length = self.length.index_select(0, index)

    def compact(self) -> None:
        """Right-align each slot's valid columns so the span is the longest slot's length."""
        rows = self.valid.shape[0]
        if rows == 0:
            return
        longest = int(self.length.max())
        span = self.span
        if longest >= span:
            return
        order = torch.sort(self.valid[:, :span].to(torch.uint8), dim=1, stable=True)
        columns = order.indices[:, span - longest :]  # invalid columns first, then valid ones in order
        slot = torch.arange(rows, device=columns.device).unsqueeze(1)
        capacity = self.k.shape[3]
        for name in ("k", "v"):
            old = getattr(self, name)
            moved = old[:, slot, :, columns]  # [rows, longest, layers, kv_heads, dim]
            new = old.new_zeros(old.shape[0], rows, old.shape[2], capacity, old.shape[4])
            new[:, :, :, :longest] = moved.permute(2, 0, 3, 1, 4)
            setattr(self, name, new)
        valid = self.valid.new_zeros((rows, capacity))
        valid[:, :longest] = order.values[:, span - longest :].bool()
        self.valid = valid
        self.span = longest
