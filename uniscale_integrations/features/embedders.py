"""The query encoder's embedding models by name: the one list that settings, the CLI and the server offer."""

from __future__ import annotations

from typing import Literal, get_args

from uniscale_integrations.features.encoder import TextEmbedder
from uniscale_integrations.features.minilm import MiniLMEmbedder
from uniscale_integrations.features.static import StaticMiniLMEmbedder

EmbedderName = Literal["static", "minilm"]
"""``"static"`` (the default): all-MiniLM-L6-v2 distilled to a token table, a lookup per query; ``"minilm"``:
MiniLM itself, a transformer pass per query. On table v2's tuning split their contexts scored alike, and the
static one decides in about a millisecond instead of eight (``benchmarks/RESULTS.md``, "Context study" and
"Decision overhead")."""
EMBEDDER_NAMES: tuple[str, ...] = get_args(EmbedderName)
DEFAULT_EMBEDDER: EmbedderName = "static"
EMBEDDER_HELP = "the query encoder's model: static (MiniLM distilled to a token table; the default) or minilm"
"""What a command-line option choosing among :data:`EMBEDDER_NAMES` says."""


def query_embedder(name: str, device: str | None = None) -> TextEmbedder:
    """The embedding model called ``name`` (see :data:`EmbedderName`), loaded on first use."""
    if name == "minilm":
        return MiniLMEmbedder(device)
    if name == "static":
        return StaticMiniLMEmbedder(device=device)
    raise ValueError(f"unknown query embedder {name!r}; choose from {', '.join(EMBEDDER_NAMES)}")
