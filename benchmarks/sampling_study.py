"""Temperature and top-p of the candidates, compared on the tuning split (where choices are made).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/collect_samples.py --work benchmarks/results/sampling_t10 \\
        --split tune --temperature 1.0 --top-p 0.95 --max-new-tokens 768 --samples 4
    python benchmarks/sampling_study.py

Table v2's samples (T 0.6, top-p 0.9) are set beside every ``results/sampling_*`` collection of
the same tuning questions; each configuration up to CP = 4 is derived alike from each (candidate 0
greedy, the loop stop on, 768 new tokens at most), on the questions every collection holds.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from statistics import mean

from _results import write_section
from _table_v2 import FIRST_WORKS

from uniscale_integrations.bench.derive import pass_at, rows_of, vote
from uniscale_integrations.bench.sample_set import SampleSet, load_sample_set

HERE = Path(__file__).resolve().parent
CONFIGS = [(qp, cp) for qp in (1, 2) for cp in (2, 4)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    sets = {"T 0.6, top-p 0.9 (table v2)": load_sample_set(FIRST_WORKS, cap=768, split="tune")}
    for work in sorted((HERE / "results").glob("sampling_*")):
        study = load_sample_set(work, split="tune")
        sampling = study.plan.sampling["M"]
        sets[f"T {sampling.temperature:g}, top-p {sampling.top_p:g}"] = study
    common = set.intersection(*({(r["question"], r["model"]) for r in s.records} for s in sets.values()))
    names = [f"{m}/qp{qp}/cp{cp}" for m in ("S", "M") for qp, cp in CONFIGS]
    lines = [
        f"Command: `python benchmarks/sampling_study.py`. {len({q for q, _ in common})} tuning questions held by "
        "every collection; candidate 0 greedy, the loop stop on, at most 768 new tokens. Accuracy of the "
        "weighted vote (pass@k in brackets).",
        "",
        f"| sampling | {' | '.join(names)} |",
        "|---|" + "---|" * len(names),
    ]
    for label, samples in sets.items():
        lines.append(f"| {label} | {' | '.join(_cell(samples, name, common) for name in names)} |")
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(HERE / "RESULTS.md", "Sampling settings (tuning split)", text)


def _cell(samples: SampleSet, name: str, common: set[tuple[str, str]]) -> str:
    model, qp, cp = name.split("/")[0], int(name.split("/")[1][2:]), int(name.split("/")[2][2:])
    rows = [
        rows_of(r, qp, cp, greedy_first=True)
        for r in samples.records
        if r["model"] == model and (r["question"], model) in common
    ]
    return f"{mean(vote(p).correct for p in rows):.3f} ({mean(map(pass_at, rows)):.2f})"


if __name__ == "__main__":
    main()
