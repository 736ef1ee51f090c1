"""The batched step-wise decode session on the real S model (and one M check).

Both runners are exercised: ``fast`` (hand-written forward over oneDNN-packed weights) and
``hf`` (the model's own forward with a DynamicCache).
"""

from __future__ import annotations

import pytest
import torch

from uniscale_integrations.backends.base import SamplingParams
from uniscale_integrations.backends.hf.generator import HFGenerator
from uniscale_integrations.backends.hf.runners import _FastRunner
from uniscale_integrations.backends.hf.sampling import sample_tokens
from uniscale_integrations.backends.hf.session import DecodeSession, Row
from uniscale_integrations.models import LoadedModel, ModelRegistry, load_model

BACKENDS = ["fast", "hf"]
STEPS_Q = "Tom has 3 boxes with 4 apples each. He eats 2. How many apples are left? Think step by step."
COLOURS_Q = "List three colours, one paragraph each."


@pytest.fixture(scope="module")
def small() -> LoadedModel:
    return load_model(ModelRegistry.default()["S"])


def chat(loaded: LoadedModel, question: str) -> str:
    return str(
        loaded.tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
        )
    )


def prompt_ids(loaded: LoadedModel, prompt: str) -> list[int]:
    return list(loaded.tokenizer(prompt, add_special_tokens=False)["input_ids"])


def greedy(max_new_tokens: int, **kwargs: object) -> SamplingParams:
    return SamplingParams(max_new_tokens=max_new_tokens, temperature=0, **kwargs)  # type: ignore[arg-type]


