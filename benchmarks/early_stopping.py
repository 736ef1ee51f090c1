"""Path-aware early stopping on and off, side by side, on real reasoning-gym questions.

For each config (BS >= 2 and CP >= 4, on the S and M rungs) and each question, the same
search runs twice with the same seed — once with early stopping, once without — and the
accuracy, eFLOPs and whether the final answer changed are compared. Outcomes are appended
to a JSON-lines file as they come (with each path's status, steps, tokens, answer and
score), so an interrupted run resumes where it stopped. ``--rules`` picks early stopping's
rules (both by default, or the path bound or the decided vote alone); the report puts every
set of rules the log holds side by side.

    python benchmarks/early_stopping.py --questions 60 --configs S/qp1/cp4/bs2,M/qp1/cp4/bs2
    python benchmarks/early_stopping.py --questions 60 --rules vote --runs on
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import zlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _results import write_section
from tqdm.auto import tqdm

from uniscale_integrations import Config, UniScale
from uniscale_integrations.bench.data import Question, mixed_stream
from uniscale_integrations.executor import STEP_BY_STEP, EarlyStopping

logger = logging.getLogger("benchmarks.early_stopping")
HERE = Path(__file__).resolve().parent
CAVEAT = (
    "Each question runs with the same seed with early stopping off and on; steps end at blank lines and the "
    "verifier is each path's own step confidence. Rules: `paths` is method.md's bound, path by path (a pruned "
    "beam leaves its tree); `vote` stops every path once the weighted vote's winner can no longer change "
    "(exact given v_sup). Every row samples from its own random stream, so stopping a row does not change "
    "what the others sample; an answer changes only through stopping (or, rarely, through the last bits of "
    "a batched matrix product on fewer rows). The v1 rows ran in session 2 under the rule of the day and are "
    "compared with today's off runs. A row with fewer questions than asked was stopped before the end (rerun "
    "its command to resume the log)."
)


def _engines(configs: Sequence[Config], args: argparse.Namespace) -> dict[bool, UniScale]:
    stopping = EarlyStopping(
        h_max=args.h_max, v_sup=args.v_sup, bound_paths="paths" in args.rules, decided_vote="vote" in args.rules
    )
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


RULE = 2
"""Version of the executor's pruning rules; a log row made under another version is not reused.

1: the path bound only, and a pruned beam's slot went to the next-best sibling (session 2's runs,
kept in the report for comparison); 2: a pruned beam leaves its tree for good, and the decided vote."""

RULES = ("paths,vote", "vote", "paths")
"""Early stopping's rules: the paper's path bound and the decided vote (the default), or one alone."""


def _stopping(args: argparse.Namespace, rules: str | None, version: int = RULE) -> str:
    """The key of one side of the comparison in the log: early stopping off (``rules`` None; ``h_max``
    still limits the steps) or on with ``rules`` under the rules' ``version``."""
    if rules is None:
        return f"h_max={args.h_max},off"
    v_sup = "observed" if args.v_sup is None else args.v_sup
    only = "" if rules == RULES[0] or version == 1 else f",only={rules}"
    return f"h_max={args.h_max},v_sup={v_sup},rule={version}{only}"


def _load(path: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["question"], r["config"], r["stopping"]): r for r in rows}


def collect(questions: Sequence[Question], configs: Sequence[Config], args: argparse.Namespace) -> None:
    done = _load(args.out)
    engines = _engines(configs, args)
    sides = [es for es in (True, False) if ("on" if es else "off") in args.runs]
    todo = [
        (q, c, es)
        for c in configs
        for q in questions
        for es in sides
        if (q.id, str(c), _stopping(args, args.rules if es else None)) not in done
    ]
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
                "stopping": _stopping(args, args.rules if enabled else None),
                "answer": result.answer,
                "correct": question.is_correct(result.answer),
                "eflops": result.eflops,
                "completion_tokens": result.usage.completion_tokens,
                "tokens_processed": result.usage.tokens_processed,
                "seconds": result.seconds,
                "pruned": sum(p.status == "pruned" for p in result.paths),
                "paths": [[p.status, p.steps, p.completion_tokens, p.answer, p.final_score] for p in result.paths],
            }
            log.write(json.dumps(row) + "\n")
            log.flush()


