"""The outcome table on disk: round trip, and a loader that rejects what is incomplete or inconsistent."""

import gzip
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from uniscale_integrations.bench.synthetic import synthetic_rows
from uniscale_integrations.outcomes import OutcomeTable, OutcomeTableError, load_table, save_table
from uniscale_integrations.reward.weights import RewardWeights


def _write_lines(path: Path, records: list[dict]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    return path


def _records(tmp_path: Path) -> list[dict]:
    meta, questions, outcomes = synthetic_rows(3)
    path = save_table(tmp_path / "t.jsonl.gz", meta, questions, outcomes) and tmp_path / "t.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_round_trip_keeps_every_value_exactly(tmp_path: Path) -> None:
    meta, questions, outcomes = synthetic_rows(4, seed=3)
    written = save_table(tmp_path / "t.jsonl.gz", meta, questions, outcomes)
    loaded = load_table(tmp_path / "t.jsonl.gz")
    assert loaded.n_questions == 12
    assert loaded.n_configs == 4
    for es in (True, False):
        for column in ("correct", "score", "eflops", "cost", "completion_tokens"):
            assert np.array_equal(loaded.array(column, es), written.array(column, es))
    assert np.array_equal(loaded.contexts, written.contexts)  # full precision: ties stay ties
    assert np.array_equal(loaded.action_features, written.action_features)
    assert loaded.rows() == written.rows()
    weights = RewardWeights.preset("quality-first")
    expected = 0.8 * written.array("correct") + 0.15 * written.array("score") + 0.05 * (1 - written.array("cost"))
    assert np.allclose(loaded.rewards(weights), expected)


def test_the_same_table_compresses_to_the_same_bytes(tmp_path: Path) -> None:
    meta, questions, outcomes = synthetic_rows(2)
    save_table(tmp_path / "a.jsonl.gz", meta, questions, outcomes)
    save_table(tmp_path / "b.jsonl.gz", meta, questions, outcomes)
    assert (tmp_path / "a.jsonl.gz").read_bytes() == (tmp_path / "b.jsonl.gz").read_bytes()


def test_splits_and_subsets(tmp_path: Path) -> None:
    meta, questions, outcomes = synthetic_rows(4, tune_share=0.25)
    table = OutcomeTable(meta, questions, outcomes)
    tune, test = table.subset("tune"), table.subset("test")
    assert tune.n_questions == 3
    assert test.n_questions == 9
    assert {q.id for q in tune.questions}.isdisjoint(q.id for q in test.questions)
    with pytest.raises(OutcomeTableError, match="unknown split"):
        table.subset("train")


def test_a_later_early_stopping_setting_may_cover_some_questions(tmp_path: Path) -> None:
    meta, questions, outcomes = synthetic_rows(3)
    keep_off = {questions[0].id, questions[4].id}
    partial = [o for o in outcomes if o.early_stopping or o.question in keep_off]
    table = OutcomeTable(meta, questions, partial)
    assert table.coverage[False].sum() == 2
    assert np.isnan(table.array("eflops", False)[1]).all()
    both = table.covered(False)
    assert {q.id for q in both.questions} == keep_off
    assert not np.isnan(both.array("eflops", False)).any()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda rs: [r for r in rs if not (r.get("config") == "M/qp1/cp4/bs1" and r.get("early_stopping"))][:-1],
            "missing",
        ),
        (lambda rs: [*rs, rs[-1]], "two outcomes"),
        (lambda rs: [*rs[:-1], {**rs[-1], "score": 1.5}], "score must lie in"),
        (lambda rs: [*rs[:-1], {**rs[-1], "cost": -0.1}], "cost must lie in"),
        (lambda rs: [*rs[:-1], {**rs[-1], "eflops": 0}], "eflops must be positive"),
        (lambda rs: [*rs[:-1], {**rs[-1], "correct": 1}], "correct must be bool"),
        (lambda rs: [*rs[:-1], {**rs[-1], "config": "L/qp1/cp1/bs1"}], "not in the table's space"),
        (lambda rs: [*rs[:-1], {**rs[-1], "question": "nope"}], "unknown question"),
        (lambda rs: [*rs[:-1], {**rs[-1], "surprise": 1}], "unknown fields"),
        (lambda rs: [{**rs[0], "version": 99}, *rs[1:]], "version"),
        (lambda rs: rs[1:], "first record must be the meta"),
        (lambda rs: [rs[0], {**rs[1], "split": "train"}, *rs[2:]], "split must be one of"),
        (lambda rs: [rs[0], {**rs[1], "context": [1.0, "x"]}, *rs[2:]], "context must be a list of numbers"),
        (lambda rs: [rs[0], {**rs[1], "context": [1.0]}, *rs[2:]], "all of one length"),
    ],
)
def test_the_loader_rejects_a_broken_table(tmp_path: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    path = _write_lines(tmp_path / "bad.jsonl.gz", mutate(_records(tmp_path)))
    with pytest.raises(OutcomeTableError, match=message):
        load_table(path)


def test_the_loader_names_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(OutcomeTableError, match="no outcome table"):
        load_table(tmp_path / "missing.jsonl.gz")
    (tmp_path / "junk.jsonl.gz").write_bytes(b"not gzip at all")
    with pytest.raises(OutcomeTableError, match="cannot read"):
        load_table(tmp_path / "junk.jsonl.gz")
    (tmp_path / "torn.jsonl").write_text('{"kind": "meta", "format"', encoding="utf-8")
    with pytest.raises(OutcomeTableError, match="not JSON"):
        load_table(tmp_path / "torn.jsonl")


def test_outcomes_are_validated_in_memory_too() -> None:
    meta, questions, outcomes = synthetic_rows(2)
    with pytest.raises(OutcomeTableError, match="score"):
        OutcomeTable(meta, questions, [replace(outcomes[0], score=float("nan")), *outcomes[1:]])
    with pytest.raises(OutcomeTableError, match="duplicate question"):
        OutcomeTable(meta, [*questions, questions[0]], outcomes)
