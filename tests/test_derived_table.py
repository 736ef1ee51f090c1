"""Table v2 derived from collected samples: early stopping replayed exactly, a complete table that loads."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from uniscale_integrations.bench.data import question_seed
from uniscale_integrations.bench.derive import rescored, rows_of, vote
from uniscale_integrations.bench.derived_table import decided_step, derivation, derived_table
from uniscale_integrations.bench.samples import SamplePlan, read_records
from uniscale_integrations.executor.stopping import leader_holds
from uniscale_integrations.features.space import Config, ConfigSpace
from uniscale_integrations.models import ModelRegistry
from uniscale_integrations.outcomes import load_table, save_table
from uniscale_integrations.reward.cost import CostModel, NominalBudget, SpacePricing

WORK = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "samples_v2"
SPACE = ConfigSpace.grid(("S", "M"), (1, 2), (1, 2, 4, 8), (1,))


@pytest.fixture(scope="module")
def records() -> list[dict]:
    """The first collected chunk: real greedy paths and samples of S and M."""
    questions = {q.id: q for q, _ in SamplePlan().stream()}
    first = sorted(WORK.glob("chunk-000.jsonl*"))
    if not first:
        pytest.skip("the samples of table v2 are not in this checkout")
    return rescored([r for r in read_records(WORK) if r["index"] < 25], questions)


def _path(sample: int, tokens: int, text: str, finish: str = "eos") -> dict[str, object]:
    return {
        "variant": 0,
        "sample": sample,
        "tokens": tokens,
        "logprob": -0.1 * tokens,
        "finish": finish,
        "text": text,
        "correct": 0.0,
    }


def test_a_vote_is_decided_once_the_open_rows_cannot_overtake_the_leader() -> None:
    agreeing = [_path(s, 10, "Answer: 5") for s in range(4)]
    late = [_path(s, 50, "Answer: 6") for s in range(4, 7)]
    rows = agreeing + late
    # After 10 steps four rows back 5 (confidence e^-0.1 each, 3.62) and three are open (3.0 at most);
    # the executor looks every 8 tokens, so it sees that at its second check.
    assert decided_step(rows, every=1) == 10
    assert decided_step(rows) == 16
    assert decided_step(agreeing[:2] + late) is None  # 1.81 cannot outweigh three open rows
    derived = derivation({"paths": rows}, Config("M", cp=8), True, greedy_first=False)
    assert derived.pruned == 3
    assert [p["tokens"] for p in derived.rows] == [10] * 4 + [16] * 3
    assert vote([p for p in derived.rows if p["finish"] != "pruned"]).answer == vote(rows).answer == "5"


def test_a_settled_vote_stops_before_it_is_decided() -> None:
    agreeing = [_path(s, 10, "Answer: 5") for s in range(2)]
    late = [_path(s, 50, "Answer: 6") for s in range(2, 5)]
    rows = agreeing + late
    # two finished rows back 5 and three are open: not decided (1.81 < 3.0), and the leader holds
    # with probability leader_holds(2, 0, 3) = 1 - B(3, 4) / B(3, 1) = 0.95 (Beta-binomial), so a
    # bar of 0.9 settles it at the executor's second check and a bar of 0.96 does not
    assert decided_step(rows) is None
    assert leader_holds(2, 0, 3) == pytest.approx(0.95)
    assert decided_step(rows, settle=0.9) == 16
    assert decided_step(rows, settle=0.96) is None
    derived = derivation({"paths": rows}, Config("M", cp=8), True, greedy_first=False, settle=0.9)
    assert derived.pruned == 3
    assert vote([p for p in derived.rows if p["finish"] != "pruned"]).answer == "5" != vote(rows).answer


def test_early_stopping_on_real_samples_never_moves_the_answer_and_never_costs_more(records: list[dict]) -> None:
    decided = 0
    for record in records:
        for config in SPACE:
            off = derivation(record, config, False, greedy_first=False)
            on = derivation(record, config, True, greedy_first=False)
            assert off.rows == rows_of(record, config.qp, config.cp)
            assert vote([p for p in on.rows if p["finish"] != "pruned"]).answer == vote(off.rows).answer
            assert sum(p["tokens"] for p in on.rows) <= sum(p["tokens"] for p in off.rows)
            decided += on.pruned > 0
    assert decided > 0, "some multi-path configuration must stop early on 25 real questions"


def test_the_derived_table_is_complete_loads_and_prices_within_the_cap(records: list[dict], tmp_path: Path) -> None:
    registry = ModelRegistry.default()
    shapes = {m: registry[m] for m in ("S", "M")}
    budget = NominalBudget(prompt_tokens=max(n for r in records for n in r["prompt_tokens"]), new_tokens=384)
    cost_model = CostModel()
    pricing = SpacePricing.of(SPACE, shapes, cost_model, budget)
    questions = {q.id: q for q, _ in SamplePlan().stream()}
    ids = {r["question"] for r in records}
    unit = np.ones(4) / 2.0
    meta, rows, outcomes = derived_table(
        records,
        questions,
        list(SPACE),
        shapes=shapes,
        cost_model=cost_model,
        pricing=pricing,
        contexts={q: unit.tolist() for q in ids},
        action_features=(np.eye(len(SPACE), 4) + 0.5).tolist(),
        greedy_first=False,
        settings={"source": "test"},
    )
    path = tmp_path / "v2.jsonl.gz"
    save_table(path, meta, rows, outcomes)
    table = load_table(path)
    assert table.n_questions == len(ids)
    assert table.n_configs == 16
    names = [str(c) for c in table.configs]
    cost = table.array("cost")
    assert np.all((cost > 0) & (cost <= 1))
    eflops = table.array("eflops")
    assert np.all(eflops[:, names.index("M/qp1/cp8/bs1")] > eflops[:, names.index("M/qp1/cp1/bs1")])
    assert np.all(table.array("eflops", True) <= table.array("eflops", False) * (1 + 1e-12))
    greedy_m = names.index("M/qp1/cp1/bs1")
    by_question = {r["question"]: r for r in records if r["model"] == "M"}
    for i, question in enumerate(table.questions):
        expected = vote(rows_of(by_question[question.id], 1, 1)).correct
        assert bool(table.array("correct")[i, greedy_m]) == expected
    assert not math.isnan(float(table.array("score").mean()))


def test_a_row_that_loops_ends_where_the_loop_stop_would_end_it() -> None:
    from uniscale_integrations.bench.derived_table import loop_stop, with_loop_stops
    from uniscale_integrations.models import load_tokenizer

    tokenizer = load_tokenizer(ModelRegistry.default()["S"])
    assert loop_stop([1, 2, 3, 4] + [5, 6] * 30, tokenizer) == 4 + 48
    assert loop_stop(list(range(200)), tokenizer) is None
    counting = "".join(f"{i}. Check the solution: 68*r + 62 = 3394 - 68*r\n" for i in range(1, 30))
    ids = tokenizer(counting, add_special_tokens=False)["input_ids"]
    end = loop_stop(ids, tokenizer)  # the numbers change, so only the repeated lines stop it
    assert end is not None
    assert tokenizer.decode(ids[:end]).count("\n") == 6
    counting = "So the numbers are " + ", ".join(str(i) for i in range(40, 400))
    ids = tokenizer(counting, add_special_tokens=False)["input_ids"]
    end = loop_stop(ids, tokenizer)  # no newline and no exact repeat: only counting on stops it
    assert end is not None
    assert end % 8 == 0
    assert end < len(ids) / 2
    looping = "First, 1974 - 2026 = " + "1974 - 2026 = " * 40
    ids = tokenizer(looping, add_special_tokens=False)["input_ids"]
    fine = "So 3 + 4 = 7.\nAnswer: 7"
    record = {
        "model": "S",
        "paths": [
            {**_path(0, len(ids), looping, finish="length"), "steps": [[5, -1.0]]},
            _path(1, len(tokenizer(fine)["input_ids"]), fine),
        ],
    }
    (stopped,) = with_loop_stops([record], {"S": tokenizer})
    cut, kept = stopped["paths"]
    assert kept == record["paths"][1]
    assert cut["finish"] == "loop"
    assert 48 <= cut["tokens"] < len(ids)
    assert looping.startswith(cut["text"])
    assert cut["logprob"] == pytest.approx(-1.0 / 5 * cut["tokens"])
    assert vote([cut, kept]).answer == "7"


def test_the_tables_engine_decodes_the_rows_the_table_derives(records: list[dict]) -> None:
    """A live run with the table's settings and the question's seed samples the recorded rows: the
    greedy path and the first samples of each variant (rows of under 300 tokens, S, early stopping off)."""
    engine = SamplePlan().engine(list(SPACE), early_stopping=False, max_new_tokens=768)
    assert engine.executor.meaning is None  # the reasoned style votes on stated answers
    short = [
        r for r in records if r["model"] == "S" and max(p["tokens"] for p in rows_of(r, 2, 4, greedy_first=True)) < 300
    ][:2]
    assert short
    for record in short:
        execution = engine.executor.execute(
            [{"role": "user", "content": record["text"]}],
            Config("S", qp=2, cp=4),
            seed=question_seed(record["question"]),
        )
        live = sorted((p.variant, p.text) for p in execution.paths)
        derived = sorted((p["variant"], p["text"]) for p in rows_of(record, 2, 4, greedy_first=True))
        assert live == derived
