"""Beam size 2 beside table v2's BS = 1 configurations, on as many test questions as time allows.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/beam_study.py --questions 30      # resumable
    python benchmarks/beam_study.py --report-only

Beam search cannot be derived from samples (its beams are chosen at step ends by their scores),
so each BS = 2 configuration runs through the executor that table v2's engine builds (the same
prompts, sampling, 768-token cap, loop stop and seed per question), with early stopping off and
on (BS > 1 always pauses at step ends: the paper's path bound and the decided vote apply there).
The report sets each beside the BS = 1 configurations of the same questions from the table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import mean

import numpy as np
from _results import write_section
from tqdm.auto import tqdm

from uniscale_integrations.bench.data import question_seed
from uniscale_integrations.bench.samples import SamplePlan
from uniscale_integrations.features.space import Config, ConfigSpace
from uniscale_integrations.options import RunOptions
from uniscale_integrations.outcomes import OutcomeTable, QuestionRow, default_table_path, load_table

HERE = Path(__file__).resolve().parent
WORK = HERE / "results" / "beam_study.jsonl"
BEAMS = (Config("S", bs=2), Config("M", bs=2))
BESIDE = ("S/qp1/cp1/bs1", "S/qp1/cp4/bs1", "M/qp1/cp1/bs1", "M/qp1/cp4/bs1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=30, help="test questions, in the table's order")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    table = load_table(default_table_path()).subset("test")
    questions = list(table.questions[: args.questions])
    done = _read()
    if not args.report_only:
        _run(table, questions, done)
    _report(table, done, write=not args.no_write)


def _read() -> dict[tuple[str, str, bool], dict]:
    if not WORK.exists():
        return {}
    rows = [json.loads(line) for line in WORK.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {(r["question"], r["config"], r["early_stopping"]): r for r in rows}


def _run(table: OutcomeTable, questions: list[QuestionRow], done: dict) -> None:
    settings = table.meta.settings
    plan = SamplePlan.from_dict(settings["plan"])
    entries = {q.id: q for p in settings["plans"] for q, _ in SamplePlan.from_dict(p).stream()}
    grid = list(ConfigSpace.grid(plan.models, (1, 2), (1, 2, 4, 8), (1, 2)))
    engines = {
        on: plan.engine(grid, early_stopping=on, max_new_tokens=settings["cap"], settle=settings.get("settle"))
        for on in (False, True)
    }
    todo = [(q, c, on) for q in questions for c in BEAMS for on in (False, True) if (q.id, str(c), on) not in done]
    WORK.parent.mkdir(parents=True, exist_ok=True)
    for question, config, on in tqdm(todo, desc="beam search", unit="run"):
        execution = engines[on].executor.execute(
            [{"role": "user", "content": question.text}], config, RunOptions(seed=question_seed(question.id))
        )
        row = {
            "question": question.id,
            "tier": question.tier,
            "config": str(config),
            "early_stopping": on,
            "answer": execution.answer,
            "correct": entries[question.id].score(execution.text) >= 1.0,
            "eflops": execution.eflops,
            "completion_tokens": execution.usage.completion_tokens,
            "seconds": round(execution.seconds, 2),
            "paths_cut": sum(p.status == "length" for p in execution.paths),
        }
        with WORK.open("a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")
        done[(question.id, str(config), on)] = row


def _report(table: OutcomeTable, done: dict, *, write: bool) -> None:
    ids = sorted({q for q, _, _ in done})
    if not ids:
        print("no beam-search runs yet")
        return
    index = {q.id: i for i, q in enumerate(table.questions)}
    rows = [index[q] for q in ids]
    names = [str(c) for c in table.configs]
    correct, eflops = table.array("correct", True), table.array("eflops", True)
    lines = [
        f"Command: `python benchmarks/beam_study.py --questions {len(ids)}`. {len(ids)} test questions of table v2, "
        "BS = 2 run through the table's executor (seed per question, 768-token cap); BS = 1 from the table "
        "(early stopping on).",
        "",
        "| config | accuracy | mean eFLOPs |",
        "|---|---|---|",
    ]
    for name in BESIDE:
        j = names.index(name)
        lines.append(f"| {name} (table) | {np.mean(correct[rows, j]):.3f} | {np.mean(eflops[rows, j]):.2e} |")
    for config in BEAMS:
        for on in (False, True):
            runs = [done[(q, str(config), on)] for q in ids if (q, str(config), on) in done]
            if runs:
                label = f"{config} (early stopping {'on' if on else 'off'}, {len(runs)} questions)"
                lines.append(
                    f"| {label} | {mean(r['correct'] for r in runs):.3f} | {mean(r['eflops'] for r in runs):.2e} |"
                )
    text = "\n".join(lines)
    print(text)
    if write:
        write_section(HERE / "RESULTS.md", "Beam search (BS = 2) beside table v2", text)


if __name__ == "__main__":
    main()
