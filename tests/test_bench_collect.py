"""Collection (resumable), building the table, and the live loop, with a fake executor instead of models."""

import json
import zlib
from pathlib import Path

import pytest

from uniscale_integrations.bench.collect import CollectPlan, build_table, collect
from uniscale_integrations.bench.data import assign_splits, mixed_stream, question_seed
from uniscale_integrations.bench.live import live
from uniscale_integrations.bench.synthetic import FakeExecutor, fake_engines
from uniscale_integrations.errors import UniScaleError
from uniscale_integrations.outcomes import load_table

PLAN = CollectPlan(questions=10, es_off_questions=3, tune_share=0.25)


def _answers(plan: CollectPlan) -> dict[str, str]:
    return {q.text: q.answer for q, _ in plan.stream()}


class _InterruptError(RuntimeError):
    pass


def test_splits_are_stratified_and_stable() -> None:
    questions = mixed_stream(20, seed=0)
    splits = assign_splits(questions, 0.25, seed=0)
    for tier in {q.tier for q in questions}:
        assert sum(splits[q.id] == "tune" for q in questions if q.tier == tier) == 1  # round(0.25 * 4)
    assert assign_splits(list(reversed(questions)), 0.25, seed=0) == splits  # independent of the order
    with pytest.raises(ValueError, match="tune_share"):
        assign_splits(questions, 1.0)


def test_collect_runs_every_task_once_and_builds_a_complete_table(tmp_path: Path) -> None:
    engines = fake_engines(_answers(PLAN))
    work = collect(PLAN, tmp_path / "work.jsonl", engines=engines, progress=False)
    records = [json.loads(line) for line in work.read_text().splitlines()]
    outcomes = [r for r in records if r["kind"] == "outcome"]
    # 10 questions x 4 configs with early stopping, plus 3 test questions x the 2 multi-path configs without.
    assert len(outcomes) == 10 * 4 + 3 * 2
    assert len({(r["question"], r["config"], r["early_stopping"]) for r in outcomes}) == len(outcomes)
    # Every run of a question uses the question's seed.
    executor = engines[True].executor
    assert isinstance(executor, FakeExecutor)
    texts = {q.text: q.id for q, _ in PLAN.stream()}
    assert all(seed == zlib.crc32(texts[text].encode()) for text, _, seed in executor.calls)

    table = load_table(build_table(work, tmp_path / "table.jsonl.gz"))
    assert table.n_questions == 10
    assert table.coverage[False].sum() == 3
    assert all(q.split == "test" for q, off in zip(table.questions, table.coverage[False], strict=True) if off)
    # Single-path configs share their early-stopping outcome; multi-path ones were run again.
    off = table.covered(False)
    assert (off.array("eflops", False)[:, 0] == off.array("eflops", True)[:, 0]).all()
    assert (off.array("eflops", False)[:, 3] > off.array("eflops", True)[:, 3]).all()
    assert table.meta.settings["plan"]["questions"] == 10


def test_collect_resumes_after_an_interruption(tmp_path: Path) -> None:
    engines = fake_engines(_answers(PLAN))
    executor = engines[True].executor
    assert isinstance(executor, FakeExecutor)
    original = executor.execute
    calls = 0

    def flaky(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 13:
            raise _InterruptError
        return original(*args, **kwargs)

    executor.execute = flaky  # type: ignore[method-assign]
    with pytest.raises(_InterruptError):
        collect(PLAN, tmp_path / "work.jsonl", engines=engines, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "work.jsonl").read_text().splitlines()]
    done = sum(r["kind"] == "outcome" for r in rows)
    assert sum(r["kind"] == "outcome" and r["early_stopping"] for r in rows) == 12
    # A torn last line (a kill mid-write) is dropped and redone.
    with (tmp_path / "work.jsonl").open("a") as f:
        f.write('{"kind": "outcome", "question"')
    executor.execute = original  # type: ignore[method-assign]
    fresh = fake_engines(_answers(PLAN))
    collect(PLAN, tmp_path / "work.jsonl", engines=fresh, progress=False)
    assert len(fresh[True].executor.calls) + len(fresh[False].executor.calls) == 46 - done  # type: ignore[attr-defined]
    table = load_table(build_table(tmp_path / "work.jsonl", tmp_path / "table.jsonl.gz"))
    assert table.n_questions == 10


def test_a_work_file_refuses_another_plan(tmp_path: Path) -> None:
    engines = fake_engines(_answers(PLAN))
    collect(PLAN, tmp_path / "work.jsonl", engines=engines, progress=False)
    other = CollectPlan(questions=10, es_off_questions=3, max_new_tokens=64)
    with pytest.raises(UniScaleError, match="another plan"):
        collect(other, tmp_path / "work.jsonl", engines=fake_engines(_answers(other)), progress=False)


def test_an_incomplete_question_is_left_out_of_the_table(tmp_path: Path) -> None:
    engines = fake_engines(_answers(PLAN))
    work = collect(PLAN, tmp_path / "work.jsonl", engines=engines, progress=False)
    lines = work.read_text().splitlines()
    first = next(json.loads(line)["question"] for line in lines if '"outcome"' in line)
    kept = [line for line in lines if not ('"outcome"' in line and first in line and "M/qp1/cp4" in line)]
    work.write_text("\n".join(kept) + "\n")
    table = load_table(build_table(work, tmp_path / "table.jsonl.gz"))
    assert table.n_questions == 9
    assert first not in {q.id for q in table.questions}


def test_live_reproduces_the_replay_when_the_executor_is_deterministic(tmp_path: Path) -> None:
    answers = _answers(PLAN)
    work = collect(PLAN, tmp_path / "work.jsonl", engines=fake_engines(answers), progress=False)
    table = load_table(build_table(work, tmp_path / "table.jsonl.gz"))
    result = live(table, 6, engine=fake_engines(answers)[True], progress=False)
    summary = result.summary()
    assert summary["questions"] == 6
    assert summary["same_config"] == 1.0
    assert summary["correct_agrees_with_table"] == 1.0
    assert summary["live_reward"] == pytest.approx(summary["replay_reward"])
    assert "Live closed loop vs replay" in result.markdown()


def test_live_notices_an_executor_that_disagrees_with_the_table(tmp_path: Path) -> None:
    answers = _answers(PLAN)
    work = collect(PLAN, tmp_path / "work.jsonl", engines=fake_engines(answers), progress=False)
    table = load_table(build_table(work, tmp_path / "table.jsonl.gz"))
    drifted = fake_engines(answers, skill={"S": 0.95, "M": 0.99})[True]
    summary = live(table, 6, engine=drifted, progress=False).summary()
    assert summary["correct_agrees_with_table"] < 1.0


def test_question_seed_is_the_crc_of_the_id() -> None:
    assert question_seed("gsm-4-3") == zlib.crc32(b"gsm-4-3")


def test_table_v1_engines_decode_as_v1_was_collected() -> None:
    from uniscale_integrations.bench.collect import build_engines
    from uniscale_integrations.executor.styles import STEP_BY_STEP

    for enabled, engine in build_engines(CollectPlan()).items():
        executor = engine.executor
        assert executor.meaning is None  # v1's candidates voted on their stated answers
        assert executor.instruction == STEP_BY_STEP
        assert {executor.token_budget(m) for m in ("S", "M")} == {128}
        assert executor.early_stopping.enabled is enabled
