"""Shared by the benchmark scripts: write one section of ``benchmarks/RESULTS.md`` in place, and the tuning
studies' out-of-sample table."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path


def write_section(path: Path, title: str, body: str) -> None:
    """Replace the ``## title`` section of ``path`` with ``body`` (or append it); keep the rest."""
    section = f"## {title}\n\n{body.strip()}\n"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^## {re.escape(title)}[ \t]*\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1).rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")


def out_of_sample_table(
    title: str, knob: str, rows: Sequence[tuple[str, Sequence[float], Sequence[tuple[object, float]]]]
) -> list[str]:
    """A study's out-of-sample table: per (mode, grid of ``knob``), the settings chosen on each half of the
    tuning split and their score on the other half, and the mean of the two."""
    lines = [
        f"### {title}",
        "",
        f"| mode | {knob} | chosen on half A -> score on B; chosen on B -> score on A | mean |",
        "|---|---|---|---|",
    ]
    for mode, grid, outcomes in rows:
        choices = "; ".join(f"{chosen} -> {score:.4f}" for chosen, score in outcomes)
        mean = sum(score for _, score in outcomes) / len(outcomes)
        lines.append(f"| {mode} | {{{', '.join(f'{v:g}' for v in grid)}}} | {choices} | {mean:.4f} |")
    return lines
