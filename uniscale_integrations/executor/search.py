"""Executing a configuration: question variants x candidates x step-level beams, verified.

For a configuration ``(M, QP, CP, BS)`` on one chat:

- **QP** *question variants*: the user's last message rewritten by one of
  :data:`VARIANT_TEMPLATES` (variant 0 is the message as written), followed by the
  executor's answer ``instruction`` when it has one; the rest of the chat is kept.
- **CP** independent *candidates* per variant, each its own search tree.
- **BS** *beams* per tree: a step ends at the step delimiter (a blank line); each beam is
  expanded into BS sampled children, the verifier scores every partial solution, and
  the BS best (by mean step score) survive. BS = 1 is plain sampling.

All paths of a configuration decode together in one batched session: prompts are
prefilled once, paths share them, and a path that is pruned or finished leaves the
batch at once, so it stops costing compute.

**Path-aware early stopping** (method.md section 3): after step ``j`` of at most
``H_max``, a running path whose mean step score is ``V`` is pruned when even perfect
remaining steps could not beat the best finished path, ``V_max``::

    (j * V + (H_max - j) * v_sup) / H_max  <  V_max

A pruned beam leaves its tree for good (its slot is not handed to a sibling), so the
compute it would have used is saved, not moved. Beyond the paper, the search also stops
once the **vote is decided**: when no answer could overtake the leader even if every beam
still open finished on it with a final score of ``v_sup``.

**Aggregation** pools the finished paths' final answers: a verifier-weighted vote (the
default), a plain majority vote, or the single best-scored path.

**Tool calls and JSON replies** (:mod:`~uniscale_integrations.executor.replies`): when the call asks
for them, each finished path's reply is read and checked against its tools' or its reply's schema; a
path votes for its calls (tool names and canonical arguments) or its JSON value, and a path that fails
casts no vote. When every path failed and the call allowed a text answer (``tool_choice="auto"``), the
search runs once more, within what the budget leaves, for a text reply without tools.

Without a verifier, a step's score is the path's own confidence on it: the geometric
mean probability of the step's tokens under the model, which costs nothing extra.
CP = 1 decodes greedily (the variants bring the diversity); CP > 1 or BS > 1 samples.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from uniscale_integrations.answers import canonical_answer, stated_answer, voted_answer
from uniscale_integrations.backends.base import Generator, SamplingParams, release_memory
from uniscale_integrations.errors import ConfigSpaceError, ModelUnavailableError
from uniscale_integrations.events import Listener, PathPruned, StepScored, emit
from uniscale_integrations.executor.paths import CUT, Aggregation, PathStatus, PathTrace, aggregate, answer_score
from uniscale_integrations.executor.pooling import Grouping, MeaningPool
from uniscale_integrations.executor.prompts import last_user_index, question_variants, with_system_prompt
from uniscale_integrations.executor.replies import remaining, reply_instruction, text_request
from uniscale_integrations.executor.stopping import CHECK_TOKENS, EarlyStopping, vote_decided, vote_settled
from uniscale_integrations.executor.trace import SearchTrace
from uniscale_integrations.features.query import Message
from uniscale_integrations.features.space import Config
from uniscale_integrations.options import RunOptions
from uniscale_integrations.reward.budget import Budget, Cap
from uniscale_integrations.reward.cost import CostModel, Usage
from uniscale_integrations.tools import Asked, Reply, answered_calls, read_reply

if TYPE_CHECKING:
    from uniscale_integrations.backends.base import Row, Session
    from uniscale_integrations.executor.verifiers import Verdicts, Verifier

logger = logging.getLogger(__name__)


LARGE_PROMPT_CHARS = 20_000
"""After a search whose prompts held more characters, freed memory is handed back to the system."""


@dataclass
class Execution:
    """What running one configuration on one query produced and cost."""

    config: Config
    answer: str
    text: str
    score: float
    eflops: float
    usage: Usage
    """Tokens and work of generation and verification together."""
    seconds: float
    paths: list[PathTrace] = field(default_factory=list)
    verifier_eflops: float = 0.0
    pooling_eflops: float = 0.0
    """The embedding that pooled free-form replies by meaning (in ``eflops``, not in ``usage``)."""
    budget_exhausted: Cap | None = None
    """The cap that stopped the search early (the answer is then the best found so far)."""
    trace: SearchTrace | None = None
    """The search in short (paths, votes, tokens, why it stopped); ``None`` from executors that keep none."""
    reply: Reply | None = None
    """The winning path's reply read for tool calls or JSON, when the call asked for them."""


