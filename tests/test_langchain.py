"""ChatUniScale in real LangChain chains, on the real offline S model: metadata, events, feedback, costs."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from langchain_core.callbacks import BaseCallbackHandler, UsageMetadataCallbackHandler
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore

from uniscale_integrations import DuplicateFeedbackError, UniScale, UnknownDecisionError
from uniscale_integrations.errors import CapabilityError
from uniscale_integrations.langchain import (
    ChatUniScale,
    MiniLMEmbeddings,
    UniScaleFeedbackHandler,
    correctness_of,
    get_uniscale_cost_callback,
)


@pytest.fixture(scope="module")
def engine() -> UniScale:
    return UniScale.from_defaults(models=("S",), qp=(1,), cp=(1, 2), max_new_tokens=16, seed=0)


@pytest.fixture
def llm(engine: UniScale) -> ChatUniScale:
    return ChatUniScale(engine=engine)


def _state(engine: UniScale) -> dict[str, np.ndarray]:
    return {k: np.array(v, copy=True) for k, v in engine.bandit.state_dict().items()}


def _changed(before: dict[str, np.ndarray], after: dict[str, np.ndarray]) -> bool:
    return any(not np.array_equal(before[k], after[k]) for k in before)


class _Recorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.custom: list[tuple[str, dict[str, object], uuid.UUID]] = []
        self.llm_runs: list[uuid.UUID] = []

    def on_custom_event(self, name: str, data: object, *, run_id: uuid.UUID, **kwargs: object) -> None:
        assert isinstance(data, dict)
        self.custom.append((name, data, run_id))

    def on_chat_model_start(self, serialized: object, messages: object, *, run_id: uuid.UUID, **kw: object) -> None:
        self.llm_runs.append(run_id)


def test_lcel_chain_answers_with_metadata_and_feedback_applies_once(llm: ChatUniScale, engine: UniScale) -> None:
    prompt = ChatPromptTemplate.from_messages([("system", "Answer briefly."), ("human", "{question}")])
    feedback = UniScaleFeedbackHandler(llm)
    run_id = uuid.uuid4()
    text = (prompt | llm | StrOutputParser()).invoke(
        {"question": "What is 2 + 3?"}, config={"callbacks": [feedback], "run_id": run_id}
    )
    assert isinstance(text, str)
    assert text

    (decision,) = feedback.decisions(run_id)  # the chain's run id leads to the model's decision
    before = _state(engine)
    rewards = feedback.record(run_id, correct=True)
    assert len(rewards) == 1
    assert 0.0 <= rewards[0] <= 1.0
    after = _state(engine)
    assert _changed(before, after)
    with pytest.raises(DuplicateFeedbackError):
        feedback.record(run_id, correct=False)
    with pytest.raises(DuplicateFeedbackError):
        engine.feedback(decision, correct=False)
    assert not _changed(after, _state(engine))


def test_response_metadata_names_model_config_cost_and_choice(llm: ChatUniScale) -> None:
    message = llm.invoke([SystemMessage("Be brief."), HumanMessage("Name a colour.")])
    assert isinstance(message, AIMessage)
    assert message.content
    meta = message.response_metadata
    assert meta["model_name"] == "SmolLM2-135M-Instruct"
    record = meta["uniscale"]
    assert record["config"].startswith("S/qp1/cp")
    assert record["eflops"] > 0
    assert 0.0 <= record["score"] <= 1.0
    assert record["decision_id"]
    estimate = record["estimate"]
    assert estimate["ucb"] == pytest.approx(estimate["mean"] + llm.uniscale.bandit.alpha * estimate["width"])
    usage = message.usage_metadata
    assert usage is not None
    assert usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_forced_config_counts_every_path_in_usage(llm: ChatUniScale) -> None:
    one = llm.invoke("Say hi.", force_config="S/qp1/cp1/bs1")
    two = llm.invoke("Say hi.", force_config="S/qp1/cp2/bs1")
    assert one.response_metadata["uniscale"]["config"] == "S/qp1/cp1/bs1"
    assert one.response_metadata["uniscale"]["estimate"] is None  # forced, not chosen
    assert one.usage_metadata is not None
    assert two.usage_metadata is not None
    # two candidates read the prompt twice: the true total counts both paths
    assert two.usage_metadata["input_tokens"] == 2 * one.usage_metadata["input_tokens"]
    assert two.response_metadata["uniscale"]["eflops"] > one.response_metadata["uniscale"]["eflops"]


def test_usage_callback_totals_equal_the_responses_usage(llm: ChatUniScale) -> None:
    handler = UsageMetadataCallbackHandler()
    messages = [llm.invoke(q, config={"callbacks": [handler]}) for q in ("Say yes.", "Say no.")]
    total = handler.usage_metadata["SmolLM2-135M-Instruct"]
    for key in ("input_tokens", "output_tokens", "total_tokens"):
        assert total[key] == sum(m.usage_metadata[key] for m in messages if m.usage_metadata)


def test_cost_callback_totals_eflops_per_config_across_a_chain(llm: ChatUniScale) -> None:
    chain = llm | StrOutputParser()
    with get_uniscale_cost_callback() as cost:
        chain.invoke("Say yes.")
        message = llm.invoke("Say no.")
    record = message.response_metadata["uniscale"]
    assert cost.total.calls == 2
    assert record["config"] in cost.by_config
    assert cost.total.eflops >= record["eflops"] > 0
    assert cost.total.total_tokens > 0
    with get_uniscale_cost_callback() as outside:
        pass
    assert outside.total.calls == 0  # handlers are scoped to their block


def test_engine_events_arrive_as_custom_events_of_the_model_run(llm: ChatUniScale) -> None:
    recorder = _Recorder()
    llm.invoke("Say hi.", config={"callbacks": [recorder]})
    names = [name for name, _, _ in recorder.custom]
    assert names[0] == "uniscale_config_selected"
    assert "uniscale_step_scored" in names
    assert {run for _, _, run in recorder.custom} == set(recorder.llm_runs)
    selected = recorder.custom[0][1]
    assert selected["config"].startswith("S/")
    assert selected["forced"] is False


async def test_astream_events_of_a_chain_carry_custom_events_and_a_final_chunk(llm: ChatUniScale) -> None:
    chain = ChatPromptTemplate.from_messages([("human", "{question}")]) | llm
    kinds = []
    async for event in chain.astream_events({"question": "Say hi."}, version="v2"):
        kinds.append((event["event"], event.get("name")))
    assert ("on_custom_event", "uniscale_config_selected") in kinds
    assert ("on_chat_model_stream", "ChatUniScale") in kinds
    chunks = [c async for c in llm.astream("Say hi.")]
    assert chunks[-1].chunk_position == "last"
    assert chunks[-1].usage_metadata is not None
    assert all(c.usage_metadata is None for c in chunks[:-1])


def _joined(documents: list[Document]) -> str:
    return "\n".join(d.page_content for d in documents)


def test_rag_chain_over_an_offline_vector_store(llm: ChatUniScale, engine: UniScale) -> None:
    store = InMemoryVectorStore(MiniLMEmbeddings())
    store.add_documents(
        [
            Document("The capital of Zorblat is Quenvi."),
            Document("Bananas are rich in potassium."),
            Document("The Rhine flows into the North Sea."),
        ]
    )
    retriever = store.as_retriever(search_kwargs={"k": 1})
    assert "Quenvi" in retriever.invoke("What is the capital of Zorblat?")[0].page_content
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer from the context.\nContext: {context}"), ("human", "{question}")]
    )
    chain = (
        {
            "context": retriever | (lambda docs: "\n".join(d.page_content for d in docs)),
            "question": RunnablePassthrough(),
        }
        | prompt
        | llm
    )
    feedback = UniScaleFeedbackHandler(engine)
    message = chain.invoke("What is the capital of Zorblat?", config={"callbacks": [feedback]})
    assert "Quenvi" in message.text
    assert message.response_metadata["uniscale"]["decision_id"]
    before = _state(engine)
    feedback.record(message, evaluation={"score": 1, "value": "Y"})
    assert _changed(before, _state(engine))
    with pytest.raises(DuplicateFeedbackError):
        feedback.record(message.id, correct=True)


def test_feedback_rejects_unknown_runs_and_unreadable_evaluations(llm: ChatUniScale) -> None:
    feedback = UniScaleFeedbackHandler(llm)
    with pytest.raises(UnknownDecisionError):
        feedback.record(uuid.uuid4(), correct=True)
    assert correctness_of({"value": "N"}) == 0.0
    assert correctness_of(type("Result", (), {"score": 0.25})()) == 0.25
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        correctness_of({"score": 4})
    with pytest.raises(ValueError, match="cannot read correctness"):
        correctness_of({"comment": "good"})


def test_bad_messages_and_options_give_clear_errors(llm: ChatUniScale) -> None:
    with pytest.raises(CapabilityError, match=r"needs tool calls \(S: SmolLM2-135M-Instruct declares no tool calls"):
        llm.invoke([HumanMessage("hi"), ToolMessage("42", tool_call_id="1")])  # S cannot render tool turns
    with pytest.raises(ValueError, match="text only"):
        llm.invoke([HumanMessage([{"type": "image_url", "image_url": {"url": "data:,"}}])])
    with pytest.raises(ValueError, match="human message"):
        llm.invoke([SystemMessage("only a system prompt")])
    with pytest.raises(TypeError, match="unexpected call options"):
        llm.invoke("hi", functions=[])  # OpenAI's deprecated form; tools= is taken


def test_model_names_pin_a_model_or_are_refused(llm: ChatUniScale) -> None:
    pinned = ChatUniScale(engine=llm.uniscale, model="S")
    assert pinned.invoke("Say hi.").response_metadata["model_name"] == "SmolLM2-135M-Instruct"
    assert pinned._get_ls_params()["ls_model_name"] == "S"
    with pytest.raises(ValueError, match="unknown model 'gpt-5'"):
        llm.invoke("Say hi.", model="gpt-5")