def summarise(path: Path, configs: Sequence[Config], args: argparse.Namespace) -> str:
    """One row per config and early-stopping rules that the log holds, against early stopping off."""
    rows = _load(path)
    off = _stopping(args, None)
    lines = [
        "| config | rules | questions | accuracy off | accuracy on | mean eFLOPs off | mean eFLOPs on "
        "| eFLOPs saved | answer unchanged | paths stopped / question |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for config in configs:
        for version, rules in [(RULE, r) for r in RULES] + [(1, "paths")]:
            stopping = _stopping(args, rules, version)
            pairs = [
                (rows[(q, c, stopping)], rows[(q, c, off)])
                for (q, c, side) in rows
                if c == str(config) and side == stopping and (q, c, off) in rows
            ]
            if not pairs:
                continue
            on_runs = [p[0] for p in pairs]
            off_runs = [p[1] for p in pairs]
            saved = 1 - sum(float(r["eflops"]) for r in on_runs) / sum(float(r["eflops"]) for r in off_runs)
            unchanged = sum(a["answer"] == b["answer"] for a, b in pairs) / len(pairs)
            label = rules if version == RULE else f"{rules} (v{version})"
            lines.append(
                f"| {config} | {label} | {len(pairs)} | {statistics.mean(bool(r['correct']) for r in off_runs):.3f} "
                f"| {statistics.mean(bool(r['correct']) for r in on_runs):.3f} "
                f"| {statistics.mean(float(r['eflops']) for r in off_runs):.3g} "
                f"| {statistics.mean(float(r['eflops']) for r in on_runs):.3g} "
                f"| {saved:.1%} | {unchanged:.1%} | {statistics.mean(int(r['pruned']) for r in on_runs):.1f} |"
            )
    return "\n".join(lines)


def anatomy(path: Path, configs: Sequence[Config], args: argparse.Namespace) -> str:
    """What the searches without early stopping looked like (from the paths logged): how split the
    vote was, how many finalists ran into the token cap, how many paths beam search outranked."""
    rows = _load(path)
    off = _stopping(args, None)
    lines = []
    for config in configs:
        traced = [r for (q, c, side), r in rows.items() if c == str(config) and side == off and "paths" in r]
        if not traced:
            continue
        leading, unanimous, capped, finalists, outranked, paths = [], 0, 0, 0, 0, 0
        for row in traced:
            trace = row["paths"]  # [status, steps, tokens, answer, final score] per path
            final = [p for p in trace if p[4] is not None]
            votes = Counter(p[3] for p in final)
            share = votes.most_common(1)[0][1] / len(final) if final else 0.0
            leading.append(share)
            unanimous += share == 1.0
            capped += sum(p[0] == "length" for p in final)
            finalists += len(final)
            outranked += sum(p[0] == "outranked" for p in trace)
            paths += len(trace)
        lines.append(
            f"- {config}, early stopping off ({len(traced)} questions traced): the finalists agree on one answer "
            f"on {unanimous} questions; the leading answer has {statistics.mean(leading):.0%} of the finalists on "
            f"average; {capped / max(finalists, 1):.0%} of the finalists end at the token cap (all at about the same "
            f"time); {outranked / max(paths, 1):.0%} of the paths are beam children outranked at a step end."
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
    parser.add_argument("--runs", default="on,off", help="which sides to run: on, off or both (on,off)")
    parser.add_argument(
        "--rules",
        default="paths,vote",
        choices=["paths,vote", "paths", "vote"],
        help="early stopping's rules: the paper's path bound, the decided vote, or both",
    )
    parser.add_argument("--report-only", action="store_true", help="summarise what the log holds")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md", help="markdown file to update")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    configs = [Config.parse(c) for c in args.configs.split(",")]
    if not args.report_only:
        collect(mixed_stream(args.questions, seed=args.seed), configs, args)
    table = summarise(args.out, configs, args)
    print(table)
    shape = anatomy(args.out, configs, args)
    print(shape)
    v_sup = "observed" if args.v_sup is None else args.v_sup
    command = (
        f"python benchmarks/early_stopping.py --questions {args.questions} --configs {args.configs} "
        f"--max-new-tokens {args.max_new_tokens} --h-max {args.h_max} --v-sup {v_sup} --rules RULES"
    )
    write_section(
        args.results,
        "Early stopping",
        f"Command: `{command}`, once per row's rules (each run resumes the log)\n\n{table}\n\n{CAVEAT}\n\n"
        f"What the searches looked like:\n\n{shape}\n",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
