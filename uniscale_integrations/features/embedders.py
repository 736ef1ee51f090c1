"""The query encoder's embedding models by name: the one list that settings, the CLI and the server offer."""

from __future__ import annotations

from typing import Literal, get_args

from uniscale_integrations.features.encoder import MiniLMEmbedder, TextEmbedder
from uniscale_integrations.features.static import StaticMiniLMEmbedder

EmbedderName = Literal["minilm", "static"]
"""``"minilm"``: all-MiniLM-L6-v2, a transformer pass per query (the default: the best contexts on table v2's
tuning split); ``"static"``: its static distillation, a table lookup per query (decides in about a tenth of the
time, with slightly weaker contexts; ``benchmarks/RESULTS.md``, "Context study" and "Decision overhead")."""
EMBEDDER_NAMES: tuple[str, ...] = get_args(EmbedderName)
EMBEDDER_HELP = "the query encoder's model: minilm, or its static distillation (faster decisions; default: minilm)"
"""What a command-line option choosing among :data:`EMBEDDER_NAMES` says."""


def query_embedder(name: str, device: str | None = None) -> TextEmbedder:
    """The embedding model called ``name`` (see :data:`EmbedderName`), loaded on first use."""
    if name == "minilm":
        return MiniLMEmbedder(device)
    if name == "static":
        return StaticMiniLMEmbedder(device=device)
    raise ValueError(f"unknown query embedder {name!r}; choose from {', '.join(EMBEDDER_NAMES)}")
