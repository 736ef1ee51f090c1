"""Path-aware early stopping on and off, side by side, on real reasoning-gym questions.

For each config (BS >= 2 and CP >= 4, on the S and M rungs) and each question, the same
search runs twice with the same seed — once with early stopping, once without — and the
accuracy, eFLOPs and whether the final answer changed are compared. Outcomes are appended
to a JSON-lines file as they come, so an interrupted run resumes where it stopped.

    python benchmarks/early_stopping.py --questions 60 --configs S/qp1/cp4/bs2,M/qp1/cp4/bs2
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import zlib
from collections.abc import Sequence
from pathlib import Path

from _results import write_section
from tqdm.auto import tqdm

from uniscale_integrations import Config, UniScale
from uniscale_integrations.bench.data import Question, mixed_stream
from uniscale_integrations.tts import STEP_BY_STEP, EarlyStopping

logger = logging.getLogger("benchmarks.early_stopping")
HERE = Path(__file__).resolve().parent
CAVEAT = (
    "Each question runs twice with the same seed, early stopping on and off; steps end at blank lines and "
    "the verifier is each path's own step confidence. Every row samples from its own random stream, so "
    "pruning a row does not change what the others sample; an answer changes only through pruning. "
    "A config with fewer questions than asked was stopped before the end (rerun the command to resume the log)."
)


def _engines(configs: Sequence[Config], args: argparse.Namespace) -> dict[bool, UniScale]:
    stopping = EarlyStopping(h_max=args.h_max, v_sup=args.v_sup)
    return {
        enabled: UniScale.from_defaults(
            models=sorted({c.model for c in configs}),
            qp=sorted({c.qp for c in configs}),
            cp=sorted({c.cp for c in configs}),
            bs=sorted({c.bs for c in configs}),
            instruction=STEP_BY_STEP,
            max_new_tokens=args.max_new_tokens,
            early_stopping=stopping if enabled else EarlyStopping(enabled=False, h_max=args.h_max),
            seed=args.seed,
        )
        for enabled in (True, False)
    }


def _load(path: Path) -> dict[tuple[str, str, bool], dict[str, object]]:
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["question"], r["config"], r["early_stopping"]): r for r in rows}


def collect(questions: Sequence[Question], configs: Sequence[Config], args: argparse.Namespace) -> None:
    done = _load(args.out)
    engines = _engines(configs, args)
    todo = [(q, c, es) for c in configs for q in questions for es in (True, False) if (q.id, str(c), es) not in done]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a", encoding="utf-8") as log:
        for question, config, enabled in tqdm(todo, desc="early stopping", unit="run"):
            seed = zlib.crc32(f"{question.id}/{config}".encode())
            result = engines[enabled].run(question.text, config=config, seed=seed)
            row = {
                "question": question.id,
                "tier": question.tier,
                "config": str(config),
                "early_stopping": enabled,
                "answer": result.answer,
                "correct": question.is_correct(result.answer),
                "eflops": result.eflops,
                "completion_tokens": result.usage.completion_tokens,
                "tokens_processed": result.usage.tokens_processed,
                "seconds": result.seconds,
                "pruned": sum(p.status == "pruned" for p in result.paths),
            }
            log.write(json.dumps(row) + "\n")
            log.flush()


def summarise(path: Path, configs: Sequence[Config]) -> str:
    rows = _load(path)
    lines = [
        "| config | questions | accuracy off | accuracy on | mean eFLOPs off | mean eFLOPs on | eFLOPs saved "
        "| answer unchanged | paths pruned / question |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for config in configs:
        pairs = [
            (rows[(q, str(config), True)], rows[(q, str(config), False)])
            for (q, c, es) in rows
            if c == str(config) and es and (q, c, False) in rows
        ]
        if not pairs:
            continue
        on = [p[0] for p in pairs]
        off = [p[1] for p in pairs]
        saved = 1 - sum(float(r["eflops"]) for r in on) / sum(float(r["eflops"]) for r in off)  # type: ignore[arg-type]
        unchanged = sum(a["answer"] == b["answer"] for a, b in pairs) / len(pairs)
        lines.append(
            f"| {config} | {len(pairs)} | {statistics.mean(bool(r['correct']) for r in off):.3f} "
            f"| {statistics.mean(bool(r['correct']) for r in on):.3f} "
            f"| {statistics.mean(float(r['eflops']) for r in off):.3g} "  # type: ignore[arg-type]
            f"| {statistics.mean(float(r['eflops']) for r in on):.3g} "  # type: ignore[arg-type]
            f"| {saved:.1%} | {unchanged:.1%} | {statistics.mean(int(r['pruned']) for r in on):.1f} |"  # type: ignore[call-overload]
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=60)
    parser.add_argument("--configs", default="S/qp1/cp4/bs2,M/qp1/cp4/bs2")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--h-max", type=int, default=8)
    parser.add_argument(
        "--v-sup",
        type=lambda v: None if v == "observed" else float(v),
        default=1.0,
        help="largest score a step can get, or 'observed' (the largest seen so far in the search)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "early_stopping.jsonl")
    parser.add_argument("--report-only", action="store_true", help="summarise what the log holds")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md", help="markdown file to update")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    configs = [Config.parse(c) for c in args.configs.split(",")]
    if not args.report_only:
        collect(mixed_stream(args.questions, seed=args.seed), configs, args)
    table = summarise(args.out, configs)
    print(table)
    v_sup = "observed" if args.v_sup is None else args.v_sup
    command = (
        f"python benchmarks/early_stopping.py --questions {args.questions} --configs {args.configs} "
        f"--max-new-tokens {args.max_new_tokens} --h-max {args.h_max} --v-sup {v_sup}"
    )
    write_section(args.results, "Early stopping", f"Command: `{command}`\n\n{table}\n\n{CAVEAT}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
