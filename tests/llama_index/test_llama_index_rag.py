"""UniScale as ``Settings.llm`` / ``Settings.embed_model`` in a real VectorStoreIndex query engine."""

from collections.abc import Iterator

import numpy as np
import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.base.response.schema import Response

from uniscale_integrations import DuplicateFeedbackError, UniScale
from uniscale_integrations.llama_index import (
    DECISION_IDS_KEY,
    DecisionRecorder,
    UniScaleEmbedding,
    UniScaleLLM,
    apply_feedback,
    decision_ids,
)

DOCUMENTS = [
    "The lighthouse on Gull Island is kept by a woman named Marta Okafor.",
    "The Gull Island ferry leaves the harbour every morning at 7 o'clock.",
    "Gull Island has about 300 residents and one bakery.",
    "The island's bakery is famous for its rye bread.",
]
QUESTION = "Who keeps the lighthouse on Gull Island?"


@pytest.fixture(scope="module")
def llm(engine: UniScale) -> Iterator[UniScaleLLM]:
    """The adapter installed in LlamaIndex's global Settings for this module (restored afterwards)."""
    saved = Settings._llm, Settings._embed_model
    llm = UniScaleLLM(engine=engine)
    Settings.llm = llm
    Settings.embed_model = UniScaleEmbedding()
    yield llm
    Settings._llm, Settings._embed_model = saved


@pytest.fixture(scope="module")
def index(llm: UniScaleLLM) -> VectorStoreIndex:
    return VectorStoreIndex.from_documents([Document(text=t) for t in DOCUMENTS])


@pytest.fixture
def recorder() -> Iterator[DecisionRecorder]:
    with DecisionRecorder() as recorder:
        yield recorder


def test_query_engine_answers_from_the_documents(index: VectorStoreIndex, recorder: DecisionRecorder) -> None:
    response = index.as_query_engine(similarity_top_k=2).query(QUESTION)
    assert isinstance(response, Response)
    assert "Marta Okafor" in str(response)
    assert "Marta Okafor" in response.source_nodes[0].get_content()  # retrieved by UniScaleEmbedding
    (decision,) = response.metadata[DECISION_IDS_KEY]
    assert decision_ids(response) == [decision]


@pytest.mark.asyncio
async def test_async_query_records_its_decision(index: VectorStoreIndex, recorder: DecisionRecorder) -> None:
    response = await index.as_query_engine(similarity_top_k=1).aquery("When does the ferry leave?")
    assert "7" in str(response)
    assert len(decision_ids(response)) == 1


def test_feedback_reaches_every_decision_of_a_query_once(
    index: VectorStoreIndex, engine: UniScale, recorder: DecisionRecorder
) -> None:
    engine_query = index.as_query_engine(similarity_top_k=2, response_mode="refine")  # one LLM call per chunk
    response = engine_query.query("How many residents does Gull Island have?")
    decisions = decision_ids(response)
    assert len(decisions) == len(set(decisions)) == 2
    before = {k: np.array(v, copy=True) for k, v in engine.bandit.state_dict().items()}
    updates = engine.bandit.n_updates

    rewards = apply_feedback(engine, response, correct="300" in str(response), score=0.8)
    assert len(rewards) == 2
    assert all(0.0 <= r <= 1.0 for r in rewards)
    assert engine.bandit.n_updates == updates + 2
    assert any(not np.array_equal(np.asarray(v), before[k]) for k, v in engine.bandit.state_dict().items())
    with pytest.raises(DuplicateFeedbackError):
        apply_feedback(engine, response, correct=True)
    assert engine.bandit.n_updates == updates + 2


def test_without_a_recorder_the_response_names_no_decision(index: VectorStoreIndex) -> None:
    response = index.as_query_engine(similarity_top_k=1).query(QUESTION)
    assert DECISION_IDS_KEY not in (response.metadata or {})
    with pytest.raises(ValueError, match="DecisionRecorder"):
        decision_ids(response)
