"""``uniscale bench``: collect (optional), replay, report, and (optional) the live closed loop."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from uniscale_integrations.bench.evaluate import MODES, BenchSettings

if TYPE_CHECKING:
    from uniscale_integrations.bench.collect import CollectPlan

logger = logging.getLogger(__name__)

DEFAULT_OUT = Path("runs") / "bench"
DEFAULT_WORK = DEFAULT_OUT / "collect" / "work.jsonl"


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def _positives(name: str) -> Callable[[str], tuple[float, ...]]:
    """An argparse type: comma-separated finite numbers > 0, named ``name`` in its errors."""

    def parse(text: str) -> tuple[float, ...]:
        try:
            values = tuple(float(v) for v in text.split(","))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{name} must be comma-separated numbers, got {text!r}") from exc
        if not all(math.isfinite(v) and v > 0 for v in values):
            raise argparse.ArgumentTypeError(f"{name} must be finite and > 0, got {text!r}")
        return values

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``bench`` subcommand's options."""
    parser.add_argument(
        "--table", type=Path, help="outcome table to replay (default: the one shipped with the package)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default: runs/bench)")
    parser.add_argument("--seeds", type=int, default=5, help="streams (seeds 0..N-1; default 5)")
    parser.add_argument("--queries", type=int, default=1000, help="queries per stream (default 1000)")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated modes (default: both)")
    parser.add_argument(
        "--shrinkages",
        type=_positives("shrinkages"),
        default=BenchSettings.shrinkages,
        help="interaction shrinkages tuned with alpha (default 1,4,16,64; 1 alone: plain ridge, 4x quicker)",
    )
    parser.add_argument(
        "--prior-weights",
        type=_positives("prior weights"),
        default=BenchSettings.prior_weights,
        help="how many live observations a prior outcome counts as, chosen with the prior's alpha, e.g. 1,0.5,0.25 "
        f"(default {','.join(f'{w:g}' for w in BenchSettings.prior_weights)})",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    collect = parser.add_argument_group("collection (--collect): real models, resumable")
    collect.add_argument("--collect", action="store_true", help="collect the outcome table first, then replay it")
    collect.add_argument("--work", type=Path, default=DEFAULT_WORK, help="collection work file (resumes from it)")
    collect.add_argument(
        "--table-out", type=Path, help="where the collected table goes (default: table.jsonl.gz beside --work)"
    )
    collect.add_argument("--questions", type=int, help="questions in the stream (default 40)")
    collect.add_argument("--models", help="comma-separated ladder rungs (default S,M)")
    collect.add_argument("--qp", type=_ints, help="question variants, e.g. 1,2 (default 1)")
    collect.add_argument("--cp", type=_ints, help="candidates, e.g. 1,4 (default 1,4)")
    collect.add_argument("--bs", type=_ints, help="beam sizes (default 1)")
    collect.add_argument(
        "--style", choices=("plain", "brief", "step-by-step"), help="answer style (default step-by-step)"
    )
    collect.add_argument("--max-new-tokens", type=int, help="token budget per path (default 128)")
    collect.add_argument("--es-off-questions", type=int, help="test questions also run without early stopping (10)")
    collect.add_argument("--tune-share", type=float, help="share of each tier kept for tuning (default 0.25)")
    collect.add_argument("--collect-seed", type=int, help="seed of the question stream (default 0)")
    live = parser.add_argument_group("live closed loop (--live N): real models")
    live.add_argument("--live", type=int, metavar="N", help="run the real loop on N test questions and compare")


def _plan(args: argparse.Namespace) -> CollectPlan:
    from uniscale_integrations.bench.collect import CollectPlan

    overrides = {
        "questions": args.questions,
        "models": tuple(args.models.split(",")) if args.models else None,
        "qp": args.qp,
        "cp": args.cp,
        "bs": args.bs,
        "style": args.style,
        "max_new_tokens": args.max_new_tokens,
        "es_off_questions": args.es_off_questions,
        "tune_share": args.tune_share,
        "seed": args.collect_seed,
    }
    return CollectPlan(**{k: v for k, v in overrides.items() if v is not None})


def run(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    """Run the command; prints the Markdown summary and writes the results folder."""
    from tqdm.auto import tqdm

    from uniscale_integrations.bench.evaluate import evaluate, planned_runs
    from uniscale_integrations.bench.report import write_results
    from uniscale_integrations.outcomes import default_table_path, load_table

    modes = tuple(m.strip() for m in args.modes.split(","))
    unknown = [m for m in modes if m not in MODES]
    if unknown or args.seeds < 1 or args.queries < 1:
        print(f"uniscale bench: modes must be among {MODES}, seeds and queries positive", file=sys.stderr)
        return 2
    table_path = args.table or default_table_path()
    if args.collect:
        from uniscale_integrations.bench.collect import build_table, collect

        plan = _plan(args)
        print(f"collecting {plan} into {args.work} (resumable)")
        collect(plan, args.work, progress=not args.quiet)
        table_path = args.table_out or args.table or args.work.with_name("table.jsonl.gz")
        build_table(args.work, table_path)
        print(f"wrote the outcome table {table_path}")
    table = load_table(table_path)
    settings = BenchSettings(
        seeds=tuple(range(args.seeds)),
        length=args.queries,
        modes=modes,
        shrinkages=args.shrinkages,
        prior_weights=args.prior_weights,
    )
    started = time.perf_counter()
    with tqdm(total=planned_runs(table, settings), desc="replay", unit="run", disable=args.quiet) as bar:
        results = evaluate(table, settings, progress=bar.update)
    results.info["replay_seconds"] = round(time.perf_counter() - started, 1)
    results.info["table"] = str(table_path)
    command = " ".join(["uniscale", *(argv if argv is not None else sys.argv[1:])])
    markdown = write_results(results, args.out, plots=not args.no_plots, command=command)
    print(markdown)
    print(f"results written to {args.out}/ (replay {results.info['replay_seconds']} s)")
    if args.live:
        from uniscale_integrations.bench.live import live

        mode = modes[0]
        outcome = live(table, args.live, mode=mode, bandit=results.modes[mode].bandit, progress=not args.quiet)
        text = outcome.markdown()
        (args.out / "live.md").write_text(text, encoding="utf-8")
        (args.out / "live.json").write_text(json.dumps(outcome.summary(), indent=1) + "\n", encoding="utf-8")
        print(text)
    return 0
