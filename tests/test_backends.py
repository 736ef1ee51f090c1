"""One contract for every backend: the real S model in process (HF) and a scripted OpenAI-compatible
server (the remote backend), each through its Generator and its Session."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator

import pytest

from uniscale_integrations import backends
from uniscale_integrations.backends.base import Generator, Row, SamplingParams, Session
from uniscale_integrations.backends.hf.generator import HFGenerator
from uniscale_integrations.backends.hf.session import DecodeSession
from uniscale_integrations.backends.openai import OpenAIGenerator, RemoteSession
from uniscale_integrations.models import ModelRegistry, load_model
from uniscale_integrations.reward.cost import ModelShape

QUESTIONS = ("What is 2 + 3? Think in two short steps.", "Name a colour.")
PARAMS = SamplingParams(max_new_tokens=12, temperature=0.7, top_p=0.95, seed=3, step_delimiter="\n\n")


@pytest.fixture(scope="module")
def hf() -> HFGenerator:
    return HFGenerator(load_model(ModelRegistry.default()["S"]))


def _remote(url: str) -> OpenAIGenerator:
    return OpenAIGenerator(url, "tiny", ModelShape(134_515_008, 30, 192), backoff=0.01).check()


GENERATORS: dict[str, Callable[[pytest.FixtureRequest], Generator]] = {
    "hf": lambda request: request.getfixturevalue("hf"),
    "openai": lambda request: _remote(request.getfixturevalue("scripted")),
}
SESSIONS = {"hf": DecodeSession, "openai": RemoteSession}


@pytest.fixture(params=sorted(GENERATORS))
def generator(request: pytest.FixtureRequest) -> Iterator[Generator]:
    made = GENERATORS[request.param](request)
    yield made
    if isinstance(made, OpenAIGenerator):
        made.close()


def _sessions() -> set[type]:
    """Every concrete session class of the package's backends."""
    found, todo = set(), list(Session.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__.startswith(backends.__name__) and not inspect.isabstract(cls):
            found.add(cls)
    return found


def test_every_backend_is_under_contract() -> None:
    assert _sessions() == set(SESSIONS.values())


def test_generator_contract(generator: Generator) -> None:
    assert isinstance(generator.name, str)
    assert generator.name
    shape = generator.shape
    assert all(isinstance(n, int) and n > 0 for n in (shape.params, shape.n_layers, shape.kv_dim))
    prompt = generator.render([{"role": "user", "content": QUESTIONS[0]}])
    assert isinstance(prompt, str)
    assert QUESTIONS[0] in prompt


def test_session_contract(generator: Generator) -> None:
    prompts = [generator.render([{"role": "user", "content": q}]) for q in QUESTIONS]
    session = generator.session(prompts, [2, 1], PARAMS)
    assert isinstance(session, Session)
    assert type(session) in SESSIONS.values()
    assert isinstance(session.backend, str)
    assert [r.prompt_index for r in session.rows] == [0, 0, 1]
    assert all(isinstance(r, Row) and r.status == "running" for r in session.rows)

    session.advance()  # every row to its first step end, or to its end
    assert all(r.status in ("step_done", "finished") for r in session.rows)
    assert session.usage.completion_tokens == sum(r.completion_tokens for r in session.rows)
    assert session.usage.prompt_tokens > 0
    assert session.usage.tokens_processed >= session.usage.completion_tokens

    first = session.rows[0]
    session.select([0, 0, 2])  # keep row 0 twice (a beam's children) and row 2; drop row 1
    assert session.rows[0] is first
    assert session.rows[1] is not first
    assert session.rows[1].token_ids == first.token_ids
    assert session.rows[1].token_ids is not first.token_ids
    assert [r.prompt_index for r in session.rows] == [0, 0, 1]

    waiting = [r for r in session.rows if r.status == "step_done"]
    session.resume()
    assert all(r.status == "running" and r.step_start == len(r.token_ids) for r in waiting)

    done = {i: r.finish_reason for i, r in enumerate(session.rows) if r.status == "finished"}
    pruned = [i for i in range(len(session.rows)) if i not in done][:1]
    session.finish([*done, *pruned], "pruned")
    assert all(session.rows[i].finish_reason == reason for i, reason in done.items())  # a finished row keeps its reason
    assert all((session.rows[i].status, session.rows[i].finish_reason) == ("finished", "pruned") for i in pruned)
    tokens = {i: len(session.rows[i].token_ids) for i in pruned}
    for _ in range(PARAMS.max_new_tokens + 1):  # each round decodes at least one token of every running row
        if not session.active:
            break
        session.advance()
        session.resume()
    assert not session.active
    assert all(len(session.rows[i].token_ids) == n for i, n in tokens.items())  # a finished row never computes again
    assert all(isinstance(r.text(generator.tokenizer), str) for r in session.rows)
    assert all(r.completion_tokens <= PARAMS.max_new_tokens for r in session.rows)


def test_session_refusals(generator: Generator) -> None:
    prompt = generator.render([{"role": "user", "content": QUESTIONS[1]}])
    with pytest.raises(ValueError, match="at least one prompt"):
        generator.session([], 1, PARAMS)
    with pytest.raises(ValueError, match="counts"):
        generator.session([prompt], [1, 1], PARAMS)
    with pytest.raises(ValueError, match="at least one row"):
        generator.session([prompt], 0, PARAMS)
    session = generator.session([prompt], 1, PARAMS)
    with pytest.raises(ValueError, match="max_tokens"):
        session.advance(-1)
    with pytest.raises(IndexError):
        session.select([1])
