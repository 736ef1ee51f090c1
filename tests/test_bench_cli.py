"""`uniscale bench`, run as a user runs it: a real subprocess on a small table."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from uniscale_integrations.bench.synthetic import write_synthetic_table
from uniscale_integrations.outcomes import default_table_path, load_table


def _uniscale(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "uniscale_integrations.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_bench_writes_the_results_folder_and_prints_the_table(tmp_path: Path) -> None:
    table = write_synthetic_table(tmp_path / "table.jsonl.gz", per_tier=8)
    out = tmp_path / "results"
    done = _uniscale("bench", "--table", str(tmp_path / "table.jsonl.gz"), "--out", str(out), "--seeds", "2",
                     "--queries", "120", "--shrinkages", "1,16", "--prior-weights", "1,0.25", "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "## Goals" in done.stdout
    assert "| **UniScale** |" in done.stdout
    assert "## Quality-cost frontier" in done.stdout
    for name in ("results.json", "policies.csv", "frontier.csv", "tiers.csv", "summary.md"):
        assert (out / name).stat().st_size > 0, name
    for name in ("frontier.png", "regret_cost-sensitive.png", "choices_quality-first.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    results = json.loads((out / "results.json").read_text())
    assert {g["goal"] for g in results["goals"]} == {"P1", "P2", "P3", "P4"}
    assert results["info"]["test_questions"] == table.subset("test").n_questions
    for mode in results["modes"].values():
        assert set(mode["tuning"]["bandit"]) == {
            f"alpha {a:g}, shrinkage {s:g}" for a in (0.1, 0.25, 0.5, 1) for s in (1, 16)
        }
        assert mode["bandit"]["shrinkage"] in (1, 16)
        assert set(mode["tuning"]["prior_bandit"]) == {
            f"alpha {a:g}, shrinkage {s:g}, prior weight {w:g}"
            for a in (0.1, 0.25, 0.5, 1)
            for s in (1, 16)
            for w in (1, 0.25)
        }
        assert mode["prior_bandit"]["prior_weight"] in (1, 0.25)
    with (out / "policies.csv").open() as f:
        rows = list(csv.DictReader(f))
    policies = {(r["mode"], r["policy"]) for r in rows}
    for mode in ("cost-sensitive", "quality-first"):
        for name in ("UniScale", "Random", "Greedy", "kNN", "Oracle", "best fixed (hindsight)"):
            assert (mode, name) in policies
    oracle = next(r for r in rows if r["policy"] == "Oracle" and r["mode"] == "cost-sensitive")
    assert all(
        float(oracle["reward_mean"]) >= float(r["reward_mean"]) - 1e-9 for r in rows if r["mode"] == "cost-sensitive"
    )


def test_bench_rejects_a_shrinkage_or_prior_weight_that_is_not_positive() -> None:
    done = _uniscale("bench", "--shrinkages", "1,0", "--quiet")
    assert done.returncode == 2
    assert "shrinkages must be finite and > 0, got '1,0'" in done.stderr
    done = _uniscale("bench", "--prior-weights", "1,x", "--quiet")
    assert done.returncode == 2
    assert "prior weights must be comma-separated numbers, got '1,x'" in done.stderr


def test_bench_rejects_a_broken_table_with_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / "broken.jsonl").write_text('{"kind": "question"}\n', encoding="utf-8")
    done = _uniscale("bench", "--table", str(tmp_path / "broken.jsonl"), "--out", str(tmp_path / "out"), "--quiet")
    assert done.returncode == 2
    assert "meta record" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_shipped_default_table_is_small_complete_and_replays(tmp_path: Path) -> None:
    path = default_table_path()
    assert path.name == "v2.jsonl.gz"
    assert path.stat().st_size < 5 * 1024 * 1024
    table = load_table(path)
    assert table.subset("tune").n_questions >= 60
    assert table.subset("test").n_questions >= 240
    assert len(table.tiers) >= 8
    assert {c.model for c in table.configs} == {"S", "M"}
    assert len(table.configs) == 16
    assert table.coverage[False].all(), "every v2 outcome is derived with early stopping off as well"
    assert table.meta.settings["cap"] == 768
    v1 = load_table(default_table_path("v1"))
    assert v1.meta.settings["plan"]["style"] == "step-by-step"
    with pytest.raises(ValueError, match="no shipped table"):
        default_table_path("v3")
    done = _uniscale("bench", "--out", str(tmp_path / "out"), "--seeds", "1", "--queries", "100", "--no-plots",
                     "--shrinkages", "1", "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{table.n_questions} questions" in done.stdout
