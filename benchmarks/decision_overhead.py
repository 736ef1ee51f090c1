"""Decision overhead: what UniScale adds to a query before generation starts, beside that generation.

Run from the repository root::

    python benchmarks/decision_overhead.py

Per query, after a warm-up, it times what ``UniScale.run`` does before it hands the query to the
executor, each stage through the engine's own public parts, on real components:

- **encode**: ``engine.features(query)``: the query encoder (the real MiniLM on the CPU, or its static
  distillation), the projection and the cheap features, and the joint features' two factors;
- **select**: ``engine.sync()`` (the store read that catches the policy up with the log), then
  ``policy.select`` and ``policy.estimates`` over the space, as ``UniScale._select`` calls them;
- **write**: ``engine.store.record(decision)``: the decision into a real SQLite file store (WAL,
  ``synchronous="full"``: one fsync per commit), the same write the engine makes per decision;

and, end to end, ``engine.run(query)`` with an executor that answers at once, so that everything
but generation is in it (the stages above, the event, the seed, the result). Feedback follows every
decision (the policy learns as it would in service); its time is reported apart, since it comes
after the answer, not before it. Queries are table v2's question texts; the space is table v2's
16 configurations (S, M x QP 1, 2 x CP 1, 2, 4, 8) with the default settings, once with each query encoder.

Beside it stands the generation it sits next to: one greedy S or M answer (config ``*/qp1/cp1/bs1``),
from the seconds recorded in the shipped table v2 (collected on this machine class, the shared
2-core CPU) and, with ``--generations N``, timed here on N of the table's questions with the real
executor (reasoned style, token budget = the table's median answer length for that rung).

The script replaces the "Decision overhead" section of ``benchmarks/RESULTS.md`` and leaves the rest
of that file as it is.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from _results import write_section

from uniscale_integrations import Config, UniScale
from uniscale_integrations.defaults import Defaults
from uniscale_integrations.events import Listener
from uniscale_integrations.executor.search import Execution
from uniscale_integrations.features.encoder import QueryEncoder
from uniscale_integrations.features.joint import ProductFeatures
from uniscale_integrations.features.minilm import embedding_model_path
from uniscale_integrations.features.query import Message
from uniscale_integrations.options import RunOptions
from uniscale_integrations.outcomes import OutcomeTable, default_table_path, load_table
from uniscale_integrations.reward.cost import Usage
from uniscale_integrations.store.records import Decision, new_decision_id, query_hash
from uniscale_integrations.store.sqlite import SQLiteStore

LOG = logging.getLogger("decision_overhead")
SECTION_TITLE = "Decision overhead"
COMMAND = "python benchmarks/decision_overhead.py"
TABLE = default_table_path()
GOAL_MS = 5.0
EMBEDDERS = ("minilm", "static")
"""The query encoders timed side by side (``Defaults.query_embedder``): MiniLM, and its static distillation
(the default)."""
STAGES = ("encode", "select", "write", "encode + select + write", "run (end to end)", "feedback")
BESIDE = (
    "MiniLM embed, linear layers packed (in encode)",
    "MiniLM embed, plain nn.Linear (before)",
    'write, synchronous="normal" (opt-in)',
)
GREEDY = ("S/qp1/cp1/bs1", "M/qp1/cp1/bs1")
T = TypeVar("T")


class InstantExecutor:
    """Answers at once: ``engine.run`` then costs everything but generation."""

    def execute(
        self, messages: Sequence[Message], config: Config, options: RunOptions, listeners: Iterable[Listener] = ()
    ) -> Execution:
        return Execution(config, "42", "Answer: 42", 0.5, 1e9, Usage(prompt_tokens=64, completion_tokens=64), 0.0)


@dataclass(frozen=True)
class Took:
    """One timed call: wall seconds, and CPU seconds of the process (all its threads)."""

    wall: float
    cpu: float

    def __add__(self, other: Took) -> Took:
        return Took(self.wall + other.wall, self.cpu + other.cpu)


@dataclass(frozen=True)
class Spread:
    """Milliseconds over the timed queries: wall time's median and 95th percentile, CPU time's median."""

    name: str
    p50: float
    p95: float
    cpu_p50: float
    n: int

    @classmethod
    def of(cls, name: str, took: Sequence[Took]) -> Spread:
        wall = np.asarray([t.wall for t in took]) * 1e3
        cpu = np.asarray([t.cpu for t in took]) * 1e3
        return cls(
            name, float(np.percentile(wall, 50)), float(np.percentile(wall, 95)), float(np.median(cpu)), len(took)
        )


def _timed(call: Callable[[], T]) -> tuple[Took, T]:
    wall, cpu = time.perf_counter(), time.process_time()
    value = call()
    return Took(time.perf_counter() - wall, time.process_time() - cpu), value


def measure(
    table: OutcomeTable, work: Path, warmup: int, queries: int
) -> tuple[dict[str, list[Spread]], list[Spread], Profile]:
    """Time the stages and the whole decision over ``queries`` question texts after ``warmup``, for each of
    :data:`EMBEDDERS` (one engine and one store each, the same query timed on both in turn).

    Beside the engines' stages, per query: MiniLM as loaded before its linear layers were packed
    (a plain ``SentenceTransformer``), the engine's packed MiniLM alone, and the same write into a store
    committing with ``synchronous="normal"`` (no fsync per commit; an option, not the default).
    """
    from sentence_transformers import SentenceTransformer

    plain = SentenceTransformer(embedding_model_path(), device="cpu", local_files_only=True)
    texts = [q.text for q in table.questions]
    if warmup + queries > len(texts):
        raise SystemExit(f"the table has {len(texts)} questions; ask for at most {len(texts) - warmup} queries")
    times: dict[str, dict[str, list[Took]]] = {e: {name: [] for name in STAGES} for e in EMBEDDERS}
    beside: dict[str, list[Took]] = {name: [] for name in BESIDE}
    with contextlib.ExitStack() as stack:
        engines = {}
        for name in EMBEDDERS:
            parts = Defaults(qp=(1, 2), cp=(1, 2, 4, 8), query_embedder=name).build()  # type: ignore[arg-type]
            kwargs = {"executor": InstantExecutor(), "store": str(work / f"{name}.db")}
            engines[name] = stack.enter_context(UniScale(**{**parts.engine_kwargs("cost-sensitive"), **kwargs}))
            LOG.info("%s: %d configs, context %d-d", name, len(engines[name].space), engines[name].encoder.context_dim)
        normal = stack.enter_context(contextlib.closing(SQLiteStore(work / "normal.db", synchronous="normal")))
        for i, text in enumerate(texts[: warmup + queries]):
            for name, engine in engines.items():
                measured = _decide(engine, text, i)
                if i >= warmup:
                    for stage, took in zip(STAGES, measured, strict=True):
                        times[name][stage].append(took)
            minilm = engines["minilm"]
            embed, _ = _timed(lambda text=text, minilm=minilm: minilm.encoder.embedder.embed([text]))
            before, _ = _timed(
                lambda text=text: plain.encode([text], normalize_embeddings=True, show_progress_bar=False)
            )
            decision = Decision(new_decision_id(), minilm.space[0], np.ones(3), 0.1, 0.5, query_hash(text), text)
            relaxed, _ = _timed(lambda decision=decision: normal.record(decision, max_pending=100_000))
            if i >= warmup:
                for stage, took in zip(BESIDE, (embed, before, relaxed), strict=True):
                    beside[stage].append(took)
        profiled = profile_encoder(engines["minilm"].encoder, texts[warmup : warmup + min(queries, 50)])
    spreads = {e: [Spread.of(stage, took) for stage, took in times[e].items()] for e in EMBEDDERS}
    return spreads, [Spread.of(stage, took) for stage, took in beside.items()], profiled


def _decide(engine: UniScale, text: str, i: int) -> tuple[Took, ...]:
    """One query through ``engine``'s decision, stage by stage, then end to end; feedback after each."""
    encode, features = _timed(lambda: engine.features(text))
    chosen, arm = _timed(lambda: _select(engine, features))
    decision = Decision(new_decision_id(), engine.space[arm], features.context, 0.1, 0.5, query_hash(text), text)
    write, _ = _timed(lambda: engine.store.record(decision, max_pending=100_000))
    engine.feedback(decision.id, correct=True)
    run, result = _timed(lambda: engine.run(text))
    feedback, _ = _timed(lambda: engine.feedback(result.decision_id, correct=i % 2 == 0))
    return encode, chosen, write, encode + chosen + write, run, feedback


