"""Pooling free-form replies by meaning: which candidates say the same thing.

A short answer ("Answer: 12") is pooled by its value (:func:`~uniscale_integrations.answers.canonical_answer`).
A free-form reply (a RAG answer, a paragraph) has no such key: two candidates that both say
"Marta Okafor keeps the lighthouse" rarely share a string, and reading a number out of them
pools "has about 300 residents" with "300 years old". :class:`MeaningPool` embeds the replies
with a sentence-transformers model (the offline MiniLM by default) and links two replies whose
cosine similarity reaches ``threshold`` (or that state the same short answer, where the caller
says so); the connected groups are the votes. Written by hand
because it is a few lines over a similarity matrix of at most a few dozen replies (a clustering
library would add a dependency and a fitted model for nothing).

The embedding is priced in eFLOPs like any other work of the search.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from uniscale_integrations.executor.verifiers import MINILM_SHAPE, SentenceEmbedder, embedding_usage
from uniscale_integrations.reward.cost import CostModel, Shaped, Usage

DEFAULT_THRESHOLD = 0.8
"""Cosine similarity from which two MiniLM embeddings are taken to say the same thing
(paraphrases of one fact score 0.8-0.95 there; different facts about one subject 0.4-0.7)."""


@dataclass(frozen=True)
class Grouping:
    """The group of each reply (groups numbered from 0 in order of first appearance), and its cost."""

    labels: list[int]
    eflops: float = 0.0
    usage: Usage = field(default_factory=Usage)


class MeaningPool:
    """Groups replies whose embeddings are linked by cosine similarity >= ``threshold`` (single link).

    Blank replies are not embedded and each forms a group of its own.

    >>> from uniscale_integrations.features.minilm import MiniLMEmbedder
    >>> pool = MeaningPool(MiniLMEmbedder())
    >>> pool.group(["Marta Okafor keeps the lighthouse.", "The lighthouse keeper is Marta Okafor.",
    ...             "The ferry leaves at 7 o'clock."]).labels
    [0, 0, 1]
    >>> pool.group(["So it is 12.", "I get twelve apples in all, Answer: 12", "13"], same=["12", "12", None]).labels
    [0, 0, 1]
    """

    def __init__(
        self,
        embedder: SentenceEmbedder,
        threshold: float = DEFAULT_THRESHOLD,
        *,
        cost_model: CostModel | None = None,
        shape: Shaped = MINILM_SHAPE,
    ):
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must lie in (0, 1], got {threshold!r}")
        self.embedder = embedder
        self.threshold = threshold
        self.cost_model = cost_model if cost_model is not None else CostModel()
        self.shape = shape

    def group(self, texts: Sequence[str], same: Sequence[str | None] | None = None) -> Grouping:
        """The groups of ``texts``; replies with equal non-``None`` entries in ``same`` (for example
        their stated answers) are linked whatever their similarity."""
        if same is not None and len(same) != len(texts):
            raise ValueError(f"got {len(same)} keys for {len(texts)} replies")
        filled = [i for i, t in enumerate(texts) if t.strip()]
        parent = list(range(len(texts)))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        usage = Usage()
        if len(filled) > 1:
            vectors = self.embedder.embed([texts[i] for i in filled])
            similar = np.argwhere(np.triu(vectors @ vectors.T, k=1) >= self.threshold)
            for a, b in similar.tolist():
                parent[root(filled[b])] = root(filled[a])
            usage = embedding_usage(self.embedder, [texts[i] for i in filled])
        first: dict[str, int] = {}
        for i, key in enumerate(same or []):
            if key is not None:
                parent[root(i)] = root(first.setdefault(key, i))
        numbering: dict[int, int] = {}
        labels = [numbering.setdefault(root(i), len(numbering)) for i in range(len(texts))]
        return Grouping(labels, self.cost_model.eflops(self.shape, usage), usage)
