import numpy as np
import pytest

from uniscale_integrations.features.encoder import CHEAP_FEATURES, QueryEncoder, cheap_features
from uniscale_integrations.features.minilm import MiniLMEmbedder


@pytest.fixture(scope="module")
def encoder() -> QueryEncoder:
    return QueryEncoder(MiniLMEmbedder(), dim=8)


def test_context_vectors_have_bias_projection_and_cheap_features(encoder: QueryEncoder) -> None:
    contexts = encoder.encode(["What is 3 + 4?", "Name the capital of France."])
    assert contexts.shape == (2, 1 + 8 + len(CHEAP_FEATURES)) == (2, encoder.context_dim)
    assert np.all(contexts[:, 0] == 1.0)
    assert np.all(np.abs(contexts[:, 1:9]) < 3)
    assert 0.3 < np.linalg.norm(contexts[0, 1:9]) < 3


def test_encoding_is_deterministic_across_instances(encoder: QueryEncoder) -> None:
    again = QueryEncoder(MiniLMEmbedder(), dim=8)
    query = "How many legs do 3 spiders have?"
    np.testing.assert_allclose(encoder.encode_one(query), again.encode_one(query), atol=1e-6)


def test_similar_queries_land_closer_than_unrelated_ones(encoder: QueryEncoder) -> None:
    a, b, c = encoder.encode(
        ["Calculate 12 + 45 + 7.", "Calculate 31 + 8 + 66.", "Write a poem about autumn leaves falling."]
    )[:, 1:9]
    assert np.linalg.norm(a - b) < np.linalg.norm(a - c)


def test_cheap_features_stay_in_unit_interval() -> None:
    features = cheap_features("12 + 3 * 4 - 5 =" + "x" * 10_000)
    assert all(0.0 <= f <= 1.0 for f in features)
    assert cheap_features("12 + 3")[3] == pytest.approx(0.1)
    assert cheap_features("")[1] == 0.0


def test_projection_size_is_checked() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        QueryEncoder(MiniLMEmbedder(), dim=1000)


def test_packed_linear_layers_embed_as_the_plain_model_does(encoder: QueryEncoder) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    from uniscale_integrations.features.minilm import embedding_model_path, pack_linear_layers

    plain = SentenceTransformer(embedding_model_path(), device="cpu", local_files_only=True)
    packed = encoder.embedder.sentence_transformer  # type: ignore[attr-defined]
    assert not any(isinstance(m, torch.nn.Linear) for m in packed.modules())  # every layer runs packed
    assert pack_linear_layers(packed) == 0  # and packing twice changes nothing
    texts = ["What is 3 + 4?", "A train leaves at 9:40 and arrives at 11:05. How long is the trip?"]
    expected = plain.encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(encoder.embedder.embed(texts), expected, atol=1e-5)
