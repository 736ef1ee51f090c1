"""UniScaleEmbedding: the offline MiniLM through LlamaIndex's embedding interface, sync, async and batched."""

import numpy as np
import pytest

from uniscale_integrations.features.minilm import MiniLMEmbedder
from uniscale_integrations.llama_index import UniScaleEmbedding

TEXTS = ["A cat sleeps on the sofa.", "A kitten naps on the couch.", "The stock market fell sharply today."]


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(scope="module")
def embedding(embedder: MiniLMEmbedder) -> UniScaleEmbedding:
    return UniScaleEmbedding(embedder=embedder, embed_batch_size=2)


def test_vectors_are_unit_norm_minilm_embeddings(embedding: UniScaleEmbedding, embedder: MiniLMEmbedder) -> None:
    vectors = np.asarray(embedding.get_text_embedding_batch(TEXTS))
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors, embedder.embed(TEXTS), atol=1e-5)  # the engine encoder's model
    np.testing.assert_allclose(embedding.get_query_embedding(TEXTS[0]), vectors[0], atol=1e-5)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > unrelated + 0.3
    assert embedding.model_name == "sentence-transformers/all-MiniLM-L6-v2"


def test_batches_run_as_one_call_each(
    embedding: UniScaleEmbedding, embedder: MiniLMEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    embed = embedder.embed

    def counting(texts: list[str]) -> np.ndarray:
        sizes.append(len(texts))
        return embed(texts)

    monkeypatch.setattr(embedder, "embed", counting)
    embedding.get_text_embedding_batch([*TEXTS, "one more", "and another"])
    assert sizes == [2, 2, 1]


@pytest.mark.asyncio
async def test_async_matches_sync(embedding: UniScaleEmbedding) -> None:
    vectors = await embedding.aget_text_embedding_batch(TEXTS)
    np.testing.assert_allclose(vectors, embedding.get_text_embedding_batch(TEXTS), atol=1e-5)
    np.testing.assert_allclose(await embedding.aget_query_embedding(TEXTS[1]), vectors[1], atol=1e-5)
    np.testing.assert_allclose(await embedding.aget_text_embedding(TEXTS[2]), vectors[2], atol=1e-5)


def test_default_loads_the_offline_model_and_refuses_non_text() -> None:
    embedding = UniScaleEmbedding()
    assert len(embedding.get_text_embedding("hello")) == 384
    with pytest.raises(TypeError, match="only text"):
        embedding.get_text_embedding_batch(["fine", 42])  # type: ignore[list-item]
