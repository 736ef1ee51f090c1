"""Query encoding: a small context vector ``c_t`` per query.

``c_t = [1, P^T e(q), cheap(q)]`` where ``e(q)`` is a 384-d unit-norm embedding of the query (by default
all-MiniLM-L6-v2 distilled to a static token table, :mod:`~uniscale_integrations.features.static`; or MiniLM
itself), ``P`` a fixed orthonormal random projection (seeded, so every process and machine reduces the
same way) scaled to keep the projected vector's norm near 1, and ``cheap(q)`` a few surface features in
[0, 1]: length, share of digits, count of numbers, count of arithmetic operators.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from uniscale_integrations.features.joint import FloatArray
from uniscale_integrations.features.static import StaticMiniLMEmbedder

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_OPERATOR = re.compile(r"(?<=[\d\s)])[-+*/×÷^](?=[\s\d(])")
CHEAP_FEATURES = ("log_length", "digit_share", "numbers", "operators")
DEFAULT_DIM = 16
"""Projected embedding dimensions by default. Chosen on table v2's tuning split among the contexts a decision
can afford (``benchmarks/context_study.py``; RESULTS.md): 16 beat 8 and 32 on its first 62 questions, and on all
182, with the prior, no size led it by the 0.01 set in advance once averaged over projection seeds (the seed
moves the score more than the size does). The static table decides in about a millisecond instead of MiniLM's
eight, so it is the default embedding."""


class TextEmbedder(Protocol):
    """Anything that turns texts into an ``(n, dim)`` array of unit-norm embeddings."""

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> FloatArray: ...


def cheap_features(query: str) -> list[float]:
    """Surface features of a query, each in [0, 1]."""
    n_chars = len(query)
    digits = sum(ch.isdigit() for ch in query)
    return [
        min(1.0, math.log1p(n_chars) / math.log1p(4096)),
        digits / n_chars if n_chars else 0.0,
        min(1.0, len(_NUMBER.findall(query)) / 10.0),
        min(1.0, len(_OPERATOR.findall(query)) / 10.0),
    ]


class QueryEncoder:
    """Maps queries to context vectors of length ``1 + dim + 4``."""

    projection = "random"
    """The kind of projection of the embedding (a seeded orthonormal random one); an encoder that
    reduces the embedding another way must name its own kind, so that :attr:`representation` tells
    the two apart."""

    def __init__(self, embedder: TextEmbedder | None = None, dim: int = DEFAULT_DIM, seed: int = 0):
        if dim < 0:
            raise ValueError(f"dim must be >= 0, got {dim}")
        self.embedder: TextEmbedder = embedder if embedder is not None else StaticMiniLMEmbedder()
        if dim > self.embedder.dim:
            raise ValueError(f"dim {dim} exceeds the embedding size {self.embedder.dim}")
        self.dim = dim
        self.seed = seed
        gaussian = np.random.default_rng(seed).standard_normal((self.embedder.dim, dim))
        basis, _ = np.linalg.qr(gaussian)
        self._projection = basis * math.sqrt(self.embedder.dim / max(dim, 1))

    @property
    def context_dim(self) -> int:
        return 1 + self.dim + len(CHEAP_FEATURES)

    @property
    def representation(self) -> str:
        """Which context representation this encoder makes, e.g. ``"minilm-l6/random8/seed0+cheap4"``:
        the embedding model (its ``name``, else its class and size), the projection's kind, size and
        seed, and the cheap features. Derived from the settings, so encoders that differ in any of
        them have different names; a policy store records it and refuses contexts of another one."""
        embedder = getattr(self.embedder, "name", None) or f"{type(self.embedder).__name__}{self.embedder.dim}"
        projection = f"{self.projection}{self.dim}/seed{self.seed}" if self.dim else "none"
        return f"{embedder}/{projection}+cheap{len(CHEAP_FEATURES)}"

    @property
    def feature_names(self) -> tuple[str, ...]:
        return ("bias", *(f"emb{i}" for i in range(self.dim)), *CHEAP_FEATURES)

    def encode(self, queries: Sequence[str]) -> FloatArray:
        """Context vectors for a batch of queries, ``(len(queries), context_dim)``."""
        if not queries:
            return np.zeros((0, self.context_dim))
        projected = self.embedder.embed(queries) @ self._projection if self.dim else np.zeros((len(queries), 0))
        cheap = np.asarray([cheap_features(q) for q in queries], dtype=np.float64)
        bias = np.ones((len(queries), 1))
        return np.hstack([bias, projected, cheap])

    def encode_one(self, query: str) -> FloatArray:
        return self.encode([query])[0]
