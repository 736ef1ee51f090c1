"""The samples behind table v2, on the real S model: what is derived from them is what a live run computes.

- candidate 0 greedy and the samples after it: the samples are the same rows a session without a
  greedy candidate samples (so CP = k is the first k of 8);
- step ends are recorded without pausing, paths stop at their final-answer line;
- the derived usage of any subset of rows is the session's own accounting;
- a path cut at the cap without an answer casts no vote.
"""

from __future__ import annotations

from dataclasses import asdict

import pytest

from uniscale_integrations.backends.base import SamplingParams
from uniscale_integrations.backends.hf.session import DecodeSession
from uniscale_integrations.bench.derive import derived_usage, path_answer, rows_of, vote
from uniscale_integrations.executor.styles import REASON_THEN_ANSWER
from uniscale_integrations.models import LoadedModel, ModelRegistry, load_model

QUESTIONS = ["What is 12 + 7?", "Tom has 3 boxes with 4 apples each. How many apples are there?"]


@pytest.fixture(scope="module")
def small() -> LoadedModel:
    return load_model(ModelRegistry.default()["S"])


def _prompts(loaded: LoadedModel) -> list[str]:
    return [
        str(
            loaded.tokenizer.apply_chat_template(
                [{"role": "user", "content": f"{q}\n{REASON_THEN_ANSWER}"}], tokenize=False, add_generation_prompt=True
            )
        )
        for q in QUESTIONS
    ]


def _params(**kwargs: object) -> SamplingParams:
    values: dict[str, object] = {"max_new_tokens": 48, "temperature": 0.8, "top_p": 0.9, "seed": 7}
    values["step_delimiter"] = "\n\n"
    return SamplingParams(**(values | kwargs))  # type: ignore[arg-type]


def test_greedy_first_keeps_the_samples_a_plain_session_draws(small: LoadedModel) -> None:
    prompts = _prompts(small)
    mixed = DecodeSession(small, prompts, 3, _params(greedy_first=True), mark_steps=True)
    mixed.advance()
    plain = DecodeSession(small, prompts, 2, _params(step_delimiter=None))
    plain.advance()
    greedy = DecodeSession(small, prompts, 1, SamplingParams(max_new_tokens=48, temperature=0))
    greedy.advance()
    for variant in range(2):
        rows = [r for r in mixed.rows if r.prompt_index == variant]
        assert rows[0].token_ids == greedy.rows[variant].token_ids
        assert [r.token_ids for r in rows[1:]] == [r.token_ids for r in plain.rows if r.prompt_index == variant]
    assert len({tuple(r.token_ids) for r in mixed.rows}) > 2  # the samples differ from each other


def test_step_ends_are_marked_without_pausing_and_paths_stop_at_the_answer(small: LoadedModel) -> None:
    params = SamplingParams(max_new_tokens=96, temperature=0.8, seed=3, stop_at_answer=True, step_delimiter="\n\n")
    session = DecodeSession(small, _prompts(small), 3, params, mark_steps=True)
    session.advance()
    tokenizer = small.tokenizer
    assert all(r.status == "finished" for r in session.rows)  # one advance: nobody waited at a step end
    marked = [r for r in session.rows if r.step_marks]
    assert marked
    for row in marked:
        for tokens, logprob in row.step_marks:
            assert tokenizer.decode(row.token_ids[:tokens]).endswith("\n\n")
            assert logprob <= 0
        assert [t for t, _ in row.step_marks] == sorted(t for t, _ in row.step_marks)
    answered = [r for r in session.rows if r.finish_reason == "answer"]
    for row in answered:
        last = [line for line in row.text(tokenizer).splitlines() if line.strip()][-1]
        assert "answer" in last.lower()


def test_the_derived_usage_of_rows_is_the_sessions_own(small: LoadedModel) -> None:
    prompts = _prompts(small)
    lengths = [len(small.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    for counts in ((3, 3), (2, 0), (0, 1)):
        chosen = [p for p, c in zip(prompts, counts, strict=True) if c]
        session = DecodeSession(small, chosen, [c for c in counts if c], _params(), mark_steps=True)
        session.advance()
        chosen_lengths = [n for n, c in zip(lengths, counts, strict=True) if c]
        rows = [(r.prompt_index, len(r.token_ids)) for r in session.rows]
        assert asdict(derived_usage(chosen_lengths, rows)) == asdict(session.usage)


def _path(variant: int, sample: int, text: str, finish: str = "eos", correct: float = 0.0) -> dict[str, object]:
    return {
        "variant": variant,
        "sample": sample,
        "tokens": 10,
        "logprob": -1.0,
        "finish": finish,
        "text": text,
        "correct": correct,
    }


def test_configs_take_the_first_samples_and_cut_paths_cast_no_vote() -> None:
    record = {
        "paths": [_path(v, s, f"Answer: {v}{s}") for v in range(2) for s in range(-1, 8)],
    }
    assert [p["sample"] for p in rows_of(record, 1, 1)] == [-1]
    assert [(p["variant"], p["sample"]) for p in rows_of(record, 2, 4)] == [(v, s) for v in range(2) for s in range(4)]
    assert [p["sample"] for p in rows_of(record, 1, 4, greedy_first=True)] == [-1, 0, 1, 2]
    cut = _path(0, 1, "First, 3 + 4 = 7. Then the total so far is 9", finish="length")
    assert path_answer(cut) is None
    right = _path(0, 0, "So it is 12.\nAnswer: 12", correct=1.0)
    assert vote([cut, cut, cut, right]).answer == "12"
    assert vote([cut, cut, cut, right]).correct
    assert path_answer(_path(0, 2, "The final answer is: Answer: **Yes**.")) == "yes"


def test_a_row_that_falls_into_a_loop_ends_there_and_keeps_what_it_wrote(small: LoadedModel) -> None:
    prompt = "The chorus goes: la la la la la la la la la la la la"
    rows = {}
    for stop_on_loop in (True, False):
        params = SamplingParams(max_new_tokens=120, temperature=0.0, stop_on_loop=stop_on_loop)
        session = DecodeSession(small, [prompt], 1, params)
        session.advance()
        rows[stop_on_loop] = session.rows[0]
    stopped, capped = rows[True], rows[False]
    assert (stopped.finish_reason, capped.finish_reason) == ("loop", "length")
    assert len(stopped.token_ids) < len(capped.token_ids)
    assert capped.token_ids[: len(stopped.token_ids)] == stopped.token_ids
