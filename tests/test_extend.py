"""Raising a collection's cap after the fact, on the real S model: a continued row is the row a
session with the higher cap samples (its draws depend on its stream and position alone)."""

from __future__ import annotations

import pytest

from uniscale_integrations.backends.base import SamplingParams
from uniscale_integrations.backends.hf.generator import HFGenerator
from uniscale_integrations.backends.hf.session import DecodeSession
from uniscale_integrations.bench.extend import continue_rows, with_extensions
from uniscale_integrations.executor.styles import REASON_THEN_ANSWER
from uniscale_integrations.models import ModelRegistry, load_model

QUESTIONS = ["What is 48 + 37 - 12?", "A train leaves at 9:40 and arrives at 11:15. How long is the trip?"]
SEED = 11
ROWS = 5
"""Rows per prompt: the greedy one and four samples."""


@pytest.fixture(scope="module")
def small() -> HFGenerator:
    return HFGenerator(load_model(ModelRegistry.default()["S"]))


def _session(generator: HFGenerator, prompts: list[str], cap: int) -> DecodeSession:
    params = SamplingParams(
        max_new_tokens=cap,
        temperature=0.8,
        top_p=0.9,
        seed=SEED,
        greedy_first=True,
        stop_at_answer=True,
        step_delimiter="\n\n",
    )
    session = DecodeSession(generator.loaded, prompts, ROWS, params, mark_steps=True)
    session.advance()
    return session


def test_a_continued_row_is_the_row_a_longer_cap_samples(small: HFGenerator) -> None:
    prompts = [small.render([{"role": "user", "content": f"{q}\n{REASON_THEN_ANSWER}"}]) for q in QUESTIONS]
    short, long = _session(small, prompts, 24), _session(small, prompts, 72)
    tokenizer = small.tokenizer
    capped = [
        (i, row)
        for i, row in enumerate(short.rows)
        if row.finish_reason == "length" and row.text(tokenizer) == row.text(tokenizer).strip()
    ]
    assert len(capped) >= 4
    paths = [
        {
            "variant": row.prompt_index,
            "sample": i % ROWS - 1,
            "tokens": len(row.token_ids),
            "finish": row.finish_reason,
            "logprob": row.logprob_sum,
            "steps": row.step_marks,
            "text": row.text(tokenizer),
        }
        for i, row in capped
    ]
    params = SamplingParams(max_new_tokens=72, temperature=0.8, top_p=0.9, stop_at_answer=True)
    continued = continue_rows(
        small, [prompts[row.prompt_index] for _, row in capped], paths, [SEED] * len(paths), params
    )
    same = 0
    for (i, _), path in zip(capped, continued, strict=True):
        reference = long.rows[i]
        assert path["tokens"] > 24
        assert path["finish"] in {"length", "eos", "answer"}
        same += path["text"] == reference.text(tokenizer).strip() and path["tokens"] == len(reference.token_ids)
    # Exact but for float summation order (one prefill instead of step-by-step decoding) at near-ties.
    assert same >= len(capped) - 1


def test_extensions_replace_only_their_own_rows() -> None:
    record = {
        "question": "q1",
        "model": "S",
        "seconds": 10.0,
        "paths": [
            {"variant": 0, "sample": -1, "tokens": 5, "finish": "length", "logprob": -1.0, "steps": [], "text": "a b"},
            {"variant": 0, "sample": 0, "tokens": 3, "finish": "eos", "logprob": -1.0, "steps": [], "text": "x"},
        ],
    }
    longer = {"tokens": 9, "finish": "answer", "logprob": -2.0, "steps": [[4, -1.0]], "text": "a b c\nAnswer: 4"}
    (merged,) = with_extensions([record], {("q1", "S", 0, -1): {**longer, "seconds": 2.5}})
    assert merged["paths"][0] == {**record["paths"][0], **longer, "extended": True}
    assert merged["paths"][1] == record["paths"][1]
    assert merged["seconds"] == 12.5
    assert record["paths"][0]["tokens"] == 5  # the input is not changed
