"""Overhead of the framework adapters over a direct ``engine.run``, same queries, same run.

Run from the repository root::

    python benchmarks/adapter_overhead.py            # S model, 8 queries x 3 rounds

Every query runs through ``engine.run``, ``ChatUniScale.invoke`` (LangChain) and
``UniScaleLLM.complete`` (LlamaIndex) with the same
forced configuration and the same seed, so both do the same generation; the calls are
interleaved query by query, in an order rotated from query to query (so that machine noise and
any first-in-line effect hit every path alike). The
overhead is the median over calls of the paired ratio (adapter / direct of the same query
and seed) minus one, which a noisy neighbour stealing the CPU for one call cannot swing;
the ratio of total wall times and the difference of medians are reported beside it.
Replaces the "Adapter overhead" section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from _results import write_section

from uniscale_integrations import Config, UniScale
from uniscale_integrations.langchain import ChatUniScale
from uniscale_integrations.llama_index import UniScaleLLM

HERE = Path(__file__).resolve().parent
QUERIES = (
    "What is 12 + 30?",
    "Name a primary colour.",
    "What is the capital of France?",
    "Give a synonym of quick.",
    "How many legs does a spider have?",
    "What is 9 times 7?",
    "Say hello in Spanish.",
    "What comes after Tuesday?",
)


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def measure(engine: UniScale, config: Config, queries: Sequence[str], rounds: int) -> dict[str, list[float]]:
    """Seconds per call of the direct engine and of each adapter, interleaved query by query."""
    chat = ChatUniScale(engine=engine)
    llm = UniScaleLLM(engine=engine)
    calls: dict[str, Callable[[str, int], object]] = {
        "engine.run": lambda q, seed: engine.run(q, config=config, seed=seed),
        "ChatUniScale.invoke": lambda q, seed: chat.invoke(q, force_config=str(config), seed=seed),
        "UniScaleLLM.complete": lambda q, seed: llm.complete(q, config=str(config), seed=seed),
    }
    times: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():  # warm-up: model load, encoder load, first-call costs
        call(queries[0], 0)
    for round_index in range(rounds):
        for i, query in enumerate(queries):
            seed = round_index * len(queries) + i
            names = list(calls)
            shift = seed % len(names)  # rotate the order, so no path always runs first
            for name in names[shift:] + names[:shift]:
                call = calls[name]
                times[name].append(_timed(lambda call=call, q=query, s=seed: call(q, s)))  # type: ignore[misc]
    return times


def report(times: dict[str, list[float]], config: Config, args: argparse.Namespace) -> str:
    direct = times["engine.run"]
    command = f"python benchmarks/adapter_overhead.py --rounds {args.rounds} --max-new-tokens {args.max_new_tokens}"
    lines = [
        f"Command: `{command}`",
        "",
        f"Config {config}, {len(direct)} calls each, interleaved, same seeds.",
        "",
        "| path | median s/call | overhead: median paired ratio - 1 | ratio of totals - 1 | difference of medians |",
        "|---|---|---|---|---|",
    ]
    for name, values in times.items():
        paired = statistics.median(a / b for a, b in zip(values, direct, strict=True)) - 1
        totals = sum(values) / sum(direct) - 1
        difference = statistics.median(values) - statistics.median(direct)
        lines.append(
            f"| {name} | {statistics.median(values):.3f} | {paired:+.2%} | {totals:+.2%} | {difference * 1e3:+.1f} ms |"
        )
    lines += ["", "Goal: <= 2% overhead."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--config", default="S/qp1/cp2/bs1")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)
    config = Config.parse(args.config)
    engine = UniScale.from_defaults(
        models=(config.model,), qp=(config.qp,), cp=(config.cp,), bs=(config.bs,), max_new_tokens=args.max_new_tokens
    )
    table = report(measure(engine, config, QUERIES, args.rounds), config, args)
    print(table)
    write_section(args.results, "Adapter overhead", table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