def _select(engine: UniScale, features: ProductFeatures) -> int:
    """What ``UniScale._select`` does with no budget and every model allowed: catch up, choose, estimate."""
    engine.sync()
    arm = engine.policy.select(features)
    engine.policy.estimates(features)
    return arm


@dataclass(frozen=True)
class Profile:
    """Where the encoder's time goes: the share of its CPU time in linear layers, and the queries' tokens."""

    linear_share: float
    tokens_p50: float
    tokens_p95: float


def profile_encoder(encoder: QueryEncoder, texts: Sequence[str]) -> Profile:
    """``torch.profiler`` over ``encoder.encode_one`` of ``texts``: the linear layers' share of self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for text in texts:
            encoder.encode_one(text)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    linear = sum(e.self_cpu_time_total for e in events if "linear" in e.key or e.key in ("aten::addmm", "aten::mm"))
    tokenizer = encoder.embedder.sentence_transformer.tokenizer  # type: ignore[attr-defined]
    tokens = [len(ids) for ids in tokenizer(list(texts))["input_ids"]]
    return Profile(linear / total, float(np.percentile(tokens, 50)), float(np.percentile(tokens, 95)))


def table_generation(table: OutcomeTable) -> list[tuple[str, float, float, float]]:
    """Per greedy config: median and 95th-percentile seconds and median completion tokens in table v2."""
    names = [str(c) for c in table.configs]
    rows = []
    for config in GREEDY:
        a = names.index(config)
        seconds, tokens = table.array("seconds", True)[:, a], table.array("completion_tokens", True)[:, a]
        rows.append((config, float(np.median(seconds)), float(np.percentile(seconds, 95)), float(np.median(tokens))))
    return rows


def timed_generation(table: OutcomeTable, count: int) -> list[tuple[str, float, float, int]]:
    """Per greedy config: median seconds, median new tokens, and how many answers, timed here."""
    rows = []
    texts = [q.text for q in table.questions][:count]
    for config, _, _, typical in table_generation(table):
        parsed = Config.parse(config)
        executor = Defaults(models=(parsed.model,), style="reasoned", max_new_tokens=int(typical)).build().executor
        executor.execute([{"role": "user", "content": "What is 2 + 2?"}], parsed, RunOptions(seed=0))  # loads it
        seconds, tokens = [], []
        for text in texts:
            chat = [{"role": "user", "content": text}]
            took, execution = _timed(lambda chat=chat, c=parsed, e=executor: e.execute(chat, c, RunOptions(seed=0)))
            seconds.append(took.wall)
            tokens.append(execution.usage.completion_tokens)
            LOG.info("%s: %.2f s, %d tokens", config, took.wall, tokens[-1])
        rows.append((config, float(np.median(seconds)), float(np.median(tokens)), len(texts)))
    return rows


def _environment() -> str:
    import torch

    return (
        f"Python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}, "
        f"{os.cpu_count()} CPUs ({platform.machine()}), torch threads {torch.get_num_threads()}, "
        f"1-min load average {os.getloadavg()[0]:.1f} at the end of the run"
    )


def render_section(
    spreads: dict[str, Sequence[Spread]],
    beside: Sequence[Spread],
    profiled: Profile,
    recorded: Sequence[tuple[str, float, float, float]],
    timed: Sequence[tuple[str, float, float, int]],
    args: argparse.Namespace,
) -> str:
    def stage(embedder: str, name: str) -> Spread:
        return next(s for s in spreads[embedder] if s.name == name)

    decision = {e: stage(e, "encode + select + write") for e in EMBEDDERS}
    run = {e: stage(e, "run (end to end)") for e in EMBEDDERS}
    met = {e: decision[e].p50 <= GOAL_MS and run[e].p50 <= GOAL_MS for e in EMBEDDERS}
    lines = [
        f"Command: `{COMMAND} --queries {args.queries} --generations {args.generations}` "
        f"(written by that script; {time.strftime('%Y-%m-%d')}).",
        "",
        f"Environment: {_environment()}.",
        "",
        f"{args.queries} of table v2's questions after {args.warmup} warm-up ones; 16 configurations "
        '(S, M x QP 1, 2 x CP 1, 2, 4, 8); a real SQLite file store (WAL, synchronous="full"); feedback after '
        "every decision, so the policy learns as it goes. Two engines, each with its own store, take every query "
        'in turn: one with MiniLM on the CPU as the query encoder (`query_embedder="minilm"`), one with the '
        "default, its static distillation (a token table distilled from the same MiniLM, so a query embeds by a "
        "lookup and a mean). `run` is `engine.run(query)` with an executor that answers at once: all of the "
        "decision but generation. Wall time is the figure; CPU time (of the process, all its threads) is the work "
        "a stage costs whatever the load: on this shared machine wall time adds the waits for a core.",
        "",
        "| stage | MiniLM p50 (ms) | MiniLM p95 | MiniLM CPU p50 | static p50 (ms) | static p95 | static CPU p50 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in STAGES:
        cells = " | ".join(f"{s.p50:.2f} | {s.p95:.2f} | {s.cpu_p50:.2f}" for s in (stage(e, name) for e in EMBEDDERS))
        shown = f"**{name}**" if name in ("encode + select + write", "run (end to end)") else name
        note = " (after the answer; not in the decision)" if name == "feedback" else ""
        lines.append(f"| {shown}{note} | {cells} |")
    lines += [
        "",
        "Measured beside the engines on the same queries, for comparison:",
        "",
        "| beside | p50 (ms) | p95 (ms) | CPU time p50 (ms) |",
        "|---|---|---|---|",
        *(f"| {s.name} | {s.p50:.2f} | {s.p95:.2f} | {s.cpu_p50:.2f} |" for s in beside),
        "",
        "MiniLM's embedding as the engine runs it (its linear layers packed once for oneDNN, "
        "`features.encoder.pack_linear_layers`) against the model as sentence-transformers loads it, and the "
        'same decision written to a second store that commits with `synchronous="normal"` (WAL without an '
        "fsync per commit: it survives a crash of the process, not a power cut; pass "
        '`store=SQLiteStore(path, synchronous="normal")` to choose it).',
        "",
        "The generation it sits next to, one greedy answer (`*/qp1/cp1/bs1`), and MiniLM's overhead beside it:",
        "",
        "| config | source | median s | p95 s | median new tokens | MiniLM overhead p50 / generation |",
        "|---|---|---|---|---|---|",
    ]
    for config, median, p95, tokens in recorded:
        share = run["minilm"].p50 / (median * 1e3)
        lines.append(
            f"| {config} | table v2 (recorded seconds) | {median:.2f} | {p95:.2f} | {tokens:.0f} | {share:.2%} |"
        )
    for config, median, tokens, count in timed:
        share = run["minilm"].p50 / (median * 1e3)
        lines.append(
            f"| {config} | timed here, {count} answers (reasoned style) | {median:.2f} | - | {tokens:.0f} | "
            f"{share:.2%} |"
        )
    encode = stage("minilm", "encode")
    verdict = {
        e: f"{'met' if met[e] else 'NOT met'} ({decision[e].p50:.2f} ms, end to end {run[e].p50:.2f} ms)"
        for e in EMBEDDERS
    }
    lines += [
        "",
        "Table v2's seconds are each row's share of a batched session (8 samples per variant decoded "
        "together, the session's seconds shared out by processed tokens), so they understate the latency of "
        "one lone answer; the timed rows are lone greedy answers.",
        "",
        f"Goal: decision overhead (encoding + selection + the store's write) at p50 <= {GOAL_MS:.0f} ms on CPU. "
        f"With the default static encoder: {verdict['static']}. With MiniLM: {verdict['minilm']}.",
        "",
        f"Where the time goes: with MiniLM, encoding is {encode.p50 / decision['minilm'].p50:.0%} of the decision's "
        f"p50, and it is MiniLM's forward pass over the question ({profiled.tokens_p50:.0f} tokens at the median, "
        f"{profiled.tokens_p95:.0f} at p95): its linear layers take {profiled.linear_share:.0%} of the "
        "encoder's CPU time (torch.profiler), compute-bound fp32 GEMMs (about 21 MFLOPs a token). Packing them "
        "for oneDNN (above) is the fix that keeps the representation. The static encoder removes the pass: "
        "its table is distilled once per machine (about 10 s, then cached), and a query costs a tokenization and "
        "a mean. On table v2's tuning split its contexts scored as MiniLM's (\"Context study\" above), so it is "
        "the default since session 8; the two are different context representations (a store fitted with one "
        "refuses the other, or refits from kept queries: docs/store.md). "
        "Selection (LinUCB over the factored features, with the store read that catches the "
        "policy up) and the fsync'd write stay near a millisecond together. Not in these figures: with the real "
        "executor, `run` also renders and tokenizes the prompt per model to check context windows.",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=200, help="timed queries (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed queries first (default 20)")
    parser.add_argument("--generations", type=int, default=3, help="greedy answers timed per rung (0: none)")
    parser.add_argument("--table", type=Path, default=TABLE, help="the outcome table (default: shipped v2)")
    parser.add_argument(
        "--store-dir", type=Path, default=Path(__file__).resolve().parent, help="where the SQLite store is made"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=Path(__file__).resolve().parent / "RESULTS.md",
        help="markdown file whose 'Decision overhead' section is replaced",
    )
    parser.add_argument("--no-write", action="store_true", help="print the section, do not write it")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    table = load_table(args.table)
    gc.collect()
    with tempfile.TemporaryDirectory(dir=args.store_dir, prefix=".decision-overhead-") as work:
        spreads, beside, profiled = measure(table, Path(work), args.warmup, args.queries)
    for embedder, spread in spreads.items():
        for s in spread:
            LOG.info(
                "%-7s %-28s p50 %7.2f ms  p95 %7.2f ms  CPU p50 %7.2f ms", embedder, s.name, s.p50, s.p95, s.cpu_p50
            )
    timed = timed_generation(table, args.generations) if args.generations else []
    section = render_section(spreads, beside, profiled, table_generation(table), timed, args)
    print(section)
    if not args.no_write:
        write_section(args.results, SECTION_TITLE, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
