"""Contract tests of UniScaleLLM on the real offline model S: every endpoint, metadata, options, bad input."""

import asyncio
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse, ImageBlock, TextBlock
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
from llama_index_support import EventLog
from pydantic import ValidationError

from uniscale_integrations import Config, UniScale
from uniscale_integrations.llama_index import ConfigSelectedEvent, UniScaleLLM, to_chat
from uniscale_integrations.options import RunOptions

METADATA_KEYS = {
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "model",
    "config",
    "eflops",
    "verifier_eflops",
    "cost",
    "score",
    "answer",
    "seconds",
    "decision_id",
    "estimate",
    "paths",
    "pruned",
    "budget_exhausted",
    "trace",
}
CHAT = [
    ChatMessage(role="system", content="You are a helpful assistant. Answer in one short sentence."),
    ChatMessage(role="user", content="Remember this code word: Zebra."),
    ChatMessage(role="assistant", content="Got it, the code word is Zebra."),
    ChatMessage(role="user", content="What is the code word?"),
]


@pytest.fixture(scope="module")
def llm(engine: UniScale) -> UniScaleLLM:
    return UniScaleLLM(engine=engine)


def _spy_on_run(engine: UniScale, monkeypatch: pytest.MonkeyPatch) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Records what the adapter passes to the real ``engine.run``."""
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    run = engine.run

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        return run(*args, **kwargs)

    monkeypatch.setattr(engine, "run", spy)
    return calls


def _check_metadata(kwargs: dict[str, Any], engine: UniScale) -> None:
    assert set(kwargs) == METADATA_KEYS
    assert kwargs["total_tokens"] == kwargs["prompt_tokens"] + kwargs["completion_tokens"]
    assert kwargs["prompt_tokens"] > 0
    assert kwargs["completion_tokens"] > 0
    assert Config.parse(kwargs["config"]) in engine.space
    assert kwargs["model"] == "SmolLM2-135M-Instruct"
    assert kwargs["eflops"] > 0
    assert 0 < kwargs["cost"] <= 1
    assert 0 <= kwargs["score"] <= 1
    assert len(kwargs["decision_id"]) == 32
    estimate = kwargs["estimate"]
    assert estimate["ucb"] == pytest.approx(estimate["mean"] + engine.bandit.alpha * estimate["width"])
    trace = kwargs["trace"]
    assert len(trace["paths"]) == kwargs["paths"]
    assert trace["completion_tokens"] <= kwargs["completion_tokens"]
    assert trace["stop_reason"]


def _check_raw(response: ChatResponse | CompletionResponse) -> None:
    usage = response.raw["usage"]
    kwargs = response.additional_kwargs
    assert usage == {k: kwargs[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    assert response.raw["decision_id"] == kwargs["decision_id"]


def test_metadata_reports_the_engine_models(llm: UniScaleLLM, engine: UniScale) -> None:
    metadata = llm.metadata
    assert metadata.is_chat_model
    assert not metadata.is_function_calling_model
    assert metadata.model_name == "SmolLM2-135M-Instruct"
    assert metadata.context_window == engine.context_window == 8192
    assert metadata.num_output == 20
    assert UniScaleLLM(engine=engine, max_tokens=7).metadata.num_output == 7


def test_default_engine_is_the_offline_ladder() -> None:
    llm = UniScaleLLM()  # nothing loads until the first call
    names = [llm.engine.model_name(m) for m in llm.engine.space.models]
    assert len(names) == 2
    assert llm.metadata.model_name == f"uniscale({', '.join(names)})"
    assert llm.metadata.context_window == llm.engine.context_window


def test_complete(llm: UniScaleLLM, engine: UniScale) -> None:
    response = llm.complete("What is 2 + 3?")
    assert isinstance(response, CompletionResponse)
    assert response.text.strip()
    assert "5" in response.text
    # the default (plain) style answers in free form: the answer is the reply, not a number read out of it
    assert response.additional_kwargs["answer"] == response.text
    _check_metadata(response.additional_kwargs, engine)
    _check_raw(response)


def test_chat_sends_every_turn(llm: UniScaleLLM, engine: UniScale, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _spy_on_run(engine, monkeypatch)
    response = llm.chat(CHAT, config="S/qp1/cp1/bs1")  # greedy, so the answer is reproducible
    assert calls[0][0][0] == [{"role": m.role.value, "content": m.content} for m in CHAT]
    assert isinstance(response, ChatResponse)
    assert response.message.role == "assistant"
    assert "Zebra" in (response.message.content or "")  # only an earlier turn holds the word
    assert response.additional_kwargs["config"] == "S/qp1/cp1/bs1"
    _check_raw(response)


def test_stream_complete_streams_the_answer_then_the_metadata(llm: UniScaleLLM, engine: UniScale) -> None:
    chunks = list(llm.stream_complete("Name three colours."))
    assert len(chunks) > 1
    assert "".join(c.delta or "" for c in chunks) == chunks[-1].text
    assert [c.text for c in chunks] == ["".join(c.delta or "" for c in chunks[: i + 1]) for i in range(len(chunks))]
    decision = chunks[-1].additional_kwargs["decision_id"]
    assert all(c.additional_kwargs["decision_id"] == decision for c in chunks)
    assert all(set(c.additional_kwargs) == {"decision_id"} for c in chunks[:-1])
    _check_metadata(chunks[-1].additional_kwargs, engine)
    _check_raw(chunks[-1])


def test_stream_chat(llm: UniScaleLLM, engine: UniScale) -> None:
    chunks = list(llm.stream_chat(CHAT))
    assert chunks
    assert "".join(c.delta or "" for c in chunks) == chunks[-1].message.content
    assert all(c.message.role == "assistant" for c in chunks)
    _check_metadata(chunks[-1].additional_kwargs, engine)


@pytest.mark.asyncio
async def test_acomplete(llm: UniScaleLLM, engine: UniScale) -> None:
    response = await llm.acomplete("What is 2 + 3?")
    assert "5" in response.text
    _check_metadata(response.additional_kwargs, engine)


@pytest.mark.asyncio
async def test_achat_leaves_the_event_loop_free(llm: UniScaleLLM, engine: UniScale) -> None:
    ticks = 0
    done = asyncio.Event()

    async def tick() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    response = await llm.achat(CHAT)
    done.set()
    await ticker
    assert ticks >= 10  # the loop ran on while the engine worked (>= 0.1 s of ticks)
    assert response.message.content
    _check_metadata(response.additional_kwargs, engine)


@pytest.mark.asyncio
async def test_astream_chat(llm: UniScaleLLM, engine: UniScale) -> None:
    chunks = [c async for c in await llm.astream_chat(CHAT)]
    assert chunks
    assert "".join(c.delta or "" for c in chunks) == chunks[-1].message.content
    _check_metadata(chunks[-1].additional_kwargs, engine)


@pytest.mark.asyncio
async def test_astream_complete(llm: UniScaleLLM, engine: UniScale) -> None:
    chunks = [c async for c in await llm.astream_complete("What is 2 + 3?")]
    assert "".join(c.delta or "" for c in chunks) == chunks[-1].text
    _check_metadata(chunks[-1].additional_kwargs, engine)


def test_options_reach_the_engine(llm: UniScaleLLM, engine: UniScale, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _spy_on_run(engine, monkeypatch)
    options = {"max_tokens": 3, "temperature": 0.0, "stop": "\n", "seed": 5, "config": "S/qp1/cp2/bs1"}
    response = llm.complete("Count from one to ten.", **options)
    assert calls[0][0][1] == RunOptions(
        max_new_tokens=3, temperature=0.0, stop=("\n",), seed=5, config=Config("S", cp=2)
    )
    kwargs = response.additional_kwargs
    assert kwargs["config"] == "S/qp1/cp2/bs1"
    assert 0 < kwargs["completion_tokens"] <= 3 * 2
    assert kwargs["estimate"] is None  # a forced config has no estimate

    UniScaleLLM(engine=engine, max_tokens=2, temperature=0.3).chat(CHAT)
    assert (calls[1][0][1].max_new_tokens, calls[1][0][1].temperature) == (2, 0.3)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_tokens": 0}, {"max_tokens": 2.5}, {"temperature": -1.0}, {"temperature": float("nan")}, {"top_k": 3}],
)
def test_bad_options_are_refused_before_any_decision(
    llm: UniScaleLLM, event_log: EventLog, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match=r"must be|unexpected"):
        llm.complete("What is 1 + 1?", **kwargs)
    assert not event_log.of(ConfigSelectedEvent)


def test_bad_input_is_refused(llm: UniScaleLLM, engine: UniScale) -> None:
    image = ChatMessage(role="user", blocks=[TextBlock(text="What is this?"), ImageBlock(url="http://x/y.png")])
    with pytest.raises(ValueError, match="text only"):
        llm.chat([image])
    with pytest.raises(ValueError, match="ChatMessage"):  # refused by LlamaIndex's own start event
        llm.chat(["hello"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="ChatMessage"):
        to_chat(["hello"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="sequence of ChatMessage"):
        to_chat(ChatMessage(role="user", content="hello"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no user message"):
        llm.chat([ChatMessage(role="system", content="Be brief.")])
    with pytest.raises(ValueError, match="empty"):
        llm.complete("   ")
    with pytest.raises(TypeError, match="UniScale engine"):
        UniScaleLLM(engine="S")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        UniScaleLLM(engine=engine, max_tokens=0)


def test_token_counting_handler_reads_the_usage(engine: UniScale) -> None:
    counter = TokenCountingHandler()
    llm = UniScaleLLM(engine=engine, callback_manager=CallbackManager([counter]))
    response = llm.chat(CHAT)
    assert counter.prompt_llm_token_count == response.additional_kwargs["prompt_tokens"]
    assert counter.completion_llm_token_count == response.additional_kwargs["completion_tokens"]