def reference_greedy(loaded: LoadedModel, prompts: list[str], max_new_tokens: int) -> list[list[int]]:
    tokenizer = loaded.tokenizer
    encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        out = loaded.model.generate(  # type: ignore[operator]
            **encoded, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    return [list(map(int, row)) for row in out[:, encoded["input_ids"].shape[1] :]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_prefill_shared_by_four_rows_one_forward_per_step(small: LoadedModel, backend: str) -> None:
    prompt = chat(small, COLOURS_Q)
    length = len(prompt_ids(small, prompt))
    session = DecodeSession(small, [prompt], 4, SamplingParams(max_new_tokens=6, seed=0), backend=backend)  # type: ignore[arg-type]
    assert session.backend == backend
    assert len(session.rows) == 4
    assert session.usage.forward_passes == 1
    assert session.usage.tokens_processed == length  # the prompt computed once, not 4 times
    assert session.usage.prompt_tokens == 4 * length  # billed once per path

    batches: list[int] = []
    runner = session._runner
    decode = runner.decode

    def spy(tokens: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        batches.append(int(tokens.shape[0]))
        return decode(tokens)

    runner.decode = spy  # type: ignore[method-assign]
    session.ignore_eos = True
    session._eos = set()
    session.advance()
    assert batches == [4] * 5  # 6 tokens per row: the first comes from the prefill
    usage = session.usage
    assert usage.forward_passes == 1 + 5
    assert usage.completion_tokens == 4 * 6
    assert usage.tokens_processed == length + 4 * 5
    assert usage.kv_reads == 4 * sum(length + t for t in range(1, 6))
    assert all(r.status == "finished" and r.finish_reason == "length" for r in session.rows)
    assert not session.active


def test_identical_prompts_are_prefilled_once(small: LoadedModel) -> None:
    prompt = chat(small, COLOURS_Q)
    session = DecodeSession(small, [prompt, prompt], [2, 1], greedy(2))
    assert [r.prompt_index for r in session.rows] == [0, 0, 1]
    assert session.usage.tokens_processed == len(prompt_ids(small, prompt))


@pytest.mark.parametrize("backend", BACKENDS)
def test_greedy_equals_generate_with_left_padding(small: LoadedModel, backend: str) -> None:
    prompts = [chat(small, "What is 2+3?"), chat(small, "Write a short poem about the sea, the sky and the wind.")]
    assert len(prompt_ids(small, prompts[0])) != len(prompt_ids(small, prompts[1]))
    expected = reference_greedy(small, prompts, 16)
    session = DecodeSession(small, prompts, 1, greedy(16), backend=backend)  # type: ignore[arg-type]
    session.advance()
    for row, ref in zip(session.rows, expected, strict=True):
        assert row.token_ids == ref[: len(row.token_ids)]
        if row.finish_reason == "eos":  # generate pads the rest of a finished row
            assert set(ref[len(row.token_ids) :]) <= {small.tokenizer.pad_token_id}
        else:
            assert len(row.token_ids) == 16


def test_step_delimiter_resume_select_and_pruning(small: LoadedModel) -> None:
    prompts = [chat(small, STEPS_Q), chat(small, COLOURS_Q)]
    session = DecodeSession(small, prompts, 1, greedy(120, step_delimiter="\n\n"))
    session.advance()
    tokenizer = small.tokenizer
    for row in session.rows:
        assert row.status == "step_done"
        step = row.step_text(tokenizer)
        assert step.strip()
        assert step.endswith("\n\n")
        assert "\n\n" not in row.step_text(tokenizer)[:-2].strip()
    # waiting and finished rows stay out of the forward: every fed token was computed once; the fast
    # runner prefills each prompt unpadded in a pass of its own, the hf runner one padded batch
    fed = sum(len(r.token_ids) - 1 for r in session.rows)
    lengths = [len(prompt_ids(small, p)) for p in prompts]
    prefill = sum(lengths) if session.backend == "fast" else 2 * max(lengths)
    assert session.usage.tokens_processed == prefill + fed

    first = [list(r.token_ids) for r in session.rows]
    session.select([0, 0, 1])
    assert [r.prompt_index for r in session.rows] == [0, 0, 1]
    assert session.rows[0] is not session.rows[1]
    session.resume()
    assert all(r.status == "running" and r.step_start == len(r.token_ids) for r in session.rows)
    session.advance()
    a, b, c = session.rows
    assert a.token_ids == b.token_ids  # greedy copies agree
    assert a.logprob_sum == pytest.approx(b.logprob_sum, abs=1e-4)  # (batch position changes float rounding)
    assert a.token_ids[: len(first[0])] == first[0]
    assert len(a.token_ids) > len(first[0])
    assert c.token_ids[: len(first[1])] == first[1]
    assert a.step_start == len(first[0])

    # a pruned row costs nothing from now on: one row left, one position per forward pass
    session.select([0])
    session.resume()
    before = session.usage
    before = type(before)(**vars(before))
    session.advance()
    grown = session.usage.tokens_processed - before.tokens_processed
    passes = session.usage.forward_passes - before.forward_passes
    assert passes > 0
    assert grown == passes


def test_fast_and_hf_runners_agree_through_steps_waits_and_selects(small: LoadedModel) -> None:
    prompts = [chat(small, STEPS_Q), chat(small, COLOURS_Q)]
    results = {}
    for backend in BACKENDS:
        session = DecodeSession(small, prompts, [2, 1], greedy(150, step_delimiter="\n\n"), backend=backend)  # type: ignore[arg-type]
        session.advance(max_tokens=5)  # partial advance: rows stay running
        assert all(r.status == "running" and len(r.token_ids) == 5 for r in session.rows)
        session.advance()
        session.select([2, 0, 2, 1])
        session.resume()
        session.advance()
        waiting = [i for i, r in enumerate(session.rows) if r.status == "step_done"]
        assert waiting
        session.finish(waiting[-1:], "pruned")
        session.resume()
        session.advance()
        assert session.rows[waiting[-1]].finish_reason == "pruned"
        results[backend] = [(r.token_ids, r.status, r.finish_reason) for r in session.rows]
        logprobs = [r.logprob_sum for r in session.rows]
        results[backend + "-lp"] = logprobs  # type: ignore[assignment]
    assert results["fast"] == results["hf"]
    assert results["fast-lp"] == pytest.approx(results["hf-lp"], abs=1e-3)


def test_fast_runner_compacts_gaps_left_by_waiting_rows(small: LoadedModel) -> None:
    prompts = [chat(small, STEPS_Q), chat(small, COLOURS_Q)]
    session = DecodeSession(small, prompts, 1, greedy(120, step_delimiter="\n\n"), backend="fast")
    session.advance()
    runner = session._runner
    assert isinstance(runner, _FastRunner)
    span = runner.span
    session.resume()
    session.advance(max_tokens=1)
    # the shorter step's row waited: its gap is squeezed out before the next step
    assert runner.span == int(runner.length.max()) < span + 1


def test_seeded_sampling_is_reproducible(small: LoadedModel) -> None:
    prompt = chat(small, COLOURS_Q)

    def run(seed: int) -> list[list[int]]:
        session = DecodeSession(small, [prompt], 3, SamplingParams(max_new_tokens=12, temperature=1.0, seed=seed))
        session.advance()
        return [r.token_ids for r in session.rows]

    first = run(7)
    assert run(7) == first
    assert run(8) != first
    assert len({tuple(t) for t in first}) > 1  # rows sample independently


def test_a_rows_samples_do_not_depend_on_the_rows_beside_it(small: LoadedModel) -> None:
    """Pruning other rows must not change what a surviving row samples (its own random stream)."""
    prompt = chat(small, COLOURS_Q)
    params = SamplingParams(max_new_tokens=16, temperature=1.0, seed=3)
    full = DecodeSession(small, [prompt], 4, params)
    full.advance()
    pruned = DecodeSession(small, [prompt], 4, params)
    pruned.advance(max_tokens=4)
    pruned.select([2])
    pruned.advance()
    assert pruned.rows[0].token_ids == full.rows[2].token_ids
    # a duplicated row gets a stream of its own: the copies diverge
    twins = DecodeSession(small, [prompt], 1, params)
    twins.advance(max_tokens=2)
    twins.select([0, 0])
    twins.advance()
    assert twins.rows[0].token_ids != twins.rows[1].token_ids


def test_stop_strings_end_rows_and_cut_the_text(small: LoadedModel) -> None:
    prompt = chat(small, COLOURS_Q)
    plain = DecodeSession(small, [prompt], 1, greedy(30))
    plain.advance()
    text = plain.rows[0].text(small.tokenizer)
    assert "Red: The most" in text
    session = DecodeSession(small, [prompt], 1, greedy(30, stop=("d: The m",)))  # spans several tokens
    session.advance()
    row = session.rows[0]
    assert (row.status, row.finish_reason) == ("finished", "stop")
    assert row.text(small.tokenizer) == text[: text.index("d: The m")]
    assert len(row.token_ids) < len(plain.rows[0].token_ids)


def test_max_new_tokens_finishes_rows_with_length(small: LoadedModel) -> None:
    session = DecodeSession(small, [chat(small, COLOURS_Q)], 3, SamplingParams(max_new_tokens=5, seed=1))
    session.advance()
    assert [len(r.token_ids) for r in session.rows] == [5, 5, 5]
    assert {r.finish_reason for r in session.rows} == {"length"}
    assert session.usage.forward_passes == 5


@pytest.mark.parametrize("backend", BACKENDS)
def test_logprob_sum_matches_a_separate_forward_pass(small: LoadedModel, backend: str) -> None:
    prompts = [chat(small, "What is 2+3?"), chat(small, COLOURS_Q)]
    params = SamplingParams(max_new_tokens=10, temperature=0.8, seed=3)
    session = DecodeSession(small, prompts, 2, params, backend=backend)  # type: ignore[arg-type]
    session.advance()
    for row in session.rows:
        ids = prompt_ids(small, prompts[row.prompt_index])
        full = torch.tensor([ids + row.token_ids])
        with torch.inference_mode():
            logits = small.model(input_ids=full).logits[0].double()  # type: ignore[operator]
        # float64 softmax: fp32 log_softmax over 49k logits is itself off by ~3e-6 per token
        logprobs = torch.log_softmax(logits[len(ids) - 1 : -1], dim=-1)
        expected = logprobs.gather(1, torch.tensor(row.token_ids).unsqueeze(1)).sum().item()
        assert row.logprob_sum == pytest.approx(expected, abs=1e-4)


def test_top_p_sampling_is_exact_beyond_the_first_candidates() -> None:
    vocab = 2000
    logits = -torch.arange(vocab, dtype=torch.float32) * 1e-3  # nearly flat: the nucleus is ~1800 tokens
    probs = torch.softmax(logits, dim=0)
    before = probs.cumsum(0) - probs
    nucleus = int((before < 0.9).sum())
    assert nucleus > 1000
    params = SamplingParams(temperature=1.0, top_p=0.9)
    generator = torch.Generator().manual_seed(0)
    tokens, logprobs = sample_tokens(logits.repeat(500, 1), params, generator)
    assert 1000 < int(tokens.max()) < nucleus
    assert torch.allclose(logprobs, torch.log(probs[tokens]), atol=1e-5)
    peaked = torch.tensor([[5.0, 1.0, 0.0, -1.0]]).repeat(50, 1)
    tokens, _ = sample_tokens(peaked, SamplingParams(temperature=1.0, top_p=0.5), generator)
    assert set(tokens.tolist()) == {0}
    tokens, logprobs = sample_tokens(peaked, SamplingParams(temperature=0), generator)
    assert set(tokens.tolist()) == {0}
    assert torch.allclose(logprobs, torch.log_softmax(peaked, dim=-1)[:, 0])


def test_generator_session_runs_every_row_to_its_end(small: LoadedModel) -> None:
    generator = HFGenerator(small)
    prompts = [chat(small, "What is 2+3?"), chat(small, COLOURS_Q)]
    run = generator.session(prompts, 2, SamplingParams(max_new_tokens=8, seed=0))
    run.advance()
    assert [r.prompt_index for r in run.rows] == [0, 0, 1, 1]
    lengths = [len(prompt_ids(small, p)) for p in prompts]
    assert run.usage.prompt_tokens == 2 * sum(lengths)
    assert run.usage.completion_tokens == sum(r.completion_tokens for r in run.rows)
    assert run.usage.tokens_processed >= 2 * max(lengths)
    assert all(r.status == "finished" and r.logprob_sum < 0 for r in run.rows)
    session = generator.session(prompts, [1, 0], greedy(4, step_delimiter="\n\n"))
    assert len(session.rows) == 1
    assert isinstance(session.rows[0], Row)
    with pytest.raises(ValueError, match="at least one"):
        DecodeSession(small, [], 1, greedy(4))
    with pytest.raises(IndexError):
        session.select([3])


def test_fast_runner_matches_generate_on_qwen2() -> None:
    medium = load_model(ModelRegistry.default()["M"])
    prompts = [chat(medium, "What is 2+3?"), chat(medium, "Name a prime number larger than ten.")]
    expected = reference_greedy(medium, prompts, 6)
    session = DecodeSession(medium, prompts, 1, greedy(6), backend="fast")
    session.advance()
    for row, ref in zip(session.rows, expected, strict=True):
        assert row.token_ids == ref[: len(row.token_ids)]
