"""The ``uniscale`` command: ``ask`` one question, ``learn`` online over a question stream, or ``bench``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from uniscale_integrations.engine import Result, UniScale
from uniscale_integrations.errors import UniScaleError
from uniscale_integrations.executor.styles import STYLES
from uniscale_integrations.features.embedders import DEFAULT_EMBEDDER, EMBEDDER_HELP, EMBEDDER_NAMES
from uniscale_integrations.features.space import Config

logger = logging.getLogger("uniscale_integrations.cli")


def _engine(args: argparse.Namespace) -> UniScale:
    models = args.models.split(",") if args.models else None
    return UniScale.from_defaults(
        args.mode,
        models=models,
        style=args.style,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        store=args.store,
        query_embedder=args.query_embedder,
    )


def _describe(result: Result) -> str:
    usage = result.usage
    lines = [
        f"answer:  {result.answer}",
        f"config:  {result.config}  (model, question variants, candidates, beam size)",
        f"cost:    {result.eflops:.3g} eFLOPs = {result.cost:.1%} of the dearest config; "
        f"{usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens; {result.seconds:.1f} s",
        f"score:   {result.score:.2f} (verifier score of the answer; {len(result.paths)} paths searched)",
    ]
    if result.estimate is not None:
        e = result.estimate
        lines.append(
            f"why:     highest upper confidence bound: expected reward {e.mean:.3f} + exploration "
            f"{e.ucb - e.mean:.3f} = {e.ucb:.3f}"
        )
    lines.append(f"decision id: {result.decision_id}")
    return "\n".join(lines)


def cmd_ask(args: argparse.Namespace) -> int:
    config = Config.parse(args.config) if args.config else None
    with _engine(args) as engine:
        if args.explain:
            print(engine.explain(args.question))
            print()
        result = engine.run(args.question, config=config)
    print(_describe(result))
    if args.explain and result.trace is not None:
        print()
        print(result.trace)
    return 0


@dataclass
class _Step:
    tier: str
    config: str
    correct: bool
    eflops: float
    reward: float
    seconds: float


def _summarise(steps: Sequence[_Step], windows: int = 4) -> str:
    n = len(steps)
    size = max(1, -(-n // windows))
    lines = [f"{'queries':<12} {'accuracy':>9} {'mean eFLOPs':>12} {'reward':>8}  most chosen config"]
    for start in range(0, n, size):
        chunk = steps[start : start + size]
        top, count = Counter(s.config for s in chunk).most_common(1)[0]
        lines.append(
            f"{start + 1:>4}-{start + len(chunk):<7} {sum(s.correct for s in chunk) / len(chunk):>9.2f} "
            f"{sum(s.eflops for s in chunk) / len(chunk):>12.3g} "
            f"{sum(s.reward for s in chunk) / len(chunk):>8.3f}  {top} ({count}/{len(chunk)})"
        )
    lines.append("")
    lines.append("configs chosen per tier in the second half of the stream:")
    late = steps[n // 2 :]
    for tier in sorted({s.tier for s in steps}):
        counts = Counter(s.config for s in late if s.tier == tier)
        accuracy = [s.correct for s in steps if s.tier == tier]
        described = ", ".join(f"{c} x{k}" for c, k in counts.most_common()) or "-"
        lines.append(f"  {tier:<16} accuracy {sum(accuracy) / len(accuracy):.2f}  {described}")
    return "\n".join(lines)


def cmd_learn(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from uniscale_integrations.bench.data import mixed_stream

    engine = _engine(args)
    stream = mixed_stream(args.questions, seed=args.seed)
    print(f"closed loop over {len(stream)} reasoning-gym questions, {len(engine.space)} configs, mode {args.mode}")
    steps: list[_Step] = []
    log = open(args.log, "w", encoding="utf-8") if args.log else None  # noqa: SIM115
    try:
        progress = tqdm(stream, desc="learning", unit="q")
        for question in progress:
            result = engine.run(question.text)
            correct = question.is_correct(result.answer)
            reward = engine.feedback(result.decision_id, correct=correct)
            step = _Step(question.tier, str(result.config), correct, result.eflops, reward, result.seconds)
            steps.append(step)
            if log is not None:
                log.write(json.dumps({"id": question.id, "answer": result.answer, **step.__dict__}) + "\n")
            progress.set_postfix(
                acc=f"{sum(s.correct for s in steps) / len(steps):.2f}",
                reward=f"{sum(s.reward for s in steps) / len(steps):.3f}",
                config=step.config,
            )
    finally:
        engine.close()
        if log is not None:
            log.close()
    print()
    print(_summarise(steps))
    if args.margin is not None:
        _print_margin(args.mode, args.seed, args.margin)
    return 0


def _print_margin(mode: str, seed: int, png: Path) -> None:
    """What UniScale earns over the best single config and a cascade, replayed on the shipped table."""
    from uniscale_integrations.bench.margin import margin, write_margin

    print()
    result = margin(mode, seed=seed)  # type: ignore[arg-type]
    print(result)
    print(f"plot: {write_margin(result, png)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="uniscale", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--mode", choices=("cost-sensitive", "quality-first"), default="cost-sensitive")
    common.add_argument("--models", help="comma-separated ladder rungs (default: S,M)")
    common.add_argument("--max-new-tokens", type=int, help="token budget per path (default: per style)")
    common.add_argument("--seed", type=int, default=0)
    common.add_argument(
        "--query-embedder",
        choices=EMBEDDER_NAMES,
        default=DEFAULT_EMBEDDER,
        help=EMBEDDER_HELP,
    )
    common.add_argument(
        "--store", type=Path, help="the policy store (an SQLite file) to learn from and into (default: in memory)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    ask = sub.add_parser("ask", parents=[common], help="answer one question and say how")
    ask.add_argument("question")
    ask.add_argument("--style", choices=sorted(STYLES), default="plain", help="instruction added to the question")
    ask.add_argument("--config", help="force a config, e.g. M/qp1/cp4/bs1")
    ask.add_argument(
        "--explain",
        action="store_true",
        help="before the run, every config's estimate and the context features behind the choice; "
        "after it, the search's path trace",
    )
    ask.set_defaults(func=cmd_ask)

    learn = sub.add_parser("learn", parents=[common], help="run the closed loop over a question stream")
    learn.add_argument("--questions", type=int, default=120)
    learn.add_argument("--style", choices=sorted(STYLES), default="brief", help="instruction added to each question")
    learn.add_argument("--log", type=Path, help="write one JSON line per query here")
    learn.add_argument(
        "--margin",
        type=Path,
        default=Path("runs/demo/margin.png"),
        help="after the loop, replay the shipped table to show UniScale's margin over the best single config and "
        "a cascade, and plot it here",
    )
    learn.add_argument("--no-margin", dest="margin", action="store_const", const=None, help="skip the margin")
    learn.set_defaults(func=cmd_learn)

    from uniscale_integrations.bench import command as bench
    from uniscale_integrations.serve import command as serve

    for name, module, summary, description in (
        (
            "bench",
            bench,
            "the benchmark: replay every policy over an outcome table, report goals, frontier and plots",
            "Replays UniScale and its baselines over the shipped outcome table (or --table) and writes JSON/CSV/"
            "Markdown/PNG results; --collect regenerates the table with real models; --live N runs the real loop.",
        ),
        (
            "serve",
            serve,
            "an OpenAI-compatible HTTP server: /v1/chat/completions, /v1/models, /v1/feedback",
            "Serves one UniScale engine per mode as OpenAI models (uniscale-cost-sensitive, "
            "uniscale-quality-first); needs the serve extra. See docs/serve.md.",
        ),
    ):
        command = sub.add_parser(name, help=summary, description=description)
        module.add_arguments(command)
        command.set_defaults(func=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args))
    except UniScaleError as error:
        print(f"uniscale: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