class Executor:
    """Runs configurations on generators, one per model name, and prices the work."""

    def __init__(
        self,
        generators: Mapping[str, Callable[[], Generator]],
        cost_model: CostModel,
        *,
        max_new_tokens: int = 128,
        token_budgets: Mapping[str, int] | None = None,
        temperature: float = 0.7,
        top_p: float = 0.95,
        greedy_first: bool | Mapping[str, bool] = False,
        stop_at_answer: bool = False,
        stop_on_loop: bool = False,
        system_prompt: str | None = None,
        instruction: str | None = None,
        verifier: Verifier | Mapping[str, Verifier] | None = None,
        early_stopping: EarlyStopping | None = None,
        aggregation: Aggregation = "weighted_vote",
        step_delimiter: str = "\n\n",
        verifier_timeout: float | None = None,
        meaning: MeaningPool | None = None,
    ):
        if aggregation not in ("weighted_vote", "majority", "best_score"):
            raise ValueError(f"unknown aggregation {aggregation!r}")
        if verifier_timeout is not None and not verifier_timeout > 0:
            raise ValueError(f"verifier_timeout must be > 0 seconds, got {verifier_timeout!r}")
        self._factories = dict(generators)
        self._generators: dict[str, Generator] = {}
        self.cost_model = cost_model
        self.max_new_tokens = max_new_tokens
        self.token_budgets = dict(token_budgets or {})
        """New tokens per path on the models that need another budget than ``max_new_tokens``."""
        self.temperature = temperature
        self.top_p = top_p
        self.greedy_first = greedy_first
        """Candidate 0 of each CP group decodes greedily (the others sample), on every model or on the
        models a mapping says; see :class:`SamplingParams`."""
        self.stop_at_answer = stop_at_answer
        self.stop_on_loop = stop_on_loop
        self.system_prompt = system_prompt
        self.instruction = instruction
        self.verifier = verifier
        """Scores the paths of every model, or of the models a mapping names (the others score
        themselves by their own confidence)."""
        self.early_stopping = early_stopping if early_stopping is not None else EarlyStopping()
        self.aggregation: Aggregation = aggregation
        self.step_delimiter = step_delimiter
        self.meaning = meaning
        """Pools the paths by what their replies mean (free-form answers) instead of by stated answer;
        the vote is then only known once every path ended, so it never stops a search early."""
        self.verifier_timeout = verifier_timeout
        """Seconds a verifier call may take; a late call counts as failed (the paths' own confidence
        stands in) and is left to finish in a daemon thread, which never holds up the process's exit."""

    def _call_verifier(self, verifier: Verifier, question: str, solutions: Sequence[str], partial: bool) -> Verdicts:
        """The verifier's verdicts, within :attr:`verifier_timeout` when one is set (else :class:`TimeoutError`)."""
        if self.verifier_timeout is None:
            return verifier.score(question, solutions, partial=partial)
        outcome: list[Verdicts | BaseException] = []

        def call() -> None:
            try:
                outcome.append(verifier.score(question, solutions, partial=partial))
            except BaseException as exc:  # handed to the caller's thread below
                outcome.append(exc)

        thread = threading.Thread(target=call, name=f"verifier-{verifier.name}", daemon=True)
        thread.start()
        thread.join(self.verifier_timeout)
        if not outcome:
            raise TimeoutError(f"no verdict within {self.verifier_timeout:g} s")
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]

    def generator(self, model: str) -> Generator:
        """The generator for ``model``, created on first use (:class:`ModelUnavailableError` if that fails)."""
        if model not in self._generators:
            try:
                factory = self._factories[model]
            except KeyError:
                raise ConfigSpaceError(f"no generator for model {model!r}") from None
            try:
                self._generators[model] = factory()
            except Exception as exc:  # loading fails in many ways (files, memory, transformers); keep the cause
                raise ModelUnavailableError(model, f"model {model!r} could not be loaded: {exc}") from exc
        return self._generators[model]

    def verifier_for(self, model: str) -> Verifier | None:
        """The verifier that scores ``model``'s paths (``None``: their own confidence)."""
        if isinstance(self.verifier, Mapping):
            return self.verifier.get(model)
        return self.verifier

    def greedy_first_on(self, model: str) -> bool:
        """Whether candidate 0 of a CP group on ``model`` is the greedy path."""
        if isinstance(self.greedy_first, Mapping):
            return bool(self.greedy_first.get(model, False))
        return self.greedy_first

    def token_budget(self, model: str) -> int:
        """New tokens a path on ``model`` may write, unless a call says otherwise."""
        return self.token_budgets.get(model, self.max_new_tokens)

    def prompt_tokens(
        self, messages: Sequence[Message], model: str, qp: int, options: RunOptions | None = None
    ) -> int | None:
        """Tokens of the longest of ``qp`` variants' prompts as :meth:`execute` renders them on ``model`` for a
        call with ``options`` (``None`` for a backend without a tokenizer: a remote server counts, and refuses,
        itself)."""
        generator = self.generator(model)
        tokenizer = generator.tokenizer
        if tokenizer is None:
            return None
        prompts = self._prompts(generator, messages, qp, (options or RunOptions()).asked())
        return max(len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"])

    def _prompts(self, generator: Generator, messages: Sequence[Message], qp: int, asked: Asked) -> list[str]:
        """The prompt of each of ``qp`` question variants: the chat (with the system prompt) through the
        template, the tools shown when the reply may call them, and the reply's opening written for the model."""
        if self.system_prompt is not None:
            messages = with_system_prompt(messages, self.system_prompt)
        tools = [tool.openai() for tool in asked.tools] if asked.calls_tools else None
        prefill, _ = asked.opening(generator.tool_format)
        variants = question_variants(messages, qp, reply_instruction(asked, self.instruction))
        return [(generator.render(chat, tools) if tools else generator.render(chat)) + prefill for chat in variants]

    def execute(
        self,
        messages: Sequence[Message],
        config: Config,
        options: RunOptions | None = None,
        listeners: Iterable[Listener] = (),
        **fields: Any,
    ) -> Execution:
        """Search ``config`` on the chat and return the pooled answer with its trace and cost.

        Of the call's ``options``, ``max_new_tokens`` and ``temperature`` override the executor's own
        (``temperature`` applies to sampled paths, CP > 1 or BS > 1, and 0 makes every path greedy),
        ``stop`` and ``seed`` go to the decoding, and under a ``budget`` the caps are checked every
        :data:`CHECK_TOKENS` decoding steps: once one is reached every path stops where it is and the
        best answer so far is returned. ``fields`` set options by keyword (``execute(chat, config, seed=3)``).
        """
        options = RunOptions.of(options, **fields)
        started = time.perf_counter()
        generator = self.generator(config.model)
        asked = options.asked(answered_calls(messages))
        fmt = generator.tool_format
        prompts = self._prompts(generator, messages, config.qp, asked)
        question = messages[last_user_index(messages)]["content"]
        prefill, begin_with = asked.opening(fmt)
        read = (lambda text: read_reply(prefill + text, asked, fmt)) if asked.structured else None
        search = _Search(self, generator, config, question, list(listeners), options.budget, started, read)
        sampled = config.cp > 1 or config.bs > 1
        params = SamplingParams(
            max_new_tokens=options.max_new_tokens or self.token_budget(config.model),
            temperature=(options.temperature if options.temperature is not None else self.temperature)
            if sampled
            else 0.0,
            top_p=self.top_p,
            stop=options.stop,
            seed=options.seed,
            greedy_first=self.greedy_first_on(config.model) and config.bs == 1,
            stop_at_answer=self.stop_at_answer and not asked.structured,
            stop_on_loop=self.stop_on_loop,
            forbid_first=fmt.openings if fmt is not None and asked.tools and not asked.structured else (),
            begin_with=begin_with,
        )
        try:
            paths, usage = search.run(prompts, params)
        finally:
            if sum(map(len, prompts)) > LARGE_PROMPT_CHARS:
                release_memory()
        generation_eflops = self.cost_model.eflops(generator.shape, usage)
        pooling = self._pool_by_meaning(paths) if self.meaning is not None else Grouping([])
        winner = aggregate(paths, self.aggregation)
        if winner is None:  # unreachable: every search ends with finished paths
            raise RuntimeError(f"{config}: the search finished no path")
        score = answer_score(paths, winner)
        reply = winner.reply
        text = reply.content if reply is not None else winner.text
        execution = Execution(
            config=config,
            answer=text if reply is not None or self.meaning is not None or winner.answer is None else winner.answer,
            text=text,
            score=score,
            eflops=generation_eflops + search.verifier_eflops + pooling.eflops,
            usage=usage + search.verifier_usage,
            seconds=time.perf_counter() - started,
            paths=paths,
            verifier_eflops=search.verifier_eflops,
            pooling_eflops=pooling.eflops,
            budget_exhausted=search.exhausted,
            trace=SearchTrace.of(paths, winner, usage, search.exhausted),
            reply=reply,
        )
        if winner.refused:
            return self._after_refusal(messages, config, options, listeners, execution)
        return execution

    def _after_refusal(
        self,
        messages: Sequence[Message],
        config: Config,
        options: RunOptions,
        listeners: Iterable[Listener],
        refused: Execution,
    ) -> Execution:
        """Every path's reply was refused: search once more for a text reply without tools when the call
        allows one and the budget has room, else return the best refused reply as text (with a warning)."""
        problem = refused.reply.problem if refused.reply is not None else None
        try:
            budget = remaining(
                options.budget,
                eflops=refused.eflops,
                tokens=refused.usage.completion_tokens,
                seconds=refused.seconds,
            )
        except ValueError:  # a cap is reached
            budget, retry = None, False
        else:
            retry = options.tool_choice == "auto" and options.response_format is None
        if not retry:
            logger.warning("%s: every reply was refused (%s); answering with the best one as text", config, problem)
            return refused
        logger.warning("%s: every reply was refused (%s); asking again for a text reply", config, problem)
        again = self.execute(
            text_request(messages), config, options.replace(tool_choice="none", budget=budget), listeners
        )
        offset = len(refused.paths)
        for path in again.paths:
            path.id += offset
            path.parent = None if path.parent is None else path.parent + offset
        return replace(
            again,
            eflops=again.eflops + refused.eflops,
            usage=again.usage + refused.usage,
            seconds=refused.seconds + again.seconds,
            paths=refused.paths + again.paths,
            verifier_eflops=again.verifier_eflops + refused.verifier_eflops,
            pooling_eflops=again.pooling_eflops + refused.pooling_eflops,
        )

    def _pool_by_meaning(self, paths: Sequence[PathTrace]) -> Grouping:
        """Give each finished path the key of its group of meaning (:class:`MeaningPool`)."""
        assert self.meaning is not None
        finished = [p for p in paths if p.finished]
        stated = [stated_answer(p.text) for p in finished]
        grouping = self.meaning.group(
            [p.text for p in finished], same=[canonical_answer(a) if a is not None else None for a in stated]
        )
        for path, label in zip(finished, grouping.labels, strict=True):
            path.group = f"meaning-{label}" if path.text.strip() else None
        return grouping


class _Search:
    """One search over the paths of one configuration (state of a single ``execute`` call)."""

    def __init__(
        self,
        executor: Executor,
        generator: Generator,
        config: Config,
        question: str,
        listeners: list[Listener],
        budget: Budget | None = None,
        started: float = 0.0,
        read: Callable[[str], Reply] | None = None,
    ):
        self.executor = executor
        self.generator = generator
        self.config = config
        self.question = question
        self.listeners = listeners
        self.stopping = executor.early_stopping
        self.paths: list[PathTrace] = []
        self.verifier_eflops = 0.0
        self.verifier_usage = Usage()
        self.best_step_score = 0.0
        self.budget = budget
        self.started = started
        self.exhausted: Cap | None = None
        self.vote_known = executor.meaning is None
        """Whether the vote can be tallied while paths run (not when they pool by meaning)."""
        self.read = read
        """Reads a finished path's text for tool calls or JSON (see :mod:`~uniscale_integrations.executor.replies`)."""

    def run(self, prompts: Sequence[str], params: SamplingParams) -> tuple[list[PathTrace], Usage]:
        config = self.config
        children = config.bs * config.bs if config.bs > 1 else 1
        stopping = self.stopping.enabled and config.paths > 1
        stepwise = config.bs > 1 or (stopping and self.stopping.pause_at_steps)
        session = self.generator.session(
            prompts,
            config.cp * children,
            replace(params, step_delimiter=self.executor.step_delimiter if stepwise else None),
        )
        rows = [
            self._new_path(variant=r.prompt_index, tree=r.prompt_index * config.cp + i // children)
            for i, r in enumerate(session.rows)
        ]
        if not stepwise:
            self._run_unpaused(session, rows, check=stopping and self.vote_known)
            return self.paths, session.usage
        beams = dict.fromkeys({p.tree for p in rows}, config.bs)
        while rows:
            self._advance(session)
            self._score(session, rows)
            keep = self._select_beams(rows, beams)
            keep = self._stop_early(rows, keep, beams)
            expansion = [i for i in keep for _ in range(config.bs if config.bs > 1 else 1)]
            rows = [rows[i] if k == 0 else self._child(rows[i]) for k, i in _with_copy_index(expansion)]
            session.select(expansion)
            session.resume()
        return self.paths, session.usage

    def _run_unpaused(self, session: Session, rows: list[PathTrace], *, check: bool) -> None:
        """BS = 1 without pauses: each path is scored once, when it ends; with ``check``, every
        :data:`CHECK_TOKENS` tokens the open paths stop once the vote is decided."""
        while rows:
            self._advance(session, CHECK_TOKENS if check else None)
            ended = [i for i, r in enumerate(session.rows) if r.status == "finished"]
            self._score(session, rows, ended)
            running = [i for i, r in enumerate(session.rows) if r.status != "finished"]
            if running and self.stopping.decided_vote and self.vote_known:
                v_sup = self.stopping.v_sup if self.stopping.v_sup is not None else self.best_step_score
                decided = vote_decided(self.paths, len(running), v_sup, self.executor.aggregation)
                if decided is None and self.stopping.settle is not None:
                    decided = vote_settled(self.paths, len(running), self.stopping.settle)
                if decided is not None:
                    for i in running:
                        self._prune(rows[i], "pruned", decided)
                    running = []
            rows = [rows[i] for i in running]
            session.select(running)

    def _advance(self, session: Session, tokens: int | None = None) -> None:
        """Decode to the next step end (or ``tokens`` more tokens); under a budget in stretches of
        :data:`CHECK_TOKENS`, finishing every path at a cap."""
        if self.budget is None:
            session.advance(tokens)
            return
        done = 0
        while any(r.status == "running" for r in session.rows) and (tokens is None or done < tokens):
            usage = session.usage
            spent = self.executor.cost_model.eflops(self.generator.shape, usage) + self.verifier_eflops
            elapsed = time.perf_counter() - self.started
            self.exhausted = self.budget.exceeded(eflops=spent, tokens=usage.completion_tokens, seconds=elapsed)
            if self.exhausted is not None:
                session.finish([i for i, r in enumerate(session.rows) if r.status != "finished"], "budget")
                return
            stretch = CHECK_TOKENS if tokens is None else min(CHECK_TOKENS, tokens - done)
            session.advance(stretch)
            done += stretch

    def _new_path(self, variant: int, tree: int, parent: PathTrace | None = None) -> PathTrace:
        path = PathTrace(id=len(self.paths), variant=variant, tree=tree, parent=parent.id if parent else None)
        if parent is not None:
            path.step_scores = list(parent.step_scores)
            path._logprob_mark = parent._logprob_mark
        self.paths.append(path)
        return path

    def _child(self, parent: PathTrace) -> PathTrace:
        return self._new_path(parent.variant, parent.tree, parent)

    def _score(self, session: Session, rows: list[PathTrace], indices: Sequence[int] | None = None) -> None:
        """Score the rows at ``indices`` (default: all), each at a step end or at its own end."""
        tokenizer = self.generator.tokenizer
        chosen = range(len(rows)) if indices is None else indices
        if not chosen:
            return
        session_rows = [session.rows[i] for i in chosen]
        paths = [rows[i] for i in chosen]
        final = [
            r.status == "finished" or len(p.step_scores) + 1 >= self.stopping.h_max
            for r, p in zip(session_rows, paths, strict=True)
        ]
        texts = [r.text(tokenizer) for r in session_rows]
        scores = self._verify(session_rows, paths, texts, final)
        for row, path, text, is_final, score in zip(session_rows, paths, texts, final, scores, strict=True):
            path.text = text.strip()
            path.completion_tokens = len(row.token_ids)
            path.step_scores.append(score)
            self.best_step_score = max(self.best_step_score, score)
            if is_final:
                path.final_score = score
                path.status = _finish_status(row)
                path.answer = voted_answer(path.text, cut=path.status in CUT)
                if self.read is not None:
                    path.reply = self.read(text)
            emit(
                self.listeners,
                StepScored(path.id, path.steps, score, path.mean_score, is_final, self._verifier_name),
            )

    @property
    def _verifier_name(self) -> str:
        verifier = self.executor.verifier_for(self.config.model)
        return verifier.name if verifier is not None else "self-confidence"

    def _verify(
        self, session_rows: Sequence[Row], paths: Sequence[PathTrace], texts: Sequence[str], final: Sequence[bool]
    ) -> list[float]:
        verifier = self.executor.verifier_for(self.config.model)
        if verifier is None:
            return [_step_confidence(row, path) for row, path in zip(session_rows, paths, strict=True)]
        scores = [0.0] * len(texts)
        for is_final in (False, True):
            chosen = [i for i, f in enumerate(final) if f == is_final]
            if not chosen:
                continue
            try:
                verdicts = self.executor._call_verifier(
                    verifier, self.question, [texts[i] for i in chosen], partial=not is_final
                )
            except Exception as exc:  # a failing verifier must degrade the scores, not crash the search
                logger.warning("verifier %r failed, using the paths' own confidence: %r", verifier.name, exc)
                for i in chosen:
                    scores[i] = _step_confidence(session_rows[i], paths[i])
                continue
            self.verifier_eflops += verdicts.eflops
            self.verifier_usage += verdicts.usage
            for i, score in zip(chosen, verdicts.scores, strict=True):
                scores[i] = score
        return scores

    def _select_beams(self, rows: list[PathTrace], beams: dict[int, int]) -> list[int]:
        """Per tree, the best ``beams[tree]`` paths by mean score; finished winners leave the beam."""
        keep: list[int] = []
        by_tree: dict[int, list[int]] = defaultdict(list)
        for i, path in enumerate(rows):
            by_tree[path.tree].append(i)
        for tree, members in by_tree.items():
            ranked = sorted(members, key=lambda i: -rows[i].mean_score)
            width = beams[tree]
            for rank, i in enumerate(ranked):
                path = rows[i]
                if rank >= width:
                    if not path.finished:
                        self._prune(path, "outranked", f"outside the top {width} beams of its tree")
                    else:
                        path.final_score = None  # an outranked finished path is not a candidate answer
                        path.status = "outranked"
                        path.reason = f"outside the top {width} beams of its tree"
                elif path.finished:
                    beams[tree] -= 1
                else:
                    keep.append(i)
        return keep

    def _stop_early(self, rows: list[PathTrace], keep: list[int], beams: dict[int, int]) -> list[int]:
        """The kept paths that early stopping lets go on; a pruned path gives up its tree's beam."""
        if not self.stopping.enabled:
            return keep
        finished = [p.final_score for p in self.paths if p.final_score is not None]
        if not finished:
            return keep
        best_final = max(finished)
        v_sup = self.stopping.v_sup if self.stopping.v_sup is not None else self.best_step_score
        survivors = []
        for i in keep:
            path = rows[i]
            bound = self.stopping.bound(path.steps, path.mean_score, v_sup)
            if self.stopping.bound_paths and bound < best_final:
                self._prune(
                    path,
                    "pruned",
                    f"bound {bound:.3f} < best finished {best_final:.3f} after step {path.steps}",
                    bound=bound,
                    best_final=best_final,
                )
                beams[path.tree] -= 1
            else:
                survivors.append(i)
        if survivors and self.stopping.decided_vote and self.vote_known:
            decided = vote_decided(self.paths, sum(beams.values()), v_sup, self.executor.aggregation)
            if decided is not None:
                for i in survivors:
                    self._prune(rows[i], "pruned", decided)
                return []
        return survivors

    def _prune(
        self,
        path: PathTrace,
        status: PathStatus,
        reason: str,
        *,
        bound: float | None = None,
        best_final: float | None = None,
    ) -> None:
        path.status = status
        path.reason = reason
        emit(self.listeners, PathPruned(path.id, path.steps, reason, bound, best_final))


def _with_copy_index(indices: Sequence[int]) -> list[tuple[int, int]]:
    """Each index with how many times it appeared before (0 = the original row)."""
    seen: dict[int, int] = defaultdict(int)
    out = []
    for i in indices:
        out.append((seen[i], i))
        seen[i] += 1
    return out


def _step_confidence(row: Row, path: PathTrace) -> float:
    """Geometric-mean token probability of the step just decoded."""
    logprob_sum, length = path._logprob_mark
    tokens = len(row.token_ids) - length
    path._logprob_mark = (row.logprob_sum, len(row.token_ids))
    if tokens <= 0:
        return 0.0
    return math.exp((row.logprob_sum - logprob_sum) / tokens)


def _finish_status(row: Row) -> PathStatus:
    if row.status != "finished":
        return "step_limit"
    if row.finish_reason == "budget":
        return "budget"
    if row.finish_reason == "loop":
        return "loop"
    return "length" if row.finish_reason == "length" else "finished"
