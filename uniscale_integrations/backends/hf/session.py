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

The model runs on a runner (:mod:`~uniscale_integrations.backends.hf.runners`); sampling draws
each row's tokens from its own stream (:mod:`~uniscale_integrations.backends.hf.sampling`); a row
stops by the rules of :mod:`~uniscale_integrations.backends.hf.stops`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from uniscale_integrations.backends.base import Row as BaseRow
from uniscale_integrations.backends.base import SamplingParams, Session
from uniscale_integrations.backends.hf.runners import Backend, Weights, make_runner
from uniscale_integrations.backends.hf.sampling import mix, row_stream, sample_tokens, tokens_starting_with, uniform
from uniscale_integrations.backends.hf.stops import cut_at_stop, decode, ends_answer_line, ends_in_loop, eos_ids
from uniscale_integrations.reward.cost import Usage

if TYPE_CHECKING:
    from uniscale_integrations.models import LoadedModel


@dataclass
class Row(BaseRow):
    """One path of a :class:`DecodeSession`: its tokens (the end-of-sequence token included when one was
    sampled), its own random stream, and where it stands."""

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

    def text(self, tokenizer: Any = None) -> str:
        """The generated text (special tokens skipped), cut at the stop string it stopped on."""
        if self._decoded is None or self._decoded[0] != len(self.token_ids):
            self._decoded = (len(self.token_ids), decode(tokenizer, self.token_ids))
        return self._cut(self._decoded[1])

    def step_text(self, tokenizer: Any = None) -> str:
        """The text of the current step (since ``step_start``)."""
        return self._cut(decode(tokenizer, self.token_ids[self.step_start :]))

    def _cut(self, text: str) -> str:
        return cut_at_stop(text, self.stop)[0] if self.finish_reason == "stop" and self.stop else text

    def duplicate(self, copy_index: int) -> Row:
        row = super().duplicate(copy_index)
        row.step_marks = list(self.step_marks)
        row.stream = mix(self.stream, copy_index, len(self.token_ids))
        return row

    def start_step(self) -> None:
        super().start_step()
        self._content = False


class DecodeSession(Session):
    """Batched step-wise decoding of ``n`` rows per prompt over a local model, with exact usage accounting.

    ``usage.prompt_tokens`` bills each row's useful prompt tokens (rows duplicated later by
    :meth:`select` share their parent's); ``tokens_processed`` counts every position computed
    (the padded prefill of each distinct prompt once, then one per computed row per decode step);
    ``kv_reads`` the cached positions attention read.
    """

    rows: list[Row]

    def __init__(
        self,
        loaded: LoadedModel,
        prompts: Sequence[str],
        n: int | Sequence[int],
        params: SamplingParams,
        *,
        backend: Backend | None = None,
        weights: Weights = "fp32",
        ignore_eos: bool = False,
        mark_steps: bool = False,
    ):
        super().__init__(prompts, n, params)
        counts = self.counts
        step_delimiter = params.step_delimiter
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self.mark_steps = mark_steps
        """Record step ends in ``Row.step_marks`` and keep decoding, instead of waiting at them."""
        self.ignore_eos = ignore_eos
        """Benchmarks only: never stop on end-of-sequence tokens (fixed-length decoding)."""
        self._eos = set() if ignore_eos else eos_ids(loaded.model, self.tokenizer)
        self._begin_with = [self.tokenizer.encode(text, add_special_tokens=False) for text in params.begin_with]
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

        self._runner = make_runner(loaded, backend, weights)
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

    def _advance(self, max_tokens: int | None) -> None:
        """Decode the running rows together, one forward pass per token for all of them."""
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

    def _reorder(self, indices: Sequence[int], rows: list[BaseRow]) -> None:
        """Reorder the KV slots to the new rows; a finished row's slot is dropped."""
        slot_of = {r: s for s, r in enumerate(self._slot_rows)}
        live = [(j, slot_of[i]) for j, i in enumerate(indices) if rows[j].status != "finished" and i in slot_of]
        with torch.inference_mode():
            self._reslot([s for _, s in live])
        self._slot_rows = [j for j, _ in live]

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
        if self.params.forbid_first or self.params.begin_with:
            self._constrain(count)
        uniforms = None
        if self.params.temperature != 0:
            rows = [self.rows[self._slot_rows[slot]] for slot in range(count)]
            draws = [uniform(row.stream, len(row.token_ids)) for row in rows]
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

    def _constrain(self, count: int) -> None:
        """Mask the logits of the ``count`` running rows: a first token may not start with ``params.forbid_first``
        (nor end the row: the reply must say something), and a row writes one of ``params.begin_with`` (token by
        token, as each is tokenized alone) first."""
        for slot in range(count):
            ids = self.rows[self._slot_rows[slot]].token_ids
            if self.params.forbid_first and not ids:
                banned = [*tokens_starting_with(self.tokenizer, self.params.forbid_first), *self._eos]
                self._logits[slot, torch.tensor(banned, dtype=torch.long, device=self._logits.device)] = float("-inf")
            if self._begin_with and not any(ids[: len(seq)] == seq for seq in self._begin_with):
                allowed = {seq[len(ids)] for seq in self._begin_with if len(seq) > len(ids) and seq[: len(ids)] == ids}
                keep = torch.full_like(self._logits[slot], float("-inf"))
                index = torch.tensor(sorted(allowed), dtype=torch.long, device=self._logits.device)
                keep[index] = self._logits[slot, index]
                self._logits[slot] = keep

    def _update_status(self, row: Row, token: int) -> None:
        if token in self._eos:
            row.status, row.finish_reason = "finished", "eos"
            return
        stops = [s for s in self.params.stop if s]
        if stops and self._ends_with_new(row.token_ids, 0, stops, need_content=False):
            row.status, row.finish_reason = "finished", "stop"
            return
        if self.params.stop_at_answer and ends_answer_line(row.token_ids, self.tokenizer):
            row.status, row.finish_reason = "finished", "answer"
            return
        if len(row.token_ids) >= self.params.max_new_tokens:
            row.status, row.finish_reason = "finished", "length"
            return
        if self.params.stop_on_loop and ends_in_loop(row.token_ids, self.tokenizer):
            row.status, row.finish_reason = "finished", "loop"
            return
        if self.params.step_delimiter:
            need = not row._content
            if self._ends_with_new(row.token_ids, row.step_start, [self.params.step_delimiter], need_content=need):
                if self.mark_steps:
                    row.step_marks.append((len(row.token_ids), row.logprob_sum))
                    row.step_start = len(row.token_ids)
                    row._content = False
                else:
                    row.status = "step_done"
            elif need:
                window = row.token_ids[max(row.step_start, len(row.token_ids) - self._window) :]
                row._content = bool(decode(self.tokenizer, window).strip())

    def _ends_with_new(self, ids: list[int], start: int, needles: list[str], *, need_content: bool) -> bool:
        """Whether a needle occurs in ``ids[start:]``'s text, ending in the text of the last token.

        With ``need_content``, only after the first non-whitespace character (a step must have
        content before its delimiter; leading blank lines are not a step).
        """
        lo = max(start, len(ids) - self._window)
        before = decode(self.tokenizer, ids[lo:-1])
        text = decode(self.tokenizer, ids[lo:])
        floor = 0
        if need_content:
            stripped = text.lstrip()
            if not stripped:
                return False
            floor = len(text) - len(stripped) + 1
        return any(text.find(s, max(floor, len(before) - len(s) + 1)) != -1 for s in needles)


# -- runners -------------------------------------------------------------------------------


# -- the fast CPU runner -------------------------------------------------------------------
